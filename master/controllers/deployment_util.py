"""Pure helpers of the Deployment controller (Kubernetes' ``deployment/util``): the pod-template
hash, surge/unavailable fenceposts, revisions and annotations, ReplicaSet accessors and orderings.
Everything works on plain dicts and is unit-tested without a cluster."""

from __future__ import annotations

import math
from typing import Any, Iterable

import orjson

from bus.informer import deep_copy
from bus.meta import safe_encode

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# annotations a Deployment does not hand down to its ReplicaSets (nor a rollback back up)
SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
})
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


# ---- the pod-template hash -------------------------------------------------------------------


def fnv32a(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def compute_hash(template: dict, collision_count: int | None = None) -> str:
    """``controller.ComputeHash``: FNV-32a of the template (canonical JSON: sorted keys) then, when
    set, the collision count as 8 little-endian bytes; the decimal sum safe-encoded."""
    h = fnv32a(orjson.dumps(template or {}, option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        h = fnv32a(int(collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0", h)
    return safe_encode(str(h))


def without_hash(template: dict) -> dict:
    t = deep_copy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def equal_ignore_hash(a: dict, b: dict) -> bool:
    """``EqualIgnoreHash``: two pod templates equal but for the pod-template-hash label."""
    return without_hash(a) == without_hash(b)


def template_with_hash(template: dict, h: str) -> dict:
    t = deep_copy(template or {})
    t.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    return t


def selector_with_hash(selector: dict, h: str) -> dict:
    s = deep_copy(selector or {})
    s.setdefault("matchLabels", {})[HASH_LABEL] = h
    return s


# ---- surge and unavailable -------------------------------------------------------------------


def scaled_value(v: Any, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int, or ``"N%"`` of ``total`` rounded up or down."""
    if v is None:
        return 0
    if isinstance(v, int):
        return v
    s = str(v).strip()
    if not s.endswith("%"):
        return int(s)
    x = int(s[:-1]) * total / 100
    return math.ceil(x) if round_up else math.floor(x)


def replicas_of(obj: dict) -> int:
    """``spec.replicas`` (Kubernetes' default 1 when unset)."""
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def rolling_params(d: dict) -> dict | None:
    st = (d.get("spec") or {}).get("strategy") or {}
    if (st.get("type") or "RollingUpdate") != "RollingUpdate":
        return None
    return st.get("rollingUpdate") or {"maxSurge": "25%", "maxUnavailable": "25%"}


def fenceposts(d: dict) -> tuple[int, int]:
    """``ResolveFenceposts``: (maxSurge, maxUnavailable) for the Deployment's replicas; surge rounds
    up, unavailable down, and both zero becomes unavailable 1."""
    ru = rolling_params(d)
    if ru is None:
        return 0, 0
    desired = replicas_of(d)
    surge = scaled_value(ru.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: dict) -> int:
    return fenceposts(d)[0]


def max_unavailable(d: dict) -> int:
    """``MaxUnavailable``: 0 for Recreate or no replicas, never more than the replicas."""
    if rolling_params(d) is None or replicas_of(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas_of(d))


# ---- ReplicaSet accessors and orderings -------------------------------------------------------


def status_int(obj: dict, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def total_spec(rss: Iterable[dict | None]) -> int:
    """``GetReplicaCountForReplicaSets``."""
    return sum(replicas_of(rs) for rs in rss if rs)


def total_status(rss: Iterable[dict | None], field: str = "replicas") -> int:
    """``GetActualReplicaCountForReplicaSets`` (and the ready/available variants)."""
    return sum(status_int(rs, field) for rs in rss if rs)


def available_of(rs: dict) -> int:
    """Available pods an RS will still have once its spec is met: its status's count, capped by its
    spec (a status not yet updated after a scale-down would otherwise count pods being deleted)."""
    return min(status_int(rs, "availableReplicas"), replicas_of(rs))


def total_available(rss: Iterable[dict | None]) -> int:
    return sum(available_of(rs) for rs in rss if rs)


def active(rss: Iterable[dict | None]) -> list[dict]:
    """``FilterActiveReplicaSets``: those asked to run pods."""
    return [rs for rs in rss if rs and replicas_of(rs) > 0]


def by_creation(rs: dict) -> tuple[str, str]:
    """``ReplicaSetsByCreationTimestamp`` (oldest first; name breaks ties)."""
    m = rs.get("metadata") or {}
    return m.get("creationTimestamp") or "", m.get("name") or ""


def revision_of(obj: dict | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("annotations", {}).get(REVISION) or 0)
    except (TypeError, ValueError, AttributeError):
        return 0


def max_revision(rss: Iterable[dict | None]) -> int:
    return max((revision_of(rs) for rs in rss if rs), default=0)


def annotation_int(obj: dict, key: str) -> int | None:
    try:
        return int((obj.get("metadata") or {}).get("annotations", {})[key])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


# ---- annotations -----------------------------------------------------------------------------


def set_replicas_annotations(rs: dict, desired: int, max_replicas: int) -> bool:
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    want = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(max_replicas)}
    if all(ann.get(k) == v for k, v in want.items()):
        return False
    ann.update(want)
    return True


def replicas_annotations_need_update(rs: dict, desired: int, max_replicas: int) -> bool:
    ann = (rs.get("metadata") or {}).get("annotations") or {}
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def set_new_rs_annotations(d: dict, rs: dict, new_revision: int, exists: bool) -> bool:
    """``SetNewReplicaSetAnnotations``: copy the Deployment's annotations, move the revision up
    (keeping the ones it had in revision-history: that is a rollback), and for a new RS set the
    replica annotations. True when something changed."""
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if k not in SKIPPED_ANNOTATIONS and ann.get(k) != v:
            ann[k] = v
            changed = True
    old = ann.get(REVISION)
    old_int = revision_of(rs)
    if old_int < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old:
            hist = ann.get(REVISION_HISTORY)
            ann[REVISION_HISTORY] = f"{hist},{old}" if hist else old
    if not exists:
        changed = set_replicas_annotations(rs, replicas_of(d), replicas_of(d) + max_surge(d)) or changed
    return changed
