"""What exists from the first start: the system namespaces and the ``kubernetes`` Service in
``default`` (the first address of the service CIDR, port 443 ``https`` → 6443, no selector)."""

from __future__ import annotations

import logging

from bus import errors
from bus.models import to_dict
from bus.resources import by_plural
from bus.store import NatsStore
from bus.validation import validate_object
from master.apiserver import service_alloc, strategy
from master.apiserver.admission import SYSTEM_NAMESPACES

log = logging.getLogger(__name__)

KUBERNETES_SERVICE = "kubernetes"
KUBERNETES_LABELS = {"component": "apiserver", "provider": "kubernetes"}


async def bootstrap(store: NatsStore) -> None:
    res = by_plural("namespaces")
    for name in SYSTEM_NAMESPACES:
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
        strategy.prepare_create(res, obj, None)
        try:
            await store.create(res, None, name, obj)
        except errors.AlreadyExists:
            pass
    await ensure_kubernetes_service(store)


def kubernetes_service() -> dict:
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": KUBERNETES_SERVICE, "namespace": "default", "labels": dict(KUBERNETES_LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": service_alloc.first_address(), "sessionAffinity": "None",
                     "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 6443}]}}
    model, causes = validate_object(by_plural("services"), body)
    assert not causes, causes
    return to_dict(model)


async def ensure_kubernetes_service(store: NatsStore) -> None:
    """Create ``default/kubernetes`` unless it exists. Several apiservers may race here: the IP's
    claim may already name ``default/kubernetes`` (another replica, or one that died before its
    write); it is adopted, and the loser of the create sees AlreadyExists."""
    res = by_plural("services")
    try:
        await store.get(res, "default", KUBERNETES_SERVICE)
        return
    except errors.NotFound:
        pass
    obj = kubernetes_service()
    strategy.prepare_create(res, obj, "default")
    alloc = service_alloc.Allocator(store)
    try:
        claimed = await alloc.fill(None, obj, adopt=True)
    except errors.ApiError as e:
        log.error("the kubernetes Service cannot have %s: %s", obj["spec"]["clusterIP"], e)
        return
    try:
        await store.create(res, "default", KUBERNETES_SERVICE, obj)
    except errors.AlreadyExists:
        pass  # another apiserver made it: the claim (by namespace/name) is that Service's
    except BaseException:
        await alloc.release_all(claimed, service_alloc.Owner.of(obj))
        raise
