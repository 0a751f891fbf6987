"""The disruption controller (policy/v1 PodDisruptionBudget status), as Kubernetes' pkg/controller/disruption.

For each budget, from the pods its selector picks in its namespace (a missing selector picks none, ``{}`` all):

- **expectedPods** and **desiredHealthy**: an integer ``minAvailable`` is the desired count and the pods are the
  expected ones; ``maxUnavailable`` or a percentage needs the scale of the pods' controllers, summed once per
  controller: ReplicationController, ReplicaSet, Deployment (through the pod's ReplicaSet) from the informers, any
  other controller (StatefulSet, a custom resource) through its ``scale`` subresource. A pod whose controller
  cannot be found is an error (the budget fails safe); a pod with no controller is reported (event
  ``UnmanagedPods``) and not counted;
- **currentHealthy**: pods that are Ready, not being deleted, and not in ``disruptedPods`` (evictions the
  API server granted in the last two minutes that the pods do not show yet);
- **disruptionsAllowed** = currentHealthy − desiredHealthy (0 when negative or when no pod is expected), with the
  ``DisruptionAllowed`` condition (SufficientPods / InsufficientPods) and ``observedGeneration``.

Status goes through the status subresource, with the cached resourceVersion (a stale cache is a 409 and a
retry), and only when it changed. When the computation fails the budget "fails safe": disruptionsAllowed 0 and
the condition False with reason SyncFailed, so that no eviction gets through on a guess.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from bus import errors
from bus.controller import Controller
from bus.events import NORMAL, WARNING
from bus.informer import Informer, deep_copy, key_of
from bus.labels import selector_from_label_selector
from bus.meta import format_time, timestamp
from bus.models.policy import (
    SYNC_FAILED, budget_condition, budget_selects, conditions_up_to_date, pod_healthy,
)
from bus.resources import by_kind
from bus.workqueue import Result
from master.controllers._ownership import controller_ref, deleting

log = logging.getLogger(__name__)

DELETION_TIMEOUT = 120.0  # seconds an entry of disruptedPods is trusted before the pod must show its deletion


def setup(ctx) -> list:
    inf = ctx.informers.informer
    return [DisruptionController(ctx.client, inf("poddisruptionbudgets"), inf("pods"), inf("replicationcontrollers"),
                                 inf("replicasets"), inf("deployments"), ctx.recorder("controllermanager")).controller]


# ---- pure logic ------------------------------------------------------------------------------------------------


class SyncError(Exception):
    """The budget's status cannot be computed (its message goes into the SyncFailed condition)."""


def selected_pods(pdb: dict, pods: list[dict]) -> list[dict]:
    """The pods of the budget's namespace its selector picks (``LabelSelectorAsSelector``)."""
    try:
        sel = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
    except ValueError as e:
        raise SyncError(str(e)) from None
    return [p for p in pods if sel.matches((p.get("metadata") or {}).get("labels"))]


def scaled_value(value: Any, total: int, round_up: bool = True) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded up (or down)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.endswith("%"):
        raise SyncError("invalid value for IntOrString: invalid type: string is not a percentage")
    try:
        n = int(value[:-1])
    except ValueError:
        raise SyncError(f'invalid value for IntOrString: invalid value "{value}"') from None
    return math.ceil(n * total / 100) if round_up else math.floor(n * total / 100)


def needs_scale(spec: dict) -> bool:
    """Whether the controllers' scale is needed: maxUnavailable, or minAvailable as a percentage."""
    return spec.get("maxUnavailable") is not None or isinstance(spec.get("minAvailable"), str)


def expected_and_desired(spec: dict, pod_count: int, scale: int) -> tuple[int, int]:
    """``getExpectedPodCount``: (expectedPods, desiredHealthy) from the pod count and the controllers' scale."""
    if spec.get("maxUnavailable") is not None:
        return scale, max(0, scale - scaled_value(spec["maxUnavailable"], scale))
    min_available = spec.get("minAvailable")
    if min_available is None:
        return 0, 0
    if isinstance(min_available, str):
        return scale, scaled_value(min_available, scale)
    return pod_count, int(min_available)


def disrupted_map(pods: list[dict], recorded: dict[str, str] | None, now: float
                  ) -> tuple[dict[str, str], float | None]:
    """``buildDisruptedPodMap``: the entries of ``recorded`` still pending (pod there, not yet being deleted,
    granted less than DELETION_TIMEOUT ago), and when the earliest of them expires (None: no entry)."""
    out: dict[str, str] = {}
    recheck: float | None = None
    if not recorded:
        return out, None
    for pod in pods:
        name = pod["metadata"]["name"]
        if deleting(pod) or name not in recorded:
            continue
        expires = timestamp(recorded[name], 0.0) + DELETION_TIMEOUT
        if expires < now:
            log.info("pod %s was expected to be deleted but it wasn't", name)
            continue
        recheck = expires if recheck is None else min(recheck, expires)
        out[name] = recorded[name]
    return out, recheck


def count_healthy(pods: list[dict], disrupted: dict[str, str], now: float) -> int:
    """``countHealthyPods``: Ready pods, neither being deleted nor granted an eviction that is still pending."""
    n = 0
    for pod in pods:
        if deleting(pod):
            continue
        name = pod["metadata"]["name"]
        if name in disrupted and timestamp(disrupted[name], 0.0) + DELETION_TIMEOUT > now:
            continue
        if pod_healthy(pod):
            n += 1
    return n


def new_status(pdb: dict, healthy: int, desired: int, expected: int, disrupted: dict[str, str],
               now: str) -> dict | None:
    """``updatePdbStatus``: the status to write, or None when the stored one already says all of it."""
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    old = pdb.get("status") or {}
    generation = (pdb.get("metadata") or {}).get("generation")
    if (old.get("currentHealthy") == healthy and old.get("desiredHealthy") == desired
            and old.get("expectedPods") == expected and old.get("disruptionsAllowed") == allowed
            and (old.get("disruptedPods") or {}) == disrupted and old.get("observedGeneration") == generation
            and conditions_up_to_date(pdb)):
        return None
    status: dict = {"observedGeneration": generation}
    if disrupted:
        status["disruptedPods"] = dict(disrupted)
    status.update(disruptionsAllowed=allowed, currentHealthy=healthy, desiredHealthy=desired,
                  expectedPods=expected, conditions=deep_copy(old.get("conditions") or []))
    budget_condition(status, now)
    return status


def fail_safe_status(pdb: dict, message: str, now: str) -> dict:
    """``failSafe``: no disruption allowed, and the DisruptionAllowed condition False for SyncFailed."""
    status = deep_copy(pdb.get("status") or {})
    status["disruptionsAllowed"] = 0
    budget_condition(status, now, SYNC_FAILED, message)
    return status


def group_of(api_version: str | None) -> str:
    return (api_version or "").rpartition("/")[0]


# ---- the controller ------------------------------------------------------------------------------------------


class DisruptionController:
    name = "disruption"

    def __init__(self, client: Any, pdbs: Informer, pods: Informer, rcs: Informer, rss: Informer,
                 deployments: Informer, recorder: Any, wall: Callable[[], float] = time.time) -> None:
        self.client, self.pdbs, self.pods, self.recorder, self.wall = client, pdbs, pods, recorder, wall
        self.rcs, self.rss, self.deployments = rcs, rss, deployments
        self.controller = Controller("disruption", self.reconcile)
        self.controller.watches(pdbs)
        pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)
        self.controller.informers.extend([pods, rcs, rss, deployments])

    def _pod_updated(self, old: dict, new: dict) -> None:
        self._pod_changed(old)  # labels may have moved it from one budget to another
        self._pod_changed(new)

    def _pod_changed(self, pod: dict) -> None:
        """A pod's change concerns every budget that covers it."""
        for pdb in self.pdbs.list((pod.get("metadata") or {}).get("namespace")):
            if budget_selects(pdb, pod):
                self.controller.queue.add(key_of(pdb))

    async def reconcile(self, key: str) -> Result | None:
        pdb = self.pdbs.get_by_key(key)
        if pdb is None:
            return None
        now = self.wall()
        try:
            recheck = await self.sync(pdb, now)
        except errors.Conflict:
            raise  # a stale cache: retried, no fail-safe
        except (SyncError, errors.ApiError) as e:
            log.info("poddisruptionbudget %s: %s", key, e)
            await self._write(pdb, fail_safe_status(pdb, str(e), format_time(now)))
            return None
        return Result(requeue_after=max(0.0, recheck - now)) if recheck is not None else None

    async def sync(self, pdb: dict, now: float) -> float | None:
        """``trySync``: compute and write the status; when a disruptedPods entry expires (epoch seconds)."""
        ns = pdb["metadata"].get("namespace")
        spec = pdb.get("spec") or {}
        pods = selected_pods(pdb, self.pods.list(ns))
        if not pods:
            await self.recorder.event(pdb, NORMAL, "NoPods", "No matching pods found")
        scale = 0
        if needs_scale(spec):
            try:
                scale, unmanaged = await self.expected_scale(pods)
            except SyncError as e:
                await self.recorder.event(pdb, WARNING, "CalculateExpectedPodCountFailed",
                                          f"Failed to calculate the number of expected pods: {e}")
                raise
            if unmanaged:
                await self.recorder.event(pdb, WARNING, "UnmanagedPods", (
                    f"Pods selected by this PodDisruptionBudget (selector: {spec.get('selector')}) were found to be "
                    "unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result "
                    "in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of "
                    "the PDB to an integer value."))
        expected, desired = expected_and_desired(spec, len(pods), scale)
        disrupted, recheck = disrupted_map(pods, (pdb.get("status") or {}).get("disruptedPods"), now)
        healthy = count_healthy(pods, disrupted, now)
        status = new_status(pdb, healthy, desired, expected, disrupted, format_time(now))
        if status is not None:
            await self._write(pdb, status)
        return recheck

    async def expected_scale(self, pods: list[dict]) -> tuple[int, list[str]]:
        """``getExpectedScale``: the scale of the pods' controllers summed once per controller, and the names
        of the pods that have no controller."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = await self.controller_scale(ref, pod["metadata"].get("namespace"))
            if found is None:
                raise SyncError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scales[found[0]] = found[1]
        return sum(scales.values()), unmanaged

    async def controller_scale(self, ref: dict, ns: str | None) -> tuple[str, int] | None:
        """(uid, replicas) of the controller ``ref`` names, as the finders do: ReplicationController, Deployment
        through the pod's ReplicaSet, a ReplicaSet of no Deployment, then any kind's scale subresource."""
        kind, group, name, uid = ref.get("kind"), group_of(ref.get("apiVersion")), ref.get("name"), ref.get("uid")
        if kind == "ReplicationController" and group == "":
            return _replicas(self.rcs.get(ns, name), uid)
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self.rss.get(ns, name)
            if rs is None or rs["metadata"].get("uid") != uid:
                return None
            owner = controller_ref(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                if group_of(owner.get("apiVersion")) in ("apps", "extensions"):
                    found = _replicas(self.deployments.get(ns, owner.get("name")), owner.get("uid"))
                    if found is not None:
                        return found
                return await self.scale_subresource(ref, ns)
            return _replicas(rs, uid)
        return await self.scale_subresource(ref, ns)

    async def scale_subresource(self, ref: dict, ns: str | None) -> tuple[str, int] | None:
        """``getScaleController``: the Scale of the controller's kind (its group from the reference)."""
        kind, group = ref.get("kind"), group_of(ref.get("apiVersion"))
        res = (by_kind(kind, ref.get("apiVersion")) or by_kind(kind)) if kind else None
        if res is None or res.group != group:
            raise SyncError(f'no matches for kind "{kind}" in version "{ref.get("apiVersion")}"')
        if "scale" not in res.subresources:
            raise SyncError(f"{res.qualified} does not implement the scale subresource")
        try:
            scale = await self.client.get_scale(res, ref.get("name"), ns)
        except errors.NotFound:
            return None
        meta = scale.get("metadata") or {}
        if meta.get("uid") != ref.get("uid"):
            return None
        return meta["uid"], int((scale.get("spec") or {}).get("replicas") or 0)

    async def _write(self, pdb: dict, status: dict) -> None:
        if status == (pdb.get("status") or {}):
            return
        obj = deep_copy(pdb)
        obj["status"] = status
        await self.client.update_status(obj)


def _replicas(obj: dict | None, uid: str | None) -> tuple[str, int] | None:
    if obj is None or obj["metadata"].get("uid") != uid:
        return None
    replicas = (obj.get("spec") or {}).get("replicas")
    return uid, 1 if replicas is None else int(replicas)

