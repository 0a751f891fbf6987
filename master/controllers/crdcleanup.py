"""The CustomResourceDefinition finalizer (kube-apiserver's apiextensions ``finalizer`` controller): a definition
being deleted holds the finalizer ``customresourcecleanup.apiextensions.k8s.io``; this controller marks it
``Terminating`` (new objects are refused from then on), deletes every object of the resource it defines (objects
with finalizers of their own go once those are removed), and removes the finalizer when none is left, so the API
server removes the definition, deletes its bucket and stops serving it."""

from __future__ import annotations

import logging

from bus import crd as crds
from bus import errors
from bus.controller import Controller
from bus.informer import Informer
from bus.meta import deep_copy, now, set_condition
from bus.workqueue import Result

log = logging.getLogger(__name__)

RECHECK_SECONDS = 1.0


def setup(ctx) -> list:
    return [CrdCleanup(ctx.client, ctx.informers.informer(crds.CRDS)).controller]


def terminating_condition(remaining: int | None) -> dict:
    """The ``Terminating`` condition while objects remain (``remaining`` None: not counted yet)."""
    if remaining:
        return {"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                "message": f"CustomResource deletion is in progress ({remaining} remaining)"}
    return {"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress"}


class CrdCleanup:
    def __init__(self, client, definitions: Informer, recheck: float = RECHECK_SECONDS) -> None:
        self.client, self.definitions, self.recheck = client, definitions, recheck
        self.controller = Controller("crd-cleanup", self.reconcile)
        self.controller.watches(definitions)

    async def reconcile(self, key: str) -> Result | None:
        crd = self.definitions.get_by_key(key)
        meta = (crd or {}).get("metadata") or {}
        if crd is None or not meta.get("deletionTimestamp") or crds.CLEANUP_FINALIZER not in (meta.get("finalizers")
                                                                                               or []):
            return None
        res = crds.resource_from_crd(crd)
        log.info("crd-cleanup: %s is being deleted: deleting its objects", meta.get("name"))
        remaining = await self._delete_objects(res) if res is not None else 0
        log.info("crd-cleanup: %s: %d objects remain", meta.get("name"), remaining)
        await self._mark(crd, remaining)
        if remaining:
            return Result(requeue_after=self.recheck)
        await self._finalize(crd)
        log.info("crd-cleanup: %s has no objects left; finalized", meta.get("name"))
        return None

    async def _delete_objects(self, res) -> int:
        """Ask for the deletion of every object of ``res``; how many remain."""
        items, _ = await self.client.list(res)
        for obj in items:
            m = obj["metadata"]
            if m.get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(res, m["name"], m.get("namespace"), preconditions={"uid": m.get("uid")})
            except (errors.NotFound, errors.Conflict):
                pass
        items, _ = await self.client.list(res)
        return len(items)

    async def _mark(self, crd: dict, remaining: int) -> None:
        status = deep_copy(crd.get("status") or {})
        cond = terminating_condition(remaining)
        old = {c.get("type"): c for c in status.get("conditions") or []}.get("Terminating")
        if old and old.get("message") == cond["message"]:
            return
        status["conditions"] = set_condition(status.get("conditions") or [], {**cond, "lastTransitionTime": now()})
        try:
            await self.client.update_status({**crd, "status": status})
        except (errors.NotFound, errors.Conflict):
            pass  # changed meanwhile: the next pass marks it

    async def _finalize(self, crd: dict) -> None:
        meta = crd["metadata"]
        fins = [f for f in meta.get("finalizers") or [] if f != crds.CLEANUP_FINALIZER]
        try:
            await self.client.patch(crds.CRDS, meta["name"], {"metadata": {
                "resourceVersion": meta.get("resourceVersion"), "finalizers": fins}})
        except (errors.NotFound, errors.Conflict):
            pass  # gone, or changed: reconciled again from the new version
