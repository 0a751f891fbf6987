"""Filter: cordoned nodes (``spec.unschedulable``) unless the pod tolerates
``node.kubernetes.io/unschedulable:NoSchedule``."""

from __future__ import annotations

import numpy as np

from bus.scheduling import tolerated, tolerations
from master.scheduler.framework import SKIP, SUCCESS, CycleState, FilterResult, Status, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo

REASON = "node(s) were unschedulable"
TAINT = "node.kubernetes.io/unschedulable"


@register("NodeUnschedulable")
class NodeUnschedulable:
    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        return SKIP if tolerated(tolerations(pod.spec), TAINT, "", "NoSchedule") else SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        return [(REASON, nodes.view("unschedulable"))]
