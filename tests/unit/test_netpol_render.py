"""The agent's side of NetworkPolicy (node/netpol.py), pure parts: a compiled document rendered as nftables chains,
a change rendered as a transaction that touches only the pods whose rules changed, and the node view's stream split
into pods (for the pod informer) and the document (for the enforcer)."""

from __future__ import annotations

import asyncio
import json

from bus import subjects
from bus.store import ADDED, DELETED, WatchEvent
from node import netpol


def doc(n: int, changed: int | None = None, shared: bool = True) -> dict:
    """``n`` isolated pods; the even ones share one policy's entry (one address set), the odd ones each have
    their own; ``changed``: that pod's own set holds other addresses."""
    pods = {}
    for i in range(n):
        if shared and i % 2 == 0:
            entry = {"id": "default/shared/Ingress/0", "peers": ["10.244.2.0/24", "192.0.2.9/32"], "ports": []}
        else:
            peers = [f"10.244.3.{i}/32", "192.0.2.0/26"]
            if i == changed:
                peers = [f"10.244.3.{i}/32", "10.244.9.9/32", "192.0.2.0/26"]
            entry = {"id": f"default/np{i}/Ingress/0", "peers": peers, "ports": [["TCP", 80, None]]}
        pods[f"10.244.1.{i + 2}"] = {"pod": f"default/p{i}", "Ingress": [entry], **({"Egress": []} if i % 3 else {})}
    return {"kind": subjects.NODE_NETWORK_POLICY_KIND, "metadata": {"name": "n1"}, "pods": pods}


def test_each_isolated_direction_gets_a_chain_that_returns_what_it_admits_and_drops_the_rest():
    st = netpol.render({"pods": {"10.244.1.5": {"pod": "a/b", "Ingress": [
        {"id": "a/np/Ingress/0", "peers": ["10.244.2.0/24", "10.244.3.7/32"],
         "ports": [["TCP", 80, None], ["TCP", 9000, 9010], ["UDP", None, None]]},
        {"id": "a/np/Ingress/1", "peers": None, "ports": []}]}}})
    assert st.elements["ingress-pods"] == {("10.244.1.5",): ("jump", "ingress-10.244.1.5")}
    assert st.elements["egress-pods"] == {}
    peers = netpol.peer_set("a/np/Ingress/0")
    assert st.elements[peers] == {("10.244.2.0/24",): None, ("10.244.3.7/32",): None}
    rules = [json.dumps(r) for r in st.chains["ingress-10.244.1.5"]]
    assert len(rules) == 4  # tcp ports, udp (every port), anyone anywhere, drop
    assert '"saddr"' in rules[0] and f'"@{peers}"' in rules[0] and '"range": [9000, 9010]' in rules[0]
    assert f'"@{peers}"' in rules[1] and '"udp"' in rules[1] and "dport" not in rules[1]
    assert rules[2] == '[{"return": null}]' and rules[3] == '[{"drop": null}]'
    full = netpol.full("k8n-np-x", st).payload().decode()
    assert '{"prefix":{"addr":"10.244.2.0","len":24}}' in full and '"10.244.3.7"' in full


def test_a_document_without_pods_leaves_only_the_base_chain():
    st = netpol.render(None)
    assert set(st.chains) == {"forward"} and st.elements == {"ingress-pods": {}, "egress-pods": {}}


def test_a_change_of_peers_is_set_elements_only_and_a_pod_gone_takes_only_its_own():
    old = netpol.render(doc(100))
    tx = netpol.diff("k8n-np-x", old, netpol.render(doc(100, changed=41)))
    assert [list(c) + list(next(iter(c.values()))) for c in tx.cmds] == [["add", "element"]]
    assert {c[v]["element"]["name"] for c in tx.cmds for v in c} == {netpol.peer_set("default/np41/Ingress/0")}
    assert "10.244.9.9" in tx.payload().decode()
    gone = {ip: p for ip, p in doc(100)["pods"].items() if ip not in ("10.244.1.3", "10.244.1.4")}  # p1, p2
    text = netpol.diff("k8n-np-x", old, netpol.render({"pods": gone})).payload().decode()
    assert "10.244.1.3" in text and "10.244.1.4" in text and "10.244.1.5" not in text
    assert netpol.peer_set("default/np1/Ingress/0") in text  # p1's own set deleted
    assert netpol.peer_set("default/shared/Ingress/0") not in text  # still used by the other even pods


class FakeWatch:
    def __init__(self, events):
        self.events = list(events)
        self.stopped = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.events:
            raise StopAsyncIteration
        return self.events.pop(0)

    async def stop(self):
        self.stopped = True


class FakeStore:
    def __init__(self, items, events):
        self.items, self.events = items, events

    async def list(self, res, namespace=None):
        return list(self.items), 7

    async def watch(self, res, namespace=None, since=None):
        return FakeWatch(self.events)


def test_the_document_is_taken_out_of_the_pod_stream():
    pod = {"kind": "Pod", "metadata": {"namespace": "default", "name": "p"}}
    d = doc(1)
    got: list = []
    events = [WatchEvent(ADDED, pod, 8, "n1.default.p"), WatchEvent(ADDED, d, 9, "n1.=networkpolicy"),
              WatchEvent(DELETED, d, 10, "n1.=networkpolicy")]
    src = netpol.PodsAndPolicy(FakeStore([pod, d], events), got.append)

    async def run():
        items, rv = await src.list(None, "n1")
        w = await src.watch(None, "n1", rv)
        seen = [ev async for ev in w]
        await w.stop()
        return items, seen, w.inner.stopped

    items, seen, stopped = asyncio.run(run())
    assert items == [pod] and [ev.object for ev in seen] == [pod] and stopped
    assert got == [d, d, None]
