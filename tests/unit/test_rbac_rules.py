"""RBAC rule matching (rbac.RuleAllows), Covers and the words of escalation errors — tables after Kubernetes'
rbac_test.go, policy_comparator_test.go and what kube-apiserver answers."""

import pytest

from master.apiserver.rbac_policy import rule as r  # a PolicyRule, as the bootstrap policy writes them
from bus.authn import UserInfo
from bus.rbac import (
    Attributes, CompiledRule, breakdown_rule, compact_rules, compact_string, covers, escalation_error, rule_allows,
)

U = UserInfo("alice", groups=("system:authenticated",))


def res(verb, resource, sub="", group="", ns="ns1", name=""):
    return Attributes(U, verb, ns, group, resource, sub, name)


def path(verb, p):
    return Attributes.for_path(U, verb, p)




MATCHES = [
    # (rule, attributes, allowed)
    (r(["get"], [""], ["pods"]), res("get", "pods"), True),
    (r(["get"], [""], ["pods"]), res("list", "pods"), False),
    (r(["*"], [""], ["pods"]), res("deletecollection", "pods"), True),
    (r(["get"], ["*"], ["pods"]), res("get", "pods", group="anything"), True),
    (r(["get"], ["apps"], ["deployments"]), res("get", "deployments", group="apps"), True),
    (r(["get"], ["apps"], ["deployments"]), res("get", "deployments", group="extensions"), False),
    (r(["get"], [""], ["deployments"]), res("get", "deployments", group="apps"), False),
    (r(["get"], [""], ["*"]), res("get", "anything"), True),
    (r(["get"], [""], ["*"]), res("get", "pods", "status"), True),  # "*" covers subresources too
    # subresources: "pods" does not cover "pods/status", "pods/status" does not cover "pods"
    (r(["get"], [""], ["pods"]), res("get", "pods", "status"), False),
    (r(["get"], [""], ["pods/status"]), res("get", "pods", "status"), True),
    (r(["get"], [""], ["pods/status"]), res("get", "pods"), False),
    (r(["get"], [""], ["pods/status"]), res("get", "pods", "log"), False),
    (r(["create"], [""], ["pods/exec"]), res("create", "pods", "exec"), True),
    # "*/scale" matches the scale subresource of anything, and nothing else
    (r(["get"], ["*"], ["*/scale"]), res("get", "deployments", "scale", group="apps"), True),
    (r(["get"], ["*"], ["*/scale"]), res("get", "anything", "scale"), True),
    (r(["get"], ["*"], ["*/scale"]), res("get", "deployments", group="apps"), False),
    (r(["get"], ["*"], ["*/scale"]), res("get", "deployments", "status", group="apps"), False),
    (r(["get"], ["*"], ["*/scale"]), res("get", "deployments", "scalex", group="apps"), False),
    # resourceNames restrict to those names; a request without a name (list, create) never matches them
    (r(["get"], [""], ["configmaps"], ["a"]), res("get", "configmaps", name="a"), True),
    (r(["get"], [""], ["configmaps"], ["a"]), res("get", "configmaps", name="b"), False),
    (r(["list"], [""], ["configmaps"], ["a"]), res("list", "configmaps"), False),
    (r(["*"], ["*"], ["*"], ["foo"]), res("create", "configmaps"), False),
    # non-resource URLs: exact, "*", and a trailing "*" as a prefix
    (r(["get"], urls=["/apis"]), path("get", "/apis"), True),
    (r(["get"], urls=["/apis"]), path("get", "/apis/v1"), False),
    (r(["get"], urls=["/apis"]), path("post", "/apis"), False),
    (r(["get"], urls=["/apis/*"]), path("get", "/apis/v1/foobar"), True),
    (r(["get"], urls=["/apis/*"]), path("get", "/apis"), False),
    (r(["get"], urls=["/healthz*"]), path("get", "/healthz/etcd"), True),
    (r(["*"], urls=["*"]), path("put", "/anything"), True),
    # resource rules never match non-resource requests and vice versa
    (r(["*"], ["*"], ["*"]), path("get", "/metrics"), False),
    (r(["*"], urls=["*"]), res("get", "pods"), False),
]


@pytest.mark.parametrize("rule,attrs,allowed", MATCHES)
def test_rule_matching_table(rule, attrs, allowed):
    assert rule_allows(attrs, rule) is allowed
    assert CompiledRule(rule).allows(attrs) is allowed


def test_breakdown_is_per_group_resource_verb_and_name():
    assert breakdown_rule(r(["get", "list"], ["", "apps"], ["pods"], ["a", "b"])) == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["b"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["a"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["b"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["b"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["a"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["b"]},
    ]
    assert breakdown_rule(r(["get"], urls=["/a", "/b"])) == [{"nonResourceURLs": ["/a"], "verbs": ["get"]},
                                                            {"nonResourceURLs": ["/b"], "verbs": ["get"]}]


COVERS = [
    # (owner rules, requested rules, covered, missing) — after policy_comparator_test.go
    ([r(["*"], ["*"], ["*"])], [r(["get", "delete"], ["apps"], ["deployments", "deployments/scale"])], True, []),
    ([r(["get"], [""], ["pods"])], [r(["get"], [""], ["pods"])], True, []),
    ([r(["get"], [""], ["pods"])], [r(["get", "delete"], [""], ["pods"])], False,
     [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}]),
    ([r(["get"], [""], ["pods"])], [r(["get"], ["apps"], ["pods"])], False,
     [{"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]}]),
    # resource names: an unrestricted owner covers named requests; a restricted one only its names
    ([r(["get"], [""], ["pods"])], [r(["get"], [""], ["pods"], ["a"])], True, []),
    ([r(["get"], [""], ["pods"], ["a", "b"])], [r(["get"], [""], ["pods"], ["a"])], True, []),
    ([r(["get"], [""], ["pods"], ["a"])], [r(["get"], [""], ["pods"])], False,
     [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
    # subresources: "*/scale" covers every scale; "pods" does not cover "pods/exec"
    ([r(["get"], ["*"], ["*/scale"])], [r(["get"], ["apps"], ["deployments/scale", "replicasets/scale"])], True, []),
    ([r(["create"], [""], ["pods"])], [r(["create"], [""], ["pods/exec"])], False,
     [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]),
    # non-resource URLs, with prefixes
    ([r(["get"], urls=["/api/*"])], [r(["get"], urls=["/api/v1", "/api/v1/pods"])], True, []),
    ([r(["get"], urls=["/api"])], [r(["get"], urls=["/api/v1"])], False,
     [{"nonResourceURLs": ["/api/v1"], "verbs": ["get"]}]),
    ([r(["*"], ["*"], ["*"])], [r(["get"], urls=["/metrics"])], False,
     [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]),
    # several owner rules together cover one requested rule
    ([r(["get"], [""], ["pods"]), r(["list"], [""], ["pods"])], [r(["get", "list"], [""], ["pods"])], True, []),
]


@pytest.mark.parametrize("owner,requested,ok,missing", COVERS)
def test_covers(owner, requested, ok, missing):
    assert covers(owner, requested) == (ok, missing)


def test_compact_string_is_kubernetes_compact_string():
    assert compact_string(r(["get", "list"], [""], ["pods"])) == (
        '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}')
    assert compact_string(r(["get"], urls=["/healthz"])) == '{NonResourceURLs:["/healthz"], Verbs:["get"]}'
    assert compact_string(r(["get"], ["apps"], ["deployments"], ["web"])) == (
        '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["web"], Verbs:["get"]}')


def test_compact_rules_merges_verbs_of_simple_rules():
    missing = covers([], [r(["get", "list", "watch"], [""], ["pods", "secrets"])])[1]
    assert sorted(compact_string(x) for x in compact_rules(missing)) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list" "watch"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "watch"]}',
    ]


def test_escalation_error_words():
    # what kube-apiserver answers (rolebindings/roles create by a ServiceAccount without the permissions)
    user = UserInfo("system:serviceaccount:rbac:privesc", groups=(
        "system:serviceaccounts", "system:serviceaccounts:rbac", "system:authenticated"))
    _, missing = covers([r(["get"], [""], ["pods"])], [r(["get", "delete"], [""], ["pods"])])
    assert escalation_error(user, missing) == (
        'user "system:serviceaccount:rbac:privesc" (groups=["system:serviceaccounts" "system:serviceaccounts:rbac" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}')
    _, missing = covers([], [r(["*"], [""], ["*"])])
    assert escalation_error(UserInfo("bob"), missing, ['clusterrole.rbac.authorization.k8s.io "x" not found']) == (
        'user "bob" (groups=[]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["*"], Verbs:["*"]}'
        '; resolution errors: [clusterrole.rbac.authorization.k8s.io "x" not found]')
