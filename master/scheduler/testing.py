"""Builders for Node and Pod objects and node tables (kube-scheduler's ``testing`` wrappers), for tests
and benchmarks."""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import CycleState
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo


def make_node(name: str, cpu: str = "4", memory: str = "16Gi", pods: int = 110, ready: bool | None = True,
              labels: dict | None = None, taints: list[dict] | None = None, unschedulable: bool = False) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    status: dict[str, Any] = {"capacity": dict(alloc), "allocatable": alloc}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}]
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec, "status": status}


def make_pod(name: str, cpu: str | None = None, memory: str | None = None, namespace: str = "default",
             node: str | None = None, scheduler: str | None = None, owner: str | None = None,
             host_port: int | None = None, uid: str | None = None, **spec: Any) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    if host_port:
        container["ports"] = [{"containerPort": host_port, "hostPort": host_port}]
    body: dict[str, Any] = {"containers": [container], **spec}
    if node:
        body["nodeName"] = node
    if scheduler:
        body["schedulerName"] = scheduler
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def table(nodes: list[dict], pods: list[dict] = ()) -> NodeTable:
    """A node table with ``pods`` (each naming its node) accounted."""
    t = NodeTable()
    for n in nodes:
        t.set_node(n)
    for p in pods:
        t.account(t.slot(p["spec"]["nodeName"]), PodInfo.of(p), +1)
    return t


def failing(plugin: Any, pod: dict, nodes: NodeTable) -> dict[str, list[str]]:
    """Run one filter plugin (honouring its PreFilter Skip): reason -> names of the nodes failing."""
    info = PodInfo.of(pod)
    state = CycleState()
    pre = getattr(plugin, "pre_filter", None)
    if pre is not None and pre(state, info, nodes).code.name == "SKIP":
        return {}
    alive = nodes.view("valid").copy()
    out: dict[str, list[str]] = {}
    for reason, mask in plugin.filter(state, info, nodes, alive):
        names = [nodes.names[i] for i in range(len(nodes)) if mask[i] and alive[i]]
        if names:
            out[reason] = names
    return out


def scores(plugin: Any, pod: dict, nodes: NodeTable, normalized: bool = True) -> dict[str, float]:
    """Node name -> score of one score plugin ({} when it has no opinion on the pod)."""
    import numpy as np

    info = PodInfo.of(pod)
    state = CycleState()
    idx = np.flatnonzero(nodes.view("valid"))
    s = plugin.score(state, info, nodes, idx)
    if s is None:
        return {}  # no opinion
    if normalized and hasattr(plugin, "normalize"):
        s = plugin.normalize(state, info, s)
    return {nodes.names[int(i)]: float(v) for i, v in zip(idx, s)}
