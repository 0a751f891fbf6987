"""The node view compiles NetworkPolicies per node (master/netpol) against a real nats-server and API server: a
node's agent, reading only its own part of the node view as its own bus identity, receives its document next to its
pods (the pod informer never sees it), sees it follow policy, pod label and namespace label changes, and never
receives another node's."""

from __future__ import annotations

import asyncio

from bus import subjects
from bus.client import ApiClient
from bus.informer import Informer
from bus.resources import NODE_PODS
from bus.roles import Identity
from node.netpol import PodsAndPolicy
from tests.harness import make_pod
from tests.waiting import eventually


def policy(name: str, ns: str = "default", **spec) -> dict:
    spec.setdefault("podSelector", {})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


class NodeSide:
    """What an agent runs: its pod informer, fed through the policy splitter, as the node's own identity."""

    def __init__(self, client: ApiClient, node: str) -> None:
        self.docs: list[dict | None] = []
        self.informer = Informer(PodsAndPolicy(client.store, self.docs.append), NODE_PODS,
                                 subjects.node_pods_namespace(node))

    @property
    def doc(self) -> dict | None:
        return self.docs[-1] if self.docs else None

    def rules(self, ip: str) -> dict | None:
        return ((self.doc or {}).get("pods") or {}).get(ip)


async def test_each_node_gets_the_rules_of_its_own_pods_and_they_follow_changes(apiserver, client, nats_server):
    from master.nodeview import run as run_nodeview

    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"env": "x"}}})
    await make_pod(client, "web", "10.244.1.2", True, labels={"app": "web"}, node="n1",
                   ports=[{"name": "http", "containerPort": 8080}])
    await make_pod(client, "client", "10.244.2.3", True, labels={"app": "client"}, node="n2")
    await make_pod(client, "t", "10.244.2.4", True, labels={"app": "other"}, node="n2", ns="team")
    stop = asyncio.Event()
    view = asyncio.create_task(run_nodeview(nats_server.url, stop))
    clients = {n: await ApiClient.connect(nats_server.url, creds=nats_server.credentials(Identity.node(n)))
               for n in ("n1", "n2")}
    sides = {n: NodeSide(c, n) for n, c in clients.items()}
    try:
        for s in sides.values():
            await s.informer.start()
        await eventually(lambda: len(sides["n1"].informer.list()) == 1, 10, "n1's pod in its informer")
        assert sides["n1"].doc is None  # no policy yet: no document

        await client.create(policy("web", podSelector={"matchLabels": {"app": "web"}}, ingress=[
            {"from": [{"podSelector": {"matchLabels": {"app": "client"}}},
                      {"namespaceSelector": {"matchLabels": {"env": "prod"}}}], "ports": [{"port": "http"}]}]))
        await eventually(lambda: sides["n1"].rules("10.244.1.2") is not None, 10, "n1's document")
        assert sides["n1"].rules("10.244.1.2") == {"pod": "default/web", "Ingress": [
            {"id": "default/web/Ingress/0", "peers": ["10.244.2.3/32"], "ports": [["TCP", 8080, None]]}]}
        assert [p["metadata"]["name"] for p in sides["n1"].informer.list()] == ["web"]  # the doc is no pod
        assert sides["n2"].doc is None  # n2's pods are not selected: it never sees n1's rules

        # a namespace now matching the namespaceSelector: its pod joins the peers
        ns = await client.get("namespaces", "team")
        ns["metadata"]["labels"]["env"] = "prod"
        await client.update(ns)
        await eventually(lambda: (sides["n1"].rules("10.244.1.2") or {}).get("Ingress", [{}])[0].get("peers")
                         == ["10.244.2.3/32", "10.244.2.4/32"], 10, "the team pod admitted")

        # the client loses its label: it leaves the peers
        await client.patch("pods", "client", {"metadata": {"labels": {"app": "gone"}}})
        await eventually(lambda: sides["n1"].rules("10.244.1.2")["Ingress"][0]["peers"] == ["10.244.2.4/32"], 10,
                         "the relabelled client dropped")

        # a policy selecting n2's pods: n2 gets a document of its own, n1's is left as it was
        writes = len(sides["n1"].docs)
        await client.create(policy("egress", policyTypes=["Egress"], podSelector={"matchLabels": {"app": "gone"}}))
        await eventually(lambda: sides["n2"].rules("10.244.2.3") == {"pod": "default/client", "Egress": []}, 10,
                         "n2's document")
        await asyncio.sleep(0.3)
        assert len(sides["n1"].docs) == writes, "an unchanged document is not rewritten"

        # deleting the policies removes the documents
        await client.delete("networkpolicies", "web", "default")
        await eventually(lambda: sides["n1"].doc is None, 10, "n1's document removed")
        await client.delete("networkpolicies", "egress", "default")
        await eventually(lambda: sides["n2"].doc is None, 10, "n2's document removed")
    finally:
        for s in sides.values():
            await s.informer.stop()
        for c in clients.values():
            await c.close()
        stop.set()
        await asyncio.wait_for(view, 10)
