"""The RBAC authorizer: bindings to users, groups and ServiceAccounts, RoleBinding→ClusterRole scoping,
system:masters, the informer-backed source and its subject index, rule listings, and the words of a 403."""

import pytest

from bus.authn import UserInfo, node_user, service_account_user
from bus.informer import Informer
from bus.rbac import (
    Attributes, InformerRuleSource, RBACAuthorizer, StaticRuleSource, UnionAuthorizer, deny, forbidden_error,
    forbidden_message, subject_rules_review,
)
from bus.resources import by_plural
from tests.unit.fakestore import FakeStore
from tests.waiting import eventually

G = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", groups=("system:authenticated",))
PODS, SECRETS, DEPLOYS = by_plural("pods"), by_plural("secrets"), by_plural("deployments")


def cluster_role(name, *rules, labels=None):
    return {"apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}},
            "rules": list(rules)}


def role(ns, name, *rules):
    return {"apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": list(rules)}


def subject(spec):
    kind, _, name = spec.partition(":")
    if kind == "ServiceAccount":
        ns, n = name.split("/") if "/" in name else ("", name)
        return {"kind": kind, "name": n, **({"namespace": ns} if ns else {})}
    return {"kind": kind, "apiGroup": G, "name": name}


def crb(name, role_name, *subjects):
    return {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": role_name},
            "subjects": [subject(s) for s in subjects]}


def rb(ns, name, kind, role_name, *subjects):
    return {"apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": G, "kind": kind, "name": role_name}, "subjects": [subject(s) for s in subjects]}


def rule(verbs, groups, resources, names=()):
    out = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        out["resourceNames"] = list(names)
    return out


def allowed(authz, user, verb, resource, ns="", name="", sub=""):
    return authz.authorize(Attributes.for_resource(user, verb, resource, ns, name, sub)).allowed


def static(**kw):
    return RBACAuthorizer(StaticRuleSource(**kw))


def test_cluster_role_binding_to_user_group_and_service_account():
    reader = cluster_role("pod-reader", rule(["get", "list"], [""], ["pods"]))
    authz = static(cluster_roles=[reader], cluster_role_bindings=[
        crb("by-user", "pod-reader", "User:alice"),
        crb("by-group", "pod-reader", "Group:readers"),
        crb("by-sa", "pod-reader", "ServiceAccount:demo/robot"),
    ])
    assert allowed(authz, ALICE, "list", PODS, "any")
    assert allowed(authz, ALICE, "get", PODS)  # cluster scope too
    assert not allowed(authz, ALICE, "delete", PODS, "any")
    assert not allowed(authz, ALICE, "get", SECRETS, "any")
    assert allowed(authz, UserInfo("bob", groups=("readers",)), "get", PODS, "x")
    assert not allowed(authz, UserInfo("bob", groups=("writers",)), "get", PODS, "x")
    assert allowed(authz, service_account_user("demo", "robot"), "get", PODS, "other")
    assert not allowed(authz, service_account_user("demo2", "robot"), "get", PODS, "other")
    # a user named like a ServiceAccount is that ServiceAccount (as in Kubernetes: the name is what counts)
    assert allowed(authz, UserInfo("system:serviceaccount:demo:robot"), "get", PODS, "x")


def test_role_binding_grants_only_in_its_namespace_also_for_cluster_roles():
    admin = cluster_role("admin", rule(["*"], ["*"], ["*"]))
    authz = static(cluster_roles=[admin], roles=[role("ns1", "r", rule(["get"], [""], ["secrets"]))],
                   role_bindings=[rb("ns1", "admin", "ClusterRole", "admin", "User:admin", "Group:admins"),
                                  rb("ns1", "r", "Role", "r", "User:alice")])
    admin_user = UserInfo("admin")
    assert allowed(authz, admin_user, "get", PODS, "ns1")
    assert allowed(authz, UserInfo("joe", groups=("group1", "admins")), "watch", DEPLOYS, "ns1")
    assert not allowed(authz, admin_user, "get", PODS, "ns2")
    assert not allowed(authz, admin_user, "get", by_plural("nodes"))  # a RoleBinding never grants cluster scope
    assert not allowed(authz, admin_user, "list", PODS)  # nor every namespace
    assert allowed(authz, ALICE, "get", SECRETS, "ns1", "s")
    assert not allowed(authz, ALICE, "get", SECRETS, "ns2", "s")


def test_role_binding_service_account_subject_defaults_to_the_bindings_namespace():
    authz = static(roles=[role("demo", "r", rule(["get"], [""], ["pods"]))],
                   role_bindings=[rb("demo", "r", "Role", "r", "ServiceAccount:robot")])
    assert allowed(authz, service_account_user("demo", "robot"), "get", PODS, "demo")
    assert not allowed(authz, service_account_user("other", "robot"), "get", PODS, "demo")


def test_cluster_role_binding_service_account_without_namespace_applies_to_nobody():
    authz = static(cluster_roles=[cluster_role("c", rule(["get"], [""], ["pods"]))],
                   cluster_role_bindings=[crb("c", "c", "ServiceAccount:robot")])
    assert not allowed(authz, service_account_user("default", "robot"), "get", PODS, "default")


def test_system_masters_is_always_allowed():
    authz = static()
    root = UserInfo("root", groups=("system:masters",))
    assert allowed(authz, root, "delete", SECRETS, "kube-system", "x")
    assert authz.authorize(Attributes.for_path(root, "get", "/metrics")).allowed
    assert not allowed(authz, ALICE, "get", PODS, "x")


def test_allowed_reason_names_the_binding_and_denial_reason_names_missing_roles():
    authz = static(cluster_roles=[cluster_role("view", rule(["get"], [""], ["pods"]))],
                   cluster_role_bindings=[crb("viewers", "view", "Group:system:authenticated"),
                                          crb("broken", "gone", "User:alice")],
                   role_bindings=[rb("ns1", "rb", "Role", "missing", "ServiceAccount:robot", "User:alice")])
    d = authz.authorize(Attributes.for_resource(ALICE, "get", PODS, "ns1", "p"))
    assert d.allowed and d.reason == ('RBAC: allowed by ClusterRoleBinding "viewers" of ClusterRole "view" to '
                                      'Group "system:authenticated"')
    d = authz.authorize(Attributes.for_resource(ALICE, "delete", PODS, "ns1", "p"))
    assert d.no_opinion and not d.denied
    assert d.reason == ('RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
                        'role.rbac.authorization.k8s.io "missing" not found]')
    authz2 = static(roles=[role("ns1", "r", rule(["get"], [""], ["pods"]))],
                    role_bindings=[rb("ns1", "rb", "Role", "r", "ServiceAccount:robot")])
    d = authz2.authorize(Attributes.for_resource(service_account_user("ns1", "robot"), "get", PODS, "ns1"))
    assert d.reason == 'RBAC: allowed by RoleBinding "rb/ns1" of Role "r" to ServiceAccount "robot/ns1"'


def test_non_resource_urls():
    authz = static(cluster_roles=[cluster_role("getter", {"verbs": ["get"], "nonResourceURLs": ["/apis"]}),
                                  cluster_role("prefix", {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]})],
                   cluster_role_bindings=[crb("getter", "getter", "User:foo"), crb("prefix", "prefix", "Group:pre")])
    can = lambda u, v, p: authz.authorize(Attributes.for_path(u, v, p)).allowed  # noqa: E731
    assert can(UserInfo("foo"), "get", "/apis")
    assert not can(UserInfo("foo"), "watch", "/apis")
    assert not can(UserInfo("foo"), "get", "/api/v1")
    assert can(UserInfo("x", groups=("pre",)), "get", "/apis/v1/foobar")
    assert not can(UserInfo("x", groups=("pre",)), "get", "/api/v1")
    # non-resource rules in a ClusterRole bound by a RoleBinding do not apply (no namespace in the request)
    authz = static(cluster_roles=[cluster_role("getter", {"verbs": ["get"], "nonResourceURLs": ["*"]})],
                   role_bindings=[rb("ns1", "g", "ClusterRole", "getter", "User:foo")])
    assert not authz.authorize(Attributes.for_path(UserInfo("foo"), "get", "/apis")).allowed


def test_rules_for_lists_what_applies_in_the_namespace():
    authz = static(cluster_roles=[cluster_role("c", rule(["get"], [""], ["nodes"]),
                                               {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}),
                                  cluster_role("e", rule(["*"], ["apps"], ["deployments"], ["web"]))],
                   cluster_role_bindings=[crb("c", "c", "Group:system:authenticated")],
                   role_bindings=[rb("ns1", "e", "ClusterRole", "e", "User:alice"),
                                  rb("ns1", "m", "Role", "nope", "User:alice")])
    res, nonres, incomplete = authz.rules_for(ALICE, "ns1")
    assert res == [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]},
                   {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"]}]
    assert nonres == [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]
    assert incomplete  # the Role "nope" is missing
    res, _, incomplete = authz.rules_for(ALICE, "ns2")
    assert len(res) == 1 and not incomplete
    status = subject_rules_review(authz, ALICE, "ns1")
    assert status["incomplete"] is False
    assert status["evaluationError"] == 'role.rbac.authorization.k8s.io "nope" not found'


# ---- the words of a 403 (responsewriters.ForbiddenStatusError) ---------------------------------------------


def test_forbidden_messages():
    sa = service_account_user("demo", "default")
    assert forbidden_message(Attributes.for_resource(sa, "list", SECRETS, "kube-system")) == (
        'secrets is forbidden: User "system:serviceaccount:demo:default" cannot list resource "secrets" in API '
        'group "" in the namespace "kube-system"')
    assert forbidden_message(Attributes.for_resource(ALICE, "get", PODS, "default", "web")) == (
        'pods "web" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default"')
    assert forbidden_message(Attributes.for_resource(ALICE, "list", by_plural("nodes"))) == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope')
    assert forbidden_message(Attributes.for_resource(ALICE, "create", PODS, "default", "web", "exec")) == (
        'pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace '
        '"default"')
    assert forbidden_message(Attributes.for_resource(ALICE, "list", DEPLOYS, "default")) == (
        'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" in the '
        'namespace "default"')
    assert forbidden_message(Attributes.for_path(UserInfo("x"), "get", "/metrics")) == (
        'forbidden: User "x" cannot get path "/metrics"')
    # kube-apiserver's own test cases: HTML is escaped; an authorizer's reason is appended
    assert forbidden_message(Attributes.for_path(UserInfo("NAME"), "get", "/<script>")) == (
        'forbidden: User "NAME" cannot get path "/&lt;script&gt;"')
    assert forbidden_message(Attributes(UserInfo("NAME"), "get", "mynamespace", "v2", "pod", "quota")) == (
        'pod.v2 is forbidden: User "NAME" cannot get resource "pod/quota" in API group "v2" in the namespace '
        '"mynamespace"')
    node = node_user("n1")
    assert forbidden_message(Attributes.for_resource(node, "get", SECRETS, "default", "s"),
                             "no relationship found between node 'n1' and this object") == (
        'secrets "s" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the '
        "namespace \"default\": no relationship found between node 'n1' and this object")


def test_forbidden_error_is_a_403_status():
    err = forbidden_error(Attributes.for_resource(ALICE, "get", DEPLOYS, "default", "web"))
    st = err.status()
    assert (st["code"], st["reason"], st["status"]) == (403, "Forbidden", "Failure")
    assert st["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    assert forbidden_error(Attributes.for_path(ALICE, "get", "/x")).status().get("details") is None


def test_union_first_allow_or_deny_wins_and_no_opinions_join_reasons():
    class Fixed:
        def __init__(self, d):
            self.d = d

        def authorize(self, attrs, body=None):
            return self.d

    from bus.rbac import ALLOWED, no_opinion
    a = Attributes.for_resource(ALICE, "get", PODS, "x")
    assert UnionAuthorizer(Fixed(no_opinion("a")), Fixed(ALLOWED)).authorize(a).allowed
    assert UnionAuthorizer(Fixed(deny("no")), Fixed(ALLOWED)).authorize(a).denied
    d = UnionAuthorizer(Fixed(no_opinion("a")), Fixed(no_opinion()), Fixed(no_opinion("b"))).authorize(a)
    assert d.no_opinion and d.reason == "a\nb"


# ---- the informer-backed source ---------------------------------------------------------------------------------


@pytest.fixture
async def informed():
    store = FakeStore()
    infs = [Informer(store, p) for p in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")]
    source = InformerRuleSource(*infs)
    for inf in infs:
        await inf.start()
    yield store, source, RBACAuthorizer(source)
    for inf in infs:
        await inf.stop()


async def test_informer_source_follows_changes(informed):
    store, source, authz = informed
    assert await source.wait_synced(1)
    assert not allowed(authz, ALICE, "get", PODS, "ns1")
    store.put(cluster_role("reader", rule(["get"], [""], ["pods"])))
    store.put(rb("ns1", "read", "ClusterRole", "reader", "Group:system:authenticated"))
    await eventually(lambda: allowed(authz, ALICE, "get", PODS, "ns1"))
    assert not allowed(authz, ALICE, "get", PODS, "ns2")
    # the role grows: the cached decision must not stick
    store.put(cluster_role("reader", rule(["get", "delete"], [""], ["pods"])))
    await eventually(lambda: allowed(authz, ALICE, "delete", PODS, "ns1"))
    # the binding changes its subjects: alice's group no longer, bob by name
    store.put(rb("ns1", "read", "ClusterRole", "reader", "User:bob"))
    await eventually(lambda: not allowed(authz, ALICE, "get", PODS, "ns1"))
    assert allowed(authz, UserInfo("bob"), "get", PODS, "ns1")
    store.remove("ns1", "read")
    await eventually(lambda: not allowed(authz, UserInfo("bob"), "get", PODS, "ns1"))
    assert source._rb == {} and source._filed == {}  # nothing left filed under any subject


def test_a_deleted_binding_is_unfiled_by_what_it_was_filed_under():
    infs = [Informer(FakeStore(), p) for p in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")]
    source = InformerRuleSource(*infs)
    source._add_crb(crb("b", "c", "User:alice", "Group:g"))
    source._add_rb(rb("ns", "b", "Role", "r", "ServiceAccount:sa"))
    assert source.cluster_role_bindings_for([("g", "g")]) and source.role_bindings_for(
        "ns", [("u", "system:serviceaccount:ns:sa")])
    source._remove_crb({"metadata": {"name": "b"}})  # a final state without its subjects
    source._remove_rb({"metadata": {"name": "b", "namespace": "ns"}})
    assert source._crb == {} and source._rb == {} and source._filed == {}


async def test_informer_source_indexes_bindings_by_subject(informed):
    store, source, authz = informed
    store.put(cluster_role("c", rule(["get"], [""], ["pods"])))
    for i in range(50):
        store.put(crb(f"b{i}", "c", f"User:user{i}", "Group:g-common", f"ServiceAccount:ns{i}/sa"))
    await eventually(lambda: len(source.crb_informer) == 50)
    keys = [("u", "user7"), ("g", "g-other")]
    assert [b["metadata"]["name"] for b in source.cluster_role_bindings_for(keys)] == ["b7"]
    assert len(source.cluster_role_bindings_for([("g", "g-common")])) == 50
    assert [b["metadata"]["name"] for b in source.cluster_role_bindings_for(
        [("u", "system:serviceaccount:ns3:sa")])] == ["b3"]
    assert allowed(authz, service_account_user("ns3", "sa"), "get", PODS, "x")
