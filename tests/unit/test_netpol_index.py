"""The incremental index (master/netpol/index.py): after any sequence of pod, namespace and policy changes its
documents equal those of an index built from scratch, and every node whose document changed is among the nodes the
change reported (the node view rewrites only those)."""

from __future__ import annotations

import random

from master.netpol.index import PolicyIndex
from tests.unit.test_netpol_compile import namespace, pod, policy

NODES = ("n1", "n2", "n3")
NAMESPACES = ("default", "other", "prod")
APPS = ("web", "client", "db")


def random_pod(rnd: random.Random, i: int) -> dict:
    ports = [("http", rnd.choice((80, 8080)), "TCP")] if rnd.random() < 0.6 else []
    return pod(f"p{i}", f"10.244.{rnd.randrange(3)}.{i + 2}", ns=rnd.choice(NAMESPACES),
               node=rnd.choice(NODES), labels={"app": rnd.choice(APPS)}, ports=ports)


def random_peer(rnd: random.Random) -> dict:
    kind = rnd.randrange(4)
    if kind == 0:
        return {"podSelector": {"matchLabels": {"app": rnd.choice(APPS)}}}
    if kind == 1:
        return {"namespaceSelector": {"matchLabels": {"env": rnd.choice(("dev", "prod"))}}}
    if kind == 2:
        return {"namespaceSelector": {}, "podSelector": {"matchExpressions": [
            {"key": "app", "operator": "In", "values": [rnd.choice(APPS)]}]}}
    return {"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"10.244.{rnd.randrange(3)}.0/24"]}}


def random_policy(rnd: random.Random, i: int) -> dict:
    def rules(field):
        return [{field: [random_peer(rnd) for _ in range(rnd.randrange(3))],
                 "ports": rnd.choice(([], [{"port": "http"}], [{"port": 80, "endPort": 90}]))}
                for _ in range(rnd.randrange(3))]
    types = rnd.choice((["Ingress"], ["Egress"], ["Ingress", "Egress"]))
    return policy(f"np{i}", ns=rnd.choice(NAMESPACES), podSelector=rnd.choice(({}, {"matchLabels": {"app": "web"}})),
                  policyTypes=types, ingress=rules("from"), egress=rules("to"))


def fresh(pods: dict, nss: dict, pols: dict) -> PolicyIndex:
    idx = PolicyIndex()
    for o in nss.values():
        idx.set_namespace(o)
    for o in pods.values():
        idx.set_pod(o)
    for o in pols.values():
        idx.set_policy(o)
    return idx


def test_incremental_documents_equal_a_fresh_compile_and_changes_name_their_nodes():
    rnd = random.Random(12)
    idx = PolicyIndex()
    pods: dict[str, dict] = {}
    nss: dict[str, dict] = {}
    pols: dict[str, dict] = {}
    for ns in NAMESPACES:
        nss[ns] = namespace(ns, env="dev")
        idx.set_namespace(nss[ns])
    before = {n: idx.document(n) for n in NODES}
    reported_total = 0
    for step in range(250):
        what = rnd.random()
        if what < 0.45:
            i = rnd.randrange(25)
            if f"p{i}" in pods and rnd.random() < 0.3:
                o = pods.pop(f"p{i}")
                nodes = idx.remove_pod(f"{o['metadata']['namespace']}/p{i}")
            else:
                old = pods.get(f"p{i}")
                o = random_pod(rnd, i)
                if old is not None and old["metadata"]["namespace"] != o["metadata"]["namespace"]:
                    nodes = idx.remove_pod(f"{old['metadata']['namespace']}/p{i}")  # a new pod, as a delete + add
                else:
                    nodes = set()
                pods[f"p{i}"] = o
                nodes |= idx.set_pod(o)
        elif what < 0.55:
            ns = rnd.choice(NAMESPACES)
            nss[ns] = namespace(ns, env=rnd.choice(("dev", "prod")))
            nodes = idx.set_namespace(nss[ns])
        else:
            i = rnd.randrange(12)
            if f"np{i}" in pols and rnd.random() < 0.3:
                o = pols.pop(f"np{i}")
                nodes = idx.remove_policy(f"{o['metadata']['namespace']}/np{i}")
            else:
                old = pols.get(f"np{i}")
                o = random_policy(rnd, i)
                nodes = idx.remove_policy(f"{old['metadata']['namespace']}/np{i}") if old else set()
                pols[f"np{i}"] = o
                nodes |= idx.set_policy(o)
        after = {n: idx.document(n) for n in NODES}
        changed = {n for n in NODES if after[n] != before[n]}
        assert changed <= nodes, (step, changed, nodes)
        ref = fresh(pods, nss, pols)
        assert after == {n: ref.document(n) for n in NODES}, step
        reported_total += len(nodes)
        before = after
    assert reported_total < 250 * len(NODES)  # not simply "every node, every time"
