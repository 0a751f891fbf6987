"""Writes of roles and bindings: validation (Kubernetes' field paths and messages), the roleRef that cannot
change, the escalation checks (check_rbac_write), and kubectl's columns for the four kinds."""

from datetime import datetime, timezone

from bus import tables
from bus.authn import UserInfo, service_account_user
from bus.rbac import RBACAuthorizer, StaticRuleSource, check_rbac_write, forbidden_write_error, roleref_changed
from bus.resources import by_plural
from bus.validation import validate_object, validate_update
from tests.unit.test_rbac_authorizer import cluster_role, crb, rb, role, rule

G = "rbac.authorization.k8s.io"
DEV = service_account_user("dev", "developer")


def causes(plural, obj):
    _model, cs = validate_object(by_plural(plural), obj)
    return [f"{c.field}: {c.message}" for c in cs]


# ---- validation -------------------------------------------------------------------------------------------------


def test_role_rules_validation():
    assert causes("roles", role("d", "r", {"apiGroups": [""], "resources": ["pods"]})) == [
        "rules[0].verbs: Required value: verbs must contain at least one value"]
    assert causes("roles", role("d", "r", {"verbs": ["get"]})) == [
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
        "rules[0].resources: Required value: resource rules must supply at least one resource"]
    assert causes("roles", role("d", "r", {"verbs": ["get"], "nonResourceURLs": ["/healthz"]})) == [
        'rules[0].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs']
    assert causes("clusterroles", cluster_role("c", {"verbs": ["get"], "nonResourceURLs": ["/healthz"]})) == []
    assert causes("clusterroles", cluster_role("c", {"verbs": ["get"], "nonResourceURLs": ["/x"],
                                                     "resources": ["pods"]})) == [
        'rules[0].nonResourceURLs: Invalid value: ["/x"]: rules cannot apply to both regular resources and '
        'non-resource URLs']
    assert causes("clusterroles", cluster_role("system:controller:x", rule(["get"], [""], ["pods"]))) == []


def test_rbac_names_are_path_segments():
    assert causes("clusterroles", cluster_role("..")) == ["metadata.name: Invalid value: \"..\": may not be '..'"]
    assert causes("clusterroles", cluster_role("a/b%c")) == [
        "metadata.name: Invalid value: \"a/b%c\": may not contain '/'",
        "metadata.name: Invalid value: \"a/b%c\": may not contain '%'"]
    assert causes("clusterroles", cluster_role("Upper:Case@x.io")) == []


def test_aggregation_rule_validation():
    c = cluster_role("agg")
    c["aggregationRule"] = {}
    assert causes("clusterroles", c) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if "
        "aggregationRule is non-nil"]
    c["aggregationRule"] = {"clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "Bogus"}]}]}
    assert causes("clusterroles", c) == [
        'aggregationRule.clusterRoleSelectors[0].matchExpressions[0].operator: Invalid value: "Bogus": not a valid '
        'selector operator']
    c["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]}
    assert causes("clusterroles", c) == []


def test_binding_validation():
    b = rb("d", "b", "Secret", "x", "User:u")
    b["roleRef"]["apiGroup"] = "v1"
    b["subjects"] += [{"kind": "ServiceAccount", "name": "Bad", "apiGroup": "v1"}, {"kind": "Robot", "name": "r"},
                      {"kind": "Group", "name": "g", "apiGroup": "example.com"}, {"kind": "User"}]
    assert causes("rolebindings", b) == [
        'roleRef.apiGroup: Unsupported value: "v1": supported values: "rbac.authorization.k8s.io"',
        'roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole"',
        'subjects[1].name: Invalid value: "Bad": a lowercase RFC 1123 subdomain must consist of lower case '
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
        "[a-z0-9])?)*')",
        'subjects[1].apiGroup: Unsupported value: "v1": supported values: ""',
        'subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
        'subjects[3].apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"',
        "subjects[4].name: Required value"]
    c = crb("b", "view", "ServiceAccount:robot")
    c["roleRef"]["kind"] = "Role"
    assert causes("clusterrolebindings", c) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        "subjects[0].namespace: Required value"]
    assert causes("clusterrolebindings", {"metadata": {"name": "x"}}) == [
        'roleRef.kind: Unsupported value: "": supported values: "ClusterRole"', "roleRef.name: Required value"]


def test_defaults_fill_role_ref_and_subject_api_groups():
    model, cs = validate_object(by_plural("rolebindings"), {
        "metadata": {"name": "b", "namespace": "d"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"},
                     {"kind": "ServiceAccount", "name": "s"}]})
    assert cs == []
    assert model.role_ref.api_group == G
    assert [s.api_group for s in model.subjects] == [G, G, None]


def test_role_ref_cannot_change():
    old = rb("d", "b", "ClusterRole", "view", "User:u")
    new = rb("d", "b", "ClusterRole", "edit", "User:u")
    assert roleref_changed(old, new)
    assert not roleref_changed(old, rb("d", "b", "ClusterRole", "view", "User:other"))
    no_group = rb("d", "b", "ClusterRole", "view")
    del no_group["roleRef"]["apiGroup"]
    assert not roleref_changed(no_group, old)  # the apiGroup default is the same roleRef
    res = by_plural("rolebindings")
    assert [f"{c.field}: {c.message}" for c in validate_update(res, old, new)] == [
        'roleRef: Invalid value: {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}: '
        "cannot change roleRef"]
    assert validate_update(res, old, rb("d", "b", "ClusterRole", "view", "User:u", "User:v")) == []
    assert validate_update(by_plural("clusterrolebindings"), crb("b", "view"), crb("b", "admin"))


# ---- escalation (check_rbac_write) ------------------------------------------------------------------------------


def authz_for(*, roles=(), cluster_roles=(), role_bindings=(), cluster_role_bindings=()):
    return RBACAuthorizer(StaticRuleSource(roles, cluster_roles, role_bindings, cluster_role_bindings))


def lookup_in(*objs):
    by = {(o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in objs}

    async def lookup(kind, ns, name):
        return by.get((kind, ns, name))
    return lookup


PODS_RW = rule(["get", "list", "watch", "create", "delete"], [""], ["pods"])
ROLE_WRITER = rule(["create", "update"], [G], ["roles", "rolebindings"])


async def test_role_create_needs_the_permissions_it_grants():
    writer = cluster_role("writer", PODS_RW, ROLE_WRITER)
    authz = authz_for(cluster_roles=[writer], role_bindings=[rb("dev", "w", "ClusterRole", "writer",
                                                                 "ServiceAccount:developer")])
    ok = role("dev", "pod-reader", rule(["get", "list"], [""], ["pods"]))
    assert await check_rbac_write(authz, DEV, "roles", "dev", ok, lookup_in()) is None
    too_much = role("dev", "nsadmin", rule(["*"], [""], ["*"]))
    assert await check_rbac_write(authz, DEV, "roles", "dev", too_much, lookup_in()) == (
        'roles.rbac.authorization.k8s.io "nsadmin" is forbidden: user "system:serviceaccount:dev:developer" '
        '(groups=["system:serviceaccounts" "system:serviceaccounts:dev" "system:authenticated"]) is attempting to '
        'grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["*"], Verbs:["*"]}')
    # the same role in another namespace: nothing held there
    assert await check_rbac_write(authz, DEV, "roles", "prod", role("prod", "r", rule(["get"], [""], ["pods"])),
                                  lookup_in()) is not None


async def test_escalate_verb_allows_any_role():
    escalator = cluster_role("esc", rule(["escalate"], [G], ["roles"]))
    authz = authz_for(cluster_roles=[escalator], role_bindings=[rb("dev", "e", "ClusterRole", "esc",
                                                                   "ServiceAccount:developer")])
    assert await check_rbac_write(authz, DEV, "roles", "dev", role("dev", "all", rule(["*"], ["*"], ["*"])),
                                  lookup_in()) is None
    assert await check_rbac_write(authz, DEV, "roles", "other", role("other", "all", rule(["*"], ["*"], ["*"])),
                                  lookup_in()) is not None


async def test_binding_create_needs_the_roles_permissions_or_bind():
    deleter = role("rbac", "delete-pod", rule(["delete"], [""], ["pods"]))
    getter = cluster_role("getter", rule(["get"], [""], ["pods"]), ROLE_WRITER)
    privesc = service_account_user("rbac", "privesc")
    authz = authz_for(roles=[deleter], cluster_roles=[getter],
                      role_bindings=[rb("rbac", "g", "ClusterRole", "getter", "ServiceAccount:privesc")])
    binding = rb("rbac", "delete-pod", "Role", "delete-pod", "ServiceAccount:privesc")
    msg = await check_rbac_write(authz, privesc, "rolebindings", "rbac", binding, lookup_in(deleter))
    assert msg == (
        'rolebindings.rbac.authorization.k8s.io "delete-pod" is forbidden: user "system:serviceaccount:rbac:privesc" '
        '(groups=["system:serviceaccounts" "system:serviceaccounts:rbac" "system:authenticated"]) is attempting to '
        'grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}')
    st = forbidden_write_error("rolebindings", "delete-pod", msg).status()
    assert (st["code"], st["reason"], st["details"]) == (403, "Forbidden", {"name": "delete-pod", "group": G,
                                                                          "kind": "rolebindings"})
    # with "bind" on that role (and only that one), it may
    binder = role("rbac", "bind", rule(["bind"], [G], ["roles"], ["delete-pod"]))
    authz = authz_for(roles=[deleter, binder], cluster_roles=[getter], role_bindings=[
        rb("rbac", "g", "ClusterRole", "getter", "ServiceAccount:privesc"),
        rb("rbac", "b", "Role", "bind", "ServiceAccount:privesc")])
    assert await check_rbac_write(authz, privesc, "rolebindings", "rbac", binding, lookup_in(deleter)) is None
    other = rb("rbac", "x", "ClusterRole", "cluster-admin", "ServiceAccount:privesc")
    assert await check_rbac_write(authz, privesc, "rolebindings", "rbac", other, lookup_in(deleter)) == (
        'rolebindings.rbac.authorization.k8s.io "x" is forbidden: clusterrole.rbac.authorization.k8s.io '
        '"cluster-admin" not found')


async def test_cluster_role_binding_and_aggregation_need_cluster_wide_power():
    view = cluster_role("view", rule(["get"], [""], ["pods"]))
    alice = UserInfo("alice")
    ns_admin = cluster_role("admin", rule(["*"], ["*"], ["*"]))
    authz = authz_for(cluster_roles=[view, ns_admin],
                      role_bindings=[rb("a", "a", "ClusterRole", "admin", "User:alice")])
    # holding the rules in one namespace does not let alice grant them cluster-wide
    assert await check_rbac_write(authz, alice, "clusterrolebindings", None, crb("v", "view", "User:bob"),
                                  lookup_in(view)) is not None
    assert await check_rbac_write(authz, alice, "rolebindings", "a", rb("a", "v", "ClusterRole", "view", "User:bob"),
                                  lookup_in(view)) is None
    # an aggregationRule needs everything, cluster-wide (with "*" on *.*, "escalate" is held: that passes too)
    agg = cluster_role("agg")
    agg["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    writer = cluster_role("writer", rule(["get", "list", "create", "update", "delete"], ["*"], ["*"]))
    almost = authz_for(cluster_roles=[writer], cluster_role_bindings=[crb("a", "writer", "User:alice")])
    assert await check_rbac_write(almost, alice, "clusterroles", "", agg, lookup_in()) == (
        'clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the '
        'aggregationRule')
    escalator = authz_for(cluster_roles=[ns_admin], cluster_role_bindings=[crb("a", "admin", "User:alice")])
    assert await check_rbac_write(escalator, alice, "clusterroles", "", agg, lookup_in()) is None


async def test_masters_and_gc_only_updates_and_other_resources_pass():
    nobody = authz_for()
    root = UserInfo("root", groups=("system:masters",))
    big = cluster_role("big", rule(["*"], ["*"], ["*"]))
    assert await check_rbac_write(nobody, root, "clusterroles", "", big, lookup_in()) is None
    old = {**big, "metadata": {**big["metadata"], "resourceVersion": "5"}}
    new = {**big, "metadata": {**big["metadata"], "resourceVersion": "5", "finalizers": ["x"],
                               "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u"}]}}
    alice = UserInfo("alice")
    assert await check_rbac_write(nobody, alice, "clusterroles", "", new, lookup_in(), old=old) is None
    assert await check_rbac_write(nobody, alice, "clusterroles", "", new, lookup_in()) is not None
    assert await check_rbac_write(nobody, alice, "pods", "d", {"metadata": {"name": "p"}}, lookup_in()) is None


async def test_sync_role_lookup_is_accepted():
    view = cluster_role("view", rule(["get"], [""], ["pods"]))
    authz = authz_for(cluster_roles=[view], cluster_role_bindings=[crb("v", "view", "User:alice")])
    msg = await check_rbac_write(authz, UserInfo("alice"), "clusterrolebindings", "", crb("v2", "view", "User:bob"),
                                 lambda kind, ns, name: view if name == "view" else None)
    assert msg is None


# ---- kubectl columns ----------------------------------------------------------------------------------------------


def test_columns():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    c = cluster_role("view")
    c["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert [h for h, _ in tables.columns("ClusterRole")] == ["NAME", "CREATED AT"]
    assert [fn(c, now) for _, fn in tables.columns("ClusterRole")] == ["view", "2026-01-01T00:00:00Z"]
    assert [h for h, _ in tables.columns("Role")] == ["NAME", "CREATED AT"]
    b = rb("d", "read", "ClusterRole", "view", "User:alice", "Group:devs", "ServiceAccount:d/robot", "User:bob")
    b["metadata"]["creationTimestamp"] = "2026-01-02T02:04:05Z"
    assert [h for h, _ in tables.columns("RoleBinding", wide=True)] == [
        "NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert [fn(b, now) for _, fn in tables.columns("RoleBinding", wide=True)] == [
        "read", "ClusterRole/view", "60m", "alice, bob", "devs", "d/robot"]
    assert [h for h, _ in tables.columns("ClusterRoleBinding")] == ["NAME", "ROLE", "AGE"]
