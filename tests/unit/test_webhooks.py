"""Admission webhooks, the pure parts: the configurations' validation (Kubernetes' paths and messages) and defaults,
which requests a webhook's rules and selectors match, the AdmissionReview sent, and what an answer means (patches,
refusals, bad answers)."""

from __future__ import annotations

import base64

import orjson
import pytest

from bus import errors
from bus.authn import UserInfo
from bus.models import to_dict
from bus.resources import by_plural
from bus.tables import columns
from bus.validation import validate_object
from master.apiserver.webhooks import (
    Attributes, CallError, apply_review_patch, denied, failed, matching_resource, object_selected, resource_matches,
    review_request, review_response, rule_matches,
)

VWC = by_plural("validatingwebhookconfigurations")
MWC = by_plural("mutatingwebhookconfigurations")
PODS, CMS, NAMESPACES = by_plural("pods"), by_plural("configmaps"), by_plural("namespaces")


def hook(**kw) -> dict:
    return {"name": "check.example.com", "clientConfig": {"url": "https://127.0.0.1:8443/validate"},
            "sideEffects": "None", "admissionReviewVersions": ["v1"], **kw}


def config(*hooks: dict, res=VWC) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": res.kind, "metadata": {"name": "c"},
            "webhooks": list(hooks)}


def causes(obj: dict, res=VWC) -> list[tuple[str, str]]:
    _, cs = validate_object(res, obj)
    return [(c.field, c.message) for c in cs]


# ---- validation and defaults ----------------------------------------------------------------------------------


def test_defaults_are_kubernetes_v1s():
    model, cs = validate_object(MWC, config(hook(clientConfig={"service": {"namespace": "ns", "name": "s"}},
                                                 rules=[{"operations": ["CREATE"], "apiGroups": [""],
                                                         "apiVersions": ["v1"], "resources": ["pods"]}]), res=MWC))
    assert cs == []
    h = to_dict(model)["webhooks"][0]
    assert (h["failurePolicy"], h["matchPolicy"], h["timeoutSeconds"], h["reinvocationPolicy"]) == (
        "Fail", "Equivalent", 10, "Never")
    assert h["namespaceSelector"] == {} and h["objectSelector"] == {}
    assert h["clientConfig"]["service"]["port"] == 443 and h["rules"][0]["scope"] == "*"


def test_names_must_be_qualified_with_three_segments_and_unique():
    got = causes(config(hook(name="a.b"), hook(name="x.y.z"), hook(name="x.y.z"), hook(name="")))
    assert ("webhooks[0].name", 'Invalid value: "a.b": should be a domain with at least three segments separated '
                                "by dots") in got
    assert ("webhooks[2].name", 'Duplicate value: "x.y.z"') in got
    assert ("webhooks[3].name", "Required value") in got


def test_client_config_url_and_service_rules():
    got = causes(config(hook(clientConfig={}),
                        hook(name="b.example.com", clientConfig={"url": "http://u:p@h:1/x?a=1#f"}),
                        hook(name="c.example.com", clientConfig={"url": "https://h", "service": {"name": "s"}}),
                        hook(name="d.example.com", clientConfig={"service": {"port": 0, "path": "x"}})))
    assert ("webhooks[0].clientConfig", "Required value: exactly one of url or service is required") in got
    url = "webhooks[1].clientConfig.url"
    assert (url, "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: "
                 "https://host[/path]") in got
    assert (url, 'Invalid value: "a=1": query parameters are not permitted in the URL') in got
    assert (url, 'Invalid value: "f": fragments are not permitted in the URL') in got
    assert any(f == url and "user information is not permitted" in m for f, m in got)
    assert ("webhooks[2].clientConfig", "Required value: exactly one of url or service is required") in got
    svc = "webhooks[3].clientConfig.service"
    assert (f"{svc}.name", "Required value: service name is required") in got
    assert (f"{svc}.namespace", "Required value: service namespace is required") in got
    assert (f"{svc}.path", "Invalid value: \"x\": must start with a '/'") in got
    assert any(f == f"{svc}.port" for f, _ in got)


def test_side_effects_review_versions_policies_and_timeout():
    got = causes(config({"name": "a.example.com", "clientConfig": {"url": "https://h"}},
                        hook(name="b.example.com", sideEffects="Some", admissionReviewVersions=["v1beta1"],
                             failurePolicy="Maybe", matchPolicy="Loose", timeoutSeconds=31,
                             reinvocationPolicy="Always")), res=MWC)
    assert ("webhooks[0].sideEffects", "Required value: must specify one of None, NoneOnDryRun") in got
    assert ("webhooks[0].admissionReviewVersions", "Required value: must specify one of v1") in got
    assert ("webhooks[1].sideEffects", 'Unsupported value: "Some": supported values: "None", "NoneOnDryRun"') in got
    assert ("webhooks[1].admissionReviewVersions", 'Invalid value: ["v1beta1"]: must include at least one of v1') in got
    assert ("webhooks[1].failurePolicy", 'Unsupported value: "Maybe": supported values: "Fail", "Ignore"') in got
    assert ("webhooks[1].matchPolicy", 'Unsupported value: "Loose": supported values: "Equivalent", "Exact"') in got
    assert ("webhooks[1].timeoutSeconds", "Invalid value: 31: the timeout value must be between 1 and 30 seconds") in got
    assert ("webhooks[1].reinvocationPolicy",
            'Unsupported value: "Always": supported values: "IfNeeded", "Never"') in got


def test_rules_validation():
    rule = {"operations": ["*", "CREATE"], "apiGroups": [], "apiVersions": ["v1", "*"],
            "resources": ["*", "pods", "*/*"], "scope": "Everywhere"}
    got = causes(config(hook(rules=[rule, {"operations": ["PATCH"], "apiGroups": ["*"], "apiVersions": ["*"],
                                           "resources": ["pods/*", "pods/status"]}])))
    p = "webhooks[0].rules[0]"
    assert (f"{p}.operations", "Invalid value: [\"*\", \"CREATE\"]: if '*' is present, must not specify other "
                               "operations") in got
    assert (f"{p}.apiGroups", "Required value") in got
    assert (f"{p}.apiVersions", "Invalid value: [\"v1\", \"*\"]: if '*' is present, must not specify other API "
                                "versions") in got
    assert (f"{p}.resources", "Invalid value: [\"*\", \"pods\", \"*/*\"]: if '*/*' is present, must not specify "
                              "other resources") in got
    assert (f"{p}.scope", 'Unsupported value: "Everywhere": supported values: "*", "Cluster", "Namespaced"') in got
    q = "webhooks[0].rules[1]"
    assert (f"{q}.operations[0]", 'Unsupported value: "PATCH": supported values: "*", "CONNECT", "CREATE", '
                                  '"DELETE", "UPDATE"') in got
    assert (f"{q}.resources[1]", "Invalid value: \"pods/status\": if 'pods/*' is present, must not specify "
                                 "pods/status") in got


def test_a_valid_configuration_has_no_causes_and_a_table_row():
    ok = config(hook(rules=[{"operations": ["CREATE", "UPDATE"], "apiGroups": ["", "apps"], "apiVersions": ["v1"],
                             "resources": ["pods", "pods/status", "deployments"], "scope": "Namespaced"}],
                     namespaceSelector={"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}]}),
                hook(name="other.example.com"))
    assert causes(ok) == []
    heads = [h for h, _ in columns("ValidatingWebhookConfiguration")]
    assert heads == ["NAME", "WEBHOOKS", "AGE"]
    assert dict(columns("ValidatingWebhookConfiguration"))["WEBHOOKS"](ok, None) == "2"


# ---- matching -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("patterns,resource,sub,want", [
    (["*"], "pods", "", True), (["*"], "pods", "status", False), (["*/*"], "pods", "status", True),
    (["pods"], "pods", "status", False), (["pods/status"], "pods", "status", True),
    (["pods/*"], "pods", "status", True), (["*/status"], "pods", "status", True),
    (["*/status"], "pods", "", False), (["configmaps"], "pods", "", False),
])
def test_resource_patterns(patterns, resource, sub, want):
    assert resource_matches(patterns, resource, sub) is want


def rule(**kw) -> dict:
    return {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], **kw}


def test_rules_match_operation_group_version_and_scope():
    assert rule_matches(rule(), "CREATE", PODS, "", "default")
    assert not rule_matches(rule(), "UPDATE", PODS, "", "default")
    assert rule_matches(rule(operations=["*"]), "DELETE", PODS, "", "default")
    assert not rule_matches(rule(apiGroups=["apps"]), "CREATE", PODS, "", "default")
    assert not rule_matches(rule(apiVersions=["v2"]), "CREATE", PODS, "", "default")
    assert rule_matches(rule(resources=["*"], apiGroups=["*"], apiVersions=["*"]), "CREATE", CMS, "", "x")
    assert not rule_matches(rule(scope="Cluster"), "CREATE", PODS, "", "default")
    assert rule_matches(rule(resources=["namespaces"], scope="Cluster"), "CREATE", NAMESPACES, "", None)
    assert not rule_matches(rule(resources=["namespaces"], scope="Namespaced"), "CREATE", NAMESPACES, "", None)


def attrs(obj=None, old=None, op="CREATE", res=PODS, ns="default", sub="") -> Attributes:
    return Attributes(res, op, ns, "p", sub, obj, old, UserInfo("alice", "u-1", ("devs",)), False, {})


def labelled(**labels) -> dict:
    return {"metadata": {"name": "p", "labels": labels}}


def test_object_selector_matches_new_or_old_labels():
    h = {"objectSelector": {"matchLabels": {"hook": "on"}}}
    assert object_selected(h, attrs(labelled(hook="on")))
    assert not object_selected(h, attrs(labelled(hook="off")))
    assert object_selected(h, attrs(labelled(), labelled(hook="on"), "UPDATE"))
    assert object_selected({"objectSelector": {}}, attrs(labelled()))
    assert not object_selected(h, attrs(None, labelled(), "DELETE"))


def test_matching_resource_needs_a_matching_rule():
    assert matching_resource({"rules": [rule()]}, attrs(labelled())) is PODS
    assert matching_resource({"rules": [rule(operations=["UPDATE"])]}, attrs(labelled())) is None
    assert matching_resource({}, attrs(labelled())) is None



def test_equivalent_match_policy_reaches_another_served_version_of_a_custom_resource():
    from bus.crd import resource_from_crd
    from tests.integration.test_crds import definition

    crd = definition(versions=("v1", "v2"), storage="v2")
    v2 = resource_from_crd(crd)
    v1 = v2.custom.at_version(v2, "v1")
    a = attrs({"apiVersion": f"{v2.group}/v2", "kind": "CronTab", "metadata": {"name": "c"}}, res=v2)
    wants_v1 = {"rules": [rule(apiGroups=[v2.group], resources=["crontabs"])]}
    matched = matching_resource(wants_v1, a)
    assert matched is not None and matched.version == "v1" and matched == v1
    assert matching_resource({**wants_v1, "matchPolicy": "Exact"}, a) is None
    body = review_request(a, matched, "u")["request"]
    assert body["resource"]["version"] == "v1" and body["requestResource"]["version"] == "v2"
    assert body["object"]["apiVersion"] == f"{v2.group}/v1"


# ---- the request and the answer -------------------------------------------------------------------------------


def test_review_request_is_kubernetes_admission_review_v1():
    old = labelled(a="1")
    body = review_request(Attributes(PODS, "UPDATE", "default", "p", "status", labelled(a="2"), old,
                                     UserInfo("alice", "u-1", ("devs",), (("team", ("x",)),)), True,
                                     {"fieldManager": "kubectl"}), PODS, "uid-1")
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    r = body["request"]
    assert r["uid"] == "uid-1" and r["operation"] == "UPDATE" and r["name"] == "p" and r["namespace"] == "default"
    assert r["kind"] == {"group": "", "version": "v1", "kind": "Pod"} == r["requestKind"]
    assert r["resource"] == {"group": "", "version": "v1", "resource": "pods"} == r["requestResource"]
    assert r["subResource"] == "status"
    assert r["userInfo"] == {"username": "alice", "uid": "u-1", "groups": ["devs"], "extra": {"team": ["x"]}}
    assert r["object"]["metadata"]["labels"] == {"a": "2"} and r["oldObject"]["metadata"] == old["metadata"]
    assert r["dryRun"] is True
    assert r["options"] == {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"],
                            "fieldManager": "kubectl"}
    create = review_request(attrs(labelled()), PODS, "u")["request"]
    assert create["oldObject"] is None and create["options"]["kind"] == "CreateOptions"
    assert "namespace" not in review_request(attrs(labelled(), res=NAMESPACES, ns=None), NAMESPACES, "u")["request"]


def answer(uid="u", **resp) -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, **resp}}


def test_bad_answers_are_call_errors():
    assert review_response(answer(allowed=True), "u")["allowed"] is True
    with pytest.raises(CallError, match='expected response.uid="u", got "v"'):
        review_response(answer("v", allowed=True), "u")
    with pytest.raises(CallError, match="expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview"):
        review_response({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "u")
    with pytest.raises(CallError, match="webhook response was absent"):
        review_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "u")


def test_refusal_messages_and_codes():
    e = denied("deny.example.com", {"allowed": False, "status": {"message": "no key x", "code": 403}})
    assert (e.code, e.message) == (403, 'admission webhook "deny.example.com" denied the request: no key x')
    e = denied("deny.example.com", {"allowed": False})
    assert (e.code, e.message) == (400, 'admission webhook "deny.example.com" denied the request without '
                                        "explanation")
    e = denied("d.example.com", {"allowed": False, "status": {"reason": "Nope", "code": 200}})
    assert (e.code, e.message) == (400, 'admission webhook "d.example.com" denied the request: Nope')
    f = failed("d.example.com", "boom")
    assert (f.code, f.reason, f.message) == (500, "InternalError",
                                             'Internal error occurred: failed calling webhook "d.example.com": boom')


def encoded(ops) -> str:
    return base64.b64encode(orjson.dumps(ops)).decode()


def test_json_patches_are_applied_and_bad_ones_are_internal_errors():
    obj = labelled(a="1")
    patch = encoded([{"op": "add", "path": "/metadata/labels/added", "value": "yes"}])
    out = apply_review_patch("m.example.com", obj, {"allowed": True, "patchType": "JSONPatch", "patch": patch})
    assert out["metadata"]["labels"] == {"a": "1", "added": "yes"} and obj["metadata"]["labels"] == {"a": "1"}
    assert apply_review_patch("m.example.com", obj, {"allowed": True}) is None
    with pytest.raises(errors.ApiError) as e:
        apply_review_patch("m.example.com", obj, {"patchType": "MergePatch", "patch": patch})
    assert e.value.code == 500 and "unsupported patch type" in e.value.message
    with pytest.raises(errors.ApiError) as e:
        apply_review_patch("m.example.com", obj, {"patchType": "JSONPatch",
                                                  "patch": encoded([{"op": "remove", "path": "/nope"}])})
    assert e.value.code == 500 and 'admission webhook "m.example.com" sent a patch' in e.value.message


# ---- service references ---------------------------------------------------------------------------------------


class Objects:
    """The store reads the service form makes (get by kind, namespace, name)."""

    def __init__(self, *objs: dict) -> None:
        self.objs = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    async def get(self, res, namespace, name):
        try:
            return self.objs[(res.kind, namespace, name)]
        except KeyError:
            raise errors.not_found(res.plural, name) from None


def service_objects(ready: bool = True) -> Objects:
    svc = {"kind": "Service", "metadata": {"namespace": "sys", "name": "hooks"},
           "spec": {"ports": [{"name": "metrics", "port": 9090, "targetPort": 9090},
                              {"name": "https", "port": 443, "targetPort": 8443}]}}
    addresses = {"addresses" if ready else "notReadyAddresses": [{"ip": "10.244.1.7"}]}
    eps = {"kind": "Endpoints", "metadata": {"namespace": "sys", "name": "hooks"},
           "subsets": [{**addresses, "ports": [{"name": "metrics", "port": 9090}, {"name": "https", "port": 8443}]}]}
    return Objects(svc, eps)


async def test_a_service_reference_goes_to_a_ready_endpoint_with_the_service_name_for_tls():
    from master.apiserver.webhooks import Webhooks

    async def no_labels(_ns):
        return {}

    w = Webhooks(service_objects(), no_labels)
    ref = {"service": {"namespace": "sys", "name": "hooks", "port": 443, "path": "/validate"}}
    assert await w._target(ref) == ("https://10.244.1.7:8443/validate", "hooks.sys.svc")
    assert await w._target({"url": "https://h:1/x"}) == ("https://h:1/x", None)
    with pytest.raises(CallError, match="has no port 444"):
        await w._target({"service": {**ref["service"], "port": 444}})
    with pytest.raises(CallError, match='service "missing" not found'):
        await w._target({"service": {**ref["service"], "name": "missing"}})
    w.store = service_objects(ready=False)
    with pytest.raises(CallError, match="has no ready endpoints"):
        await w._target(ref)


# ---- who may write them ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("plural", ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"])
def test_only_cluster_admins_manage_webhook_configurations(plural):
    from bus.rbac import Attributes as Authz, RBACAuthorizer, StaticRuleSource
    from master.apiserver import rbac_policy
    from tests.unit.test_rbac_authorizer import crb

    roles = [o for r, o in rbac_policy.bootstrap_objects() if r.plural == "clusterroles"]
    bob = UserInfo("bob")

    def can(role: str, verb: str) -> bool:
        authz = RBACAuthorizer(StaticRuleSource(cluster_roles=roles, cluster_role_bindings=[
            crb("b", role, "User:bob")]))
        return authz.authorize(Authz.for_resource(bob, verb, by_plural(plural), "", "x")).allowed

    for role in ("admin", "edit", "view"):
        assert not can(role, "get") and not can(role, "create"), role
    assert can("cluster-admin", "create") and can("cluster-admin", "delete")


def test_strategic_merge_patch_merges_webhooks_by_name():
    from master.apiserver.patch import apply_patch

    cur = config(hook(name="a.example.com", timeoutSeconds=5), hook(name="b.example.com"))
    out = apply_patch(cur, {"webhooks": [{"name": "b.example.com", "timeoutSeconds": 3}]}, "strategic", VWC.kind)
    assert [(h["name"], h.get("timeoutSeconds")) for h in out["webhooks"]] == [("a.example.com", 5),
                                                                              ("b.example.com", 3)]
