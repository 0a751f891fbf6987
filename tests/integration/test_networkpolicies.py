"""networking.k8s.io/v1 NetworkPolicy served as Kubernetes serves it, against a real nats-server and API server: the
verbs over the bus (defaults, generation, watch, 422s with field paths), the node view's read of the bucket, and stock
kubectl 1.32 through the real HTTP gateway (in process, on its own bus identity): ``api-resources``, ``apply -f`` of
an upstream manifest, ``get netpol``, ``describe networkpolicy``, and RBAC (a namespace ``edit`` user may write
policies, a ``view`` user may only read them)."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
from aiohttp import web

from bus import errors, pki, roles
from bus.client import ApiClient
from bus.informer import SharedInformerFactory
from bus.roles import Identity
from master.controllers import namespace as namespace_controller
from master.controllers.manager import Context
from master.gateway.__main__ import tls_context
from master.gateway.app import make_app
from master.gateway.auth import User
from tests.harness import get_or_none, running_controllers
from tests.waiting import eventually

KUBECTL = shutil.which("kubectl") or "kubectl"
NS = "np"
TOKENS = {"admin-token": User("admin", "admin", ("system:masters", "system:authenticated")),
          "alice-token": User("alice", "alice", ("system:authenticated",)),
          "bob-token": User("bob", "bob", ("system:authenticated",))}

# The example of https://kubernetes.io/docs/concepts/services-networking/network-policies/ (namespace changed)
UPSTREAM = f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: {NS}
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
"""

DENY_ALL = f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
  namespace: {NS}
spec:
  podSelector: {{}}
"""


def netpol(name: str, spec: dict, ns: str = NS, labels: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}


@pytest.fixture
async def ns(client):
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return NS


# ---- over the bus ----------------------------------------------------------------------------------------------------

async def test_create_defaults_and_generation_follow_kubernetes(client, ns):
    out = await client.create(netpol("web", {"podSelector": {"matchLabels": {"app": "web"}},
                                             "ingress": [{"ports": [{"port": 80}, {"port": "http", "protocol": "UDP"}]}],
                                             "egress": [{"to": [{"namespaceSelector": {}}]}]}))
    assert out["spec"]["policyTypes"] == ["Ingress", "Egress"]  # Egress because egress rules exist
    assert out["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": "http"}]
    assert out["metadata"]["generation"] == 1 and "status" not in out
    assert await client.get("networkpolicies", "web", NS) == out
    bare = await client.create(netpol("bare", {}))  # podSelector is a struct: absent means every pod
    assert bare["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}

    labelled = dict(out, metadata={**out["metadata"], "labels": {"team": "a"}})
    relabelled = await client.update(labelled)
    assert relabelled["metadata"]["generation"] == 1  # metadata only
    changed = dict(relabelled, spec={**relabelled["spec"], "podSelector": {"matchLabels": {"app": "api"}}})
    updated = await client.update(changed)
    assert updated["metadata"]["generation"] == 2
    assert updated["spec"]["podSelector"] == {"matchLabels": {"app": "api"}}


async def test_list_watch_and_delete(client, ns):
    await client.create(netpol("a", {}, labels={"tier": "x"}))
    await client.create(netpol("b", {}))
    items, rv = await client.list("netpol", NS, label_selector="tier=x")
    assert [i["metadata"]["name"] for i in items] == ["a"]
    w = await client.watch("networkpolicies", NS, since=rv)
    try:
        await client.create(netpol("c", {"podSelector": {"matchLabels": {"app": "c"}}}))
        await client.delete("networkpolicies", "a", NS)
        events = [await asyncio.wait_for(w.__anext__(), 10) for _ in range(2)]
    finally:
        await w.stop()
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", "c"), ("DELETED", "a")]
    with pytest.raises(errors.NotFound) as e:
        await client.get("networkpolicies", "a", NS)
    assert e.value.message == 'networkpolicies.networking.k8s.io "a" not found'


async def test_invalid_policies_are_422_with_kubernetes_field_paths(client, ns):
    bad = netpol("bad", {
        "podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]},
        "ingress": [{"from": [{"podSelector": {}, "ipBlock": {"cidr": "10.0.0.0/8"}}, {}],
                     "ports": [{"port": 70000}, {"port": "http", "endPort": 90}, {"port": 90, "endPort": 80},
                               {"protocol": "ICMP"}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16", "10.0.0.0/8"]}},
                           {"ipBlock": {"cidr": "10.0.0.0"}}]}],
        "policyTypes": ["Ingress", "Sideways"]})
    with pytest.raises(errors.ApiError) as e:
        await client.create(bad)
    assert e.value.code == 422 and e.value.reason == "Invalid"
    causes = {(c["field"], c["message"]) for c in e.value.status()["details"]["causes"]}
    assert causes == {
        ("spec.podSelector.matchExpressions[0].values",
         "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
        ("spec.ingress[0].ports[0].port", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
        ("spec.ingress[0].ports[1].endPort", "Invalid value: 90: may not be specified when `port` is non-numeric"),
        ("spec.ingress[0].ports[2].endPort", "Invalid value: 80: must be greater than or equal to `port`"),
        ("spec.ingress[0].ports[3].protocol", 'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
        ("spec.ingress[0].from[0]", "Forbidden: may not specify both ipBlock and another peer"),
        ("spec.ingress[0].from[1]", "Required value: must specify a peer"),
        ("spec.egress[0].to[0].ipBlock.except[0]", 'Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`'),
        ("spec.egress[0].to[0].ipBlock.except[1]", 'Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`'),
        ("spec.egress[0].to[1].ipBlock.cidr",
         'Invalid value: "10.0.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
        ("spec.policyTypes[1]", 'Unsupported value: "Sideways": supported values: "Ingress", "Egress"'),
    }
    assert e.value.message.startswith('NetworkPolicy.networking.k8s.io "bad" is invalid: ')
    with pytest.raises(errors.NotFound):
        await client.get("networkpolicies", "bad", NS)
    good = await client.create(netpol("good", {}))
    good["spec"]["ingress"] = [{"ports": [{"port": 0}]}]
    with pytest.raises(errors.ApiError) as e:
        await client.update(good)
    assert e.value.code == 422 and [c["field"] for c in e.value.status()["details"]["causes"]] == [
        "spec.ingress[0].ports[0].port"]


async def test_deleting_the_namespace_deletes_its_policies(client, ns):
    await client.create(netpol("doomed", {}))
    async with running_controllers(Context(client, SharedInformerFactory(client)), namespace_controller):
        await client.delete("namespaces", NS)

        async def gone() -> bool:
            return await get_or_none(client, "namespaces", NS) is None

        await eventually(gone, 20, f"namespace {NS} deleted")
    assert await get_or_none(client, "networkpolicies", "doomed", NS) is None


async def test_the_node_view_reads_policies_and_namespaces_but_not_secrets(apiserver, client, nats_server, ns):
    await client.create(netpol("seen", {}))
    view = await ApiClient.connect(nats_server.url, Identity(roles.NODEVIEW))
    try:
        items, _ = await view.list("networkpolicies")
        assert [i["metadata"]["name"] for i in items] == ["seen"]
        names = {n["metadata"]["name"] for n in (await view.list("namespaces"))[0]}
        assert {NS, "default", "kube-system"} <= names
        with pytest.raises(Exception):
            await asyncio.wait_for(view.list("secrets"), 10)
    finally:
        await view.close()


# ---- stock kubectl through the gateway -------------------------------------------------------------------------------

class Kubectl:
    """Stock kubectl with ``--server``/``--token``/``--certificate-authority`` (kubectl sends no token over plain
    HTTP), run without blocking the event loop the gateway and the API server share."""

    def __init__(self, server: str, ca: str, tmp) -> None:
        self.args = ["--server", server, "--certificate-authority", ca]
        (tmp / "empty-kubeconfig").write_text("")
        self.env = {**os.environ, "KUBECONFIG": str(tmp / "empty-kubeconfig"), "KUBECACHEDIR": str(tmp / "cache")}

    async def __call__(self, *args: str, token: str = "admin-token", stdin: str | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, *self.args, "--token", token, *args, env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def kubectl(nats_server, client, ns, tmp_path):
    """The gateway over TLS on a free loopback port, on its own bus identity, with three users' tokens."""
    cert, key, ca = pki.ensure(tmp_path / "pki")
    gateway = await ApiClient.connect(nats_server.url, Identity(roles.GATEWAY))
    runner = web.AppRunner(make_app(nats_server.url, TOKENS, client=gateway))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_context(cert, key))
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Kubectl(f"https://127.0.0.1:{port}", str(ca), tmp_path)
    finally:
        await runner.cleanup()
        await gateway.close()


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


async def test_kubectl_api_resources_apply_get_and_describe(kubectl):
    code, out, err = await kubectl("api-resources", "--api-group", "networking.k8s.io")
    assert code == 0, err
    assert ["networkpolicies", "netpol", "networking.k8s.io/v1", "true", "NetworkPolicy"] in rows(out)

    code, out, err = await kubectl("apply", "-f", "-", stdin=UPSTREAM + "---" + DENY_ALL)
    assert code == 0, err
    assert out.split("\n")[:2] == ["networkpolicy.networking.k8s.io/test-network-policy created",
                                   "networkpolicy.networking.k8s.io/default-deny-ingress created"]
    code, out, err = await kubectl("get", "netpol", "-n", NS)
    assert code == 0, err
    table = rows(out)
    assert table[0] == ["NAME", "POD-SELECTOR", "AGE"]
    assert [r[:2] for r in table[1:]] == [["default-deny-ingress", "<none>"], ["test-network-policy", "role=db"]]

    code, out, err = await kubectl("describe", "networkpolicy", "test-network-policy", "-n", NS)
    assert code == 0, err
    assert "PodSelector:     role=db" in out
    assert "Allowing ingress traffic:\n    To Port: 6379/TCP\n    From:\n      IPBlock:\n" in out
    assert "CIDR: 172.17.0.0/16" in out and "Except: 172.17.1.0/24" in out
    assert "NamespaceSelector: project=myproject" in out and "PodSelector: role=frontend" in out
    assert "Allowing egress traffic:\n    To Port: 5978/TCP\n    To:\n      IPBlock:\n        CIDR: 10.0.0.0/24" in out
    assert "Policy Types: Ingress, Egress" in out
    code, out, err = await kubectl("describe", "netpol", "default-deny-ingress", "-n", NS)
    assert code == 0, err
    assert "<none> (Selected pods are isolated for ingress connectivity)" in out
    assert "Not affecting egress traffic" in out and "Policy Types: Ingress" in out

    # apply again with a change: a patch, the generation moves
    code, out, err = await kubectl("apply", "-f", "-", stdin=UPSTREAM.replace("port: 6379", "port: 6380"))
    assert code == 0 and out.strip() == "networkpolicy.networking.k8s.io/test-network-policy configured", err
    code, out, err = await kubectl("get", "networkpolicy", "test-network-policy", "-n", NS, "-o",
                                   "jsonpath={.metadata.generation} {.spec.ingress[0].ports[0].port}")
    assert (code, out) == (0, "2 6380")

    invalid = DENY_ALL.replace("default-deny-ingress", "bad").replace("podSelector: {}",
                                                                    "podSelector: {}\n  policyTypes: [Outbound]")
    code, out, err = await kubectl("apply", "-f", "-", stdin=invalid)
    assert code == 1
    assert ('The NetworkPolicy "bad" is invalid: spec.policyTypes[0]: Unsupported value: "Outbound": '
            'supported values: "Ingress", "Egress"') in err

    code, out, err = await kubectl("delete", "netpol", "default-deny-ingress", "-n", NS)
    assert code == 0 and 'networkpolicy.networking.k8s.io "default-deny-ingress" deleted' in out, err


async def test_server_side_apply_owns_the_pod_selector_as_a_whole(kubectl, client):
    """spec.podSelector is an atomic struct (metav1.LabelSelector): a second manager's selector replaces it."""
    ssa = DENY_ALL.replace("default-deny-ingress", "ssa")
    first = ssa.replace("podSelector: {}", "podSelector: {matchLabels: {role: db}}")
    code, out, err = await kubectl("apply", "--server-side", "--field-manager", "one", "-f", "-", stdin=first)
    assert code == 0 and out.strip() == "networkpolicy.networking.k8s.io/ssa serverside-applied", err
    second = ssa.replace("podSelector: {}", "podSelector: {matchExpressions: [{key: tier, operator: Exists}]}")
    code, out, err = await kubectl("apply", "--server-side", "--field-manager", "two", "-f", "-", stdin=second)
    assert code == 1 and "conflict" in err.lower()
    code, out, err = await kubectl("apply", "--server-side", "--field-manager", "two", "--force-conflicts",
                                   "-f", "-", stdin=second)
    assert code == 0, err
    got = await client.get("networkpolicies", "ssa", NS)
    assert got["spec"]["podSelector"] == {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}


async def test_a_namespace_editor_may_write_policies_and_a_viewer_only_read_them(kubectl, client):
    for user, role in (("alice", "edit"), ("bob", "view")):
        await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                             "metadata": {"name": f"{user}-{role}", "namespace": NS},
                             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                             "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]})
    code, out, err = await kubectl("auth", "can-i", "create", "networkpolicies", "-n", NS, token="alice-token")
    assert out.strip() == "yes", err
    code, out, err = await kubectl("apply", "-f", "-", stdin=DENY_ALL, token="alice-token")
    assert code == 0 and "networkpolicy.networking.k8s.io/default-deny-ingress created" in out, err

    code, out, err = await kubectl("get", "netpol", "-n", NS, token="bob-token")
    assert code == 0 and rows(out)[1][:2] == ["default-deny-ingress", "<none>"], err
    code, out, err = await kubectl("apply", "-f", "-", stdin=UPSTREAM, token="bob-token")
    assert code == 1
    assert ('networkpolicies.networking.k8s.io is forbidden: User "bob" cannot create resource "networkpolicies" in '
            'API group "networking.k8s.io" in the namespace "np"') in err
    code, out, err = await kubectl("delete", "netpol", "default-deny-ingress", "-n", NS, token="bob-token")
    assert code == 1 and 'User "bob" cannot delete resource "networkpolicies"' in err
    assert (await client.get("networkpolicies", "default-deny-ingress", NS))["metadata"]["name"] == \
        "default-deny-ingress"
    code, out, err = await kubectl("get", "netpol", "-n", "default", token="alice-token")  # only in their namespace
    assert code == 1 and 'User "alice" cannot list resource "networkpolicies"' in err
