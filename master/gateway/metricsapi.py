"""The resource metrics API (metrics.k8s.io/v1beta1), served as metrics-server serves it, from the metrics the node
agents already publish on the bus — what ``kubectl top`` and client libraries' metrics helpers read.

- The gateway keeps the latest samples off ``k8n.metrics.node.*`` and ``k8n.metrics.pod.>`` (``bus.metrics``: a
  sample counts only for what its subject names, a pod's only from the node the pod is bound to, and for
  ``max(3 windows, 30 s)``); a node or pod without a fresh sample is left out of lists and is 404 on a get
  (``nodemetrics.metrics.k8s.io "n1" not found``), as metrics-server answers before its first scrape.
- ``GET /apis/metrics.k8s.io/v1beta1/nodes[/NAME]``, ``…/namespaces/NS/pods[/NAME]``, ``…/pods`` (every
  namespace): the nodes or pods are read as a list of the core kind would be (``labelSelector``), then
  ``fieldSelector`` (``metadata.name``, ``metadata.namespace``) filters them, as metrics-server does;
  ``metadata`` carries the object's name, namespace and labels and ``creationTimestamp`` the time of the answer. A
  node or pod that does not exist is that kind's 404. Tables (``kubectl get podmetrics``) have metrics-server's
  columns: Name, cpu, memory, Window. No watch (405) and no writes (405).
- Authorization is the gateway's own (``master.gateway.authz``: ``get``/``list`` on ``nodes.metrics.k8s.io`` and
  ``pods.metrics.k8s.io``; ``bus.resources.METRICS_RESOURCES`` make the paths parse), before anything is read.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bus import errors
from bus.client import ApiClient, selector_matcher
from bus.meta import format_duration, format_time
from bus.metrics import MetricsCache, Sample
from bus.quantity import format_quantity, parse_quantity
from bus.resources import NODE_METRICS, POD_METRICS, Resource, by_plural
from master.gateway import tables
from master.gateway.context import CLIENT
from master.gateway.paths import Target, parse_path
from master.gateway.respond import TABLE_MEDIA, json_response
from master.gateway.rest import wants_table

PATH_PREFIX = f"/apis/{NODE_METRICS.group}/{NODE_METRICS.version}"
CACHE = web.AppKey("metrics_cache", MetricsCache)


async def start(client: ApiClient) -> MetricsCache:
    cache = MetricsCache()
    await cache.start(client.nc)
    return cache


# ---- the served objects (pure) ----------------------------------------------------------------------------------


def _meta(obj: dict, now: str) -> dict:
    m = obj.get("metadata") or {}
    out = {"name": m.get("name")}
    if m.get("namespace"):
        out["namespace"] = m["namespace"]
    out["creationTimestamp"] = now
    if m.get("labels"):
        out["labels"] = dict(m["labels"])
    return out


def _head(res: Resource, item: bool) -> dict:
    return {} if item else {"kind": res.kind, "apiVersion": res.api_version}


def node_metrics(node: dict, sample: Sample, now: str, item: bool = False) -> dict:
    """The NodeMetrics of ``node`` (a Node) from its sample; ``item``: as a list item (no kind, apiVersion)."""
    d = sample.doc
    usage = d.get("usage") or {}
    return {**_head(NODE_METRICS, item), "metadata": _meta(node, now), "timestamp": d.get("timestamp"),
            "window": format_duration(sample.window), "usage": {k: usage[k] for k in ("cpu", "memory")}}


def pod_metrics(pod: dict, sample: Sample, now: str, item: bool = False) -> dict:
    d = sample.doc
    containers = [{"name": c["name"], "usage": {k: c["usage"][k] for k in ("cpu", "memory")}}
                  for c in d.get("containers") or []]
    return {**_head(POD_METRICS, item), "metadata": _meta(pod, now), "timestamp": d.get("timestamp"),
            "window": format_duration(sample.window), "containers": containers}


def metrics_list(res: Resource, items: list[dict]) -> dict:
    return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": {}, "items": items}


def _usage_of(m: dict) -> dict[str, str]:
    """A NodeMetrics' usage, or a PodMetrics' summed over its containers (canonical quantities)."""
    if "usage" in m:
        return dict(m["usage"])
    total: dict[str, Any] = {}
    for c in m.get("containers") or []:
        for k, v in (c.get("usage") or {}).items():
            total[k] = total.get(k, 0) + parse_quantity(v)
    return {k: format_quantity(v, binary=k == "memory") for k, v in total.items()}


def table(objs: list[dict], include: str = "Metadata") -> dict:
    """metrics-server's Table: Name, one column per resource (sorted), Window."""
    usages = [_usage_of(m) for m in objs]
    names = sorted(usages[0]) if usages else []
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name of the resource",
                "priority": 0}]
    columns += [{"name": n, "type": "string", "format": "quantity", "description": "", "priority": 0} for n in names]
    columns.append({"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0})
    rows = []
    for m, usage in zip(objs, usages):
        row: dict = {"cells": [m["metadata"]["name"], *(usage.get(n, "0") for n in names), m["window"]]}
        if include == "Object":
            row["object"] = m
        elif include != "None":
            row["object"] = tables.partial_metadata(m)
        rows.append(row)
    return {"kind": "Table", "apiVersion": tables.TABLE_API_VERSION, "metadata": {}, "columnDefinitions": columns,
            "rows": rows}


# ---- reads ------------------------------------------------------------------------------------------------------


def _watch_asked(request: web.Request, t: Target) -> bool:
    return t.watch or request.query.get("watch", "").lower() in ("1", "true")


def _check_request(request: web.Request, t: Target) -> None:
    if request.method not in ("GET", "HEAD"):
        raise errors.method_not_allowed(f"the server does not allow this method on the requested resource "
                                        f"({request.method} {t.res.qualified})")
    if _watch_asked(request, t):
        raise errors.method_not_allowed(f'watch is not supported on resources of kind "{t.res.qualified}"')
    if t.subresource is not None:
        raise errors.NotFound(404, f"the server could not find the requested resource ({request.path})")


class MetricsReader:
    """One request's reads: the nodes or pods it names, joined with the cache."""

    def __init__(self, client: ApiClient, cache: MetricsCache) -> None:
        self.client, self.cache = client, cache
        self.now = format_time()

    async def node(self, name: str) -> dict:
        try:
            node = await self.client.store.get(by_plural("nodes"), None, name)
        except errors.NotFound:  # what metrics-server's node lister answers
            raise errors.not_found("node", name) from None
        sample = self.cache.node(name)
        if sample is None:
            raise errors.not_found("nodemetrics", name, NODE_METRICS.group)
        return node_metrics(node, sample, self.now)

    async def nodes(self, label_selector: str | None, field_selector: str | None) -> dict:
        match = selector_matcher(NODE_METRICS, None, field_selector)
        nodes, _ = await self.client.list("nodes", None, label_selector)
        self.cache.prune()
        items = [node_metrics(n, s, self.now, item=True) for n in nodes if match(n)
                 if (s := self.cache.node(n["metadata"]["name"])) is not None]
        return metrics_list(NODE_METRICS, items)

    def _pod_sample(self, pod: dict) -> Sample | None:
        m = pod["metadata"]
        return self.cache.pod(m["namespace"], m["name"], (pod.get("spec") or {}).get("nodeName"))

    async def pod(self, namespace: str, name: str) -> dict:
        pod = await self.client.store.get(by_plural("pods"), namespace, name)
        sample = self._pod_sample(pod)
        if sample is None:
            raise errors.not_found("podmetrics", f"{namespace}/{name}", POD_METRICS.group)
        return pod_metrics(pod, sample, self.now)

    async def pods(self, namespace: str | None, label_selector: str | None, field_selector: str | None) -> dict:
        match = selector_matcher(POD_METRICS, None, field_selector)
        pods, _ = await self.client.list("pods", namespace, label_selector)
        self.cache.prune()
        items = [pod_metrics(p, s, self.now, item=True) for p in pods if match(p)
                 if (s := self._pod_sample(p)) is not None]
        return metrics_list(POD_METRICS, items)


async def handle(request: web.Request) -> web.Response:
    """Every request under ``/apis/metrics.k8s.io/v1beta1/`` (already authorized by the gateway's middleware)."""
    t = parse_path(request.path)
    _check_request(request, t)
    reader = MetricsReader(request.app[CLIENT], request.app[CACHE])
    q = request.query
    lsel, fsel = q.get("labelSelector") or None, q.get("fieldSelector") or None
    if t.res is NODE_METRICS:
        body = await (reader.node(t.name) if t.name is not None else reader.nodes(lsel, fsel))
    elif t.name is not None:
        body = await reader.pod(t.namespace or "", t.name)
    else:
        body = await reader.pods(t.namespace, lsel, fsel)
    if wants_table(request):
        include = q.get("includeObject") or "Metadata"
        if include not in tables.INCLUDE_OBJECT:
            raise errors.bad_request(f'includeObject must be one of "None", "Metadata", "Object", not "{include}"')
        return json_response(table(body.get("items", [body]), include), content_type=TABLE_MEDIA)
    return json_response(body)


def add_routes(app: web.Application) -> None:
    """The API's routes (before the gateway's generic ``/apis/{group}/{version}/…`` one)."""
    app.router.add_route("*", PATH_PREFIX + "/{tail:.+}", handle)
