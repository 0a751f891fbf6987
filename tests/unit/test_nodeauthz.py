"""The Node authorizer: what a node agent may do with its own node's objects and nobody else's, and the index
(object -> nodes) kept from the pods informer."""

import pytest

from bus.authn import UserInfo, node_user
from bus.informer import Informer
from bus.nodeauthz import NodeAuthorizer, NodeGraph, pod_references
from bus.rbac import Attributes, RBACAuthorizer, StaticRuleSource, UnionAuthorizer, forbidden_message
from bus.resources import by_plural
from tests.unit.fakestore import FakeStore
from tests.waiting import eventually

N1, N2 = node_user("n1"), node_user("n2")


def pod(name, node="n1", ns="default", uid=None, sa="default", **spec):
    s = {"containers": [{"name": "c", "image": "busybox"}], "serviceAccountName": sa, **spec}
    if node:
        s["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}"},
            "spec": s}


WEB = pod("web", volumes=[
    {"name": "cfg", "configMap": {"name": "web-config"}},
    {"name": "tls", "secret": {"secretName": "web-tls"}},
    {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
    {"name": "proj", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                              {"configMap": {"name": "kube-root-ca.crt"}},
                                              {"serviceAccountToken": {"path": "token"}}]}},
    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
    {"name": "rbd", "rbd": {"secretRef": {"name": "ceph-key"}}},
], containers=[{"name": "c", "image": "busybox",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
                "envFrom": [{"secretRef": {"name": "envfrom-secret"}}, {"configMapRef": {"name": "envfrom-cm"}}]}],
   initContainers=[{"name": "i", "image": "busybox", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
   imagePullSecrets=[{"name": "regcred"}], sa="web-sa")


def test_pod_references_cover_volumes_env_pull_secrets_and_the_account():
    assert pod_references(WEB) == {
        ("configmaps", "web-config"), ("secrets", "web-tls"), ("persistentvolumeclaims", "web-data"),
        ("secrets", "proj-secret"), ("configmaps", "kube-root-ca.crt"), ("persistentvolumeclaims", "web-scratch"),
        ("secrets", "ceph-key"), ("secrets", "env-secret"), ("configmaps", "env-cm"), ("secrets", "envfrom-secret"),
        ("configmaps", "envfrom-cm"), ("secrets", "init-secret"), ("secrets", "regcred"),
        ("serviceaccounts", "web-sa")}
    assert pod_references({"spec": {"volumes": "garbage", "containers": [None, {"env": [7]}]}}) == {
        ("serviceaccounts", "default")}


@pytest.fixture
def graph():
    g = NodeGraph()
    g.set_pod(WEB)
    g.set_pod(pod("db", node="n2", volumes=[{"name": "s", "secret": {"secretName": "db-secret"}},
                                            {"name": "t", "secret": {"secretName": "web-tls"}}]))
    g.set_pod(pod("pending", node="", volumes=[{"name": "s", "secret": {"secretName": "pending-secret"}}]))
    g.set_volume({"metadata": {"name": "pv-1"}, "spec": {"claimRef": {"namespace": "default", "name": "web-data"}}})
    g.set_volume({"metadata": {"name": "pv-2"}, "spec": {"claimRef": {"namespace": "default", "name": "other"}}})
    return g


def ask(authz, user, verb, plural, ns="", name="", sub="", body=None):
    return authz.authorize(Attributes.for_resource(user, verb, by_plural(plural) if plural in _PLURALS else plural,
                                                   ns, name, sub), body)


_PLURALS = {"pods", "secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes", "serviceaccounts",
            "nodes", "leases", "services", "endpoints", "endpointslices", "namespaces", "events", "deployments"}


def test_graph_index(graph):
    assert graph.nodes_for("secrets", "default", "web-tls") == {"n1", "n2"}
    assert graph.nodes_for("secrets", "default", "db-secret") == {"n2"}
    assert graph.nodes_for("secrets", "default", "pending-secret") == frozenset()  # not bound to a node yet
    assert graph.nodes_for("persistentvolumes", "", "pv-1") == {"n1"}
    assert graph.nodes_for("pods", "default", "web") == {"n1"}
    graph.remove_pod(pod("db", node="n2"))
    assert graph.nodes_for("secrets", "default", "web-tls") == {"n1"}
    assert graph.nodes_for("secrets", "default", "db-secret") == frozenset()
    # the pod moves to another node (e.g. deleted and recreated under the same name): the refs follow it
    graph.set_pod({**WEB, "spec": {**WEB["spec"], "nodeName": "n2"}})
    assert graph.nodes_for("configmaps", "default", "web-config") == {"n2"}
    graph.remove_pod(WEB)
    assert graph._refs == {} and len(graph) == 0


def test_secrets_configmaps_pvcs_pvs_only_when_a_pod_on_the_node_needs_them(graph):
    authz = NodeAuthorizer(graph)
    assert ask(authz, N1, "get", "secrets", "default", "web-tls").allowed
    assert ask(authz, N1, "get", "secrets", "default", "regcred").allowed
    assert ask(authz, N1, "watch", "configmaps", "default", "kube-root-ca.crt").allowed
    assert ask(authz, N1, "get", "persistentvolumeclaims", "default", "web-data").allowed
    assert ask(authz, N1, "get", "persistentvolumes", "", "pv-1").allowed
    d = ask(authz, N1, "get", "secrets", "default", "db-secret")
    assert d.no_opinion and d.reason == "no relationship found between node 'n1' and this object"
    assert not ask(authz, N1, "get", "persistentvolumes", "", "pv-2").allowed
    assert not ask(authz, N1, "get", "secrets", "other-ns", "web-tls").allowed
    assert ask(authz, N1, "list", "secrets", "default").reason == "No Object name found"
    assert ask(authz, N1, "update", "secrets", "default", "web-tls").reason == "can only read resources of this type"
    assert ask(authz, N1, "list", "persistentvolumes", "").reason == "can only get individual resources of this type"
    assert ask(authz, N1, "patch", "persistentvolumeclaims", "default", "web-data", "status").allowed
    assert not ask(authz, N2, "patch", "persistentvolumeclaims", "default", "web-data", "status").allowed


def test_own_node_lease_and_pod_status(graph):
    authz = NodeAuthorizer(graph)
    assert ask(authz, N1, "list", "nodes").allowed and ask(authz, N1, "get", "nodes", "", "n2").allowed
    assert ask(authz, N1, "patch", "nodes", "", "n1", "status").allowed
    assert ask(authz, N1, "update", "nodes", "", "n1").allowed
    assert ask(authz, N1, "create", "nodes", body={"metadata": {"name": "n1"}}).allowed
    d = ask(authz, N1, "patch", "nodes", "", "n2", "status")
    assert d.no_opinion and d.reason == 'node "n1" is not allowed to modify node "n2"'
    assert not ask(authz, N1, "create", "nodes", body={"metadata": {"name": "n2"}}).allowed
    assert not ask(authz, N1, "delete", "nodes", "", "n1").allowed
    # leases: own name, kube-node-lease only
    assert ask(authz, N1, "update", "leases", "kube-node-lease", "n1").allowed
    assert ask(authz, N1, "create", "leases", "kube-node-lease", body={"metadata": {"name": "n1"}}).allowed
    assert ask(authz, N1, "get", "leases", "kube-node-lease", "n2").reason == (
        "can only access node lease with the same name as the requesting node")
    assert not ask(authz, N1, "create", "leases", "kube-node-lease", body={"metadata": {"name": "n2"}}).allowed
    assert ask(authz, N1, "update", "leases", "kube-system", "n1").reason == (
        'can only access leases in the "kube-node-lease" system namespace')
    assert not ask(authz, N1, "list", "leases", "kube-node-lease").allowed
    # pods: read all, write only the status of (and delete) its own
    assert ask(authz, N1, "list", "pods").allowed and ask(authz, N1, "get", "pods", "default", "db").allowed
    assert ask(authz, N1, "patch", "pods", "default", "web", "status").allowed
    d = ask(authz, N1, "update", "pods", "default", "db", "status")
    assert d.no_opinion and d.reason == 'node "n1" can only update pod status for pods with spec.nodeName set to itself'
    assert ask(authz, N1, "delete", "pods", "default", "web").allowed
    assert not ask(authz, N1, "delete", "pods", "default", "db").allowed
    assert not ask(authz, N1, "create", "pods", "default").allowed
    assert not ask(authz, N1, "update", "pods", "default", "web").allowed
    assert not ask(authz, N1, "create", "pods", "default", "web", "eviction").allowed
    assert not ask(authz, N1, "create", "pods", "default", "web", "exec").allowed


def test_reads_events_and_everything_else(graph):
    authz = NodeAuthorizer(graph)
    for plural in ("services", "endpoints", "endpointslices", "namespaces"):
        assert ask(authz, N1, "watch", plural).allowed, plural
        assert not ask(authz, N1, "delete", plural, "default", "x").allowed, plural
    assert ask(authz, N1, "create", "events", "default").allowed
    assert ask(authz, N1, "patch", "events", "default", "e").allowed
    assert ask(authz, N1, "get", "events", "default", "e").allowed
    assert not ask(authz, N1, "list", "events", "default").allowed
    assert not ask(authz, N1, "delete", "events", "default", "e").allowed
    assert not ask(authz, N1, "get", "deployments", "default", "d").allowed
    assert not authz.authorize(Attributes.for_path(N1, "get", "/metrics")).allowed
    # not a node: no opinion, silently
    alice = UserInfo("alice", groups=("system:authenticated",))
    d = ask(authz, alice, "get", "secrets", "default", "web-tls")
    assert d.no_opinion and d.reason == ""
    # in system:nodes without a node name
    d = ask(authz, UserInfo("system:node:", groups=("system:nodes",)), "get", "nodes")
    assert d.reason == 'unknown node for user "system:node:"'


def test_service_account_tokens_only_bound_to_the_nodes_pod(graph):
    authz = NodeAuthorizer(graph)
    ref = lambda **kw: {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web",  # noqa: E731
                                                    "uid": "uid-web", **kw}}}
    assert ask(authz, N1, "create", "serviceaccounts", "default", "web-sa", "token", ref()).allowed
    assert ask(authz, N2, "create", "serviceaccounts", "default", "web-sa", "token", ref()).reason == (
        "no relationship found between node 'n2' and this object")
    assert ask(authz, N1, "create", "serviceaccounts", "default", "web-sa", "token", {}).reason == (
        "node requested token not bound to a pod")
    assert ask(authz, N1, "create", "serviceaccounts", "default", "web-sa", "token", ref(uid="")).reason == (
        "node requested token with a pod binding without a uid")
    assert "does not match the UID in record" in ask(
        authz, N1, "create", "serviceaccounts", "default", "web-sa", "token", ref(uid="old")).reason
    graph.set_pod(pod("other", sa="web-sa", node="n2"))
    assert ask(authz, N1, "create", "serviceaccounts", "default", "web-sa", "token",
               ref(name="other", uid="uid-other")).reason == (
        "node requested token bound to a pod scheduled on a different node")
    assert not ask(authz, N1, "create", "serviceaccounts", "default", "default", "token", ref()).allowed
    assert ask(authz, N1, "create", "serviceaccounts", "default", "", "token").reason == (
        "can only create tokens for individual service accounts")
    # a node reads no ServiceAccount: it asks for tokens
    assert not ask(authz, N1, "get", "serviceaccounts", "default", "web-sa").allowed
    # a pod that names no account runs as "default"
    graph.set_pod(pod("plain", sa=""))
    assert ask(authz, N1, "create", "serviceaccounts", "default", "default", "token",
               ref(name="plain", uid="uid-plain")).allowed


def test_with_rbac_a_node_falls_through_to_a_forbidden_with_the_node_reason(graph):
    authz = UnionAuthorizer(NodeAuthorizer(graph), RBACAuthorizer(StaticRuleSource()))
    attrs = Attributes.for_resource(N1, "get", by_plural("secrets"), "default", "db-secret")
    d = authz.authorize(attrs)
    assert not d.allowed
    assert forbidden_message(attrs, d.reason) == (
        'secrets "db-secret" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in '
        "the namespace \"default\": no relationship found between node 'n1' and this object")
    res, nonres, incomplete = authz.rules_for(N1, "default")
    assert (res, nonres, incomplete) == ([], [], True)


async def test_graph_follows_the_pods_informer():
    store = FakeStore()
    pods = Informer(store, "pods")
    graph = NodeGraph()
    graph.watch_pods(pods)
    await pods.start()
    authz = NodeAuthorizer(graph)
    store.put(pod("p", node="", volumes=[{"name": "s", "secret": {"secretName": "s1"}}]))
    await eventually(lambda: len(pods) == 1)
    assert not ask(authz, N1, "get", "secrets", "default", "s1").allowed
    store.put(pod("p", node="n1", volumes=[{"name": "s", "secret": {"secretName": "s1"}}]))  # scheduled
    await eventually(lambda: ask(authz, N1, "get", "secrets", "default", "s1").allowed)
    store.remove("default", "p")
    await eventually(lambda: not ask(authz, N1, "get", "secrets", "default", "s1").allowed)
    await pods.stop()
