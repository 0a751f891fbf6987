"""Admission: the namespace lifecycle (objects only in namespaces that exist and are not
terminating), answered from a watched cache with a store read as fallback."""

from __future__ import annotations

import asyncio
import logging

from bus import errors
from bus.resources import by_plural
from bus.store import DELETED, NatsStore

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceLifecycle:
    def __init__(self, store: NatsStore) -> None:
        self.store = store
        self.res = by_plural("namespaces")
        self.phase: dict[str, str] = {}
        self._task: asyncio.Task | None = None
        self._watch = None

    async def start(self) -> None:
        items, rv = await self.store.list(self.res)
        self.phase = {o["metadata"]["name"]: (o.get("status") or {}).get("phase", "Active") for o in items}
        self._watch = await self.store.watch(self.res, None, rv)
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                async for ev in self._watch:
                    name = ev.object["metadata"]["name"]
                    if ev.type == DELETED:
                        self.phase.pop(name, None)
                    else:
                        self.phase[name] = (ev.object.get("status") or {}).get("phase", "Active")
                return
            except errors.Gone:
                await self._watch.stop()
                await self.start()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following; admission falls back to reads meanwhile
                log.exception("namespace watch failed")
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._watch:
            await self._watch.stop()

    async def admit_create(self, namespace: str | None) -> None:
        if not namespace:
            raise errors.bad_request("a namespace is required")
        phase = self.phase.get(namespace)
        if phase is None:  # the cache may lag a namespace just made through another apiserver
            try:
                ns = await self.store.get(self.res, None, namespace)
            except errors.NotFound:
                raise errors.not_found("namespaces", namespace) from None
            phase = (ns.get("status") or {}).get("phase", "Active")
        if phase == "Terminating":
            raise errors.forbidden("namespaces", namespace,
                                   f"unable to create new content in namespace {namespace} because it is being terminated")
