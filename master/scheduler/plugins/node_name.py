"""Filter: a pod that names its node (``spec.nodeName``) fits only that node."""

from __future__ import annotations

import numpy as np

from master.scheduler.framework import SKIP, SUCCESS, CycleState, FilterResult, Status, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo

REASON = "node(s) didn't match the requested node name"


@register("NodeName")
class NodeName:
    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        return SUCCESS if pod.node_name else SKIP

    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        fail = np.ones(len(nodes), dtype=bool)
        slot = nodes.slot_of.get(pod.node_name or "")
        if slot is not None:
            fail[slot] = False
        return [(REASON, fail)]
