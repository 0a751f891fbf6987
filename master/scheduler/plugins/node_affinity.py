"""Filter: ``spec.nodeSelector`` and required node affinity (nodeSelectorTerms ORed; within a term
matchExpressions In/NotIn/Exists/DoesNotExist/Gt/Lt and matchFields ``metadata.name`` ANDed).
Score: the summed weights of the preferred terms a node matches, normalised to 0..100.
Results are memoised per distinct selector until a node changes."""

from __future__ import annotations

import numpy as np

from bus.labels import Requirement
from master.scheduler.framework import SKIP, SUCCESS, CycleState, FilterResult, Status, normalize, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.plugins.helpers import signature
from master.scheduler.podinfo import PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"
_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!", "Gt": "gt", "Lt": "lt"}


def _requirements(exprs: list[dict]) -> list[Requirement] | None:
    """None when an operator is unknown (the term then matches nothing)."""
    out = []
    for e in exprs or ():
        op = _OPS.get(e.get("operator"))
        if op is None:
            return None
        out.append(Requirement(e.get("key", ""), op, tuple(e.get("values") or ())))
    return out


def term_matcher(term: dict):
    """A predicate (labels, node name) -> bool for one NodeSelectorTerm; an empty term matches nothing."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    labels_req, fields_req = _requirements(exprs), _requirements(fields)
    if labels_req is None or fields_req is None or not (exprs or fields):
        return lambda labels, name: False
    if any(r.key != "metadata.name" for r in fields_req):
        return lambda labels, name: False

    def match(labels: dict, name: str) -> bool:
        return all(r.matches(labels) for r in labels_req) and all(r.matches({"metadata.name": name}) for r in fields_req)
    return match


def required(spec: dict) -> tuple[dict, list[dict] | None]:
    """(nodeSelector, required nodeSelectorTerms or None)."""
    na = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    return spec.get("nodeSelector") or {}, (req.get("nodeSelectorTerms") or []) if req else None


def preferred(spec: dict) -> list[dict]:
    na = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return na.get("preferredDuringSchedulingIgnoredDuringExecution") or []


def _fail_mask(nodes: NodeTable, selector: dict, terms: list[dict] | None) -> np.ndarray:
    matchers = [term_matcher(t) for t in terms] if terms is not None else None
    fail = np.zeros(len(nodes), dtype=bool)
    for slot, (labels, name) in enumerate(zip(nodes.labels, nodes.names)):
        ok = all(labels.get(k) == v for k, v in selector.items())
        if ok and matchers is not None:
            ok = any(m(labels, name) for m in matchers)
        fail[slot] = not ok
    return fail


def _preferred_scores(nodes: NodeTable, prefs: list[dict]) -> np.ndarray:
    weighted = [(int(p.get("weight") or 0), term_matcher(p.get("preference") or {})) for p in prefs]
    return np.array([sum(w for w, m in weighted if w and m(labels, name))
                     for labels, name in zip(nodes.labels, nodes.names)], dtype=float)


@register("NodeAffinity")
class NodeAffinity:
    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        selector, terms = required(pod.spec)
        return SUCCESS if selector or terms is not None else SKIP

    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        selector, terms = required(pod.spec)
        fail = nodes.memo(("affinity", signature([selector, terms])), lambda: _fail_mask(nodes, selector, terms))
        return [(REASON, fail)]

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, idx: np.ndarray) -> np.ndarray:
        prefs = preferred(pod.spec)
        if not prefs:
            return None
        return nodes.memo(("preferred", signature(prefs)), lambda: _preferred_scores(nodes, prefs))[idx]

    def normalize(self, state: CycleState, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        return normalize(scores)
