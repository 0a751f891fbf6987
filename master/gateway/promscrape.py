"""``GET /metrics``: every component's Prometheus metrics in one scrape, in Prometheus' text format.

- The gateway keeps the latest publication of each component replica off ``k8n.telemetry.>`` (``bus.telemetry``);
  who published is taken from the subject (NATS lets each identity publish only its own), not from the payload. A
  publication older than ``max(3 periods, 15 s)`` is dropped (that replica stopped).
- The families are merged by name and every sample carries ``component`` and ``node`` labels (``replica`` when a
  component runs several), the gateway's own metrics included: ``gateway_http_requests_total{method,code}`` and
  ``gateway_http_request_duration_seconds{method}`` (watches are counted, not timed).
- Authorized as Kubernetes authorizes ``/metrics``: a non-resource ``get /metrics`` (``system:monitoring`` and
  ``cluster-admin`` have it), checked by ``master.gateway.authz`` before the handler runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from bus import roles, subjects, telemetry
from bus.telemetry import LATENCY_BUCKETS, Snapshot, Telemetry

log = logging.getLogger(__name__)

PATH = "/metrics"
MIN_FRESH_SECONDS = 15.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scrapes:
    """The latest snapshot of every component replica, and the gateway's own telemetry."""

    def __init__(self, own: Telemetry | None) -> None:
        self.own = own
        self.latest: dict[tuple[str, str, str], tuple[float, Snapshot]] = {}
        self._sub: Any = None
        self.http = own.get(HttpMetrics) if own is not None else None

    async def start(self, nc: Any) -> None:
        self._sub = await nc.subscribe(subjects.telemetry_wildcard(), cb=self._on_message)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the connection may be closing
                await self._sub.unsubscribe()

    async def _on_message(self, msg: Any) -> None:
        self.take(msg.subject, msg.data, time.monotonic())

    def take(self, subject: str, data: bytes, now: float) -> None:
        try:
            component, node = subjects.parse_telemetry_subject(subject)
            snap = telemetry.decode(data)
        except ValueError as e:
            log.debug("dropped telemetry on %s: %s", subject, e)
            return
        snap = dataclasses.replace(snap, component=component, node=node)
        if self.own is not None and snap.component == roles.GATEWAY and snap.replica == self.own.replica:
            return  # our own publication: served from the registry itself
        self.latest[snap.key] = (now, snap)

    def fresh(self, now: float) -> list[Snapshot]:
        out = []
        for key, (at, snap) in list(self.latest.items()):
            if now - at > max(3 * snap.seconds, MIN_FRESH_SECONDS):
                del self.latest[key]
            else:
                out.append(snap)
        if self.own is not None:
            out.append(self.own.snapshot())
        return out

    def exposition(self, now: float) -> bytes:
        """Every fresh family, merged, in Prometheus' text format."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(telemetry.merge(self.fresh(now))))
        return generate_latest(registry)


class _Merged:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


class HttpMetrics:
    """The gateway's own HTTP requests."""

    def __init__(self, registry: Any) -> None:
        self.requests = Counter("gateway_http_requests_total", "HTTP requests the gateway answered, by method and "
                                "code.", ("method", "code"), registry=registry)
        self.duration = Histogram("gateway_http_request_duration_seconds", "Seconds the gateway took to answer an "
                                  "HTTP request (watches and streams left out), by method.", ("method",),
                                  buckets=LATENCY_BUCKETS, registry=registry)


SCRAPES = web.AppKey("scrapes", Scrapes)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


async def start(app: web.Application, nc: Any) -> Scrapes:
    """Subscribe and start publishing the gateway's own telemetry; the app keeps it under :data:`SCRAPES`."""
    own = telemetry.enter(roles.GATEWAY)
    if own is not None:
        own.start(nc)
    scrapes = app[SCRAPES] = Scrapes(own)
    await scrapes.start(nc)
    return scrapes


async def stop(scrapes: Scrapes) -> None:
    await scrapes.stop()
    if scrapes.own is not None:
        await scrapes.own.stop()


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every answered request (outermost: it sees the final code); times those that are not streams."""
    scrapes = request.app.get(SCRAPES)
    m = scrapes.http if scrapes is not None else None
    if m is None:
        return await handler(request)
    start = time.perf_counter()
    code = 500
    try:
        resp = await handler(request)
        code = resp.status
        return resp
    except web.HTTPException as e:
        code = e.status
        raise
    finally:
        method = request.method if request.method in _METHODS else "OTHER"
        m.requests.labels(method, str(code)).inc()
        streamed = request.query.get("watch") in ("1", "true") or request.headers.get("Upgrade")
        if not streamed:
            m.duration.labels(method).observe(time.perf_counter() - start)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SCRAPES].exposition(time.monotonic())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.middlewares.insert(0, count_requests)
    app.router.add_get(PATH, metrics)
