"""Which ingress controllers are running, and so which addresses each Ingress's ``status.loadBalancer`` lists.

Every controller holds a Lease ``kube-system/k8n-ingress-<node>`` (renewed every :data:`RENEW_SECONDS`, valid for
:data:`LEASE_SECONDS`) whose annotations say the addresses it serves on and the IngressClasses it serves. Each one
computes the same answer from the live Leases (:func:`addresses_by_class`), so several controllers agree on every
Ingress's status instead of overwriting each other's address; a stopped controller deletes its Lease, a dead one's
expires, and its address leaves the status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bus.meta import format_time, parse_time

NAMESPACE = "kube-system"
PREFIX = "k8n-ingress-"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "ingress-controller"
SELECTOR = f"{COMPONENT_LABEL}={COMPONENT}"
ADDRESSES = "ingress.k8n.io/addresses"
CLASSES = "ingress.k8n.io/classes"
LEASE_SECONDS = 30
RENEW_SECONDS = 10.0


def lease_name(node: str) -> str:
    return PREFIX + node


def lease(node: str, addresses: list[str], classes: frozenset[str], now: float | None = None) -> dict:
    """This controller's Lease (``renewTime`` now)."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": lease_name(node), "namespace": NAMESPACE,
                         "labels": {COMPONENT_LABEL: COMPONENT, "app.kubernetes.io/managed-by": "k8n"},
                         "annotations": {ADDRESSES: ",".join(addresses), CLASSES: ",".join(sorted(classes))}},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": format_time(now, micro=True)}}


def live(obj: dict, now: datetime) -> bool:
    spec = obj.get("spec") or {}
    renewed = parse_time(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds")
    return renewed is not None and isinstance(duration, int) and renewed + timedelta(seconds=duration) > now


def addresses_by_class(leases: list[dict], now: datetime | None = None) -> dict[str, list[str]]:
    """IngressClass name → the sorted, distinct addresses of the live controllers serving it."""
    now = now or datetime.now(timezone.utc)
    out: dict[str, set[str]] = {}
    for obj in leases:
        meta = obj.get("metadata") or {}
        if not (meta.get("name") or "").startswith(PREFIX) or not live(obj, now):
            continue
        notes = meta.get("annotations") or {}
        addrs = {a for a in (notes.get(ADDRESSES) or "").split(",") if a}
        for cls in (notes.get(CLASSES) or "").split(","):
            if cls:
                out.setdefault(cls, set()).update(addrs)
    return {cls: sorted(a) for cls, a in out.items()}
