"""The ``pods/eviction`` subresource, as Kubernetes' eviction REST (pkg/registry/core/pod/storage/eviction.go): a
policy/v1 ``Eviction`` posted for a pod is a graceful delete of that pod honouring the Eviction's ``deleteOptions``
(gracePeriodSeconds, preconditions, propagationPolicy, dryRun) — the pod first gets the ``DisruptionTarget``
condition, then it is deleted, and the reply is ``201`` with a ``Status`` of ``Success``. ``kubectl drain`` evicts
through it.

PodDisruptionBudgets are consulted first:

- a pod that is Pending, Succeeded, Failed or already being deleted is evicted without looking at any budget;
- a pod selected by more than one budget is refused (500: the subresource does not support that);
- a pod that is not Ready goes without touching its budget when the budget's ``unhealthyPodEvictionPolicy`` is
  ``AlwaysAllow``, or (``IfHealthyBudget``, the default) when the budget is met (currentHealthy >= desiredHealthy >
  0); the delete then carries the pod's resourceVersion, so a pod that became Ready meanwhile is answered 429;
- otherwise the budget's ``status.disruptionsAllowed`` is decremented and the pod recorded in
  ``status.disruptedPods``, compare-and-set on the budget (a conflict re-reads it and decides again), so concurrent
  evictions never grant more than it allowed. None left: ``429 TooManyRequests`` "Cannot evict pod as it would
  violate the pod's disruption budget." with a ``DisruptionBudget`` cause; a budget whose status lags its spec
  (observedGeneration < generation): 429 with ``retryAfterSeconds: 10``."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from bus import errors
from bus.meta import TERMINAL_POD_PHASES, deep_copy, now, set_condition
from bus.models import Eviction, to_dict
from bus.models.decode import decode
from bus.models.policy import (
    ALWAYS_ALLOW, DISRUPTION_BUDGET_CAUSE, budget_condition, budget_selects, pod_healthy,
)
from bus.resources import by_plural
from master.apiserver.request import Reply, Request

if TYPE_CHECKING:
    from bus.store import NatsStore

API_VERSIONS = ("policy/v1", "policy/v1beta1")
RETRIES = 8
DISRUPTION_TARGET = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                     "message": "Eviction API: evicting"}
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
PDBS = by_plural("poddisruptionbudgets")
PDB_RETRIES = 20  # compare-and-set attempts on a budget (Kubernetes' EvictionsRetry has 20 steps)
CONFLICT_JITTER = 0.02  # seconds, at most, a writer that lost the budget's compare-and-set waits before re-reading
MAX_DISRUPTED_PODS = 2000  # evictions granted and not yet seen by the disruption controller, at most
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_BUDGETS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."


def parse_eviction(req: Request) -> dict:
    """The Eviction of the request as a dict with ``deleteOptions`` (camelCase) — or a Status error."""
    body = req.body
    if not isinstance(body, dict):
        raise errors.bad_request("the body of an eviction must be an Eviction object (policy/v1)")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind is not None and kind != "Eviction":
        raise errors.bad_request(f"the object kind {kind!r} is not an Eviction")
    if api_version is not None and api_version not in API_VERSIONS:
        raise errors.bad_request(f"the API version {api_version!r} is not served for Eviction; use 'policy/v1'")
    model, causes = decode(Eviction, body)
    name = str(req.name or "")
    if causes or model is None:
        raise errors.invalid("Eviction", name, causes, "policy")
    eviction = to_dict(model)
    meta = eviction.get("metadata") or {}
    if meta.get("name") != req.name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    if meta.get("namespace") not in (None, "", req.namespace):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request")
    return eviction


def _check_preconditions(pod: dict, pre: dict) -> None:
    meta, name = pod["metadata"], pod["metadata"]["name"]
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise errors.conflict("pods", name, why=f"Precondition failed: UID in precondition: {pre['uid']}, "
                                                f"UID in object meta: {meta.get('uid')}")
    if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta.get("resourceVersion"):
        raise errors.conflict("pods", name, why=f"Precondition failed: ResourceVersion in precondition: "
                                                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                                f"{meta.get('resourceVersion')}")


async def _mark_disruption_target(store: NatsStore, req: Request, pre: dict) -> str:
    """Add the DisruptionTarget condition to the pod's status (CAS); the pod's new resourceVersion."""
    res, ns, name = req.res, req.namespace, str(req.name)
    for _ in range(RETRIES):
        pod = await store.get(res, ns, name)
        _check_preconditions(pod, pre)
        new = deep_copy(pod)
        status = new.setdefault("status", {})
        status["conditions"] = set_condition(status.get("conditions") or [],
                                             {**DISRUPTION_TARGET, "lastProbeTime": None, "lastTransitionTime": now()})
        if new == pod:
            return pod["metadata"]["resourceVersion"]
        try:
            out = await store.update(res, ns, name, new, int(pod["metadata"]["resourceVersion"]))
        except errors.Conflict:
            continue
        return out["metadata"]["resourceVersion"]
    raise errors.conflict(res.plural, name, why="too many concurrent writers; try again")


# ---- the budget (pure) ---------------------------------------------------------------------------------------


def too_many_requests(cause: str, retry_after: int = 0) -> errors.ApiError:
    """Kubernetes' 429 for an eviction a budget forbids (``retry_after`` seconds suggested when not 0)."""
    details: dict[str, Any] = {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return errors.ApiError(429, VIOLATION, "TooManyRequests", details)


def still_processing(pdb_name: str) -> errors.ApiError:
    return too_many_requests(f"The disruption budget {pdb_name} is still being processed by the server.", 10)


def can_ignore_budgets(pod: dict) -> bool:
    """``canIgnorePDB``: a pod that is not running (Pending, terminal) or already being deleted disrupts nothing."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in TERMINAL_POD_PHASES or phase == "Pending" or bool(pod["metadata"].get("deletionTimestamp"))


def should_enforce_resource_version(pod: dict) -> bool:
    """A Pending pod deleted without a budget check must still be the one checked (it may turn Ready)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in TERMINAL_POD_PHASES and not pod["metadata"].get("deletionTimestamp")


def budgets_of(pod: dict, pdbs: list[dict]) -> list[dict]:
    """The budgets that cover the pod."""
    return [pdb for pdb in pdbs if budget_selects(pdb, pod)]


def unhealthy_may_go(pod: dict, pdb: dict) -> bool:
    """A pod that is not Ready and whose eviction the budget need not pay for (unhealthyPodEvictionPolicy)."""
    if pod_healthy(pod):
        return False
    if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == ALWAYS_ALLOW:
        return True
    status = pdb.get("status") or {}
    desired = int(status.get("desiredHealthy") or 0)
    return int(status.get("currentHealthy") or 0) >= desired > 0


def decrement(pdb: dict, pod_name: str, when: str, dry_run: bool = False) -> dict:
    """``checkAndDecrement``: the budget with one disruption fewer allowed and the pod recorded in
    ``disruptedPods`` (not on a dry run); a 429 (or a 403) when the budget cannot grant it."""
    meta, status = pdb["metadata"], pdb.get("status") or {}
    name = meta["name"]
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        raise still_processing(name)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise errors.forbidden("poddisruptionbudget", name, "pdb disruptions allowed is negative", "policy")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise errors.forbidden("poddisruptionbudget", name, "DisruptedPods map too big - too many evictions not "
                                                            "confirmed by PDB controller", "policy")
    if allowed == 0:
        raise too_many_requests(f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                                f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently")
    new = deep_copy(pdb)
    st = new.setdefault("status", {})
    st["disruptionsAllowed"] = allowed - 1
    if allowed == 1:
        budget_condition(st, when)
    if not dry_run:
        st["disruptedPods"] = {**(st.get("disruptedPods") or {}), pod_name: when}
    return new


# ---- the request ---------------------------------------------------------------------------------------------


async def _charge_budget(store: NatsStore, pdb: dict, pod_name: str, dry_run: bool) -> None:
    """Decrement the budget, compare-and-set; on a conflict re-read it and decide again."""
    ns, name = pdb["metadata"].get("namespace"), pdb["metadata"]["name"]
    for _ in range(PDB_RETRIES):
        new = decrement(pdb, pod_name, now(), dry_run)
        if dry_run:
            return
        try:
            await store.update(PDBS, ns, name, new, int(pdb["metadata"]["resourceVersion"]))
            return
        except errors.Conflict:
            await asyncio.sleep(random.uniform(0.0, CONFLICT_JITTER))  # spread the writers that lost
            pdb = await store.get(PDBS, ns, name)
    raise errors.ApiError(504, f'Timeout: couldn\'t update PodDisruptionBudget "{name}" due to conflicts', "Timeout",
                          {"retryAfterSeconds": 10})


async def evict(req: Request, store: NatsStore, delete: Callable[[Request], Awaitable[Reply]]) -> Reply:
    """POST pods/NAME/eviction (``req.name`` already checked by the caller): ``store`` holds the pod,
    ``delete`` is the API server's delete verb."""
    eviction = parse_eviction(req)
    opts: dict[str, Any] = dict(eviction.get("deleteOptions") or {})
    pre = opts.get("preconditions") or {}
    if not isinstance(pre, dict):
        raise errors.bad_request("deleteOptions.preconditions must be an object")
    dry_run = req.dry_run or bool(opts.get("dryRun"))
    # With no resourceVersion precondition from the caller a conflict (another writer in between) is retried;
    # with one, the caller asked to fail instead.
    retry = not pre.get("resourceVersion")

    def delete_request(preconditions: dict, dry: bool) -> Request:
        return dataclasses.replace(req, verb="delete", subresource=None, body=None, options={
            "gracePeriodSeconds": opts.get("gracePeriodSeconds"),
            "propagationPolicy": opts.get("propagationPolicy"),
            "preconditions": preconditions or None,
            "dryRun": ["All"] if dry else None,
        })

    async def condition_and_delete(preconditions: dict) -> None:
        # A dry run of the delete first: bad options, failed preconditions and a missing pod fail before any write.
        await delete(delete_request(preconditions, True))
        if dry_run:
            return
        delete_pre = dict(preconditions)
        rv = await _mark_disruption_target(store, req, preconditions)
        if preconditions.get("resourceVersion"):
            delete_pre["resourceVersion"] = rv  # we changed it ourselves
        await delete(delete_request(delete_pre, False))

    await delete(delete_request(pre, True))
    for _ in range(RETRIES):
        pod = await store.get(req.res, req.namespace, str(req.name))
        if not can_ignore_budgets(pod):
            break
        delete_pre = dict(pre)
        if should_enforce_resource_version(pod) and retry:
            delete_pre["resourceVersion"] = pod["metadata"]["resourceVersion"]  # not racing a pod turning Ready
        try:
            await condition_and_delete(delete_pre)
        except errors.Conflict:
            if retry:
                continue
            raise
        return 201, dict(SUCCESS), []
    else:
        raise errors.conflict(req.res.plural, str(req.name), why="too many concurrent writers; try again")

    pdbs = budgets_of(pod, (await store.list(PDBS, req.namespace))[0])
    if len(pdbs) > 1:
        raise errors.ApiError(500, MULTIPLE_BUDGETS)
    enforce_rv = False
    if pdbs:
        if unhealthy_may_go(pod, pdbs[0]):
            enforce_rv = True  # the pod must still be unready when it is deleted
        else:
            await _charge_budget(store, pdbs[0], pod["metadata"]["name"], dry_run)
    delete_pre = dict(pre)
    if enforce_rv:
        delete_pre["resourceVersion"] = pod["metadata"]["resourceVersion"]
    for _ in range(RETRIES):
        try:
            await condition_and_delete(delete_pre)
        except errors.Conflict:
            if enforce_rv and retry:
                raise still_processing(pdbs[0]["metadata"]["name"]) from None
            if retry:
                continue
            raise
        return 201, dict(SUCCESS), []
    raise errors.conflict(req.res.plural, str(req.name), why="too many concurrent writers; try again")
