"""The cluster's storage schema (bus.schema) and ``k8n upgrade plan|apply``.

:class:`StorageSchema` keeps the store's write schema at what ``kube-system/k8n-storage`` says (made on the first
start: :data:`bus.schema.CURRENT` for a new cluster, :data:`bus.schema.LEGACY` for one an older k8n made), and
follows its changes, so that every replica switches when ``k8n upgrade apply`` raises it.

:class:`Upgrades` serves ``bus.subjects.upgrade_subject``:

- ``plan``: this API server's version; every component connected to the bus with the version its connection says
  (``bus.natsconns``, through the system account: the API server holds the cluster's keys) and whether the
  version-skew policy (bus.skew) allows it; every Node's agent version; the storage schema, the newest one, and
  what keeps it from being raised (a component or a node agent older than the schema's reader).
- ``apply``: refused (409) while anything keeps the schema back; else raises it and rewrites every object still
  stored in an older schema (a compare-and-set write of the same object, as Kubernetes' storage version migration;
  an object written meanwhile is read again), bucket by bucket, and says how many it rewrote.

Authorized as ``update`` of ConfigMaps in kube-system and ``create`` on the non-resource URL ``/k8n/upgrade``
(cluster-admin may; a ClusterRole can grant it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from nats.aio.msg import Msg
import nats.js.errors

import bus
from bus import errors, schema, skew, subjects
from bus.natsauth import AuthError
from bus.rbac import Attributes, forbidden_error
from bus.resources import Resource, bucket_stand_in, by_plural
from bus.roles import APISERVER, CONTROLLER_MANAGER, GATEWAY, INGRESS, NODE, NODEVIEW, SCHEDULER
from master.apiserver import strategy
from master.apiserver.backup import kv_streams
from master.apiserver.special import answer, payload_of

log = logging.getLogger(__name__)

UPGRADE_PATH = "/k8n/upgrade"
NAMESPACE = "kube-system"
COMPONENT_ROLES = (APISERVER, CONTROLLER_MANAGER, SCHEDULER, NODEVIEW, GATEWAY, INGRESS, NODE)
BATCH = 256  # keys read per batched direct get
PASSES = 5  # scans of a bucket at most (objects written in the old schema meanwhile are rewritten by the next)
RETRY = 1.0  # seconds between tries to follow the storage ConfigMap after a failed watch


def _configmaps() -> Resource:
    return by_plural("configmaps")


def storage_configmap(schema_version: int) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": schema.STORAGE_CONFIGMAP, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": "k8n"}},
            "data": {schema.STORAGE_KEY: str(schema_version)}}


def schema_of(cm: dict) -> int:
    raw = (cm.get("data") or {}).get(schema.STORAGE_KEY, str(schema.LEGACY))
    try:
        return int(raw)
    except ValueError:
        raise errors.invalid("ConfigMap", schema.STORAGE_CONFIGMAP, [
            errors.Cause(f"data[{schema.STORAGE_KEY}]", f"Invalid value: {raw!r}: must be an integer")]) from None


class StorageSchema:
    """The store's write schema, as the cluster's storage ConfigMap says."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._task: asyncio.Task | None = None
        self._revision = 0

    @property
    def current(self) -> int:
        return self.store.write_schema

    def _set(self, cm: dict) -> None:
        version = schema_of(cm)
        if version > schema.CURRENT:
            raise skew.SkewError(f"the cluster stores objects in schema {version}, newer than this API server "
                                 f"(k8n {bus.__version__}) reads ({schema.CURRENT}): upgrade it")
        if version != self.store.write_schema:
            log.info("objects are written in storage schema %d", version)
        self.store.write_schema = version
        self._revision = max(self._revision, int(cm["metadata"].get("resourceVersion") or 0))

    async def ensure(self) -> None:
        """Read the storage ConfigMap, making it on the first start (before the bootstrap objects: a cluster without
        the default namespace is new)."""
        res = _configmaps()
        try:
            cm = await self.store.get(res, NAMESPACE, schema.STORAGE_CONFIGMAP, consistent=True)
        except errors.NotFound:
            try:
                await self.store.get(by_plural("namespaces"), None, "default", consistent=True)
                first = schema.LEGACY  # an older k8n made this cluster: its agents may still read only that
            except errors.NotFound:
                first = schema.CURRENT
            obj = storage_configmap(first)
            strategy.prepare_create(res, obj, NAMESPACE)
            self.store.write_schema = first  # itself the first object written in it
            try:
                cm = await self.store.create(res, NAMESPACE, schema.STORAGE_CONFIGMAP, obj)
            except errors.AlreadyExists:
                cm = await self.store.get(res, NAMESPACE, schema.STORAGE_CONFIGMAP, consistent=True)
        self._set(cm)

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="storage-schema")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    async def _follow(self) -> None:
        res = _configmaps()
        while True:
            watch = None
            try:
                watch = await self.store.watch(res, NAMESPACE, since=self._revision or None)
                async for ev in watch:
                    if ev.object.get("metadata", {}).get("name") == schema.STORAGE_CONFIGMAP and ev.type != "DELETED":
                        self._set(ev.object)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a lost watch: read again, then watch again
                log.warning("following the storage schema: %s", e)
                await asyncio.sleep(RETRY)
                try:
                    self._set(await self.store.get(res, NAMESPACE, schema.STORAGE_CONFIGMAP, consistent=True))
                except Exception:  # noqa: BLE001
                    pass
            finally:
                if watch is not None:
                    await watch.stop()


class Upgrades:
    """Serves ``k8n upgrade plan|apply``."""

    def __init__(self, store: Any, storage: StorageSchema, authorizer: Any, user_of: Callable[[str, dict], Any],
                 cluster_auth: Callable[[], Any], bus_url: Callable[[], str]) -> None:
        self.store = store
        self.storage = storage
        self.authorizer = authorizer
        self.user_of = user_of
        self.cluster_auth = cluster_auth
        self.bus_url = bus_url
        self._applying = asyncio.Lock()

    async def serve(self, msg: Msg) -> None:
        await answer(msg, self._serve, "upgrade request")

    async def _serve(self, msg: Msg) -> dict:
        payload = payload_of(msg)
        op = payload.get("op", "plan")
        if op not in ("plan", "apply"):
            raise errors.invalid("Upgrade", "", [errors.Cause(
                "op", f'Unsupported value: {op!r}: supported values: "plan", "apply"', "FieldValueNotSupported")])
        user = self.user_of(msg.subject, payload)
        for attrs in (Attributes.for_resource(user, "update", "configmaps", NAMESPACE, schema.STORAGE_CONFIGMAP),
                      Attributes(user, "create", resource_request=False, path=UPGRADE_PATH)):
            decision = await self.authorizer.authorize_async(attrs, None)
            if not decision.allowed:
                raise forbidden_error(attrs, decision.reason)
        if op == "plan":
            return await self.plan()
        async with self._applying:
            return await self.apply()

    # ---- plan --------------------------------------------------------------------------------------------------

    async def plan(self) -> dict:
        from bus import natsconns

        target = schema.CURRENT
        reader = schema.READERS[target]
        blockers: list[str] = []
        components: list[dict] = []
        try:
            conns = await natsconns.connections(self.bus_url(), self.cluster_auth())
        except (AuthError, errors.ApiError) as e:
            raise errors.unavailable(f"cannot list what is connected to the bus: {e}") from None
        for c in sorted(conns, key=lambda c: (c.role, c.identity, c.address)):
            if c.role not in COMPONENT_ROLES:
                continue
            version = c.version or "0.1.0"  # k8n 0.1 named its connections without a version
            verdict = skew.check(c.role, version, bus.__version__)
            components.append({"identity": c.identity, "version": version, "server": c.server,
                               "address": c.address, "connection": c.name,
                               "skew": "ok" if verdict.ok else verdict.reason})
            if not schema.readable_by(target, version):
                blockers.append(f"{c.identity} at {c.address} runs k8n {version}, which does not read storage "
                                f"schema {target} (k8n {reader} or newer does)")
        nodes: list[dict] = []
        for node in (await self.store.list(by_plural("nodes")))[0]:
            name = node["metadata"]["name"]
            kubelet = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
            version = skew.version_of_kubelet(kubelet)
            nodes.append({"name": name, "kubeletVersion": kubelet, "version": version})
            if version is not None and not schema.readable_by(target, version):
                blockers.append(f"node {name}'s agent reports k8n {version} (upgrade it, or delete the Node if the "
                                "machine is gone)")
        return {"apiserver": bus.__version__, "storageSchema": self.storage.current, "latestSchema": target,
                "components": components, "nodes": nodes,
                "blockers": blockers if self.storage.current < target else []}

    # ---- apply -------------------------------------------------------------------------------------------------

    async def apply(self) -> dict:
        p = await self.plan()
        target = p["latestSchema"]
        if p["blockers"]:
            raise errors.ApiError(409, f"the storage schema stays at {p['storageSchema']}: " + "; ".join(p["blockers"]),
                                  "Conflict")
        if self.storage.current < target:
            await self._raise_schema(target)
        migrated = {}
        for bucket in sorted(await kv_streams(self.store.nc)):
            n = await self.migrate_bucket(bucket_stand_in(bucket), target)
            if n:
                migrated[bucket] = n
        return {**p, "storageSchema": target, "migrated": migrated, "objects": sum(migrated.values())}

    async def _raise_schema(self, target: int) -> None:
        res = _configmaps()
        for _ in range(10):
            cm = await self.store.get(res, NAMESPACE, schema.STORAGE_CONFIGMAP, consistent=True)
            if schema_of(cm) >= target:
                break
            cm.setdefault("data", {})[schema.STORAGE_KEY] = str(target)
            try:
                self.storage._set(await self.store.update(res, NAMESPACE, schema.STORAGE_CONFIGMAP, cm,
                                                          int(cm["metadata"]["resourceVersion"])))
                break
            except errors.Conflict:
                continue
        log.info("storage schema raised to %d", target)

    async def migrate_bucket(self, res: Resource, target: int) -> int:
        """Rewrite every value of ``res``'s bucket stored in a schema older than ``target``; how many."""
        from bus.store import EXPECTED_LAST, _is_delete

        done = 0
        for _ in range(PASSES):
            try:
                _, last = await self.store.last_revision(res)
            except nats.js.errors.NotFoundError:
                return done
            subjs = await self.store._subjects(res, None)
            old = []
            for i in range(0, len(subjs), BATCH):
                found = await self.store._last_at(res, subjs[i:i + BATCH], last)
                old.extend((subj, m) for subj, m in found.items()
                           if not _is_delete(m) and schema.of(m.headers) < target)
            if not old:
                return done
            for subj, m in old:
                body = schema.decode(res.bus_name, m.data, m.headers)
                hdrs = {EXPECTED_LAST: str(int(m.headers["Nats-Sequence"])), **schema.headers_for(target)}
                try:
                    await self.store._publish(subj, schema.encode(res.bus_name, body, target), hdrs)
                    done += 1
                except nats.js.errors.APIError as e:
                    if e.err_code not in (10071, 10164):  # written meanwhile: the next pass looks again
                        raise
        return done


def upgrade_suffix() -> str:
    return subjects.upgrade_subject("")[len(subjects.API_PREFIX) + 1:]
