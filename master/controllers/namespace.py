"""Namespace controller: a namespace being deleted (phase Terminating, the ``kubernetes`` finalizer
in ``spec.finalizers``) has every object in it deleted — workload controllers first so they stop
making pods, then pods (with their grace period), then the rest, events last — and, once nothing is
left, the finalizer removed so the API server removes the namespace. While content remains the
namespace reports it in the ``NamespaceContentRemaining`` condition and is looked at again shortly."""

from __future__ import annotations

import logging

from bus import errors
from bus.controller import Controller
from bus.meta import now, set_condition
from bus.resources import RESOURCES, Resource, custom_resources
from bus.workqueue import Result

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
RECHECK_SECONDS = 1.0
# Deleted in this order: controllers before what they make, pods before what pods use, events last.
_FIRST = ("HorizontalPodAutoscaler", "Deployment", "DaemonSet", "CronJob", "Job", "ReplicaSet", "ReplicationController",
          "Pod")
_LAST = ("ServiceAccount", "Secret", "ConfigMap", "Lease", "Event")


def setup(ctx) -> list:
    return [NamespaceController(ctx.client, ctx.informers.informer("namespaces")).controller]


def deletion_order(resources: tuple[Resource, ...] = RESOURCES) -> list[Resource]:
    """Every namespaced resource that is stored (reviews are not), in the order a namespace's content is deleted."""
    def rank(r: Resource) -> tuple[int, int]:
        if r.kind in _FIRST:
            return 0, _FIRST.index(r.kind)
        if r.kind in _LAST:
            return 2, _LAST.index(r.kind)
        return 1, 0

    return sorted((r for r in resources if r.namespaced and r.stored), key=rank)


def terminating(ns: dict) -> bool:
    return bool((ns.get("metadata") or {}).get("deletionTimestamp")) or (ns.get("status") or {}).get("phase") == "Terminating"


def remaining_condition(remaining: dict[str, int]) -> dict:
    """The NamespaceContentRemaining condition for ``{resource: count}`` still present."""
    if remaining:
        msg = "Some resources are remaining: " + ", ".join(f"{k} has {n} resource instances"
                                                          for k, n in sorted(remaining.items()))
        return {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain", "message": msg}
    return {"type": "NamespaceContentRemaining", "status": "False", "reason": "ContentDeleted",
            "message": "All content successfully removed"}


class NamespaceController:
    def __init__(self, client, namespaces, recheck: float = RECHECK_SECONDS) -> None:
        self.client = client
        self.namespaces = namespaces
        self.recheck = recheck
        self.controller = Controller("namespace", self.reconcile, workers=2)
        self.controller.watches(namespaces)

    async def reconcile(self, key: str) -> Result | None:
        ns = self.namespaces.get_by_key(key)
        if ns is None or not terminating(ns) or FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        name = ns["metadata"]["name"]
        remaining = await self.delete_content(name)
        await self._report(ns, remaining)
        if remaining:
            return Result(requeue_after=self.recheck)
        await self._finalize(name)
        log.info("namespace %s: content deleted, finalized", name)
        return None

    async def delete_content(self, namespace: str) -> dict[str, int]:
        """Ask for the deletion of everything in ``namespace``; returns what is still there."""
        remaining: dict[str, int] = {}
        for res in deletion_order(RESOURCES + tuple(custom_resources())):  # custom resources too
            items = await self._list(res, namespace)
            for obj in items:
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue  # already going (a pod shutting down, an object with finalizers)
                try:
                    await self.client.delete(res, meta["name"], namespace, propagation_policy="Background",
                                             preconditions={"uid": meta.get("uid")})
                except (errors.NotFound, errors.Conflict):
                    pass
            items = await self._list(res, namespace)
            if items:
                remaining[res.qualified] = len(items)
        return remaining

    async def _list(self, res: Resource, namespace: str) -> list[dict]:
        items, _ = await self.client.list(res, namespace)
        return items

    async def _report(self, ns: dict, remaining: dict[str, int]) -> None:
        status = dict(ns.get("status") or {})
        cond = {**remaining_condition(remaining), "lastTransitionTime": now()}
        old = {c.get("type"): c for c in status.get("conditions") or []}.get(cond["type"])
        if old and all(old.get(k) == cond[k] for k in ("status", "reason", "message")):
            return
        status["conditions"] = set_condition(status.get("conditions") or [], cond)
        try:
            await self.client.update_status({**ns, "status": status})
        except (errors.NotFound, errors.Conflict):
            pass  # gone, or changed: the next pass reports again

    async def _finalize(self, name: str) -> None:
        for _ in range(5):
            try:
                ns = await self.client.get("namespaces", name)
            except errors.NotFound:
                return
            fins = (ns.get("spec") or {}).get("finalizers") or []
            if FINALIZER not in fins:
                return
            ns.setdefault("spec", {})["finalizers"] = [f for f in fins if f != FINALIZER]
            try:
                await self.client.update(ns)
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                continue
        raise errors.conflict("namespaces", name, why="could not remove the kubernetes finalizer")
