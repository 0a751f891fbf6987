"""Filter: a NoSchedule or NoExecute taint the pod does not tolerate excludes the node (the
first such taint is the reason). Score: fewer untolerated PreferNoSchedule taints is better.
Both are memoised per distinct set of tolerations until a node changes."""

from __future__ import annotations

import numpy as np

from master.scheduler.framework import CycleState, FilterResult, register, reverse_normalize
from master.scheduler.nodetable import NodeTable
from master.scheduler.plugins.helpers import signature, tolerated, tolerations
from master.scheduler.podinfo import PodInfo

HARD = ("NoSchedule", "NoExecute")


def reason(key: str, value: str) -> str:
    return f"node(s) had untolerated taint {{{key}: {value}}}"


def _untolerated(nodes: NodeTable, tols: list[dict]) -> FilterResult:
    by_reason: dict[str, np.ndarray] = {}
    for slot, taints in enumerate(nodes.taints):
        for key, value, effect in taints:
            if effect in HARD and not tolerated(tols, key, value, effect):
                r = reason(key, value)
                if r not in by_reason:
                    by_reason[r] = np.zeros(len(nodes), dtype=bool)
                by_reason[r][slot] = True
                break
    return list(by_reason.items())


def _prefer_counts(nodes: NodeTable, tols: list[dict]) -> np.ndarray | None:
    soft = [t for t in tols if not t.get("effect") or t.get("effect") == "PreferNoSchedule"]
    counts = np.array([sum(1 for k, v, e in taints if e == "PreferNoSchedule" and not tolerated(soft, k, v, e))
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
