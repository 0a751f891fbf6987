"""Admission: the namespace lifecycle (objects only in namespaces that exist and are not
terminating), answered from a watched cache with a store read as fallback; the ServiceAccount
step for pods (default account, API-access token volume)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bus import errors
from bus.meta import generate_name
from bus.resources import by_plural
from bus.store import DELETED, NatsStore

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceLifecycle:
    def __init__(self, store: NatsStore) -> None:
        self.store = store
        self.res = by_plural("namespaces")
        self.phase: dict[str, str] = {}
        self.labels: dict[str, dict] = {}  # what Pod Security admission reads, so a pod costs no namespace read
        self.revision: dict[str, int] = {}  # of what the cache holds per namespace
        self._task: asyncio.Task | None = None
        self._watch = None

    async def start(self) -> None:
        items, rv = await self.store.list(self.res)
        self.phase = {o["metadata"]["name"]: (o.get("status") or {}).get("phase", "Active") for o in items}
        self.labels = {o["metadata"]["name"]: o["metadata"].get("labels") or {} for o in items}
        self.revision = {o["metadata"]["name"]: int(o["metadata"].get("resourceVersion") or 0) for o in items}
        self._watch = await self.store.watch(self.res, None, rv)
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                async for ev in self._watch:
                    name = ev.object["metadata"]["name"]
                    if ev.type == DELETED:
                        self.phase.pop(name, None)
                        self.labels.pop(name, None)
                        self.revision.pop(name, None)
                    else:
                        self.observe(ev.object, ev.revision)
                return
            except errors.Gone:
                await self._watch.stop()
                await self.start()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following; admission falls back to reads meanwhile
                log.exception("namespace watch failed")
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._watch:
            await self._watch.stop()

    def observe(self, ns: dict, revision: int | None = None) -> None:
        """Cache a namespace as of ``revision`` (default: its resourceVersion) unless the cache holds a newer one:
        from the watch, and from this server's own writes, so its next request sees them without the watch's lag."""
        meta = ns["metadata"]
        rev = int(meta.get("resourceVersion") or 0) if revision is None else revision
        if rev < self.revision.get(meta["name"], 0):
            return
        self.revision[meta["name"]] = rev
        self.phase[meta["name"]] = (ns.get("status") or {}).get("phase", "Active")
        self.labels[meta["name"]] = meta.get("labels") or {}

    async def labels_of(self, namespace: str) -> dict:
        """The namespace's labels: from the cache, else (a namespace made moments ago through another API
        server) from the store; {} when it does not exist."""
        labels = self.labels.get(namespace)
        if labels is None:
            try:
                ns = await self.store.get(self.res, None, namespace)
            except errors.NotFound:
                return {}
            labels = (ns.get("metadata") or {}).get("labels") or {}
        return labels

    async def admit_create(self, namespace: str | None) -> None:
        if not namespace:
            raise errors.bad_request("a namespace is required")
        phase = self.phase.get(namespace)
        if phase is None:  # the cache may lag a namespace just made through another apiserver
            try:
                ns = await self.store.get(self.res, None, namespace)
            except errors.NotFound:
                raise errors.not_found("namespaces", namespace) from None
            phase = (ns.get("status") or {}).get("phase", "Active")
        if phase == "Terminating":
            raise errors.forbidden("namespaces", namespace,
                                   f"unable to create new content in namespace {namespace} because it is being terminated")


# ---- ServiceAccount admission for pods -----------------------------------------------------------

SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


def token_volume(name: str) -> dict:
    """Kubernetes' projected API-access volume: the account's token, the cluster CA, the namespace."""
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


async def _account(store: NatsStore, accounts: Any, namespace: str, name: str) -> dict | None:
    if accounts is not None:
        return await accounts.get(name, namespace)
    try:
        return await store.get(by_plural("serviceaccounts"), namespace, name)
    except errors.NotFound:
        return None


def _containers(spec: dict) -> list[dict]:
    return [c for k in ("initContainers", "containers") for c in spec.get(k) or [] if isinstance(c, dict)]


async def admit_service_account(store: NatsStore, pod: dict, namespace: str, accounts: Any = None) -> None:
    """Default ``spec.serviceAccountName`` to ``default``, give a pod without ``imagePullSecrets`` the account's,
    and mount the account's token at ``SA_MOUNT_PATH`` in every container, unless automountServiceAccountToken
    (the pod's, else the account's) is false or a container already mounts something there. The account is read
    from ``accounts`` (a :class:`master.apiserver.listers.CachedLister`: cached, else live) when given."""
    spec = pod.setdefault("spec", {})
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account  # the deprecated alias, as Kubernetes' v1 conversion writes it
    automount = spec.get("automountServiceAccountToken")
    if automount is None or not spec.get("imagePullSecrets"):
        sa = await _account(store, accounts, namespace, account)
        if sa is not None:  # else made by the controller shortly; the agent waits for its token
            automount = sa.get("automountServiceAccountToken") if automount is None else automount
            if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
                spec["imagePullSecrets"] = [{"name": (r or {}).get("name") or ""} for r in sa["imagePullSecrets"]]
    containers = _containers(spec)
    if automount is False or any(m.get("mountPath") == SA_MOUNT_PATH
                                 for c in containers for m in c.get("volumeMounts") or []):
        return
    volumes = spec.setdefault("volumes", [])
    taken = {v.get("name") for v in volumes}
    name = next(n for n in iter(lambda: generate_name(SA_VOLUME_PREFIX), None) if n not in taken)
    volumes.append(token_volume(name))
    for c in containers:
        c.setdefault("volumeMounts", []).append({"name": name, "readOnly": True, "mountPath": SA_MOUNT_PATH})
