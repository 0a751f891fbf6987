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
        self._recent: dict[tuple, tuple[str, str, float, int]] = {}  # key -> (namespace, name, first seen, count)
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
                if seen and time.monotonic() - seen[2] < _AGGREGATE_SECONDS and await self._bump(key):
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
                self._recent[key] = (ns, name, time.monotonic(), 1)
                if len(self._recent) > 4096:
                    self._recent.pop(next(iter(self._recent)))
        except Exception as e:  # events are best effort
            log.warning("could not record event %s/%s: %s", reason, ref.get("name"), e)

    async def _bump(self, key: tuple) -> bool:
        """Count a repeat on the event already recorded for ``key`` (a patch: recording needs no read right)."""
        ns, name, first, count = self._recent[key]
        try:
            await self.client.patch("events", name, {"count": count + 1, "lastTimestamp": format_time()}, ns)
        except errors.ApiError:
            return False
        self._recent[key] = (ns, name, first, count + 1)
        return True
