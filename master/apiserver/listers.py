"""What admission plugins read policy objects from (LimitRanges, ResourceQuotas, PriorityClasses): an informer
cache on the API server's own connection, with Kubernetes' live lookup behind it — a namespace whose cache holds
none is listed from the store (remembered ``live_ttl`` seconds), and a name the cache lacks is read from the store,
so an object created a moment ago (through another API server, or before this one's watch delivered it) counts."""

from __future__ import annotations

import time

from bus import errors
from bus.informer import Informer
from bus.resources import by_plural
from bus.store import NatsStore

SYNC_TIMEOUT = 30.0
LIVE_TTL = 30.0  # Kubernetes' liveTTL of the LimitRanger and quota admission


class CachedLister:
    def __init__(self, store: NatsStore, plural: str, live_ttl: float = LIVE_TTL) -> None:
        self.store = store
        self.res = by_plural(plural)
        self.informer = Informer(store, self.res)
        self.live_ttl = live_ttl
        self._live: dict[str, tuple[float, list[dict]]] = {}

    async def start(self) -> None:
        await self.informer.start(wait=False)
        if not await self.informer.wait_synced(SYNC_TIMEOUT):
            raise RuntimeError(f"the admission cache of {self.res.plural} did not sync")

    async def stop(self) -> None:
        await self.informer.stop()

    async def in_namespace(self, namespace: str) -> list[dict]:
        """The namespace's objects: cached, else (none cached) a recent live list."""
        items = self.informer.list(namespace)
        if items:
            self._live.pop(namespace, None)
            return items
        hit = self._live.get(namespace)
        now = time.monotonic()
        if hit is None or hit[0] < now:
            live, _ = await self.store.list(self.res, namespace)
            if len(self._live) > 10000:
                self._live.clear()
            hit = self._live[namespace] = (now + self.live_ttl, live)
        return hit[1]

    async def fresh(self, namespace: str | None, name: str) -> dict | None:
        """The stored object itself (for a compare-and-set), None when it is gone."""
        try:
            return await self.store.get(self.res, namespace, name)
        except errors.NotFound:
            return None

    async def get(self, name: str, namespace: str | None = None) -> dict | None:
        """Cached, else read from the store; None when it does not exist."""
        obj = self.informer.get(namespace, name)
        return obj if obj is not None else await self.fresh(namespace, name)

    def cached(self) -> list[dict]:
        return self.informer.list()
