"""Helpers shared by the node lifecycle, pod GC and HPA controllers: NoExecute taints and tolerations,
node conditions (not a controller: no ``setup``). Times and conditions in general live in ``bus.meta``."""

from __future__ import annotations

from bus.meta import get_condition, timestamp
from bus.scheduling import NO_EXECUTE, tolerates

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


# ---- conditions ----------------------------------------------------------------------------------


def ready_status(node: dict) -> str:
    """"True", "False" or "Unknown" (no condition yet counts as Unknown)."""
    c = get_condition(node, "Ready")
    return (c or {}).get("status") or "Unknown"


# ---- taints and tolerations ----------------------------------------------------------------------


def no_execute_taints(node: dict | None) -> list[dict]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or [] if t.get("effect") == NO_EXECUTE]


def has_taint(node: dict | None, key: str, effect: str = NO_EXECUTE) -> bool:
    return any(t.get("key") == key and t.get("effect") == effect
               for t in ((node or {}).get("spec") or {}).get("taints") or [])


def toleration_seconds(pod: dict, taint: dict, default: float) -> float | None:
    """How long ``pod`` may stay on a node with the NoExecute ``taint``: the smallest tolerationSeconds
    of its matching tolerations, None (forever) if one matches without tolerationSeconds, ``default``
    when none matches (Kubernetes' admission adds 300 s tolerations for the unreachable/not-ready
    taints; k8n applies its default here instead), 0 for other untolerated taints."""
    matching = [t for t in (pod.get("spec") or {}).get("tolerations") or []
                if tolerates(t, taint.get("key") or "", taint.get("value") or "", NO_EXECUTE)]
    if not matching:
        return default if taint.get("key") in (UNREACHABLE, NOT_READY) else 0.0
    secs = [t.get("tolerationSeconds") for t in matching]
    if any(s is None for s in secs):
        return None
    return float(max(0, min(int(s) for s in secs)))


def eviction_time(pod: dict, node: dict | None, default: float) -> float | None:
    """Epoch seconds when ``pod`` must leave ``node`` for its NoExecute taints, None if never."""
    due: float | None = None
    for taint in no_execute_taints(node):
        secs = toleration_seconds(pod, taint, default)
        if secs is None:
            continue
        added = timestamp(taint.get("timeAdded")) or 0.0
        t = added + secs
        due = t if due is None else min(due, t)
    return due
