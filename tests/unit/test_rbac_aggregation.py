"""ClusterRole aggregation (the rule union and its controller) and the bootstrap policy."""

import copy

from bus.authn import UserInfo, service_account_user
from bus.informer import Informer
from bus.rbac import Attributes, RBACAuthorizer, StaticRuleSource, aggregate_rules, covers, same_rules
from bus.resources import by_plural
from bus.validation import validate_object
from master.apiserver import rbac_policy
from master.controllers.clusterroleaggregation import ClusterRoleAggregation
from tests.unit.fakestore import FakeStore
from tests.unit.test_rbac_authorizer import cluster_role, rb, rule
from tests.waiting import eventually

AGG = "rbac.authorization.k8s.io/aggregate-to-{}"


def aggregated(name, kind, labels=None):
    c = cluster_role(name, labels=labels)
    c["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGG.format(kind): "true"}}]}
    return c


def test_aggregate_rules_unions_matching_roles_by_name_without_duplicates():
    mon = aggregated("monitoring", "monitoring")
    b = cluster_role("b-pods", rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"]),
                     labels={AGG.format("monitoring"): "true"})
    a = cluster_role("a-endpoints", rule(["get"], [""], ["endpoints"]), rule(["get"], [""], ["pods"]),
                     labels={AGG.format("monitoring"): "true"})
    other = cluster_role("other", rule(["*"], ["*"], ["*"]), labels={"x": "y"})
    assert aggregate_rules(mon, [mon, b, other, a]) == [
        rule(["get"], [""], ["endpoints"]), rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"])]
    assert aggregate_rules(other, [mon, b]) is None  # no aggregationRule: not aggregated
    # a role matching its own selector does not aggregate itself
    self_ref = aggregated("self", "self", labels={AGG.format("self"): "true"})
    self_ref["rules"] = [rule(["get"], [""], ["secrets"])]
    assert aggregate_rules(self_ref, [self_ref]) == []


class FakeClient:
    def __init__(self, store):
        self.store, self.updates = store, []

    async def update(self, obj):
        self.updates.append(copy.deepcopy(obj))
        return self.store.put(obj)


async def test_controller_writes_only_when_the_union_changes():
    store = FakeStore()
    roles = Informer(store, "clusterroles")
    client = FakeClient(store)
    ctl = ClusterRoleAggregation(client, roles)
    await roles.start()
    store.put(aggregated("monitoring", "monitoring"))
    store.put(cluster_role("pods", rule(["get"], [""], ["pods"]), labels={AGG.format("monitoring"): "true"}))
    await eventually(lambda: len(roles) == 2)
    key = "monitoring"
    await ctl.reconcile(key)
    assert len(client.updates) == 1 and client.updates[0]["rules"] == [rule(["get"], [""], ["pods"])]
    await eventually(lambda: roles.get(None, "monitoring")["rules"])
    await ctl.reconcile(key)
    assert len(client.updates) == 1  # unchanged: nothing written
    # a new labelled role joins; an unlabelled one does not
    store.put(cluster_role("nodes", rule(["list"], [""], ["nodes"]), labels={AGG.format("monitoring"): "true"}))
    store.put(cluster_role("secrets", rule(["get"], [""], ["secrets"])))
    await eventually(lambda: len(roles) == 4)
    assert "monitoring" in await _drain(ctl)  # every ClusterRole change enqueues the aggregated ones
    await ctl.reconcile(key)
    assert client.updates[-1]["rules"] == [rule(["list"], [""], ["nodes"]), rule(["get"], [""], ["pods"])]
    await ctl.reconcile("pods")  # not aggregated: left alone
    assert len(client.updates) == 2
    await roles.stop()


async def _drain(ctl):
    q = ctl.controller.queue
    keys = set()
    while len(q):
        k = await q.get()
        q.done(k)
        keys.add(k)
    return keys


# ---- the bootstrap policy -------------------------------------------------------------------------------------------


def _by_name():
    objs = rbac_policy.bootstrap_objects()
    return ({o["metadata"]["name"]: o for r, o in objs if r.plural == "clusterroles"},
            {o["metadata"]["name"]: o for r, o in objs if r.plural == "clusterrolebindings"})


def test_bootstrap_objects_validate_and_carry_the_bootstrap_marks():
    objs = rbac_policy.bootstrap_objects()
    assert {r.plural for r, _ in objs} == {"clusterroles", "clusterrolebindings", "roles", "rolebindings"}
    assert {(o["metadata"].get("namespace"), o["metadata"]["name"]) for r, o in objs if r.namespaced} == {
        ("kube-public", "k8n:bootstrap-signer-clusterinfo"),  # anyone reads cluster-info, nothing else
        ("kube-system", "k8n:control-plane-certs"),  # a control-plane token reads the sealed keys, nothing else
        ("kube-system", "system:k8n-nodeview"),  # the node view's Lease
        ("kube-system", "system:k8n-ingress")}  # the ingress controllers' presence Leases
    for res, obj in objs:
        _model, causes = validate_object(res, obj)
        assert causes == [], (obj["metadata"]["name"], causes)
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert obj["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    roles, bindings = _by_name()
    for name in ("cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
                 "system:public-info-viewer", "system:node", "system:kube-scheduler",
                 "system:kube-controller-manager", "system:node-proxier", "system:monitoring",
                 "system:aggregate-to-admin", "system:aggregate-to-edit", "system:aggregate-to-view"):
        assert name in roles, name
    for b in bindings.values():
        assert b["roleRef"]["name"] in roles, b["metadata"]["name"]


def test_bootstrap_bindings():
    _roles, bindings = _by_name()
    subjects = {n: [(s["kind"], s["name"]) for s in b["subjects"]] for n, b in bindings.items()}
    assert subjects["cluster-admin"] == [("Group", "system:masters")]
    assert subjects["system:basic-user"] == [("Group", "system:authenticated")]
    assert subjects["system:discovery"] == [("Group", "system:authenticated")]
    assert subjects["system:public-info-viewer"] == [("Group", "system:authenticated"),
                                                     ("Group", "system:unauthenticated")]
    assert subjects["system:kube-scheduler"] == [("User", "system:kube-scheduler")]
    assert subjects["system:kube-controller-manager"] == [("User", "system:kube-controller-manager")]
    assert subjects["system:node-proxier"] == [("User", "system:kube-proxy")]
    assert subjects["system:node"] == []  # nodes: the Node authorizer
    kcm = ("User", "system:kube-controller-manager")
    assert kcm in subjects["system:controller:clusterrole-aggregation-controller"]


def _authorizer():
    roles, bindings = _by_name()
    objs = rbac_policy.bootstrap_objects()
    ns_roles = [o for r, o in objs if r.plural == "roles"]
    ns_bindings = [o for r, o in objs if r.plural == "rolebindings"]
    return RBACAuthorizer(StaticRuleSource(roles=ns_roles, cluster_roles=roles.values(), role_bindings=ns_bindings,
                                           cluster_role_bindings=bindings.values()))


def test_admin_edit_view_are_aggregated_as_kubernetes_ships_them():
    roles, _ = _by_name()
    admin, edit, view = roles["admin"], roles["edit"], roles["view"]
    assert admin["aggregationRule"]["clusterRoleSelectors"] == [{"matchLabels": {AGG.format("admin"): "true"}}]
    assert edit["metadata"]["labels"][AGG.format("admin")] == "true"
    assert view["metadata"]["labels"][AGG.format("edit")] == "true"
    assert covers(edit["rules"], view["rules"])[0] and covers(admin["rules"], edit["rules"])[0]
    assert not covers(view["rules"], edit["rules"])[0]
    # the rules are what the aggregation controller computes (it has nothing to change)
    for name in ("admin", "edit", "view"):
        assert same_rules(aggregate_rules(roles[name], roles.values()), roles[name]["rules"])
    # view never reads secrets; edit writes no Endpoints (CVE-2021-25740) but pods, deployments and secrets
    bob = UserInfo("bob")
    v = RBACAuthorizer(StaticRuleSource(cluster_roles=roles.values(), role_bindings=[
        rb("d", "v", "ClusterRole", "view", "User:bob")]))
    e = RBACAuthorizer(StaticRuleSource(cluster_roles=roles.values(), role_bindings=[
        rb("d", "e", "ClusterRole", "edit", "User:bob")]))
    a = RBACAuthorizer(StaticRuleSource(cluster_roles=roles.values(), role_bindings=[
        rb("d", "a", "ClusterRole", "admin", "User:bob")]))
    can = lambda authz, verb, plural, sub="": authz.authorize(  # noqa: E731
        Attributes.for_resource(bob, verb, by_plural(plural), "d", "x", sub)).allowed
    assert can(v, "list", "pods") and can(v, "get", "pods", "log") and can(v, "list", "endpointslices")
    assert not can(v, "get", "secrets") and not can(v, "create", "pods")
    assert can(e, "create", "pods") and can(e, "update", "deployments") and can(e, "get", "secrets")
    assert can(e, "create", "pods", "exec") and can(e, "patch", "deployments", "scale")
    assert can(e, "get", "endpoints") and not can(e, "create", "endpoints") and not can(e, "update", "endpoints")
    assert not can(e, "create", "rolebindings") and not can(e, "update", "pods", "status")
    assert can(a, "create", "rolebindings") and can(a, "delete", "roles")
    assert not can(a, "create", "endpoints")


def test_bootstrap_grants():
    authz = _authorizer()
    anyone = UserInfo("carol", groups=("system:authenticated",))
    stranger = UserInfo("system:anonymous", groups=("system:unauthenticated",))
    assert authz.authorize(Attributes.for_path(anyone, "get", "/apis/apps/v1")).allowed
    assert authz.authorize(Attributes.for_path(stranger, "get", "/version")).allowed
    assert authz.authorize(Attributes.for_path(stranger, "get", "/healthz")).allowed
    assert not authz.authorize(Attributes.for_path(stranger, "get", "/apis")).allowed
    assert not authz.authorize(Attributes.for_path(anyone, "get", "/metrics")).allowed
    assert not authz.authorize(Attributes.for_resource(anyone, "list", by_plural("pods"), "default")).allowed
    sched = UserInfo("system:kube-scheduler", groups=("system:authenticated",))
    assert authz.authorize(Attributes.for_resource(sched, "create", by_plural("pods"), "d", "p", "binding")).allowed
    assert authz.authorize(Attributes.for_resource(sched, "update", by_plural("leases"), "kube-system",
                                                   "kube-scheduler")).allowed
    assert not authz.authorize(Attributes.for_resource(sched, "get", by_plural("secrets"), "d", "s")).allowed
    kcm = UserInfo("system:kube-controller-manager", groups=("system:authenticated",))
    assert authz.authorize(Attributes.for_resource(kcm, "create", by_plural("pods"), "d")).allowed
    assert authz.authorize(Attributes.for_resource(kcm, "escalate", by_plural("clusterroles"), "", "admin")).allowed
    assert authz.authorize(Attributes.for_resource(kcm, "list", by_plural("secrets"))).allowed
    sa = service_account_user("kube-system", "job-controller")
    assert authz.authorize(Attributes.for_resource(sa, "update", by_plural("jobs"), "d", "j", "status")).allowed
    ing = UserInfo("system:k8n-ingress", groups=("system:authenticated",))  # bus identity `ingress`
    assert authz.authorize(Attributes.for_resource(ing, "patch", by_plural("ingresses"), "d", "i", "status")).allowed
    assert authz.authorize(Attributes.for_resource(ing, "watch", by_plural("secrets"))).allowed
    assert authz.authorize(Attributes.for_resource(ing, "create", by_plural("events"), "d")).allowed
    assert not authz.authorize(Attributes.for_resource(ing, "update", by_plural("ingresses"), "d", "i")).allowed
    assert not authz.authorize(Attributes.for_resource(ing, "list", by_plural("pods"))).allowed
    assert authz.authorize(Attributes.for_resource(ing, "update", by_plural("leases"), "kube-system", "x")).allowed
    assert not authz.authorize(Attributes.for_resource(ing, "update", by_plural("leases"), "kube-node-lease",
                                                       "n1")).allowed  # never a node's heartbeat


def test_reconcile_adds_what_is_missing_and_respects_autoupdate_false():
    roles, bindings = _by_name()
    expected = roles["system:basic-user"]
    existing = copy.deepcopy(expected)
    assert rbac_policy.reconcile(expected, existing) is None
    existing["rules"] = existing["rules"][:1] + [rule(["get"], [""], ["pods"])]
    existing["metadata"]["labels"] = {"mine": "1"}
    out = rbac_policy.reconcile(expected, existing)
    assert covers(out["rules"], expected["rules"])[0] and rule(["get"], [""], ["pods"]) in out["rules"]
    assert out["metadata"]["labels"] == {"mine": "1", "kubernetes.io/bootstrapping": "rbac-defaults"}
    existing["metadata"]["annotations"] = {"rbac.authorization.kubernetes.io/autoupdate": "false"}
    assert rbac_policy.reconcile(expected, existing) is None
    # aggregated roles: only their selectors are reconciled, the controller owns the rules
    admin = copy.deepcopy(roles["admin"])
    admin["rules"] = []
    assert rbac_policy.reconcile(roles["admin"], admin) is None
    # bindings: missing subjects are added, extra ones kept
    b = copy.deepcopy(bindings["system:public-info-viewer"])
    b["subjects"] = b["subjects"][:1] + [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "x"}]
    out = rbac_policy.reconcile(bindings["system:public-info-viewer"], b)
    assert [s["name"] for s in out["subjects"]] == ["system:authenticated", "x", "system:unauthenticated"]


class DictStore:
    """The three NatsStore calls ensure_rbac makes, over a dict (revision = a counter)."""

    def __init__(self):
        self.objects, self.rev, self.writes = {}, 0, []

    async def get(self, res, ns, name):
        from bus import errors
        obj = self.objects.get((res.plural, name))
        if obj is None:
            raise errors.not_found(res.plural, name, res.group)
        return copy.deepcopy(obj)

    async def create(self, res, ns, name, obj):
        self.rev += 1
        self.objects[(res.plural, name)] = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rev)}}
        self.writes.append(("create", res.plural, name))

    async def update(self, res, ns, name, obj, revision):
        assert int(self.objects[(res.plural, name)]["metadata"]["resourceVersion"]) == revision
        self.rev += 1
        self.objects[(res.plural, name)] = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rev)}}
        self.writes.append(("update", res.plural, name))


async def test_ensure_rbac_creates_once_then_only_reconciles():
    from master.apiserver.bootstrap import ensure_rbac
    store = DictStore()
    await ensure_rbac(store)
    assert len(store.writes) == len(rbac_policy.bootstrap_objects())
    assert all(w[0] == "create" for w in store.writes)
    admin = store.objects[("clusterroles", "cluster-admin")]
    assert admin["metadata"]["uid"] and admin["metadata"]["creationTimestamp"] and admin["kind"] == "ClusterRole"
    store.writes.clear()
    await ensure_rbac(store)
    assert store.writes == []  # a second start changes nothing
    # an admin trimmed a bootstrap role: the next start puts the missing rule back (autoupdate "true")
    store.objects[("clusterroles", "system:basic-user")]["rules"] = []
    await ensure_rbac(store)
    assert store.writes == [("update", "clusterroles", "system:basic-user")]
    assert store.objects[("clusterroles", "system:basic-user")]["rules"] == roles_named("system:basic-user")["rules"]


def roles_named(name):
    return _by_name()[0][name]
