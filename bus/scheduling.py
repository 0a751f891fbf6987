"""Scheduling predicates shared by the scheduler's plugins and the controllers (DaemonSet, node lifecycle), as
Kubernetes keeps them in ``component-helpers/scheduling/corev1``: taints tolerated by tolerations, the first
untolerated taint, and a pod's nodeSelector and node affinity against a node.

They read plain dicts. A taint is a ``(key, value, effect)`` triple (:func:`node_taints`), hashable so the
scheduler's node table can keep and compare them; node selector terms are matched against a node's labels
and name, so the scheduler can run a compiled matcher over its columns of labels and names.
"""

from __future__ import annotations

from typing import Callable, Collection, Iterable

from bus.labels import Requirement

Taint = tuple[str, str, str]  # (key, value, effect)
NodeMatcher = Callable[[dict, str], bool]  # (node labels, node name) -> matches

NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "PreferNoSchedule", "NoExecute"
HARD_EFFECTS = (NO_SCHEDULE, NO_EXECUTE)  # the effects that keep a pod off a node


# ---- taints and tolerations ----------------------------------------------------------------------


def node_taints(node: dict) -> tuple[Taint, ...]:
    """A Node's ``spec.taints`` as ``(key, value, effect)`` triples (missing fields are ``""``)."""
    return tuple((t.get("key", ""), t.get("value") or "", t.get("effect", ""))
                 for t in (node.get("spec") or {}).get("taints") or ())


def tolerations(spec: dict) -> list[dict]:
    """A pod spec's tolerations."""
    return spec.get("tolerations") or []


def tolerates(tol: dict, key: str, value: str, effect: str) -> bool:
    """``v1.Toleration.ToleratesTaint``: an empty key with Exists tolerates every taint."""
    if tol.get("effect") and tol["effect"] != effect:
        return False
    if tol.get("key") and tol["key"] != key:
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (tol.get("value") or "") == value


def tolerated(tols: list[dict], key: str, value: str, effect: str) -> bool:
    """``TolerationsTolerateTaint``: some toleration of ``tols`` tolerates the taint."""
    return any(tolerates(t, key, value, effect) for t in tols)


def find_untolerated_taint(taints: Iterable[Taint], tols: list[dict],
                           effects: Collection[str] = HARD_EFFECTS) -> Taint | None:
    """``FindMatchingUntoleratedTaint``: the first taint with one of ``effects`` that ``tols`` do not tolerate."""
    for key, value, effect in taints:
        if effect in effects and not tolerated(tols, key, value, effect):
            return key, value, effect
    return None


# ---- node selector and node affinity -------------------------------------------------------------

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


def term_matcher(term: dict) -> NodeMatcher:
    """A predicate (labels, node name) -> bool for one NodeSelectorTerm: matchExpressions In/NotIn/Exists/
    DoesNotExist/Gt/Lt and matchFields ``metadata.name``, ANDed; an empty term matches nothing."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    labels_req, fields_req = _requirements(exprs), _requirements(fields)
    if labels_req is None or fields_req is None or not (exprs or fields):
        return lambda labels, name: False
    if any(r.key != "metadata.name" for r in fields_req):
        return lambda labels, name: False

    def match(labels: dict, name: str) -> bool:
        return all(r.matches(labels) for r in labels_req) and all(r.matches({"metadata.name": name}) for r in fields_req)
    return match


def required_affinity(spec: dict) -> tuple[dict, list[dict] | None]:
    """A pod spec's (nodeSelector, required nodeSelectorTerms or None when it has no required node affinity)."""
    na = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    return spec.get("nodeSelector") or {}, (req.get("nodeSelectorTerms") or []) if req else None


def preferred_affinity(spec: dict) -> list[dict]:
    """A pod spec's preferred node affinity terms (``{weight, preference}``)."""
    na = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return na.get("preferredDuringSchedulingIgnoredDuringExecution") or []


def node_matcher(selector: dict, terms: list[dict] | None) -> NodeMatcher:
    """``RequiredNodeAffinity.Match``: every nodeSelector label and, when ``terms`` is not None, one of the
    terms (ORed). Compiled once, to run over many nodes."""
    matchers = [term_matcher(t) for t in terms] if terms is not None else None

    def match(labels: dict, name: str) -> bool:
        if not all(labels.get(k) == v for k, v in selector.items()):
            return False
        return matchers is None or any(m(labels, name) for m in matchers)
    return match


def matches_node(spec: dict, node: dict) -> bool:
    """A pod spec's nodeSelector and required node affinity both match ``node``."""
    meta = node.get("metadata") or {}
    return node_matcher(*required_affinity(spec))(meta.get("labels") or {}, meta.get("name", ""))
