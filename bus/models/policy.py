"""policy/v1 PodDisruptionBudget (the Eviction itself lives with the pods, in ``bus.models.core``)."""

from __future__ import annotations

from bus.labels import selector_from_label_selector
from bus.models.base import Condition, Int, IntOrString, K8sModel, O
from bus.models.meta import LabelSelector, TopLevel

# spec.unhealthyPodEvictionPolicy (policy/v1 UnhealthyPodEvictionPolicyType); unset behaves as IfHealthyBudget
IF_HEALTHY_BUDGET, ALWAYS_ALLOW = "IfHealthyBudget", "AlwaysAllow"
UNHEALTHY_POD_EVICTION_POLICIES = (ALWAYS_ALLOW, IF_HEALTHY_BUDGET)  # sorted, as Kubernetes lists them
# status.conditions: the one condition the disruption controller keeps, and its reasons
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS, INSUFFICIENT_PODS, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"
# details.causes[].reason of the 429 an eviction gets from a budget
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"


class PodDisruptionBudgetSpec(K8sModel):
    min_available: O[IntOrString] = None
    selector: O[LabelSelector] = None
    max_unavailable: O[IntOrString] = None
    unhealthy_pod_eviction_policy: O[str] = None


class PodDisruptionBudgetStatus(K8sModel):
    observed_generation: O[Int] = None
    disrupted_pods: O[dict[str, str]] = None  # pod name -> when the eviction API decremented the budget (RFC3339)
    disruptions_allowed: O[Int] = None
    current_healthy: O[Int] = None
    desired_healthy: O[Int] = None
    expected_pods: O[Int] = None
    conditions: O[list[Condition]] = None


class PodDisruptionBudget(TopLevel):
    api_version: O[str] = "policy/v1"
    kind: O[str] = "PodDisruptionBudget"
    spec: O[PodDisruptionBudgetSpec] = None
    status: O[PodDisruptionBudgetStatus] = None


# ---- helpers shared by the eviction subresource and the disruption controller (k8s.io/component-helpers
# apps/poddisruptionbudget), on stored objects (plain dicts) ------------------------------------------------------


def pod_healthy(pod: dict) -> bool:
    """What a budget counts as healthy: the pod's Ready condition is True (``podutil.IsPodReady``)."""
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def budget_selects(pdb: dict, pod: dict) -> bool:
    """Whether the budget covers the pod: same namespace, and its selector matches (a missing selector matches
    nothing, ``{}`` everything, an invalid one nothing)."""
    meta = pod.get("metadata") or {}
    if (pdb.get("metadata") or {}).get("namespace") != meta.get("namespace"):
        return False
    try:
        return selector_from_label_selector((pdb.get("spec") or {}).get("selector")).matches(meta.get("labels"))
    except ValueError:
        return False


def budget_condition(status: dict, now: str, reason: str | None = None, message: str = "") -> None:
    """``UpdateDisruptionAllowedCondition``: set (in place) the DisruptionAllowed condition that
    ``status.disruptionsAllowed`` implies (or, given a ``reason``, False for that reason: the controller's
    fail-safe); lastTransitionTime moves only when the condition's status does."""
    allowed = reason is None and int(status.get("disruptionsAllowed") or 0) > 0
    cond = {"type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False"}
    if status.get("observedGeneration"):
        cond["observedGeneration"] = status["observedGeneration"]
    reason = reason or (SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS)
    cond.update(lastTransitionTime=now, reason=reason, message=message)
    out, placed = [], False
    for c in status.get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == DISRUPTION_ALLOWED:
            if c.get("status") == cond["status"] and c.get("lastTransitionTime"):
                cond["lastTransitionTime"] = c["lastTransitionTime"]
            out.append(cond)
            placed = True
        else:
            out.append(c)
    status["conditions"] = out if placed else [*out, cond]


def conditions_up_to_date(pdb: dict) -> bool:
    """``ConditionsAreUpToDate``: the DisruptionAllowed condition says what disruptionsAllowed says, for the
    budget's current generation."""
    status = pdb.get("status") or {}
    cond = next((c for c in status.get("conditions") or () if isinstance(c, dict)
                 and c.get("type") == DISRUPTION_ALLOWED), None)
    if cond is None or status.get("observedGeneration") != (pdb.get("metadata") or {}).get("generation"):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS
    return cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS
