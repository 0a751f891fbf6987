"""Filter: nodes whose Ready condition is not True (or that report no conditions yet)."""

from __future__ import annotations

import numpy as np

from master.scheduler.framework import CycleState, FilterResult, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo

REASON = "node(s) were not ready"


@register("NodeReady")
class NodeReady:
    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        return [(REASON, ~nodes.view("ready"))]
