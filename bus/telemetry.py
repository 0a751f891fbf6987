"""Prometheus metrics of every k8n component, published on the bus (what the gateway serves at ``/metrics``).

- Each component (a bus role: ``apiserver``, ``controller-manager``, ``scheduler``, ``nodeview``, ``gateway``, and
  ``node`` for an agent with its proxy and DNS) has one :class:`Telemetry`: a ``prometheus_client``
  ``CollectorRegistry`` and a task that every ``telemetry-seconds`` publishes the registry's metric families on
  ``k8n.telemetry.<component>[.<node>]`` (``bus.subjects.telemetry``; NATS lets each identity publish only its own).
  Several components may share a process (``python -m master``): the component running in a task is a context
  variable, so code deep down (a work queue) finds its own component's registry with :func:`metrics`.
- ``telemetry-seconds`` 0 turns it all off: nothing is counted (:func:`metrics` answers None) and nothing published.
- The payload is msgpack, not Prometheus text, so the reader merges families by name (:func:`encode`,
  :func:`decode`): ``{component, node, replica, seconds, families: [[name, type, help, [[sample, labels, value]]]]}``.
  ``_created`` samples are left out (Kubernetes' metrics have none).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterable, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from bus import codec, settings as _s, subjects
from bus.settings import setting

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Kubernetes' default request latency buckets (apiserver_request_duration_seconds), usable for any latency
LATENCY_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0,
                   15.0, 20.0, 30.0, 45.0, 60.0)


@dataclass(frozen=True)
class TelemetrySettings:
    telemetry_seconds: float = setting(
        5.0, "seconds between two publications of a component's Prometheus metrics on `k8n.telemetry.<component>` "
        "(served by the gateway at `/metrics`); 0 turns metrics off (nothing counted, nothing published)")

    @classmethod
    def load(cls) -> "TelemetrySettings":
        return _s.load(cls)


class Telemetry:
    """One component's metrics: its registry, the metric objects made in it, and its publisher."""

    def __init__(self, component: str, node: str = "", seconds: float = 5.0) -> None:
        self.component, self.node, self.seconds = component, node, seconds
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.registry = CollectorRegistry(auto_describe=False)
        self._made: dict[Callable, Any] = {}
        self._refresh: list[Callable[[], Any]] = []
        self._task: asyncio.Task | None = None

    def get(self, factory: Callable[[CollectorRegistry], T]) -> T:
        """``factory(registry)``, made once per component (metric objects register their names once)."""
        made = self._made.get(factory)
        if made is None:
            made = self._made[factory] = factory(self.registry)
        return made

    def on_publish(self, refresh: Callable[[], Any]) -> None:
        """Run ``refresh()`` (sync or async) before each publication: figures read from elsewhere (JetStream)."""
        self._refresh.append(refresh)

    @property
    def subject(self) -> str:
        return subjects.telemetry(self.component, self.node)

    def payload(self) -> bytes:
        return encode(self.registry.collect(), self.component, self.node, self.replica, self.seconds)

    def snapshot(self) -> "Snapshot":
        """What a reader of :meth:`payload` gets (the gateway's own metrics)."""
        return decode(self.payload())

    async def publish(self, nc: Any) -> None:
        for refresh in self._refresh:
            try:
                res = refresh()
                if asyncio.iscoroutine(res):
                    await res
            except Exception as e:  # a figure missing this time; the rest goes out
                log.debug("%s telemetry refresh failed: %s", self.component, e)
        await nc.publish(self.subject, self.payload())

    def start(self, nc: Any) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.publish(nc)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # disconnected: the next period tries again
                    log.debug("%s telemetry not published: %s", self.component, e)
                await asyncio.sleep(self.seconds)

        self._task = asyncio.create_task(loop(), name=f"telemetry-{self.component}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


_CURRENT: contextvars.ContextVar[Telemetry | None] = contextvars.ContextVar("k8n_telemetry", default=None)


def current() -> Telemetry | None:
    """The telemetry of the component running in this task (None: metrics off, or outside any component)."""
    return _CURRENT.get()


def metrics(factory: Callable[[CollectorRegistry], T]) -> T | None:
    """The current component's instance of ``factory``'s metrics, None when there is none (nothing to count)."""
    t = _CURRENT.get()
    return None if t is None else t.get(factory)


def enter(component: str, node: str = "", seconds: float | None = None) -> Telemetry | None:
    """Make ``component``'s telemetry the current task's (and the tasks it starts from now on); None when
    ``telemetry-seconds`` is 0. Call it before building what counts."""
    if seconds is None:
        seconds = TelemetrySettings.load().telemetry_seconds
    t = Telemetry(component, node, seconds) if seconds > 0 else None
    _CURRENT.set(t)
    return t


@contextlib.asynccontextmanager
async def publishing(nc: Any, component: str, node: str = "",
                     seconds: float | None = None) -> AsyncIterator[Telemetry | None]:
    """:func:`enter`, then publish on ``nc`` every period until the block ends."""
    t = enter(component, node, seconds)
    if t is not None:
        t.start(nc)
    try:
        yield t
    finally:
        if t is not None:
            await t.stop()


# ---- the payload -----------------------------------------------------------------------------------------------


def encode(families: Iterable[Metric], component: str, node: str = "", replica: str = "",
           seconds: float = 0.0) -> bytes:
    fams = []
    for f in families:
        samples = [[s.name, s.labels, s.value] for s in f.samples if not s.name.endswith("_created")]
        fams.append([f.name, f.type, f.documentation, samples])
    return codec.pack({"component": component, "node": node, "replica": replica, "seconds": seconds,
                       "time": time.time(), "families": fams})


@dataclass(frozen=True)
class Snapshot:
    """One publication of one component replica."""

    component: str
    node: str
    replica: str
    seconds: float
    families: list[Metric]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.component, self.node, self.replica


_TYPES = ("counter", "gauge", "histogram", "summary", "info", "stateset", "unknown", "gaugehistogram")


def decode(data: bytes) -> Snapshot:
    """Inverse of :func:`encode`; ValueError for a payload that is not one."""
    try:
        doc = codec.unpack(data)
        fams = []
        for name, typ, doc_, samples in doc["families"]:
            if typ not in _TYPES or not isinstance(name, str):
                raise ValueError(f"bad family {name!r} of type {typ!r}")
            m = Metric(name, str(doc_), typ)
            for sname, labels, value in samples:
                m.add_sample(str(sname), {str(k): str(v) for k, v in labels.items()}, float(value))
            fams.append(m)
        return Snapshot(str(doc["component"]), str(doc.get("node") or ""), str(doc.get("replica") or ""),
                        float(doc.get("seconds") or 0.0), fams)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a telemetry payload: {e}") from None
    except Exception as e:
        if isinstance(e, ValueError):
            raise
        raise ValueError(f"not a telemetry payload: {e}") from None


def merge(snapshots: Iterable[Snapshot]) -> list[Metric]:
    """The families of every snapshot merged by name, each sample labelled with its ``component`` and ``node`` (and
    ``replica`` when a component has several); a family whose type differs from the first seen is left out."""
    snaps = list(snapshots)
    per_component: dict[tuple[str, str], int] = {}
    for s in snaps:
        per_component[(s.component, s.node)] = per_component.get((s.component, s.node), 0) + 1
    out: dict[str, Metric] = {}
    for s in snaps:
        extra = {"component": s.component, "node": s.node}
        if per_component[(s.component, s.node)] > 1:
            extra["replica"] = s.replica
        for f in s.families:
            m = out.get(f.name)
            if m is None:
                m = out[f.name] = Metric(f.name, f.documentation, f.type)
            elif m.type != f.type:
                continue
            for x in f.samples:
                m.add_sample(x.name, {**x.labels, **extra}, x.value)
    return list(out.values())
