"""What the Endpoints and EndpointSlice controllers share about a Service's pods: which Services
select a pod (the pod informer's events turned into Service keys), which pods a Service publishes,
and each pod's address and resolved ports."""

from __future__ import annotations

from typing import Any

from bus.controller import Controller
from bus.informer import BY_NAMESPACE, Informer, key_of
from bus.meta import TERMINAL_POD_PHASES, labels_of, namespace_of

MANAGED_BY = "endpoints.kubernetes.io/managed-by"  # the Endpoints controller's label (never copied to slices)
HEADLESS_LABEL = "service.kubernetes.io/headless"


# ---- pure logic ------------------------------------------------------------------------------


def spec_of(obj: dict) -> dict:
    return obj.get("spec") or {}


def selector_of(svc: dict) -> dict | None:
    """The Service's pod selector, or None when its Endpoints (and slices) are not the controllers' to keep."""
    spec = spec_of(svc)
    sel = spec.get("selector")
    if not sel or spec.get("type") == "ExternalName":
        return None
    return sel


def selects(selector: dict, pod: dict) -> bool:
    labels = labels_of(pod)
    return all(labels.get(k) == v for k, v in selector.items())


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def in_endpoints(pod: dict, publish_not_ready: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints."""
    status = pod.get("status") or {}
    if status.get("phase") in TERMINAL_POD_PHASES or not status.get("podIP"):
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
        for c in spec_of(pod).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                    return p.get("containerPort")
    return None


def address_of(pod: dict, svc: dict) -> dict:
    meta, spec = pod.get("metadata") or {}, spec_of(pod)
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


def port_key(p: dict) -> tuple:
    return (p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP", p.get("appProtocol") or "")


def endpoint_port(svc_port: dict, number: int) -> dict:
    out: dict[str, Any] = {"port": number, "protocol": svc_port.get("protocol") or "TCP"}
    if svc_port.get("name"):
        out["name"] = svc_port["name"]
    if svc_port.get("appProtocol"):
        out["appProtocol"] = svc_port["appProtocol"]
    return out


def service_labels(svc: dict) -> dict:
    """The Service's labels, with the headless label set or removed as Kubernetes does."""
    labels = dict(labels_of(svc))
    if spec_of(svc).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def pod_view(pod: dict) -> tuple:
    """What about a pod can change its Service's Endpoints (and slices)."""
    meta, spec, status = pod.get("metadata") or {}, spec_of(pod), pod.get("status") or {}
    return (meta.get("labels"), bool(meta.get("deletionTimestamp")), status.get("podIP"), status.get("phase"),
            is_ready(pod), spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"),
            [c.get("ports") for c in spec.get("containers") or []])


# ---- informers -------------------------------------------------------------------------------


def selected_pods(pods: Informer, ns: str | None, selector: dict) -> list[dict]:
    """The cached pods of namespace ``ns`` that ``selector`` matches (shared dicts: do not mutate)."""
    return [p for p in pods.by_index(BY_NAMESPACE, ns) if selects(selector, p)]


def watch_selected_pods(controller: Controller, services: Informer, pods: Informer) -> None:
    """Enqueue into ``controller`` the key of every Service whose selector matches a pod that is
    added or deleted, or changes in a way that can change its endpoints (a label change enqueues
    the Services of the old labels too); ``pods`` joins the informers it waits for."""

    def enqueue_for(pod: dict) -> None:
        ns = namespace_of(pod)
        for svc in services.by_index(BY_NAMESPACE, ns) if ns else ():
            sel = selector_of(svc)
            if sel is not None and selects(sel, pod):
                controller.queue.add(key_of(svc))

    def on_update(old: dict, new: dict) -> None:
        if pod_view(old) == pod_view(new):
            return
        enqueue_for(new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            enqueue_for(old)

    pods.add_handler(enqueue_for, on_update, enqueue_for)
    if pods not in controller.informers:
        controller.informers.append(pods)
