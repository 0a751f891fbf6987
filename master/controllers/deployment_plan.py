"""The Deployment controller's decisions as pure functions (Kubernetes' rolling.go, recreate.go
and sync.go): given the Deployment and its ReplicaSets, what each ReplicaSet should be scaled to.
Each returns ``{rs name: new replicas}`` for the ReplicaSets to change; the controller writes them."""

from __future__ import annotations

from bus.informer import deep_copy
from bus.meta import TERMINAL_POD_PHASES, name_of
from master.controllers.deployment_util import (
    DESIRED_REPLICAS, active, annotation_int, available_of, by_creation, max_surge,
    max_unavailable, replicas_of, revision_of, rolling_params, status_int, total_available, total_spec,
    MAX_REPLICAS,
)

Plan = dict[str, int]


def _with(rss: list[dict], plan: Plan) -> list[dict]:
    """Copies of ``rss`` with the planned sizes applied (to chain decisions as Kubernetes does)."""
    out = []
    for rs in rss:
        if name_of(rs) in plan:
            rs = deep_copy(rs)
            rs["spec"]["replicas"] = plan[name_of(rs)]
        out.append(rs)
    return out


# ---- rolling update ----------------------------------------------------------------------------


def new_rs_replicas(d: dict, all_rss: list[dict], new_rs: dict | None) -> int:
    """``NewRSNewReplicas``: how big the new ReplicaSet may be now (never above replicas + maxSurge
    pods in total)."""
    want = replicas_of(d)
    if rolling_params(d) is None:
        return want
    current = replicas_of(new_rs) if new_rs else 0
    total = total_spec(all_rss)
    max_total = want + max_surge(d)
    if total >= max_total:
        return current
    return current + min(max_total - total, want - current)


def rolling_scale_up(d: dict, all_rss: list[dict], new_rs: dict) -> Plan:
    """``reconcileNewReplicaSet``."""
    want, have = replicas_of(d), replicas_of(new_rs)
    if have == want:
        return {}
    if have > want:
        return {name_of(new_rs): want}
    n = new_rs_replicas(d, all_rss, new_rs)
    return {name_of(new_rs): n} if n != have else {}


def rolling_scale_down(d: dict, all_rss: list[dict], old_rss: list[dict], new_rs: dict | None) -> Plan:
    """``reconcileOldReplicaSets``: first drop old ReplicaSets' unhealthy replicas, then scale old
    ReplicaSets down (oldest first) while more than ``replicas - maxUnavailable`` pods stay available."""
    old_rss = [rs for rs in old_rss if replicas_of(rs) > 0]
    if total_spec(old_rss) == 0:
        return {}
    min_available = replicas_of(d) - max_unavailable(d)
    new_unavailable = replicas_of(new_rs) - available_of(new_rs) if new_rs else 0
    max_scaled_down = total_spec(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    plan: Plan = {}
    done = 0
    for rs in sorted(old_rss, key=by_creation):  # cleanupUnhealthyReplicas
        if done >= max_scaled_down:
            break
        unhealthy = replicas_of(rs) - available_of(rs)
        if unhealthy <= 0:
            continue
        n = min(max_scaled_down - done, unhealthy)
        plan[name_of(rs)] = replicas_of(rs) - n
        done += n
    old_rss = _with(old_rss, plan)
    all_now = old_rss + ([new_rs] if new_rs else [])
    available = total_available(all_now)  # scaleDownOldReplicaSetsForRollingUpdate
    if available <= min_available:
        return plan
    to_scale_down, done = available - min_available, 0
    for rs in sorted(old_rss, key=by_creation):
        if done >= to_scale_down:
            break
        if replicas_of(rs) == 0:
            continue
        n = min(replicas_of(rs), to_scale_down - done)
        plan[name_of(rs)] = replicas_of(rs) - n
        done += n
    return plan


# ---- recreate ----------------------------------------------------------------------------------


def recreate_scale_down(old_rss: list[dict]) -> Plan:
    return {name_of(rs): 0 for rs in active(old_rss)}


def old_pods_running(new_rs: dict | None, old_rss: list[dict], pods_by_rs: dict[str, list[dict]]) -> bool:
    """``oldPodsRunning``: an old ReplicaSet still reports pods, or a pod of one has not finished
    (terminating pods count until they are gone)."""
    if sum(status_int(rs, "replicas") for rs in old_rss) > 0:
        return True
    new_uid = (new_rs or {}).get("metadata", {}).get("uid")
    for uid, pods in pods_by_rs.items():
        if uid == new_uid:
            continue
        if any((p.get("status") or {}).get("phase") not in TERMINAL_POD_PHASES for p in pods):
            return True
    return False


# ---- scaling (sync.go) -------------------------------------------------------------------------


def is_scaling_event(d: dict, all_rss: list[dict]) -> bool:
    """An active ReplicaSet was sized for another ``replicas`` than the Deployment's."""
    for rs in active(all_rss):
        desired = annotation_int(rs, DESIRED_REPLICAS)
        if desired is not None and desired != replicas_of(d):
            return True
    return False


def find_active_or_latest(new_rs: dict | None, old_rss: list[dict]) -> dict | None:
    if new_rs is None and not old_rss:
        return None
    olds = sorted(old_rss, key=by_creation, reverse=True)
    act = active(olds + ([new_rs] if new_rs else []))
    if not act:
        return new_rs or olds[0]
    return act[0] if len(act) == 1 else None


def is_saturated(d: dict, rs: dict | None) -> bool:
    return (rs is not None and replicas_of(rs) == replicas_of(d)
            and annotation_int(rs, DESIRED_REPLICAS) == replicas_of(d)
            and status_int(rs, "availableReplicas") == replicas_of(d))


def _fraction(rs: dict, d: dict, status_replicas: int) -> int:
    """``getReplicaSetFraction``: this RS's share of the new size, from the size it was made for."""
    if replicas_of(d) == 0:
        return -replicas_of(rs)
    allowed = replicas_of(d) + max_surge(d)
    annotated = annotation_int(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_replicas
    if not annotated:
        return 0
    x = replicas_of(rs) * allowed / annotated
    return int(x + 0.5 if x >= 0 else x - 0.5) - replicas_of(rs)


def scale(d: dict, new_rs: dict | None, old_rss: list[dict]) -> Plan:
    """``DeploymentController.scale``: resize for a new ``replicas``; with several active
    ReplicaSets mid-rollout, share the change out proportionally (larger ReplicaSets first)."""
    want = replicas_of(d)
    one = find_active_or_latest(new_rs, old_rss)
    if one is not None:
        return {name_of(one): want}  # also when the size is right: its replica annotations may not be
    if is_saturated(d, new_rs):
        return recreate_scale_down(old_rss)
    if rolling_params(d) is None:
        return {}
    rss = active(old_rss + ([new_rs] if new_rs else []))
    allowed = want + max_surge(d) if want > 0 else 0
    to_add = allowed - total_spec(rss)
    if to_add == 0:
        return {}
    if to_add > 0:  # ReplicaSetsBySizeNewer
        rss.sort(key=lambda rs: (replicas_of(rs), by_creation(rs)), reverse=True)
    else:  # ReplicaSetsBySizeOlder
        rss.sort(key=lambda rs: (-replicas_of(rs), by_creation(rs)))
    status_replicas = status_int(d, "replicas")
    sizes, added = {}, 0
    for rs in rss:
        p = 0
        if replicas_of(rs) and to_add != added:
            f = _fraction(rs, d, status_replicas)
            p = min(f, to_add - added) if to_add > 0 else max(f, to_add - added)
        sizes[name_of(rs)] = replicas_of(rs) + p
        added += p
    first = name_of(rss[0])
    sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes  # every active RS: the controller also brings their replica annotations up to date


# ---- history -----------------------------------------------------------------------------------


def cleanup(d: dict, old_rss: list[dict]) -> list[str]:
    """``cleanupDeployment``: names of old ReplicaSets with no pods past revisionHistoryLimit, oldest
    revision first."""
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    live = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    diff = len(live) - int(limit)
    if diff <= 0:
        return []
    out = []
    for rs in sorted(live, key=lambda r: (revision_of(r), by_creation(r)))[:diff]:
        if status_int(rs, "replicas") or replicas_of(rs):
            continue
        if int(rs["metadata"].get("generation") or 0) > status_int(rs, "observedGeneration"):
            continue
        out.append(name_of(rs))
    return out
