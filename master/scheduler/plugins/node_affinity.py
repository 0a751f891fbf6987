"""Filter: ``spec.nodeSelector`` and required node affinity (nodeSelectorTerms ORed; within a term
matchExpressions In/NotIn/Exists/DoesNotExist/Gt/Lt and matchFields ``metadata.name`` ANDed).
Score: the summed weights of the preferred terms a node matches, normalised to 0..100.
Results are memoised per distinct selector until a node changes."""

from __future__ import annotations

import numpy as np

from bus.scheduling import node_matcher, preferred_affinity, required_affinity, term_matcher
from master.scheduler.framework import SKIP, SUCCESS, CycleState, FilterResult, Status, normalize, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.plugins.helpers import signature
from master.scheduler.podinfo import PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"


def _fail_mask(nodes: NodeTable, selector: dict, terms: list[dict] | None) -> np.ndarray:
    match = node_matcher(selector, terms)
    fail = np.zeros(len(nodes), dtype=bool)
    for slot, (labels, name) in enumerate(zip(nodes.labels, nodes.names)):
        fail[slot] = not match(labels, name)
    return fail


def _preferred_scores(nodes: NodeTable, prefs: list[dict]) -> np.ndarray:
    weighted = [(int(p.get("weight") or 0), term_matcher(p.get("preference") or {})) for p in prefs]
    return np.array([sum(w for w, m in weighted if w and m(labels, name))
                     for labels, name in zip(nodes.labels, nodes.names)], dtype=float)


@register("NodeAffinity")
class NodeAffinity:
    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        selector, terms = required_affinity(pod.spec)
        return SUCCESS if selector or terms is not None else SKIP

    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        selector, terms = required_affinity(pod.spec)
        fail = nodes.memo(("affinity", signature([selector, terms])), lambda: _fail_mask(nodes, selector, terms))
        return [(REASON, fail)]

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, idx: np.ndarray) -> np.ndarray:
        prefs = preferred_affinity(pod.spec)
        if not prefs:
            return None
        return nodes.memo(("preferred", signature(prefs)), lambda: _preferred_scores(nodes, prefs))[idx]

    def normalize(self, state: CycleState, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        return normalize(scores)
