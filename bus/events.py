"""Recording Kubernetes Events (core/v1) about objects, as client-go's ``tools/record`` does: every event
goes through an :class:`EventCorrelator` (``events_cache.go``) before anything is written:

- aggregation: events that differ only in their message (same source, object, type, reason, reporting
  controller and instance), 10 distinct messages within 10 minutes, become one event whose message is
  ``(combined from similar events): <latest message>``;
- dedup: a repeat of an event already written (same source, object and field path, type, reason and
  message) is a PATCH of that event's ``count``, ``lastTimestamp`` and ``message``, not a new Event;
- spam filter: a token bucket per source + object + type (burst 25, refilled one token every 5 minutes);
  an event without a token is dropped, written neither as a create nor as a patch.

So a pod that fails to schedule over and over costs one Event and at most 24 patches in a burst, then
one patch per 5 minutes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, Callable

from bus import errors
from bus.meta import format_time

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"

CACHE_SIZE = 4096  # maxLruCacheEntries
AGGREGATE_MAX_EVENTS = 10  # defaultAggregateMaxEvents
AGGREGATE_INTERVAL = 600.0  # defaultAggregateIntervalInSeconds
SPAM_BURST = 25  # defaultSpamBurst
SPAM_QPS = 1.0 / 300.0  # defaultSpamQPS
COMBINED_PREFIX = "(combined from similar events): "
MAX_MESSAGE = 1024


def involved_object(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "name": meta.get("name"),
           "namespace": meta.get("namespace"), "uid": meta.get("uid"),
           "resourceVersion": meta.get("resourceVersion")}
    return {k: v for k, v in ref.items() if v}


class _Lru(OrderedDict):
    """groupcache's lru.Cache: a get refreshes an entry; adding beyond ``size`` evicts the oldest."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def add(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


def _object_key(ev: dict) -> tuple:
    src, io = ev.get("source") or {}, ev.get("involvedObject") or {}
    return (src.get("component", ""), src.get("host", ""), io.get("kind", ""), io.get("namespace", ""),
            io.get("name", ""), io.get("uid", ""), io.get("apiVersion", ""))


def event_key(ev: dict) -> tuple:
    """``getEventKey``: source, involved object (with its field path), type, reason, message."""
    return (*_object_key(ev), (ev.get("involvedObject") or {}).get("fieldPath", ""), ev.get("type", ""),
            ev.get("reason", ""), ev.get("message", ""))


def spam_key(ev: dict) -> tuple:
    """``getSpamKey``: source, involved object and type."""
    return (*_object_key(ev), ev.get("type", ""))


def aggregate_key(ev: dict) -> tuple[tuple, str]:
    """``EventAggregatorByReasonFunc``: (what similar events share, the message that tells them apart)."""
    return ((*_object_key(ev), ev.get("type", ""), ev.get("reason", ""), ev.get("reportingComponent", ""),
             ev.get("reportingInstance", "")), ev.get("message", ""))


class _TokenBucket:
    __slots__ = ("tokens", "last")

    def __init__(self, burst: int, now: float) -> None:
        self.tokens, self.last = float(burst), now

    def try_accept(self, burst: int, qps: float, now: float) -> bool:
        self.tokens = min(float(burst), self.tokens + (now - self.last) * qps)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class EventCorrelator:
    """client-go's ``EventCorrelator`` (aggregate, then observe, then spam-filter). ``clock``: monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, cache_size: int = CACHE_SIZE,
                 burst: int = SPAM_BURST, qps: float = SPAM_QPS, max_events: int = AGGREGATE_MAX_EVENTS,
                 max_interval: float = AGGREGATE_INTERVAL) -> None:
        self.clock = clock
        self.burst, self.qps = burst, qps
        self.max_events, self.max_interval = max_events, max_interval
        self._aggregates = _Lru(cache_size)  # aggregate key -> [set of messages, last seen]
        self._observed = _Lru(cache_size)  # event key -> (count, firstTimestamp, name, resourceVersion)
        self._spam = _Lru(cache_size)  # spam key -> token bucket
        self.skipped = 0

    def correlate(self, ev: dict) -> tuple[dict | None, dict | None]:
        """(the event to write, or None: spam-filtered; a merge patch when it updates one already written)."""
        now = self.clock()
        ev, key = self._aggregate(ev, now)
        ev, patch = self._observe(ev, key)
        bucket = self._spam.get(spam_key(ev))
        if bucket is None:
            bucket = _TokenBucket(self.burst, now)
        self._spam.add(spam_key(ev), bucket)
        if not bucket.try_accept(self.burst, self.qps, now):
            self.skipped += 1
            return None, None
        return ev, patch

    def update_state(self, ev: dict) -> None:
        """What the server answered for a written event (its name, count and resourceVersion)."""
        meta = ev.get("metadata") or {}
        self._observed.add(event_key(ev), (int(ev.get("count") or 1), ev.get("firstTimestamp"), meta.get("name"),
                                           meta.get("resourceVersion")))

    def _aggregate(self, ev: dict, now: float) -> tuple[dict, tuple]:
        akey, local = aggregate_key(ev)
        record = self._aggregates.get(akey)
        if record is None or now - record[1] > self.max_interval:
            record = [set(), now]
        record[0].add(local)
        record[1] = now
        self._aggregates.add(akey, record)
        if len(record[0]) < self.max_events:
            return ev, event_key(ev)
        record[0].pop()
        io = ev.get("involvedObject") or {}
        stamp = format_time()
        combined = {**ev, "metadata": {"name": f"{io.get('name', 'unknown')}.{time.time_ns():x}",
                                       "namespace": (ev.get("metadata") or {}).get("namespace")},
                    "message": (COMBINED_PREFIX + ev.get("message", ""))[:MAX_MESSAGE], "count": 1,
                    "firstTimestamp": stamp, "lastTimestamp": stamp}
        return combined, akey

    def _observe(self, ev: dict, key: tuple) -> tuple[dict, dict | None]:
        seen = self._observed.get(key)
        patch = None
        if seen is not None and seen[0] > 0:
            count, first, name, rv = seen
            meta = {**(ev.get("metadata") or {}), "name": name}
            if rv:
                meta["resourceVersion"] = rv
            ev = {**ev, "metadata": meta, "firstTimestamp": first, "count": count + 1}
            patch = {"count": count + 1, "lastTimestamp": ev.get("lastTimestamp"), "message": ev.get("message")}
        meta = ev.get("metadata") or {}
        self._observed.add(key, (int(ev.get("count") or 1), ev.get("firstTimestamp"), meta.get("name"),
                                 meta.get("resourceVersion")))
        return ev, patch


class EventRecorder:
    """``await recorder.event(pod, "Warning", "FailedScheduling", "0/3 nodes are available: ...")``: correlated
    (see the module docstring), then created or patched, one write at a time. Failures to record are logged,
    never raised: events are best effort."""

    def __init__(self, client: Any, component: str, host: str | None = None,
                 correlator: EventCorrelator | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.correlator = correlator or EventCorrelator()
        self._lock = asyncio.Lock()

    def make_event(self, obj: dict, type_: str, reason: str, message: str, field_path: str | None = None) -> dict:
        ref = involved_object(obj)
        if field_path:
            ref["fieldPath"] = field_path
        stamp = format_time()
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name', 'unknown')}.{time.time_ns():x}",
                         "namespace": ref.get("namespace") or "default"},
            "involvedObject": ref, "reason": reason, "message": message[:MAX_MESSAGE], "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host or "",
        }

    async def event(self, obj: dict, type_: str, reason: str, message: str, field_path: str | None = None) -> None:
        ev = self.make_event(obj, type_, reason, message, field_path)
        try:
            async with self._lock:
                out, patch = self.correlator.correlate(ev)
                if out is not None:
                    await self._write(out, patch)
        except Exception as e:  # events are best effort
            log.warning("could not record event %s/%s: %s", reason, ev["involvedObject"].get("name"), e)

    async def _write(self, ev: dict, patch: dict | None) -> None:
        """``recordEvent``: patch an event written before (re-create it if it is gone), else create it."""
        meta = ev["metadata"]
        written = None
        if patch is not None:
            try:
                written = await self.client.patch("events", meta["name"], patch, meta["namespace"])
            except errors.NotFound:
                pass
        if written is None:
            body = {**ev, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
            written = await self.client.create(body)
        self.correlator.update_state(written if isinstance(written, dict) and written.get("involvedObject") else ev)
