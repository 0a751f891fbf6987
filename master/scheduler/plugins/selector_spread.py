"""Score: spread the pods of one controller (ownerReferences with controller=true) across nodes;
fewer pods of the same owner on a node is better."""

from __future__ import annotations

import numpy as np

from master.scheduler.framework import CycleState, register, reverse_normalize
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo


@register("SelectorSpread")
class SelectorSpread:
    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, idx: np.ndarray) -> np.ndarray:
        counts = nodes.owner_counts(pod.owner)
        return counts[idx] if counts is not None else None

    def normalize(self, state: CycleState, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        return reverse_normalize(scores)
