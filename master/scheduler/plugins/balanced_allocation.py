"""Score: nodes whose cpu and memory would be used in similar proportions score higher
(100 × (1 − standard deviation of the two fractions))."""

from __future__ import annotations

import numpy as np

from master.scheduler.framework import MAX_NODE_SCORE, CycleState, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.plugins.node_resources_fit import fractions
from master.scheduler.podinfo import PodInfo


@register("NodeResourcesBalancedAllocation")
class BalancedAllocation:
    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, idx: np.ndarray) -> np.ndarray:
        cpu, mem = fractions(state, pod, nodes, idx)
        return (1.0 - np.abs(cpu - mem) / 2) * MAX_NODE_SCORE
