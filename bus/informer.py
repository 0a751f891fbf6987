"""Informers: a list+watch cache of one resource with secondary indexes and event handlers
(client-go's SharedIndexInformer, asyncio flavoured).

- ``start()`` lists, fills the cache, opens a watch from the list's revision, then sets
  ``has_synced`` (so once synced, no change after the list can be missed).
- When the watch raises Gone (410) or ends unexpectedly, the informer relists and delivers the
  difference as add/update/delete; objects that vanished meanwhile reach ``on_delete`` with their
  last known state (client-go's reflector does the same). After a NATS reconnect the store's
  ``restart_watches()`` resumes the watch from the last revision, so nothing is missed.
- Events are applied in revision order; an event whose revision is not newer than what the cache
  already holds is ignored.
- Handlers are plain sync callables; an exception in one is logged and never stops the informer.
  Handlers should only turn events into work-queue keys.

Cache objects are shared plain dicts: handlers and reconcilers must NOT mutate them. Take a copy
(:meth:`Informer.get_copy` or :func:`deep_copy`) before changing anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from bus import errors, subjects
from bus.client import ApiClient, FilteredWatch, selector_matcher, resource_of
from bus.meta import deep_copy, key_of, namespace_of
from bus.resources import Resource
from bus.store import DELETED

log = logging.getLogger(__name__)

IndexFunc = Callable[[dict], list[str]]


# ---- helpers ---------------------------------------------------------------------------------


def revision_of(obj: dict) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def by_namespace(obj: dict) -> list[str]:
    ns = namespace_of(obj)
    return [ns] if ns else []


def by_owner(obj: dict) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [r["uid"] for r in refs if isinstance(r, dict) and r.get("uid")]


def by_node(obj: dict) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


BY_NAMESPACE, BY_OWNER, BY_NODE = "by_namespace", "by_owner", "by_node"


@dataclass(slots=True)
class _Handler:
    on_add: Callable[[dict], Any] | None
    on_update: Callable[[dict, dict], Any] | None
    on_delete: Callable[[dict], Any] | None


class _StoreSource:
    """Gives a bare :class:`bus.store.Store` the ApiClient list/watch signature (selectors are
    applied here, with the same semantics as the client's)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def list(self, res: Resource, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None) -> tuple[list[dict], int]:
        items, rv = await self.store.list(res, namespace)
        if label_selector or field_selector:
            match = selector_matcher(res, label_selector, field_selector)
            items = [o for o in items if match(o)]
        return items, rv

    async def watch(self, res: Resource, namespace: str | None = None, since: int | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    initial: Iterable[dict] = ()) -> Any:
        w = await self.store.watch(res, namespace, since)
        if label_selector or field_selector:
            return FilteredWatch(w, selector_matcher(res, label_selector, field_selector), True, initial)
        return w


# ---- the informer ----------------------------------------------------------------------------


class Informer:
    def __init__(self, client_or_store: Any, resource: Resource | str, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 resync_period: float | None = None, relist_backoff: tuple[float, float] = (0.05, 5.0)) -> None:
        self.resource = resource_of(resource)
        self.namespace = namespace if self.resource.namespaced else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.relist_backoff = relist_backoff
        src = client_or_store
        self._source = src if isinstance(src, ApiClient) else _StoreSource(src)
        self._cache: dict[str, dict] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._handlers: list[_Handler] = []
        self.has_synced = asyncio.Event()
        self.last_revision = 0
        self._watch: Any = None
        self._task: asyncio.Task | None = None
        self._resync_task: asyncio.Task | None = None
        self._stopping = False
        for name, fn in ((BY_NAMESPACE, by_namespace), (BY_OWNER, by_owner), (BY_NODE, by_node)):
            self.add_index(name, fn)

    def __repr__(self) -> str:
        return f"<Informer {self.resource.plural} ns={self.namespace} objects={len(self._cache)}>"

    # ---- configuration -------------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """A secondary index: ``fn(obj)`` returns the values ``obj`` is filed under."""
        self._indexers[name] = fn
        self._indices[name] = {}
        for key, obj in self._cache.items():
            self._index_one(name, fn, key, obj, add=True)

    def add_handler(self, on_add: Callable[[dict], Any] | None = None,
                    on_update: Callable[[dict, dict], Any] | None = None,
                    on_delete: Callable[[dict], Any] | None = None) -> None:
        """Register callbacks (called in registration order). A handler added after the cache
        synced first gets ``on_add`` for every cached object."""
        h = _Handler(on_add, on_update, on_delete)
        self._handlers.append(h)
        if self.has_synced.is_set() and on_add is not None:
            for obj in list(self._cache.values()):
                self._call(on_add, obj)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Start listing and watching in the background; with ``wait`` return once synced.
        Returns whether the cache has synced."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}")
            self._task.add_done_callback(_log_crash)
            if self.resync_period:
                self._resync_task = asyncio.create_task(self._resync_loop())
                self._resync_task.add_done_callback(_log_crash)
        if wait:
            return await self.wait_synced(timeout)
        return self.has_synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self.has_synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @property
    def synced(self) -> bool:
        return self.has_synced.is_set()

    async def stop(self) -> None:
        self._stopping = True
        await self._drop_watch()
        for t in (self._task, self._resync_task):
            if t is not None and not t.done():
                t.cancel()
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
        self._task = self._resync_task = None

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> dict | None:
        """The cached object (shared: do not mutate) or None."""
        return self._cache.get(subjects.object_key(namespace, name))

    def get_by_key(self, key: str) -> dict | None:
        return self._cache.get(key)

    def get_copy(self, namespace: str | None, name: str) -> dict | None:
        """A private copy of the cached object, safe to change and write back."""
        obj = self.get(namespace, name)
        return deep_copy(obj) if obj is not None else None

    def list(self, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return list(self._cache.values())
        return self.by_index(BY_NAMESPACE, namespace)

    def by_index(self, name: str, value: str, ordered: bool = True) -> list[dict]:
        """The objects filed under ``value`` (by key, unless not ``ordered``: cheaper for many)."""
        if name not in self._indices:
            raise KeyError(f"no index named {name!r}")
        cache, keys = self._cache, self._indices[name].get(value, ())
        return [cache[k] for k in (sorted(keys) if ordered else keys) if k in cache]

    def index_keys(self, name: str, value: str) -> set[str]:
        if name not in self._indices:
            raise KeyError(f"no index named {name!r}")
        return set(self._indices[name].get(value, ()))

    def keys(self) -> list[str]:
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    # ---- the reflector loop --------------------------------------------------------------------

    async def _run(self) -> None:
        low, high = self.relist_backoff
        delay = low
        lost: float | None = None  # when the watch was lost (None: the first list)
        while not self._stopping:
            try:
                t0 = time.monotonic()
                items, rv = await self._source.list(self.resource, self.namespace, label_selector=self.label_selector,
                                                    field_selector=self.field_selector)
                self._replace(items, rv)
                self._watch = await self._source.watch(
                    self.resource, self.namespace, since=self.last_revision, label_selector=self.label_selector,
                    field_selector=self.field_selector, initial=list(self._cache.values()))
                self.has_synced.set()  # listed and watching: nothing after the list can be missed
                if lost is not None:
                    now = time.monotonic()
                    log.info("informer %s relisted %d objects in %.2fs (%.2fs after the watch was lost)",
                             self.resource.plural, len(items), now - t0, now - lost)
                    lost = None
                async for ev in self._watch:
                    self._apply(ev)
                    delay = low
                if self._stopping:
                    return
                log.info("informer %s: watch ended, relisting", self.resource.plural)
            except asyncio.CancelledError:
                raise
            except errors.Gone as e:
                log.info("informer %s: %s; relisting", self.resource.plural, e)
            except Exception as e:
                log.warning("informer %s: list/watch failed: %s", self.resource.plural, e)
            finally:
                await self._drop_watch()
            if self._stopping:
                return
            if lost is None and self.has_synced.is_set():
                lost = time.monotonic()
            await asyncio.sleep(delay)
            delay = min(high, max(delay * 2, low))

    async def _drop_watch(self) -> None:
        w, self._watch = self._watch, None
        if w is not None:
            try:
                await w.stop()
            except Exception:
                pass

    def _replace(self, items: list[dict], rv: int) -> None:
        """Make the cache equal a fresh list, delivering the differences."""
        fresh = {key_of(o): o for o in items}
        for key in [k for k in self._cache if k not in fresh]:
            old = self._cache.pop(key)
            self._unindex(key, old)
            self._dispatch("on_delete", old)
        for key, obj in fresh.items():
            old = self._cache.get(key)
            if old is not None and revision_of(old) == revision_of(obj):
                continue
            self._store(key, obj, old)
        self.last_revision = max(self.last_revision, rv)

    def _apply(self, ev: Any) -> None:
        rev = int(ev.revision)
        if rev <= self.last_revision:
            log.debug("informer %s: stale event rev %d <= %d ignored", self.resource.plural, rev, self.last_revision)
            return
        obj = ev.object
        key = key_of(obj)
        old = self._cache.get(key)
        if old is not None and revision_of(old) >= rev:
            return
        self.last_revision = rev
        if ev.type == DELETED:
            if old is None:
                return
            del self._cache[key]
            self._unindex(key, old)
            final = obj if len(obj) > 1 else {**old, "metadata": {**old.get("metadata", {}), **obj["metadata"]}}
            self._dispatch("on_delete", final)
        else:
            self._store(key, obj, old)

    def _store(self, key: str, obj: dict, old: dict | None) -> None:
        self._cache[key] = obj
        for name, fn in self._indexers.items():
            if old is None:
                self._index_one(name, fn, key, obj, add=True)
            else:
                self._reindex(name, fn, key, old, obj)
        if old is None:
            self._dispatch("on_add", obj)
        else:
            self._dispatch("on_update", old, obj)

    async def _resync_loop(self) -> None:
        await self.has_synced.wait()
        while not self._stopping:
            await asyncio.sleep(self.resync_period)  # type: ignore[arg-type]
            self.resync()

    def resync(self) -> None:
        """Deliver ``on_update(obj, obj)`` for every cached object (periodic resync)."""
        for obj in list(self._cache.values()):
            self._dispatch("on_update", obj, obj)

    # ---- internals -----------------------------------------------------------------------------

    def _index_one(self, name: str, fn: IndexFunc, key: str, obj: dict, add: bool) -> None:
        try:
            values = fn(obj) or []
        except Exception:
            log.exception("informer %s: index %s failed on %s", self.resource.plural, name, key)
            return
        idx = self._indices[name]
        for v in values:
            if add:
                idx.setdefault(v, set()).add(key)
            else:
                keys = idx.get(v)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[v]

    def _reindex(self, name: str, fn: IndexFunc, key: str, old: dict, obj: dict) -> None:
        """File an updated object under its new values (most updates change none)."""
        try:
            before, after = fn(old) or [], fn(obj) or []
        except Exception:
            log.exception("informer %s: index %s failed on %s", self.resource.plural, name, key)
            return
        if before == after:
            return
        idx = self._indices[name]
        for v in before:
            if v not in after:
                keys = idx.get(v)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[v]
        for v in after:
            idx.setdefault(v, set()).add(key)

    def _unindex(self, key: str, obj: dict) -> None:
        for name, fn in self._indexers.items():
            self._index_one(name, fn, key, obj, add=False)

    def _dispatch(self, which: str, *args: dict) -> None:
        for h in self._handlers:
            fn = getattr(h, which)
            if fn is not None:
                self._call(fn, *args)

    def _call(self, fn: Callable, *args: dict) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer %s: handler %s failed", self.resource.plural, getattr(fn, "__name__", fn))


def _log_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())


# ---- the factory -----------------------------------------------------------------------------


class SharedInformerFactory:
    """One informer per (resource, namespace, selectors), started and stopped together."""

    def __init__(self, client: Any, resync_period: float | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[tuple, Informer] = {}

    def informer(self, resource: Resource | str, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> Informer:
        res = resource_of(resource)
        ns = namespace if res.namespaced else None
        k = (res.plural, ns, label_selector or None, field_selector or None)
        inf = self._informers.get(k)
        if inf is None:
            inf = self._informers[k] = Informer(self.client, res, ns, label_selector, field_selector,
                                                resync_period=self.resync_period)
        return inf

    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    async def start(self) -> None:
        """Start every informer not yet started (call again after asking for new ones)."""
        for inf in self._informers.values():
            await inf.start(wait=False)

    async def wait_for_cache_sync(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(*(inf.wait_synced(timeout) for inf in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))
