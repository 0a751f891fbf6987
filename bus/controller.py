"""A small controller runner: informer events become work-queue keys, workers reconcile keys.

    ctl = Controller("replicaset", reconcile, workers=2)
    ctl.watches(rs_informer)                 # key of the object itself
    ctl.owns(pod_informer, "ReplicaSet")     # key of the controlling owner
    await ctl.run()                          # waits for the caches, then works until shutdown()

Keys are KV object keys (``bus.subjects.object_key``: ``<namespace>.<name>``), so a reconcile
reads current state with ``informer.get_by_key(key)`` (level-triggered: never the event payload).
"""

from __future__ import annotations

import asyncio
from typing import Callable

from bus import subjects
from bus.informer import Informer, key_of
from bus.workqueue import Reconcile, WorkQueue, run_workers


def controller_owner(obj: dict, kind: str) -> str | None:
    """Key of the owner of ``kind`` marked ``controller: true`` (same namespace), or None."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") == kind and ref.get("name"):
            return subjects.object_key(meta.get("namespace"), ref["name"])
    return None


class Controller:
    def __init__(self, name: str, reconcile: Reconcile, workers: int = 1, queue: WorkQueue | None = None) -> None:
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.queue = queue if queue is not None else WorkQueue(name)
        self.informers: list[Informer] = []

    def watches(self, informer: Informer, key_fn: Callable[[dict], str | None] = key_of) -> None:
        """Enqueue ``key_fn(obj)`` for every add, update and delete of ``informer``'s objects."""
        def enqueue(obj: dict) -> None:
            key = key_fn(obj)
            if key:
                self.queue.add(key)

        def on_update(old: dict, new: dict) -> None:
            k_old, k_new = key_fn(old), key_fn(new)
            for k in {k_old, k_new} - {None}:
                self.queue.add(k)

        informer.add_handler(on_add=enqueue, on_update=on_update, on_delete=enqueue)
        if informer not in self.informers:
            self.informers.append(informer)

    def owns(self, informer: Informer, owner_kind: str) -> None:
        """Enqueue the controlling owner (of ``owner_kind``) of ``informer``'s objects."""
        self.watches(informer, lambda o: controller_owner(o, owner_kind))

    async def run(self, sync_timeout: float | None = None) -> None:
        """Wait for every watched informer to sync, then run workers until :meth:`shutdown`."""
        ok = await asyncio.gather(*(inf.wait_synced(sync_timeout) for inf in self.informers))
        if not all(ok):
            raise TimeoutError(f"{self.name}: caches did not sync")
        await run_workers(self.queue, self.reconcile, self.workers)

    def shutdown(self) -> None:
        self.queue.shutdown()

    def __repr__(self) -> str:
        return f"<Controller {self.name} queued={len(self.queue)}>"

