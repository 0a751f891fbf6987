"""RBAC and Node authorizer decision cost, in µs per decision (pure Python, no bus).

Run:  python -m tests.perf.bench_rbac                     (100 bindings, then 1,000)
      python -m tests.perf.bench_rbac --bindings 5000 --decisions 200000

The policy is the bootstrap one (``master.apiserver.rbac_policy``) plus ``--bindings`` bindings spread over
namespaces (half RoleBindings to ``edit``/``view`` naming users, groups and ServiceAccounts, half
ClusterRoleBindings to small roles), served through ``InformerRuleSource`` over in-memory informers, as the API
server would. Decisions cycle over a mix of users (allowed and denied, namespaced and cluster-scoped, non-resource
paths) with the decision cache warm (the steady state: it is emptied on any RBAC change), and once with it cold
(every decision after a change). Node authorizer decisions run over a graph of ``--pods`` pods. Prints figures
with their conditions; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time

from bus.authn import UserInfo, node_user, service_account_user
from bus.informer import Informer
from bus.nodeauthz import NodeAuthorizer, NodeGraph
from bus.rbac import Attributes, InformerRuleSource, RBACAuthorizer, UnionAuthorizer
from bus.resources import by_plural
from master.apiserver import rbac_policy
from tests.unit.fakestore import FakeStore

G = "rbac.authorization.k8s.io"


def policy(n: int, namespaces: int) -> list[dict]:
    objs = [o for _r, o in rbac_policy.bootstrap_objects()]
    for i in range(n // 2):
        objs.append({"apiVersion": f"{G}/v1", "kind": "ClusterRole", "metadata": {"name": f"bench-{i}"},
                     "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": [f"things{i}", "pods"]}]})
        objs.append({"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": f"bench-{i}"},
                     "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": f"bench-{i}"},
                     "subjects": [{"kind": "User", "apiGroup": G, "name": f"cluster-user-{i}"}]})
    for i in range(n - n // 2):
        ns = f"ns{i % namespaces}"
        subjects = [{"kind": "User", "apiGroup": G, "name": f"user-{i}"},
                    {"kind": "Group", "apiGroup": G, "name": f"team-{i % 7}"},
                    {"kind": "ServiceAccount", "name": f"sa-{i}", "namespace": ns}]
        objs.append({"apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": f"rb-{i}", "namespace": ns},
                     "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "edit" if i % 2 else "view"},
                     "subjects": subjects})
    return objs


def requests(n: int, namespaces: int) -> list[Attributes]:
    pods, secrets, deploys, nodes = (by_plural(p) for p in ("pods", "secrets", "deployments", "nodes"))
    out = []
    for i in range(max(1, n - n // 2)):
        ns = f"ns{i % namespaces}"
        u = UserInfo(f"user-{i}", groups=(f"team-{i % 7}", "system:authenticated"))
        sa = service_account_user(ns, f"sa-{i}")
        out += [Attributes.for_resource(u, "list", pods, ns), Attributes.for_resource(u, "update", deploys, ns, "web"),
                Attributes.for_resource(sa, "get", secrets, "kube-system", "x"),  # denied
                Attributes.for_resource(sa, "get", pods, ns, "p", "log"), Attributes.for_resource(u, "list", nodes),
                Attributes.for_path(u, "get", "/apis/apps/v1")]
        if len(out) >= 600:
            break
    for i in range(min(100, n // 2)):
        out.append(Attributes.for_resource(UserInfo(f"cluster-user-{i}"), "get", pods, "default", "p"))
    return out


def time_it(fn, items, decisions: int) -> float:
    k = len(items)
    t0 = time.perf_counter()
    for i in range(decisions):
        fn(items[i % k])
    return (time.perf_counter() - t0) / decisions * 1e6


async def run(bindings: int, decisions: int, namespaces: int, pods: int) -> None:
    plurals = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
    stores = {p: FakeStore() for p in plurals}  # one per kind: a FakeStore keys objects by namespace and name only
    for o in policy(bindings, namespaces):
        stores[by_plural(o["kind"].lower() + "s").plural].put(o)
    infs = [Informer(stores[p], p) for p in plurals]
    source = InformerRuleSource(*infs)
    for inf in infs:
        await inf.start()
    rbac = RBACAuthorizer(source)
    graph = NodeGraph()
    for i in range(pods):
        graph.set_pod({"metadata": {"name": f"p{i}", "namespace": f"ns{i % namespaces}", "uid": f"u{i}"},
                       "spec": {"nodeName": f"node-{i % 100}", "serviceAccountName": "default",
                                "volumes": [{"name": "s", "secret": {"secretName": f"s{i}"}},
                                            {"name": "c", "configMap": {"name": "kube-root-ca.crt"}}]}})
    union = UnionAuthorizer(NodeAuthorizer(graph), rbac)
    reqs = requests(bindings, namespaces)
    allowed = sum(rbac.authorize(a).allowed for a in reqs)
    warm = time_it(rbac.authorize, reqs, decisions)
    union_warm = time_it(union.authorize, reqs, decisions)

    def cold(a: Attributes) -> None:
        source.generation += 1  # what any RBAC change does to the cache
        rbac.authorize(a)
    cold_us = time_it(cold, reqs, max(1000, decisions // 20))
    node_reqs = [Attributes.for_resource(node_user(f"node-{i % 100}"), "get", by_plural("secrets"),
                                         f"ns{i % namespaces}", f"s{i}") for i in range(min(pods, 1000))]
    node_reqs += [Attributes.for_resource(node_user("node-1"), "get", by_plural("secrets"), "ns0", f"s{i}")
                  for i in range(2, 200)]  # mostly another node's: denied
    node_us = time_it(union.authorize, node_reqs, decisions)
    print(f"bindings={bindings} (+{sum(1 for r, _ in rbac_policy.bootstrap_objects() if r.plural.endswith('bindings'))}"
          f" bootstrap) namespaces={namespaces} request mix={len(reqs)} ({allowed} allowed) pods={pods}")
    print(f"  RBAC, warm cache       {warm:7.2f} µs/decision")
    print(f"  Node+RBAC union, warm  {union_warm:7.2f} µs/decision")
    print(f"  RBAC, cold cache       {cold_us:7.2f} µs/decision (every decision right after an RBAC change)")
    print(f"  Node authorizer, nodes {node_us:7.2f} µs/decision (secrets get, graph of {pods} pods)")
    for inf in infs:
        await inf.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bindings", type=int, nargs="*", default=[100, 1000])
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--pods", type=int, default=3000)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]} on {platform.machine()} ({platform.processor() or 'cpu'}), "
          f"{args.decisions} decisions per figure")
    for n in args.bindings:
        asyncio.run(run(n, args.decisions, args.namespaces, args.pods))


if __name__ == "__main__":
    main()
