"""Endpoints controller: for every Service with a selector, an Endpoints object of the same name
listing the selected pods, as Kubernetes' EndpointsController does.

- Ready pods' IPs go under ``addresses``, the others under ``notReadyAddresses``
  (``publishNotReadyAddresses`` puts every pod under ``addresses``); each address names its pod
  (``targetRef``), node, and ``hostname`` when the pod's ``hostname``/``subdomain`` ask for it.
- Ports are resolved per pod: a named ``targetPort`` is looked up in that pod's container ports
  (same protocol); a pod lacking it is left out of that port, and addresses are grouped into
  subsets by the set of ports they serve (Kubernetes' RepackSubsets).
- Pods without an IP, terminating (unless publishNotReadyAddresses) or Succeeded/Failed are left out.
- Services without a selector (or ExternalName ones) keep their hand-written Endpoints: never touched.
- The Endpoints of a deleted Service are deleted; ones this controller made (label
  ``endpoints.kubernetes.io/managed-by``) whose Service is gone are deleted too.
- Written only when the content changes (subsets compared in canonical, sorted form).

The same module keeps the Services' EndpointSlices (discovery.k8s.io/v1, what kubectl 1.32's
``describe service`` reads), as Kubernetes' EndpointSliceController does, in its own work queue:

- Slices are split like the subsets: one per (address type, set of resolved ports), at most
  ``MAX_ENDPOINTS_PER_SLICE`` endpoints each; a Service with no endpoints gets one empty
  placeholder slice. Names are deterministic, ``<service>-<5 chars hashed from the Service's uid,
  address type, ports and chunk>``, so a lagging cache can never make a duplicate.
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
from bus.informer import BY_NAMESPACE, Informer, deep_copy, key_of

log = logging.getLogger(__name__)

MANAGED_BY = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TERMINAL_PHASES = ("Succeeded", "Failed")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER_NAME = "endpointslice-controller.k8s.io"
SLICE_API_VERSION = "discovery.k8s.io/v1"
MAX_ENDPOINTS_PER_SLICE = 100
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what generateName's random suffixes use


def setup(ctx) -> list:
    inf = ctx.informers
    workers = int(ctx.option("endpoints-workers", 4))
    return [EndpointsController(ctx.client, inf.informer("services"), inf.informer("pods"),
                                inf.informer("endpoints"), workers).controller,
            EndpointSliceController(ctx.client, inf.informer("services"), inf.informer("pods"),
                                    inf.informer("endpointslices"), workers).controller]


# ---- pure logic ------------------------------------------------------------------------------


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def selector_of(svc: dict) -> dict | None:
    """The Service's pod selector, or None when this controller must leave its Endpoints alone."""
    spec = _spec(svc)
    sel = spec.get("selector")
    if not sel or spec.get("type") == "ExternalName":
        return None
    return sel


def selects(selector: dict, pod: dict) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def in_endpoints(pod: dict, publish_not_ready: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints."""
    status = pod.get("status") or {}
    if status.get("phase") in TERMINAL_PHASES or not status.get("podIP"):
        return False
    return publish_not_ready or not (pod.get("metadata") or {}).get("deletionTimestamp")


def find_port(pod: dict, svc_port: dict) -> int | None:
    """The pod's port for a Service port: a number as is, a name looked up in the pod's container
    ports (same protocol); None when the pod has no such port."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target or svc_port.get("port")
    if isinstance(target, str):
        if target.isdigit():
            return int(target)
        proto = svc_port.get("protocol") or "TCP"
        for c in _spec(pod).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                    return p.get("containerPort")
    return None


def address_of(pod: dict, svc: dict) -> dict:
    meta, spec = pod.get("metadata") or {}, _spec(pod)
    addr: dict[str, Any] = {"ip": (pod.get("status") or {}).get("podIP")}
    smeta = svc.get("metadata") or {}
    if (spec.get("hostname") and spec.get("subdomain") == smeta.get("name")
            and meta.get("namespace") == smeta.get("namespace")):
        addr["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                         "uid": meta.get("uid")}
    return addr


def _port_key(p: dict) -> tuple:
    return (p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP", p.get("appProtocol") or "")


def _endpoint_port(svc_port: dict, number: int) -> dict:
    out: dict[str, Any] = {"port": number, "protocol": svc_port.get("protocol") or "TCP"}
    if svc_port.get("name"):
        out["name"] = svc_port["name"]
    if svc_port.get("appProtocol"):
        out["appProtocol"] = svc_port["appProtocol"]
    return out


def _addr_key(a: dict) -> tuple:
    ref = a.get("targetRef") or {}
    return (a.get("ip") or "", a.get("hostname") or "", a.get("nodeName") or "", ref.get("namespace") or "",
            ref.get("name") or "", ref.get("uid") or "")


def compute_subsets(svc: dict, pods: Iterable[dict]) -> list[dict]:
    """The Endpoints subsets of ``svc`` given the pods its selector matches (pure; canonical order)."""
    spec = _spec(svc)
    publish = bool(spec.get("publishNotReadyAddresses"))
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    headless = spec.get("clusterIP") == "None"
    # (address key, ready) -> (address, {port keys}) ; port key -> port
    served: dict[tuple, tuple[dict, set]] = {}
    port_of: dict[tuple, dict] = {}
    for pod in pods:
        if not in_endpoints(pod, publish):
            continue
        addr = address_of(pod, svc)
        ready = publish or is_ready(pod)
        if not ports:
            if headless:
                served.setdefault((_addr_key(addr), ready), (addr, set()))
            continue
        for sp in ports:
            number = find_port(pod, sp)
            if not number:
                continue
            ep = _endpoint_port(sp, number)
            port_of[_port_key(ep)] = ep
            served.setdefault((_addr_key(addr), ready), (addr, set()))[1].add(_port_key(ep))
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for (_, ready), (addr, port_keys) in served.items():
        g = groups.setdefault(tuple(sorted(port_keys)), {"addresses": [], "notReadyAddresses": []})
        g["addresses" if ready else "notReadyAddresses"].append(addr)
    return canonical([{**{k: v for k, v in g.items() if v}, **({"ports": [port_of[k] for k in pk]} if pk else {})}
                      for pk, g in groups.items()])


def canonical(subsets: Any) -> list[dict]:
    """Subsets in a comparable form: addresses sorted by IP, ports sorted, subsets sorted, no
    empty lists (what the API stores and what this controller computes compare equal)."""
    out = []
    for s in subsets or []:
        sub: dict[str, Any] = {}
        for field in ("addresses", "notReadyAddresses"):
            addrs = [_clean_addr(a) for a in s.get(field) or []]
            if addrs:
                sub[field] = sorted(addrs, key=_addr_key)
        ports = [{k: v for k, v in {"name": p.get("name"), "port": p.get("port"),
                                    "protocol": p.get("protocol") or "TCP",
                                    "appProtocol": p.get("appProtocol")}.items() if v not in (None, "")}
                 for p in s.get("ports") or []]
        if ports:
            sub["ports"] = sorted(ports, key=_port_key)
        if sub.get("addresses") or sub.get("notReadyAddresses"):
            out.append(sub)
    return sorted(out, key=lambda s: ([_addr_key(a) for a in s.get("addresses") or []],
                                      [_addr_key(a) for a in s.get("notReadyAddresses") or []],
                                      [_port_key(p) for p in s.get("ports") or []]))


def _clean_addr(a: dict) -> dict:
    out = {k: a[k] for k in ("ip", "hostname", "nodeName") if a.get(k)}
    ref = a.get("targetRef")
    if isinstance(ref, dict):
        out["targetRef"] = {k: ref[k] for k in ("kind", "namespace", "name", "uid") if ref.get(k)}
    return out


def desired_labels(svc: dict) -> dict:
    """The Service's labels, plus the headless and managed-by labels Kubernetes sets."""
    labels = dict((svc.get("metadata") or {}).get("labels") or {})
    if _spec(svc).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    labels[MANAGED_BY] = CONTROLLER_NAME
    return labels


def _pod_view(pod: dict) -> tuple:
    """What about a pod can change its Service's Endpoints."""
    meta, spec, status = pod.get("metadata") or {}, _spec(pod), pod.get("status") or {}
    return (meta.get("labels"), bool(meta.get("deletionTimestamp")), status.get("podIP"), status.get("phase"),
            is_ready(pod), spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"),
            [c.get("ports") for c in spec.get("containers") or []])


# ---- pure logic: EndpointSlices ----------------------------------------------------------------


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
    publish = bool(_spec(svc).get("publishNotReadyAddresses"))
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
            "ports": sorted((_slice_port(p) for p in es.get("ports") or []), key=_port_key)}


def slice_labels(svc: dict) -> dict:
    """The Service's labels, plus the service-name, managed-by and headless labels Kubernetes sets."""
    labels = {k: v for k, v in ((svc.get("metadata") or {}).get("labels") or {}).items() if k != MANAGED_BY}
    if _spec(svc).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    labels[SERVICE_NAME_LABEL] = (svc.get("metadata") or {}).get("name")
    labels[SLICE_MANAGED_BY] = SLICE_CONTROLLER_NAME
    return labels


def slice_name(svc: dict, address_type: str, port_keys: tuple, chunk: int) -> str:
    """``<service>-<5 chars>``: deterministic for one Service (uid), address type, port set and chunk."""
    meta = svc.get("metadata") or {}
    digest = hashlib.sha256(repr((meta.get("uid"), address_type, port_keys, chunk)).encode()).digest()
    suffix = "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:5])
    return f"{meta.get('name')}-{suffix}"


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
    meta, spec = svc.get("metadata") or {}, _spec(svc)
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
                ep_port = _slice_port(_endpoint_port(sp, number))
                served[_port_key(ep_port)] = ep_port
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


class EndpointsController:
    def __init__(self, client: Any, services: Informer, pods: Informer, endpoints: Informer, workers: int = 4) -> None:
        self.client, self.services, self.pods, self.endpoints = client, services, pods, endpoints
        self.controller = Controller("endpoints", self.reconcile, workers)
        self.controller.watches(services)
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_added)
        endpoints.add_handler(self._endpoints_changed, lambda old, new: self._endpoints_changed(new),
                              self._endpoints_changed)
        self.controller.informers.extend([pods, endpoints])

    # -- events → service keys

    def _enqueue_for(self, pod: dict) -> None:
        ns = (pod.get("metadata") or {}).get("namespace")
        for svc in self.services.by_index(BY_NAMESPACE, ns) if ns else ():
            sel = selector_of(svc)
            if sel is not None and selects(sel, pod):
                self.controller.queue.add(key_of(svc))

    def _pod_added(self, pod: dict) -> None:
        self._enqueue_for(pod)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if _pod_view(old) == _pod_view(new):
            return
        self._enqueue_for(new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self._enqueue_for(old)

    def _endpoints_changed(self, ep: dict) -> None:
        """Someone else changed (or deleted) Endpoints we keep, or ours lost their Service."""
        key = key_of(ep)
        svc = self.services.get_by_key(key)
        ours = ((ep.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME
        if (svc is not None and selector_of(svc) is not None) or (svc is None and ours):
            self.controller.queue.add(key)

    # -- reconcile

    async def reconcile(self, key: str) -> None:
        ns, name = subjects.parse_key(key)
        svc = self.services.get_by_key(key)
        cur = self.endpoints.get_by_key(key)
        if svc is None:
            if cur is not None:
                await self._delete(ns, name)
            return
        selector = selector_of(svc)
        if selector is None:
            return  # hand-written Endpoints (or none): not ours
        pods = [p for p in self.pods.by_index(BY_NAMESPACE, ns) if selects(selector, p)]
        subsets = compute_subsets(svc, pods)
        labels = desired_labels(svc)
        if cur is not None and canonical(cur.get("subsets")) == subsets and \
                ((cur.get("metadata") or {}).get("labels") or {}) == labels:
            return
        if cur is None:
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": labels}, "subsets": subsets}
            await self.client.create(body)
            return
        new = deep_copy(cur)
        new["metadata"]["labels"] = labels
        new["subsets"] = subsets
        await self.client.update(new)  # a Conflict requeues with backoff; the cache then has the latest

    async def _delete(self, ns: str | None, name: str) -> None:
        try:
            await self.client.delete("endpoints", name, ns)
        except errors.NotFound:
            pass


class EndpointSliceController:
    """Keeps every selector Service's EndpointSlices (``compute_slices``); its own queue of Service keys."""

    def __init__(self, client: Any, services: Informer, pods: Informer, slices: Informer, workers: int = 4) -> None:
        self.client, self.services, self.pods, self.slices = client, services, pods, slices
        self.controller = Controller("endpointslices", self.reconcile, workers)
        self.controller.watches(services)
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_added)
        slices.add_handler(self._slice_changed, lambda old, new: (self._slice_changed(old), self._slice_changed(new)),
                           self._slice_changed)
        self.controller.informers.extend([pods, slices])

    def _enqueue_for(self, pod: dict) -> None:
        ns = (pod.get("metadata") or {}).get("namespace")
        for svc in self.services.by_index(BY_NAMESPACE, ns) if ns else ():
            sel = selector_of(svc)
            if sel is not None and selects(sel, pod):
                self.controller.queue.add(key_of(svc))

    def _pod_added(self, pod: dict) -> None:
        self._enqueue_for(pod)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if _pod_view(old) == _pod_view(new):
            return
        self._enqueue_for(new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self._enqueue_for(old)

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
            pods = [p for p in self.pods.by_index(BY_NAMESPACE, ns) if selects(selector, p)]
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
