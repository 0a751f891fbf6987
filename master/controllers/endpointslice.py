"""EndpointSlice controller: keeps the Services' EndpointSlices (discovery.k8s.io/v1, what kubectl
1.32's ``describe service`` reads), as Kubernetes' EndpointSliceController does, beside the Endpoints
that ``endpoints`` keeps (what the two share about a Service's pods is ``_servicepods``):

- Pods are chosen and their ports resolved as for the Endpoints subsets. Slices are split like the
  subsets: one per (address type, set of resolved ports), at most ``MAX_ENDPOINTS_PER_SLICE``
  endpoints each; a Service with no endpoints gets one empty placeholder slice. Names are
  deterministic, ``<service>-<5 chars hashed from the Service's uid, address type, ports and chunk>``,
  so a lagging cache can never make a duplicate.
- Terminating pods are listed too, with ``ready: false, terminating: true`` (``serving`` is the
  pod's readiness); ``publishNotReadyAddresses`` makes every endpoint ready.
- Labels: the Service's, plus ``kubernetes.io/service-name``, ``endpointslice.kubernetes.io/managed-by``
  (and the headless label); a controlling ownerReference to the Service lets the garbage collector
  remove them too. Written only when the content changes; this controller's slices of a Service that
  is gone, lost its selector or no longer wants them are deleted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from typing import Any, Iterable

from bus import errors, subjects
from bus.controller import Controller
from bus.informer import BY_NAMESPACE, Informer, deep_copy
from bus.meta import name_of, safe_encode
from master.controllers._servicepods import (
    MANAGED_BY, address_of, endpoint_port, find_port, in_endpoints, is_ready, port_key, selected_pods,
    selector_of, service_labels, spec_of, watch_selected_pods,
)

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER_NAME = "endpointslice-controller.k8s.io"
SLICE_API_VERSION = "discovery.k8s.io/v1"
MAX_ENDPOINTS_PER_SLICE = 100


def setup(ctx) -> list:
    inf = ctx.informers
    return [EndpointSliceController(ctx.client, inf.informer("services"), inf.informer("pods"),
                                    inf.informer("endpointslices"), ctx.settings.endpoints_workers).controller]


# ---- pure logic ------------------------------------------------------------------------------


def _address_type(ip: str) -> str | None:
    try:
        return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"
    except ValueError:
        return None


def slice_endpoint(pod: dict, svc: dict) -> dict:
    """One EndpointSlice endpoint for a pod (Kubernetes' podToEndpoint, without topology)."""
    addr = address_of(pod, svc)
    serving = is_ready(pod)
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    publish = bool(spec_of(svc).get("publishNotReadyAddresses"))
    out: dict[str, Any] = {"addresses": [addr["ip"]],
                           "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                                          "terminating": terminating}}
    for k in ("hostname", "nodeName", "targetRef"):
        if addr.get(k):
            out[k] = addr[k]
    return out


def _slice_port(p: dict) -> dict:
    out: dict[str, Any] = {"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP"}
    if p.get("appProtocol"):
        out["appProtocol"] = p["appProtocol"]
    return out


def _clean_endpoint(ep: dict) -> dict:
    cond = ep.get("conditions") or {}
    out: dict[str, Any] = {"addresses": list(ep.get("addresses") or []),
                           "conditions": {k: cond.get(k) for k in ("ready", "serving", "terminating")}}
    for k in ("hostname", "nodeName", "zone"):
        if ep.get(k):
            out[k] = ep[k]
    ref = ep.get("targetRef")
    if isinstance(ref, dict):
        out["targetRef"] = {k: ref[k] for k in ("kind", "namespace", "name", "uid") if ref.get(k)}
    return out


def _endpoint_key(ep: dict) -> tuple:
    ref = ep.get("targetRef") or {}
    return tuple(ep.get("addresses") or ()), ref.get("namespace") or "", ref.get("name") or "", ref.get("uid") or ""


def slice_content(es: dict) -> dict:
    """What this controller compares of a slice: labels, owners, address type, endpoints, ports (sorted)."""
    meta = es.get("metadata") or {}
    return {"labels": meta.get("labels") or {},
            "ownerReferences": [{k: r.get(k) for k in ("apiVersion", "kind", "name", "uid", "controller")}
                                for r in meta.get("ownerReferences") or [] if isinstance(r, dict)],
            "addressType": es.get("addressType"),
            "endpoints": sorted((_clean_endpoint(e) for e in es.get("endpoints") or []), key=_endpoint_key),
            "ports": sorted((_slice_port(p) for p in es.get("ports") or []), key=port_key)}


def slice_labels(svc: dict) -> dict:
    """The Service's labels, plus the service-name, managed-by and headless labels Kubernetes sets."""
    labels = {k: v for k, v in service_labels(svc).items() if k != MANAGED_BY}
    labels[SERVICE_NAME_LABEL] = name_of(svc)
    labels[SLICE_MANAGED_BY] = SLICE_CONTROLLER_NAME
    return labels


def slice_name(svc: dict, address_type: str, port_keys: tuple, chunk: int) -> str:
    """``<service>-<5 chars>``: deterministic for one Service (uid), address type, port set and chunk."""
    meta = svc.get("metadata") or {}
    digest = hashlib.sha256(repr((meta.get("uid"), address_type, port_keys, chunk)).encode()).digest()
    return f"{meta.get('name')}-{safe_encode(digest[:5])}"


def owns_slice(es: dict, service_name: str | None = None) -> bool:
    """Whether this controller made ``es`` (for the Service ``service_name`` when given)."""
    labels = (es.get("metadata") or {}).get("labels") or {}
    if labels.get(SLICE_MANAGED_BY) != SLICE_CONTROLLER_NAME or not labels.get(SERVICE_NAME_LABEL):
        return False
    return service_name is None or labels[SERVICE_NAME_LABEL] == service_name


def compute_slices(svc: dict, pods: Iterable[dict], max_endpoints: int = MAX_ENDPOINTS_PER_SLICE) -> list[dict]:
    """The EndpointSlices ``svc`` should have, given the pods its selector matches (pure, sorted by name).

    Pods are chosen and their ports resolved as for the Endpoints subsets, except that terminating
    pods are kept (with their conditions saying so); endpoints are grouped by address type and port
    set, in chunks of at most ``max_endpoints``. No endpoints at all gives one empty placeholder."""
    meta, spec = svc.get("metadata") or {}, spec_of(svc)
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    headless = spec.get("clusterIP") == "None"
    groups: dict[tuple[str, tuple], tuple[list[dict], dict[tuple, dict]]] = {}
    for pod in pods:
        if not in_endpoints(pod, True):
            continue
        atype = _address_type((pod.get("status") or {}).get("podIP") or "")
        if atype is None:
            continue
        served: dict[tuple, dict] = {}
        for sp in ports:
            number = find_port(pod, sp)
            if number:
                ep_port = _slice_port(endpoint_port(sp, number))
                served[port_key(ep_port)] = ep_port
        if not served and not (headless and not ports):
            continue  # as in the Endpoints: a pod serving none of the Service's ports is left out
        group = groups.setdefault((atype, tuple(sorted(served))), ([], {}))
        group[0].append(slice_endpoint(pod, svc))
        group[1].update(served)
    if not groups:
        families = spec.get("ipFamilies") or ["IPv4"]
        groups[(families[0] if families[0] in ("IPv4", "IPv6") else "IPv4", ())] = ([], {})
    owner = {"apiVersion": "v1", "kind": "Service", "name": meta.get("name"), "uid": meta.get("uid"),
             "controller": True, "blockOwnerDeletion": True}
    out = []
    for (atype, port_keys), (eps, port_of) in groups.items():
        eps = sorted(eps, key=_endpoint_key)
        chunks = [eps[i:i + max_endpoints] for i in range(0, len(eps), max_endpoints)] or [[]]
        for n, chunk in enumerate(chunks):
            out.append({"apiVersion": SLICE_API_VERSION, "kind": "EndpointSlice",
                        "metadata": {"name": slice_name(svc, atype, port_keys, n), "namespace": meta.get("namespace"),
                                     "labels": slice_labels(svc), "ownerReferences": [dict(owner)]},
                        "addressType": atype, "endpoints": chunk, "ports": [port_of[k] for k in port_keys]})
    return sorted(out, key=lambda es: es["metadata"]["name"])


# ---- the controller --------------------------------------------------------------------------


class EndpointSliceController:
    """Keeps every selector Service's EndpointSlices (``compute_slices``); its own queue of Service keys."""

    def __init__(self, client: Any, services: Informer, pods: Informer, slices: Informer, workers: int = 4) -> None:
        self.client, self.services, self.pods, self.slices = client, services, pods, slices
        self.controller = Controller("endpointslices", self.reconcile, workers)
        self.controller.watches(services)
        watch_selected_pods(self.controller, services, pods)
        slices.add_handler(self._slice_changed, lambda old, new: (self._slice_changed(old), self._slice_changed(new)),
                           self._slice_changed)
        self.controller.informers.append(slices)

    def _slice_changed(self, es: dict) -> None:
        if owns_slice(es):
            meta = es.get("metadata") or {}
            self.controller.queue.add(subjects.object_key(meta.get("namespace"), meta["labels"][SERVICE_NAME_LABEL]))

    def _ours(self, ns: str | None, name: str) -> list[dict]:
        return [es for es in self.slices.by_index(BY_NAMESPACE, ns) if owns_slice(es, name)] if ns else []

    async def reconcile(self, key: str) -> None:
        ns, name = subjects.parse_key(key)
        svc = self.services.get_by_key(key)
        existing = {es["metadata"]["name"]: es for es in self._ours(ns, name)}
        selector = selector_of(svc) if svc is not None else None
        desired = []
        if selector is not None:
            pods = selected_pods(self.pods, ns, selector)
            desired = compute_slices(svc, pods)
        for want in desired:  # creates and updates first, deletes last: no moment without endpoints
            sname = want["metadata"]["name"]
            existing.pop(sname, None)
            cur = self.slices.get(ns, sname)
            if cur is None:
                try:
                    await self.client.create(want)
                except errors.AlreadyExists:
                    pass  # the cache lags: its add event brings this key back
                continue
            if slice_content(cur) == slice_content(want):
                continue
            if cur.get("addressType") != want["addressType"]:  # immutable: replace the slice
                await self._delete(ns, sname)
                await self.client.create(want)
                continue
            new = deep_copy(cur)
            new["metadata"]["labels"] = want["metadata"]["labels"]
            new["metadata"]["ownerReferences"] = want["metadata"]["ownerReferences"]
            for field in ("addressType", "endpoints", "ports"):
                new[field] = want[field]
            await self.client.update(new)  # a Conflict requeues with backoff
        for sname in sorted(existing):
            await self._delete(ns, sname)

    async def _delete(self, ns: str | None, name: str) -> None:
        try:
            await self.client.delete("endpointslices", name, ns)
        except errors.NotFound:
            pass
