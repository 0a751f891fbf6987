"""What exists from the first start: the system namespaces, the ``kubernetes`` Service in
``default`` (the first address of the service CIDR, port 443 ``https`` → 6443, no selector) and the
ServiceAccount token key pair on this API server's disk (``master/apiserver/tokenrequest.py``); the Secret
earlier versions kept an HMAC signing key in (``kube-system/k8n-signing-key``) is deleted; and the bootstrap RBAC
policy (``master/apiserver/rbac_policy.py``: ClusterRoles and ClusterRoleBindings, created when missing); the
IngressClasses ``k8n`` (the default) and ``nginx`` (``master/apiserver/ingressclass.py``)."""

from __future__ import annotations

import logging

from bus import errors
from bus.models import to_dict
from bus.resources import by_plural
from bus.store import NatsStore
from bus.validation import validate_object
from master.apiserver import ingressclass, priority, rbac_policy, service_alloc, strategy, tokenrequest
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
    await ensure_kubernetes_endpoints(store)
    await ensure_rbac(store)
    await priority.ensure_system_classes(store)
    await ingressclass.ensure_built_in_classes(store)
    tokenrequest.authority()  # the signing key pair: loaded, or made on the first start
    await tokenrequest.remove_legacy_signing_key(store)


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


async def ensure_kubernetes_endpoints(store: NatsStore) -> None:
    """Create ``default/kubernetes`` Endpoints (empty) unless they exist: the gateway fills in its address
    (``master/gateway/endpoint.py``), so it needs the right to update that one object, not to create Endpoints."""
    res = by_plural("endpoints")
    obj = {"apiVersion": "v1", "kind": "Endpoints",
           "metadata": {"name": KUBERNETES_SERVICE, "namespace": "default", "labels": dict(KUBERNETES_LABELS)}}
    strategy.prepare_create(res, obj, "default")
    try:
        await store.create(res, "default", KUBERNETES_SERVICE, obj)
    except errors.AlreadyExists:
        pass


async def ensure_rbac(store: NatsStore) -> None:
    """Create the bootstrap ClusterRoles and ClusterRoleBindings that are missing, and add to existing ones
    what a newer policy has that they lack (``rbac_policy.reconcile``; never removing anything, and leaving
    alone objects annotated ``rbac.authorization.kubernetes.io/autoupdate: "false"``). Racing apiservers:
    the loser of a create sees AlreadyExists, of an update a Conflict; both are fine."""
    for res, obj in rbac_policy.bootstrap_objects():
        name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
        try:
            existing = await store.get(res, ns, name)
        except errors.NotFound:
            model, causes = validate_object(res, obj)
            assert not causes, causes
            body = to_dict(model)
            strategy.prepare_create(res, body, ns)
            try:
                await store.create(res, ns, name, body)
            except errors.AlreadyExists:
                pass
            continue
        want = rbac_policy.reconcile(obj, existing)
        if want is None:
            continue
        revision = int(existing["metadata"]["resourceVersion"])
        try:
            await store.update(res, ns, name, want, revision)
            log.info("bootstrap RBAC: %s %s reconciled", res.kind, name)
        except (errors.Conflict, errors.NotFound):
            pass
