"""Recording Kubernetes Events (core/v1) about objects, as client-go's EventRecorder does:
repeats of the same (object, type, reason, message) within a window bump ``count`` and
``lastTimestamp`` of one Event instead of creating another."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bus import errors
from bus.meta import format_time

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
_AGGREGATE_SECONDS = 600.0


def involved_object(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "name": meta.get("name"),
           "namespace": meta.get("namespace"), "uid": meta.get("uid"),
           "resourceVersion": meta.get("resourceVersion")}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """``await recorder.event(pod, "Warning", "FailedScheduling", "0/3 nodes are available: ...")``.
    Failures to record are logged, never raised: events are best effort."""

    def __init__(self, client: Any, component: str, host: str | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._recent: dict[tuple, tuple[str, str, float]] = {}  # key -> (namespace, event name, first seen)
        self._lock = asyncio.Lock()

    async def event(self, obj: dict, type_: str, reason: str, message: str, field_path: str | None = None) -> None:
        ref = involved_object(obj)
        if field_path:
            ref["fieldPath"] = field_path
        ns = ref.get("namespace") or "default"
        key = (ref.get("uid"), ref.get("name"), type_, reason, message, field_path)
        try:
            async with self._lock:
                seen = self._recent.get(key)
                if seen and time.monotonic() - seen[2] < _AGGREGATE_SECONDS and await self._bump(seen[0], seen[1]):
                    return
                name = f"{ref.get('name', 'unknown')}.{time.time_ns():x}"
                source = {"component": self.component, **({"host": self.host} if self.host else {})}
                now = format_time()
                await self.client.create({
                    "apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": ref, "reason": reason, "message": message[:1024], "type": type_,
                    "source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                    "reportingComponent": self.component, "reportingInstance": self.host or "",
                })
                self._recent[key] = (ns, name, time.monotonic())
                if len(self._recent) > 4096:
                    self._recent.pop(next(iter(self._recent)))
        except Exception as e:  # events are best effort
            log.warning("could not record event %s/%s: %s", reason, ref.get("name"), e)

    async def _bump(self, ns: str, name: str) -> bool:
        try:
            ev = await self.client.get("events", name, ns)
        except errors.NotFound:
            return False
        ev["count"] = int(ev.get("count") or 1) + 1
        ev["lastTimestamp"] = format_time()
        try:
            await self.client.update(ev)
        except errors.ApiError:
            return False
        return True
