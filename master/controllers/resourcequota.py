"""The resourcequota controller: keeps each ResourceQuota's ``status`` true to the objects of its namespace, as
Kubernetes' does — ``status.hard`` from ``spec.hard``, ``status.used`` recomputed from the objects themselves
(``bus.quota``'s evaluators; terminal pods use nothing but ``count/pods``), so deleted and finished objects give
their share back and any drift is corrected. A quota is synced when it changes, when an object it counts is
added, changed in what it uses, or deleted, and every ``resourcequota-sync-period`` seconds.

Admission charges a quota before the object it admits is written (``master/apiserver/quota.py``), so for a
moment a quota's ``used`` counts an object a listing does not show yet. Raising ``used`` is always safe; lowering
it is done only once the same lower figure is computed again ``RELEASE_SETTLE`` seconds later against the same
quota revision (no admission charged in between), so a write still in flight is never taken for a release and
concurrent creates cannot overshoot ``hard``.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any, Callable

from bus import errors
from bus.controller import Controller
from bus.informer import Informer
from bus.meta import deep_copy, key_of
from bus.quota import (
    canonical, format_list, mask, matching_resources, parse_list, quota_matches, tracked_resources, usage,
)
from bus.resources import Resource, resolve
from bus.workqueue import Result

log = logging.getLogger(__name__)

RELEASE_SETTLE = 1.0  # seconds a lower usage must hold before it is written
# Kinds whose changes can move a quota's usage (others are counted at each sync and on quota changes)
WATCHED = ("pods", "services", "persistentvolumeclaims", "configmaps", "secrets", "replicationcontrollers",
           "resourcequotas")


def setup(ctx) -> list:
    rq = ResourceQuotaController(ctx.client, ctx.informers.informer, period=ctx.settings.resourcequota_sync_period)
    return [rq.controller]


def compute_used(quota: dict, objects: dict[Resource, list[dict]]) -> dict[str, Decimal]:
    """What the objects (by resource) use of the quota's ``spec.hard``, counting only those in its scopes. A name
    none of them counts (``count/`` of a custom resource this process does not know) keeps its figure."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    known = parse_list((quota.get("status") or {}).get("used"))
    counted = {n for res in objects for n in matching_resources(res, hard)}
    total: dict[str, Decimal] = {k: Decimal(0) if k in counted else known.get(k, Decimal(0)) for k in hard}
    for res, items in objects.items():
        for obj in items:
            if quota_matches(quota, res, obj, hard_of="spec"):
                for k, v in mask(usage(res, obj), hard).items():
                    total[k] += v
    return total


def status_of(quota: dict, used: dict[str, Decimal]) -> dict:
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    return {"hard": hard, "used": format_list(used, hard)}


def _canonical(status: dict | None) -> dict:
    status = status or {}
    return {f: {k: canonical(v) for k, v in (status.get(f) or {}).items()} for f in ("hard", "used")}


def lowers(old_status: dict | None, used: dict[str, Decimal]) -> bool:
    """Whether writing ``used`` would lower a figure the quota now shows."""
    old = parse_list((old_status or {}).get("used"))
    return any(k in old and v < old[k] for k, v in used.items())


class ResourceQuotaController:
    def __init__(self, client: Any, informer: Callable[[str], Informer], period: float = 30.0,
                 settle: float = RELEASE_SETTLE, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.period, self.settle, self.clock = float(period), float(settle), clock
        self.quotas = informer("resourcequotas")
        self.pending: dict[str, tuple[str, dict, float]] = {}  # quota key -> (revision, used, when) seen lower
        self.controller = Controller("resourcequota", self.reconcile, workers=2)
        self.controller.watches(self.quotas)
        for plural in WATCHED:
            if plural != "resourcequotas":
                self._watch_usage(informer(plural))

    def _watch_usage(self, inf: Informer) -> None:
        res = inf.resource

        def touch(obj: dict) -> None:
            ns = (obj.get("metadata") or {}).get("namespace")
            for q in self.quotas.list(ns) if ns else ():
                self.controller.queue.add(key_of(q))

        def changed(old: dict, new: dict) -> None:
            if usage(res, old) != usage(res, new):
                touch(new)

        inf.add_handler(on_add=touch, on_update=changed, on_delete=touch)
        self.controller.informers.append(inf)

    async def _objects(self, quota: dict) -> dict[Resource, list[dict]]:
        ns = quota["metadata"]["namespace"]
        out = {}
        for res in tracked_resources((quota.get("spec") or {}).get("hard") or {}, resolve):
            if res.namespaced:
                out[res], _ = await self.client.list(res, ns)
        return out

    async def reconcile(self, key: str) -> Result:
        quota = self.quotas.get_by_key(key)
        if quota is None:
            self.pending.pop(key, None)
            return Result()
        used = compute_used(quota, await self._objects(quota))
        want = status_of(quota, used)
        if _canonical(quota.get("status")) == _canonical(want):
            self.pending.pop(key, None)
            return Result(requeue_after=self.period)
        rv = quota["metadata"].get("resourceVersion") or ""
        if lowers(quota.get("status"), used):
            seen = self.pending.get(key)
            if seen is None or seen[:2] != (rv, want["used"]):  # confirm it later, at the same quota revision
                self.pending[key] = (rv, want["used"], self.clock())
                return Result(requeue_after=self.settle)
            if self.clock() - seen[2] < self.settle:
                return Result(requeue_after=self.settle - (self.clock() - seen[2]))
        self.pending.pop(key, None)
        body = deep_copy(quota)
        body["status"] = want
        try:
            await self.client.update_status(body)
        except errors.Conflict:  # charged (or changed) meanwhile: compute again
            return Result(requeue_after=0.05)
        except errors.NotFound:
            return Result()
        return Result(requeue_after=self.period)
