"""The API server's Prometheus metrics (``bus.telemetry``), with kube-apiserver's names and labels:

- ``apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,code}`` and
  ``apiserver_request_duration_seconds{verb,dry_run,group,version,resource,subresource,scope}``, counted where
  ``server.py`` receives a request and sends its reply. ``verb`` is Kubernetes' (``POST`` for a create, ``LIST``,
  ``WATCH``, ``APPLY`` for a server-side apply patch, ``DELETECOLLECTION`` …); a request that does not parse counts
  with empty resource labels.
- JetStream's figures, read before each publication (``$JS.API.INFO``, ``$JS.API.STREAM.LIST``):
  ``nats_jetstream_{memory,storage}_bytes``, ``nats_jetstream_{streams,consumers}``,
  ``nats_jetstream_api_requests_total``, ``nats_jetstream_api_errors_total``, and per stream
  ``nats_jetstream_stream_{messages,bytes,consumers}{stream}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

from bus import subjects
from bus.telemetry import LATENCY_BUCKETS
from master.apiserver.ssa import APPLY_PATCH_TYPES

_VERBS = {"get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT", "patch": "PATCH",
          "delete": "DELETE", "deletecollection": "DELETECOLLECTION"}
_LABELS = ("verb", "dry_run", "group", "version", "resource", "subresource", "scope")
_NONE = ("", "", "", "", "", "", "")  # a request that did not parse


def request_labels(req: Any) -> tuple[str, ...]:
    """kube-apiserver's labels of one parsed request (``master.apiserver.request.Request``)."""
    verb = _VERBS.get(req.verb, req.verb.upper())
    if verb == "PATCH" and req.options.get("patchType") in APPLY_PATCH_TYPES:
        verb = "APPLY"
    scope = "resource" if req.name else ("namespace" if req.namespace else "cluster")
    return (verb, "All" if req.dry_run else "", req.res.group, req.res.version, req.res.plural,
            req.subresource or "", scope)


class ApiMetrics:
    """The request counter and latency histogram; :meth:`observe` once per request."""

    def __init__(self, registry: Any) -> None:
        self.requests = Counter(
            "apiserver_request_total", "Counter of apiserver requests broken out for each verb, dry run value, "
            "group, version, resource, scope, component, and HTTP response code.", (*_LABELS, "code"),
            registry=registry)
        self.duration = Histogram(
            "apiserver_request_duration_seconds", "Response latency distribution in seconds for each verb, dry run "
            "value, group, version, resource, subresource, scope and component.", _LABELS, buckets=LATENCY_BUCKETS,
            registry=registry)
        self._children: dict[tuple, tuple[Any, Any]] = {}  # labels + code → (counter, histogram): one lookup
        self.jetstream = JetStreamFigures()
        registry.register(self.jetstream)

    def observe(self, req: Any | None, code: int, seconds: float) -> None:
        labels = request_labels(req) if req is not None else _NONE
        key = (*labels, code)
        got = self._children.get(key)
        if got is None:
            got = self._children[key] = (self.requests.labels(*labels, str(code)), self.duration.labels(*labels))
        got[0].inc()
        got[1].observe(seconds)


class JetStreamFigures:
    """JetStream's account and stream figures, fetched by :meth:`refresh` and served by :meth:`collect`."""

    def __init__(self) -> None:
        self.account: dict = {}
        self.streams: list[dict] = []

    async def refresh(self, nc: Any, timeout: float = 2.0) -> None:
        msg = await nc.request(subjects.JS_API_INFO, b"", timeout=timeout)
        account = orjson.loads(msg.data)
        streams: list[dict] = []
        while True:
            msg = await nc.request(subjects.JS_API_STREAM_LIST, orjson.dumps({"offset": len(streams)}),
                                   timeout=timeout)
            page = orjson.loads(msg.data)
            got = page.get("streams") or []
            streams += got
            if not got or len(streams) >= int(page.get("total") or 0):
                break
        self.account = account if "error" not in account else {}
        self.streams = streams

    def collect(self):
        a = self.account
        if not a:
            return []
        out = []
        for name, key, doc in (("memory_bytes", "memory", "Memory used by JetStream in this account, in bytes"),
                               ("storage_bytes", "storage", "Storage used by JetStream in this account, in bytes"),
                               ("streams", "streams", "Streams in this account"),
                               ("consumers", "consumers", "Consumers in this account")):
            out.append(GaugeMetricFamily(f"nats_jetstream_{name}", doc, value=float(a.get(key) or 0)))
        api = a.get("api") or {}
        out.append(CounterMetricFamily("nats_jetstream_api_requests", "JetStream API requests served",
                                       value=float(api.get("total") or 0)))
        out.append(CounterMetricFamily("nats_jetstream_api_errors", "JetStream API requests that failed",
                                       value=float(api.get("errors") or 0)))
        per = {k: GaugeMetricFamily(f"nats_jetstream_stream_{k}", doc, labels=("stream",)) for k, doc in (
            ("messages", "Messages kept in the stream"), ("bytes", "Bytes kept in the stream"),
            ("consumers", "Consumers of the stream"))}
        for s in self.streams:
            name, state = (s.get("config") or {}).get("name", ""), s.get("state") or {}
            per["messages"].add_metric((name,), float(state.get("messages") or 0))
            per["bytes"].add_metric((name,), float(state.get("bytes") or 0))
            per["consumers"].add_metric((name,), float(state.get("consumer_count") or 0))
        return out + list(per.values())
