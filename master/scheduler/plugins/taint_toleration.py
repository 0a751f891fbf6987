"""Filter: a NoSchedule or NoExecute taint the pod does not tolerate excludes the node (the
first such taint is the reason). Score: fewer untolerated PreferNoSchedule taints is better.
Both are memoised per distinct set of tolerations until a node changes."""

from __future__ import annotations

import numpy as np

from bus.scheduling import HARD_EFFECTS, PREFER_NO_SCHEDULE, find_untolerated_taint, tolerated, tolerations
from master.scheduler.framework import CycleState, FilterResult, register, reverse_normalize
from master.scheduler.nodetable import NodeTable
from master.scheduler.plugins.helpers import signature
from master.scheduler.podinfo import PodInfo

def reason(key: str, value: str) -> str:
    return f"node(s) had untolerated taint {{{key}: {value}}}"


def _untolerated(nodes: NodeTable, tols: list[dict]) -> FilterResult:
    by_reason: dict[str, np.ndarray] = {}
    for slot, taints in enumerate(nodes.taints):
        found = find_untolerated_taint(taints, tols, HARD_EFFECTS)
        if found is not None:
            r = reason(found[0], found[1])
            if r not in by_reason:
                by_reason[r] = np.zeros(len(nodes), dtype=bool)
            by_reason[r][slot] = True
    return list(by_reason.items())


def _prefer_counts(nodes: NodeTable, tols: list[dict]) -> np.ndarray | None:
    soft = [t for t in tols if not t.get("effect") or t.get("effect") == PREFER_NO_SCHEDULE]
    counts = np.array([sum(1 for k, v, e in taints if e == PREFER_NO_SCHEDULE and not tolerated(soft, k, v, e))
                       for taints in nodes.taints], dtype=float)
    return counts if counts.any() else None  # None: no opinion


@register("TaintToleration")
class TaintToleration:
    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        tols = tolerations(pod.spec)
        return nodes.memo(("taints", signature(tols)), lambda: _untolerated(nodes, tols))

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, idx: np.ndarray) -> np.ndarray:
        tols = tolerations(pod.spec)
        counts = nodes.memo(("prefer-taints", signature(tols)), lambda: _prefer_counts(nodes, tols))
        return counts[idx] if counts is not None else None

    def normalize(self, state: CycleState, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        return reverse_normalize(scores)
