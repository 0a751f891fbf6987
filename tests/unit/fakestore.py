"""In-memory stand-ins for the KV store and its watches (unit tests of informers and of what uses them):
every write bumps the revision and is sent to open watches unless ``emit=False`` (a change a watch missed)."""

from __future__ import annotations

import asyncio
import copy

from bus import subjects
from bus.store import ADDED, DELETED, MODIFIED, WatchEvent


class FakeWatch:
    def __init__(self, kind, since):
        self.kind = kind
        self.since = since
        self.q = asyncio.Queue()
        self.stopped = False

    @property
    def last_revision(self):
        return self.since

    def push(self, item):
        self.q.put_nowait(item)

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self.q.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    async def stop(self):
        self.stopped = True
        self.q.put_nowait(None)


class FakeStore:
    """Objects keyed like the KV store; every write bumps the revision and is sent to open
    watches unless ``emit=False`` (a change the watch missed)."""

    def __init__(self):
        self.objects = {}
        self.rev = 0
        self.watches = []
        self.watch_since = []
        self.list_calls = 0

    def _key(self, obj):
        m = obj["metadata"]
        return subjects.object_key(m.get("namespace"), m["name"])

    def _emit(self, etype, obj, emit):
        if emit:
            for w in self.watches:
                if not w.stopped and w.kind == obj["kind"]:
                    w.push(WatchEvent(etype, copy.deepcopy(obj), self.rev, self._key(obj)))

    def put(self, obj, emit=True):
        self.rev += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rev)
        key = self._key(obj)
        etype = MODIFIED if key in self.objects else ADDED
        self.objects[key] = obj
        self._emit(etype, obj, emit)
        return obj

    def remove(self, ns, name, emit=True):
        self.rev += 1
        final = self.objects.pop(subjects.object_key(ns, name))
        final = {**final, "metadata": {**final["metadata"], "resourceVersion": str(self.rev)}}
        self._emit(DELETED, final, emit)
        return final

    def break_watches(self, exc=None):
        for w in self.watches:
            w.push(exc if exc is not None else None)
        self.watches = []

    async def list(self, res, namespace=None):
        self.list_calls += 1
        items = [copy.deepcopy(o) for o in self.objects.values()
                 if o["kind"] == res.kind and namespace in (None, o["metadata"].get("namespace"))]
        return items, self.rev

    async def watch(self, res, namespace=None, since=None):
        self.watch_since.append(since)
        w = FakeWatch(res.kind, since)
        self.watches.append(w)
        return w
