"""Garbage collector: ownerReferences cascade on delete, as Kubernetes' GC does.

The uid graph is the informers' ``by_owner`` indexes (owner uid → dependents) over every kind
that can own or depend; an owner is looked up by kind/name and checked by uid. Work items are
``(plural, key)`` of objects that have owners or are being deleted with a GC finalizer:

- a dependent whose owners are all gone (checked against the API, by uid, before acting) is
  deleted in the background; one whose owners are being deleted in the foreground is deleted
  (foreground itself when it has dependents of its own, so chains wait bottom-up); one that still
  has a live owner only loses its references to the gone or going owners;
- an owner with the ``orphan`` finalizer has its reference removed from every dependent, then the
  finalizer; one with ``foregroundDeletion`` has its dependents deleted and keeps the finalizer
  until no dependent with ``blockOwnerDeletion`` is left, then the API server removes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Callable

from bus import errors
from bus.controller import Controller
from bus.informer import BY_OWNER, Informer, key_of
from bus.meta import namespace_of, uid_of
from bus.resources import RESOURCES, Resource, by_kind
from master.controllers._ownership import deleting, owner_refs, patch_metadata

log = logging.getLogger(__name__)

ORPHAN, FOREGROUND = "orphan", "foregroundDeletion"
SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"  # an owner: exists / gone / deleting its dependents
UNTRACKED_KINDS = ("Event",)  # high churn, never owners
_ABSENT_CACHE = 20000


def setup(ctx) -> list:
    informers = {r.bus_name: ctx.informers.informer(r) for r in RESOURCES
                 if r.stored and r.kind not in UNTRACKED_KINDS}
    gc = GarbageCollector(ctx.client, informers, ctx.settings.gc_workers)
    ctx.crds.listeners.append(gc.track_custom)  # custom resources: owners and dependents too
    return [gc.controller]


def _owner_kind(ref: dict) -> Resource | None:
    """The resource an owner reference names: by kind and apiVersion (two groups may share a kind), else by kind."""
    kind = ref.get("kind") or ""
    return by_kind(kind, ref.get("apiVersion") or None) or by_kind(kind)


# ---- pure decisions --------------------------------------------------------------------------


def finalizers(obj: dict) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def blocks(dependent: dict, owner_uid: str) -> bool:
    """Whether ``dependent`` holds back the foreground deletion of the owner ``owner_uid``."""
    return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in owner_refs(dependent))


def decide(states: dict[str, str], has_dependents: bool, is_pod: bool = False) -> tuple[str, Any]:
    """What to do with a dependent, given its owners' states (uid → SOLID/DANGLING/WAITING):
    ``("keep", None)``, ``("unlink", [owner uids to drop])`` or ``("delete", propagationPolicy)``."""
    gone = [u for u, s in states.items() if s != SOLID]
    if not gone:
        return "keep", None
    if len(gone) < len(states):  # another owner is alive: only let go of the gone or going ones
        return "unlink", gone
    if not is_pod and has_dependents and WAITING in states.values():
        return "delete", "Foreground"
    return "delete", "Background"


def owner_action(obj: dict, dependents: list[dict]) -> str | None:
    """What a terminating owner needs: ``orphan`` (unlink dependents, drop the finalizer),
    ``wait`` (blocking dependents remain: delete them), ``finish`` (drop foregroundDeletion)
    or None (nothing for the GC)."""
    if not deleting(obj):
        return None
    fins = finalizers(obj)
    if ORPHAN in fins:
        return ORPHAN
    if FOREGROUND in fins:
        uid = uid_of(obj)
        return "wait" if any(blocks(d, uid) for d in dependents) else "finish"
    return None


# ---- the controller --------------------------------------------------------------------------


class GarbageCollector:
    def __init__(self, client: Any, informers: dict[str, Informer], workers: int = 4) -> None:
        self.client = client
        self.informers = informers
        self.absent: OrderedDict[str, None] = OrderedDict()  # owner uids known to be gone
        self._starts: set[asyncio.Task] = set()
        self.controller = Controller("garbagecollector", self.reconcile, workers)
        for plural, inf in informers.items():
            inf.add_handler(*self._handlers(plural))
            self.controller.informers.append(inf)

    def track_custom(self, crd: dict, res: Resource | None) -> None:
        """A CustomResourceDefinition was written: watch its objects from now on (a definition that is gone takes
        its objects with it; its informer stops when its bucket goes)."""
        if res is None:  # the definition is gone, and its bucket with it: stop watching
            gone = self.informers.pop(str((crd.get("metadata") or {}).get("name") or "").replace(".", "_"), None)
            if gone is not None:
                self._track(asyncio.create_task(gone.stop()))
            return
        if res.bus_name in self.informers:
            return
        inf = Informer(self.client, res)
        inf.add_handler(*self._handlers(res.bus_name))
        self.informers[res.bus_name] = inf
        self._track(asyncio.create_task(inf.start(wait=False), name=f"gc-informer-{res.bus_name}"))

    def _track(self, task: asyncio.Task) -> None:
        self._starts.add(task)
        task.add_done_callback(self._starts.discard)

    # -- graph reads

    def dependents(self, uid: str | None) -> list[tuple[str, dict]]:
        if not uid:
            return []
        return [(p, d) for p, inf in self.informers.items() for d in inf.by_index(BY_OWNER, uid)]

    def _owner_resource(self, dependent: dict, ref: dict) -> tuple[str | None, str | None]:
        """(bus name, namespace) where ``ref``'s owner lives; None for kinds not tracked."""
        res = _owner_kind(ref)
        if res is None or res.bus_name not in self.informers:
            return None, None
        return res.bus_name, namespace_of(dependent) if res.namespaced else None

    def _cached_owner(self, dependent: dict, ref: dict) -> tuple[str | None, dict | None]:
        plural, ns = self._owner_resource(dependent, ref)
        if plural is None:
            return None, None
        owner = self.informers[plural].get(ns, ref.get("name") or "")
        return plural, owner if owner is not None and uid_of(owner) == ref.get("uid") else None

    async def owner_state(self, dependent: dict, ref: dict) -> str:
        uid = ref.get("uid")
        plural, ns = self._owner_resource(dependent, ref)
        if plural is None:
            return SOLID  # a kind we cannot look up is never judged gone
        if uid in self.absent:
            return DANGLING
        owner = self.informers[plural].get(ns, ref.get("name") or "")
        if owner is None or uid_of(owner) != uid:
            owner = None
            owner_res = self.informers[plural].resource
            if not owner_res.namespaced or namespace_of(dependent):
                try:  # the cache may lag behind a new owner: ask the API before calling it gone
                    owner = await self.client.get(owner_res, ref.get("name") or "", ns)
                except errors.NotFound:
                    owner = None
            if owner is None or uid_of(owner) != uid:
                self._remember_absent(uid)
                return DANGLING
        return WAITING if deleting(owner) and FOREGROUND in finalizers(owner) else SOLID

    def _remember_absent(self, uid: str | None) -> None:
        if uid:
            self.absent[uid] = None
            while len(self.absent) > _ABSENT_CACHE:
                self.absent.popitem(last=False)

    # -- events → work items

    def _handlers(self, plural: str) -> tuple[Callable, Callable, Callable]:
        def added(obj: dict) -> None:
            if owner_refs(obj) or owner_action(obj, []):
                self.controller.queue.add((plural, key_of(obj)))
            self._enqueue_terminating_owners(obj)

        def updated(old: dict, new: dict) -> None:
            if old.get("metadata", {}).get("resourceVersion") == new.get("metadata", {}).get("resourceVersion"):
                return
            added(new)
            if owner_refs(old) != owner_refs(new):
                self._enqueue_terminating_owners(old)

        def removed(obj: dict) -> None:
            for p, d in self.dependents(uid_of(obj)):
                self.controller.queue.add((p, key_of(d)))
            self._enqueue_terminating_owners(obj)

        return added, updated, removed

    def _enqueue_terminating_owners(self, obj: dict) -> None:
        """A change of a dependent may unblock an owner that waits for its dependents."""
        for ref in owner_refs(obj):
            plural, owner = self._cached_owner(obj, ref)
            if owner is not None and owner_action(owner, []) is not None:
                self.controller.queue.add((plural, key_of(owner)))

    # -- reconcile

    async def reconcile(self, item: tuple[str, str]) -> None:
        plural, key = item
        obj = self.informers[plural].get_by_key(key)
        if obj is None:
            return
        if deleting(obj):
            await self._process_owner(plural, obj)
            return
        refs = owner_refs(obj)
        if not refs:
            return
        states = {r.get("uid"): await self.owner_state(obj, r) for r in refs}
        action, arg = decide(states, bool(self.dependents(uid_of(obj))), plural == "pods")  # "pods": a bus name
        if action == "unlink":
            await self._drop_refs(plural, obj, set(arg))
        elif action == "delete":
            meta = obj["metadata"]
            log.info("deleting %s %s (%s): its owners are gone or going", plural, key, arg)
            try:
                await self.client.delete(self.informers[plural].resource, meta["name"], meta.get("namespace"),
                                         propagation_policy=arg,
                                         preconditions={"uid": meta.get("uid")})
            except (errors.NotFound, errors.Conflict):
                pass  # already gone, or a new object by that name

    async def _process_owner(self, plural: str, owner: dict) -> None:
        deps = self.dependents(uid_of(owner))
        action = owner_action(owner, [d for _, d in deps])
        if action == ORPHAN:
            for p, d in deps:
                await self._drop_refs(p, d, {uid_of(owner)})
            await self._drop_finalizer(plural, owner, ORPHAN)
        elif action == "finish":
            await self._drop_finalizer(plural, owner, FOREGROUND)
        elif action == "wait":
            for p, d in deps:
                if not deleting(d):
                    self.controller.queue.add((p, key_of(d)))

    # -- writes (compare-and-set on the cached revision; on a conflict re-read and retry)

    async def _patch_meta(self, plural: str, obj: dict, change: Callable[[dict], dict | None]) -> None:
        uid = uid_of(obj)
        for attempt in range(3):
            fields = change(obj)
            if not fields:
                return
            try:
                await patch_metadata(self.client, self.informers[plural].resource, obj, **fields)
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                if attempt == 2:
                    raise
                meta = obj["metadata"]
                try:
                    obj = await self.client.get(self.informers[plural].resource, meta["name"], meta.get("namespace"))
                except errors.NotFound:
                    return
                if uid_of(obj) != uid:
                    return

    async def _drop_refs(self, plural: str, obj: dict, uids: set) -> None:
        def change(o: dict) -> dict | None:
            refs = owner_refs(o)
            kept = [r for r in refs if r.get("uid") not in uids]
            return {"ownerReferences": kept} if len(kept) != len(refs) else None

        await self._patch_meta(plural, obj, change)

    async def _drop_finalizer(self, plural: str, obj: dict, name: str) -> None:
        def change(o: dict) -> dict | None:
            fins = finalizers(o)
            return {"finalizers": [f for f in fins if f != name]} if name in fins else None

        await self._patch_meta(plural, obj, change)
