"""Filter: the pod's requests (cpu, memory, one pod; init containers by the max rule) must fit the
node's allocatable minus what its pods (assumed ones included) already request.
Score (LeastAllocated): the share of cpu and memory left free after placing the pod."""

from __future__ import annotations

import numpy as np

from master.scheduler.framework import MAX_NODE_SCORE, CycleState, FilterResult, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo

TOO_MANY_PODS, INSUFFICIENT_CPU, INSUFFICIENT_MEMORY = "Too many pods", "Insufficient cpu", "Insufficient memory"


def fit_failures(pod: PodInfo, nodes: NodeTable) -> FilterResult:
    out = [(TOO_MANY_PODS, nodes.view("pod_count") + 1 > nodes.view("alloc_pods"))]
    if pod.cpu:
        out.append((INSUFFICIENT_CPU, nodes.view("alloc_cpu") - nodes.view("req_cpu") < pod.cpu))
    if pod.memory:
        out.append((INSUFFICIENT_MEMORY, nodes.view("alloc_mem") - nodes.view("req_mem") < pod.memory))
    return out


def fractions(state: CycleState, pod: PodInfo, nodes: NodeTable, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Requested/allocatable for cpu and memory on nodes ``idx`` once the pod is there (capped at 1; a node
    with no allocatable counts as full); computed once per cycle for the plugins that score by it."""
    got = state.get("fractions")
    if got is None:
        cpu = np.minimum((nodes.nz_cpu[idx] + pod.nz_cpu) * nodes.inv_cpu[idx], 1.0)
        mem = np.minimum((nodes.nz_mem[idx] + pod.nz_memory) * nodes.inv_mem[idx], 1.0)
        got = state["fractions"] = (cpu, mem)
    return got


@register("NodeResourcesFit")
class NodeResourcesFit:
    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        return fit_failures(pod, nodes)

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, idx: np.ndarray) -> np.ndarray:
        cpu, mem = fractions(state, pod, nodes, idx)
        return (2.0 - cpu - mem) * (MAX_NODE_SCORE / 2)
