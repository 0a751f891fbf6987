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

The Services' EndpointSlices are ``endpointslice``'s; what the two share about a Service's pods is
``_servicepods``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from bus import errors, subjects
from bus.controller import Controller
from bus.informer import Informer, deep_copy, key_of
from master.controllers._servicepods import (
    MANAGED_BY, address_of, endpoint_port, find_port, in_endpoints, is_ready, port_key, selected_pods, selector_of,
    service_labels, spec_of, watch_selected_pods,
)

log = logging.getLogger(__name__)

CONTROLLER_NAME = "endpoint-controller"


def setup(ctx) -> list:
    inf = ctx.informers
    return [EndpointsController(ctx.client, inf.informer("services"), inf.informer("pods"), inf.informer("endpoints"),
                                ctx.settings.endpoints_workers).controller]


# ---- pure logic ------------------------------------------------------------------------------


def _addr_key(a: dict) -> tuple:
    ref = a.get("targetRef") or {}
    return (a.get("ip") or "", a.get("hostname") or "", a.get("nodeName") or "", ref.get("namespace") or "",
            ref.get("name") or "", ref.get("uid") or "")


def compute_subsets(svc: dict, pods: Iterable[dict]) -> list[dict]:
    """The Endpoints subsets of ``svc`` given the pods its selector matches (pure; canonical order)."""
    spec = spec_of(svc)
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
            ep = endpoint_port(sp, number)
            port_of[port_key(ep)] = ep
            served.setdefault((_addr_key(addr), ready), (addr, set()))[1].add(port_key(ep))
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
            sub["ports"] = sorted(ports, key=port_key)
        if sub.get("addresses") or sub.get("notReadyAddresses"):
            out.append(sub)
    return sorted(out, key=lambda s: ([_addr_key(a) for a in s.get("addresses") or []],
                                      [_addr_key(a) for a in s.get("notReadyAddresses") or []],
                                      [port_key(p) for p in s.get("ports") or []]))


def _clean_addr(a: dict) -> dict:
    out = {k: a[k] for k in ("ip", "hostname", "nodeName") if a.get(k)}
    ref = a.get("targetRef")
    if isinstance(ref, dict):
        out["targetRef"] = {k: ref[k] for k in ("kind", "namespace", "name", "uid") if ref.get(k)}
    return out


def desired_labels(svc: dict) -> dict:
    """The Service's labels, plus the headless and managed-by labels Kubernetes sets."""
    labels = service_labels(svc)
    labels[MANAGED_BY] = CONTROLLER_NAME
    return labels


# ---- the controller --------------------------------------------------------------------------


class EndpointsController:
    def __init__(self, client: Any, services: Informer, pods: Informer, endpoints: Informer, workers: int = 4) -> None:
        self.client, self.services, self.pods, self.endpoints = client, services, pods, endpoints
        self.controller = Controller("endpoints", self.reconcile, workers)
        self.controller.watches(services)
        watch_selected_pods(self.controller, services, pods)
        endpoints.add_handler(self._endpoints_changed, lambda old, new: self._endpoints_changed(new),
                              self._endpoints_changed)
        self.controller.informers.append(endpoints)

    # -- events → service keys

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
        pods = selected_pods(self.pods, ns, selector)
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
