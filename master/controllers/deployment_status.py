"""A Deployment's status as pure functions (Kubernetes' deployment sync.go calculateStatus and
progress.go): counts from its ReplicaSets, the Available and Progressing conditions, the progress
deadline. Times are epoch seconds in, RFC 3339 strings in the conditions."""

from __future__ import annotations

from bus.informer import deep_copy
from bus.meta import format_time, get_condition, timestamp
from master.controllers.deployment_util import (
    max_unavailable, replicas_of, status_int, total_available, total_spec, total_status,
)

AVAILABLE, PROGRESSING = "Available", "Progressing"
# reasons, as Kubernetes words them
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"
NEW_RS_CREATED, FOUND_NEW_RS, RS_UPDATED = "NewReplicaSetCreated", "FoundNewReplicaSet", "ReplicaSetUpdated"
NEW_RS_AVAILABLE, TIMED_OUT, FAILED_RS_CREATE = "NewReplicaSetAvailable", "ProgressDeadlineExceeded", "FailedCreate"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"
NO_DEADLINE = 2**31 - 1  # math.MaxInt32: "no progress deadline"


# ---- conditions --------------------------------------------------------------------------------


def get_deployment_condition(status: dict, type_: str) -> dict | None:
    """``GetDeploymentCondition``: the condition of ``type_`` in a Deployment's status."""
    return get_condition({"status": status}, type_)


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> dict:
    ts = format_time(now)
    return {"type": type_, "status": status, "lastUpdateTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def set_deployment_condition(status: dict, cond: dict) -> None:
    """``SetDeploymentCondition``: nothing when status and reason are the same; the transition time
    kept while the status is."""
    cur = get_deployment_condition(status, cond["type"])
    if cur and cur.get("status") == cond["status"] and cur.get("reason") == cond["reason"]:
        return
    if cur and cur.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": cur.get("lastTransitionTime") or cond["lastTransitionTime"]}
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]] + [cond]


def remove_deployment_condition(status: dict, type_: str) -> None:
    if status.get("conditions"):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != type_]


def has_progress_deadline(d: dict) -> bool:
    pds = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return pds is not None and int(pds) != NO_DEADLINE


def deadline_of(d: dict) -> int:
    return int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)


# ---- counts ------------------------------------------------------------------------------------


def calculate_status(d: dict, all_rss: list[dict], new_rs: dict | None, now: float) -> dict:
    """``calculateStatus``: counts over the ReplicaSets plus the Available condition; the other
    conditions and collisionCount are carried over from the Deployment's status."""
    old = d.get("status") or {}
    available = total_available(all_rss)
    status = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": total_status(all_rss),
        "updatedReplicas": total_status([new_rs]),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_spec(all_rss) - available),
        "conditions": deep_copy(old.get("conditions") or []),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= replicas_of(d) - max_unavailable(d):
        set_deployment_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.",
                                             now))
    else:
        set_deployment_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def complete(d: dict, status: dict) -> bool:
    """``DeploymentComplete``: every replica updated and available, and the spec observed."""
    want = replicas_of(d)
    return (status_int({"status": status}, "updatedReplicas") == want
            and status_int({"status": status}, "replicas") == want
            and status_int({"status": status}, "availableReplicas") == want
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def progressing(d: dict, new: dict) -> bool:
    """``DeploymentProgressing``: more updated, ready or available replicas, or fewer old ones."""
    old = d.get("status") or {}
    g = lambda s, f: int(s.get(f) or 0)  # noqa: E731
    return (g(new, "updatedReplicas") > g(old, "updatedReplicas")
            or g(new, "replicas") - g(new, "updatedReplicas") < g(old, "replicas") - g(old, "updatedReplicas")
            or g(new, "readyReplicas") > g(old, "readyReplicas")
            or g(new, "availableReplicas") > g(old, "availableReplicas"))


def timed_out(d: dict, status: dict, now: float) -> bool:
    """``DeploymentTimedOut``: no progress for progressDeadlineSeconds since the Progressing
    condition was last updated."""
    if not has_progress_deadline(d):
        return False
    cond = get_deployment_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = timestamp(cond.get("lastUpdateTime"))
    return since is not None and since + deadline_of(d) < now


def rollout_status(d: dict, all_rss: list[dict], new_rs: dict | None, now: float) -> dict:
    """``syncRolloutStatus``: the status with the Progressing condition moved on."""
    status = calculate_status(d, all_rss, new_rs, now)
    if not has_progress_deadline(d):
        remove_deployment_condition(status, PROGRESSING)
        return status
    cur = get_deployment_condition(status, PROGRESSING)
    already_complete = (status["replicas"] == status["updatedReplicas"] and cur is not None
                        and cur.get("reason") == NEW_RS_AVAILABLE)
    if already_complete:
        return status
    what = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{d["metadata"]["name"]}"'
    if complete(d, status):
        set_deployment_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                             f"{what} has successfully progressed.", now))
    elif progressing(d, status):
        cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{what} is progressing.", now)
        if cur is not None and cur.get("status") == "True":
            cond["lastTransitionTime"] = cur.get("lastTransitionTime") or cond["lastTransitionTime"]
        remove_deployment_condition(status, PROGRESSING)  # a new lastUpdateTime: the deadline starts again
        set_deployment_condition(status, cond)
    elif timed_out(d, status, now):
        set_deployment_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, f"{what} has timed out progressing.",
                                            now))
    return status


def requeue_after(d: dict, status: dict, now: float) -> float | None:
    """``requeueStuckDeployment``: when to look again so a stuck rollout times out on time."""
    cond = get_deployment_condition(status, PROGRESSING)
    if (not has_progress_deadline(d) or cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT)
            or complete(d, status)):
        return None
    since = timestamp(cond.get("lastUpdateTime"))
    if since is None:
        return None
    return max(0.0, since + deadline_of(d) - now) + 1.0  # condition times have whole seconds


def paused_condition(d: dict, status: dict, now: float) -> bool:
    """``checkPausedConditions``: Progressing Unknown DeploymentPaused while paused,
    DeploymentResumed after; a timed-out condition is left alone. True when it changed."""
    if not has_progress_deadline(d):
        return False
    cond = get_deployment_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return False
    paused_cond = cond is not None and cond.get("reason") == PAUSED
    paused = bool((d.get("spec") or {}).get("paused"))
    if paused and not paused_cond:
        set_deployment_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now))
        return True
    if not paused and paused_cond:
        set_deployment_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now))
        return True
    return False
