"""The ingress controller loop: informers on Ingresses, IngressClasses, Services, EndpointSlices and
``kubernetes.io/tls`` Secrets; any change adds one debounced work-queue key; a sync builds a new
:class:`~node.ingress.config.Plan` from the caches (level-triggered, never from an event) and applies it to
the haproxy it runs: runtime-API commands when they are enough (endpoints, map entries, canary weights: no
reload; the same state is then written as a validated generation in the background, so that back-to-back
changes never wait for ``haproxy -c``), else a validated hitless reload. Then it reports.

- A plan error of one Ingress (missing Service or port, bad canary, duplicate path, bad TLS Secret) leaves that
  Ingress (or path) out of the plan and becomes a Warning event ``InvalidIngress`` on it, once per distinct
  message set; the others are served.
- A rendered configuration haproxy -c refuses keeps the running one (the plan is not advanced; the next change
  tries again) and is logged: the pure renderer should never produce one.
- ``status.loadBalancer.ingress`` of every Ingress of a served class is set to the addresses given to the
  controller (``{"ip": …}`` or ``{"hostname": …}``) with a merge patch of the status subresource, only when
  it differs.

It runs as the bus identity ``ingress`` (``bus.roles``: list/watch of the buckets ``ingresses``,
``ingressclasses``, ``services``, ``endpointslices`` and ``secrets`` — a bucket cannot be filtered by Secret type, so
it holds every Secret's bytes on the wire, like ingress-nginx's cluster-wide Secret watch — plus API calls) and the
RBAC user ``system:k8n-ingress`` (ClusterRole of that name: read those, update ``ingresses/status``, write events).
``python -m node.ingress`` (``k8n ingress``) runs it; ``k8n up`` starts that on its node."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from pathlib import Path
from typing import Any

from bus import errors
from bus.events import WARNING, EventRecorder
from bus.informer import Informer
from bus.workqueue import WorkQueue, run_workers
from node.ingress import config as C
from node.ingress import presence
from node.ingress.haproxy import HAProxy, InvalidConfig, RuntimeAPIError

log = logging.getLogger(__name__)

KEY = "ingress"  # the one work-queue key: every change resyncs the whole configuration
TLS_SECRETS = "type=kubernetes.io/tls"
EVENT_REASON = "InvalidIngress"
COMPONENT = "k8n-ingress"


def load_balancer(addresses: list[str]) -> list[dict]:
    """status.loadBalancer.ingress for these node addresses (IPs as ``ip``, anything else as ``hostname``)."""
    out = []
    for a in addresses:
        try:
            ipaddress.ip_address(a)
            out.append({"ip": a})
        except ValueError:
            out.append({"hostname": a})
    return out


class IngressController:
    def __init__(self, client: Any, state_dir: str | Path, addresses: list[str], bind_address: str = "0.0.0.0",
                 http_port: int = 80, https_port: int = 443, classes: frozenset[str] = C.SERVED_CLASSES,
                 debounce: float = 0.02, node_name: str = "", haproxy: HAProxy | None = None,
                 default_cert: bytes | None = None) -> None:
        self.client = client
        self.state_dir = str(Path(state_dir).absolute())
        self.addresses = list(addresses)
        self.bind_address, self.http_port, self.https_port = bind_address, http_port, https_port
        self.classes = classes
        self.debounce = debounce
        self.haproxy = haproxy or HAProxy(self.state_dir)
        self.default_cert = default_cert or C.self_signed_pem()
        self.node_name = node_name or "default"
        self.recorder = EventRecorder(client, COMPONENT, node_name or None)
        self.plan: C.Plan | None = None  # what haproxy runs (None: not started)
        self.reported: dict[str, tuple[str, ...]] = {}  # Ingress key → the error messages last reported
        self.reloads = self.runtime_updates = self.invalid_configs = self.syncs = 0
        self.last_apply: tuple[str, float] = ("", 0.0)  # ("start"|"reload"|"runtime"|"none", seconds to effective)
        self.last_build = self.last_sync = 0.0  # seconds: the plan; the whole sync (apply, events, status)
        self.informers: dict[str, Informer] = {}
        self.queue: WorkQueue | None = None
        self._task: asyncio.Task | None = None
        self._persister: asyncio.Task | None = None
        self._pending: tuple | None = None
        self._lease: dict | None = None  # this controller's presence Lease as last written
        self._renewer: asyncio.Task | None = None

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self, timeout: float = 30.0) -> None:
        """Watch, wait for the caches, apply the first configuration (haproxy starts), then keep it in sync."""
        self.queue = WorkQueue("ingress")
        for res in ("ingresses", "ingressclasses", "services", "endpointslices", "secrets"):
            inf = Informer(self.client, res, field_selector=TLS_SECRETS if res == "secrets" else None)
            inf.add_handler(on_add=self.changed, on_update=self.changed, on_delete=self.changed)
            self.informers[res] = inf
        leases = Informer(self.client, "leases", namespace=presence.NAMESPACE, label_selector=presence.SELECTOR)
        leases.add_handler(on_add=self.changed, on_update=self.changed, on_delete=self.changed)
        self.informers["leases"] = leases
        synced = await asyncio.gather(*(i.start(timeout=timeout) for i in self.informers.values()))
        if not all(synced):
            await self.stop()
            raise TimeoutError("ingress controller: caches did not sync")
        try:
            await self._renew()  # present before the first status is written
            await self.sync(KEY)  # the first configuration, before serving
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(run_workers(self.queue, self.sync), name="ingress-controller")
        self._renewer = asyncio.create_task(self._renew_loop(), name="ingress-presence")

    async def stop(self, stop_haproxy: bool = True) -> None:
        if self.queue is not None:
            self.queue.shutdown()
        for task in (self._task, self._renewer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._renewer = None
        if stop_haproxy and self._lease is not None:  # its address leaves every status at once
            try:
                await self.client.delete("leases", self._lease["metadata"]["name"], presence.NAMESPACE)
            except Exception as e:  # noqa: BLE001 - it expires anyway
                log.warning("ingress: could not delete its Lease (it expires in %ds): %s", presence.LEASE_SECONDS, e)
            self._lease = None
        for inf in self.informers.values():
            await inf.stop()
        await self._persisted()
        if stop_haproxy:
            await asyncio.to_thread(self.haproxy.stop)
            self.plan = None

    def changed(self, *_: Any) -> None:
        if self.queue is not None:
            self.queue.add_after(KEY, self.debounce)

    # --- presence (node/ingress/presence.py) ----------------------------------------------------------
    async def _renew(self) -> None:
        """Create or renew this controller's Lease."""
        want = presence.lease(self.node_name, self.addresses, self.classes)
        cur = self._lease
        try:
            if cur is None:
                try:
                    cur = await self.client.get("leases", want["metadata"]["name"], presence.NAMESPACE)
                except errors.NotFound:
                    self._lease = await self.client.create(want)
                    return
            cur = {**cur, "metadata": {**cur["metadata"], "labels": want["metadata"]["labels"],
                                       "annotations": want["metadata"]["annotations"]}, "spec": want["spec"]}
            self._lease = await self.client.update(cur)
        except (errors.Conflict, errors.NotFound):
            self._lease = None  # read it again next time
            raise

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(presence.RENEW_SECONDS)
            try:
                await self._renew()
            except Exception as e:  # noqa: BLE001 - try again next period (the Lease outlives two misses)
                log.warning("ingress: renewing its Lease failed: %s", e)
            self.changed()  # another controller's Lease may have expired meanwhile

    # --- one sync -----------------------------------------------------------------------------------
    def inputs(self) -> C.Inputs:
        i = self.informers
        return C.Inputs(ingresses=i["ingresses"].list(), ingress_classes=i["ingressclasses"].list(),
                        services=i["services"].list(), endpoint_slices=i["endpointslices"].list(),
                        secrets=i["secrets"].list(), classes=self.classes, state_dir=self.state_dir,
                        bind_address=self.bind_address, http_port=self.http_port, https_port=self.https_port,
                        default_cert=self.default_cert)

    async def sync(self, _key: Any = KEY) -> None:
        t0 = time.monotonic()
        inputs = self.inputs()
        plan = C.build(inputs, self.plan)
        self.syncs += 1
        self.last_build = time.monotonic() - t0
        await self._apply(plan)
        await self._report(plan)
        await self._write_status(inputs)
        self.last_sync = time.monotonic() - t0

    async def _apply(self, plan: C.Plan) -> None:
        files = C.render_plan(plan)  # ValueError: the operator's settings (ports, address) are wrong
        t0 = time.monotonic()
        cmds = None if self.plan is None else C.runtime_commands(self.plan, plan)
        how = "start" if self.plan is None else "reload" if cmds is None else "runtime" if cmds else "none"
        if cmds:
            try:  # effective now; the same state is written as a validated generation behind it
                await asyncio.to_thread(self.haproxy.runtime, cmds)
                self.runtime_updates += 1
                self._persist(files)
            except RuntimeAPIError as e:  # the running state is unknown now: a reload sets all of it
                log.warning("ingress: runtime API refused a change (%s); reloading", e)
                how = "reload"
        if how in ("start", "reload"):
            await self._persisted()  # one writer of generations at a time
            try:
                if how == "start":
                    await asyncio.to_thread(self.haproxy.start, *files)
                else:
                    await asyncio.to_thread(self.haproxy.reload, *files)
                    self.reloads += 1
            except InvalidConfig as e:
                self.invalid_configs += 1
                log.error("ingress: haproxy refused the generated configuration, the running one stays: %s", e)
                return
        self.plan = plan
        self.last_apply = (how, time.monotonic() - t0)
        if how != "none":
            log.debug("ingress: %s effective in %.1f ms", how, self.last_apply[1] * 1000)

    def _persist(self, files: tuple) -> None:
        """Write ``files`` (the state the runtime API just set) as a validated generation, so that a later reload
        or a master re-exec starts from it; in the background (haproxy -c takes tens of ms), the latest only."""
        self._pending = files
        if self._persister is None or self._persister.done():
            self._persister = asyncio.create_task(self._persist_loop(), name="ingress-persist")

    async def _persist_loop(self) -> None:
        while self._pending is not None:
            files, self._pending = self._pending, None
            try:
                await asyncio.to_thread(self.haproxy.update, *files, [])
            except Exception as e:  # noqa: BLE001 - the running haproxy has the state; only its files lag
                log.error("ingress: writing the configuration after a runtime change failed: %s", e)

    async def _persisted(self) -> None:
        if self._persister is not None:
            await asyncio.gather(self._persister, return_exceptions=True)
            self._persister = None

    async def _report(self, plan: C.Plan) -> None:
        """A Warning event per Ingress whose errors changed since they were last reported."""
        by_key: dict[str, list[str]] = {}
        for where, msg in plan.errors:
            kind, _, key = where.partition("/")
            if kind == "Ingress":
                by_key.setdefault(key, []).append(msg)
        for key in list(self.reported):
            if key not in by_key:
                del self.reported[key]
        ings = self.informers["ingresses"]
        for key, msgs in by_key.items():
            t = tuple(msgs)
            if self.reported.get(key) == t:
                continue
            ns, _, name = key.partition("/")
            obj = ings.get(ns, name)
            if obj is None:
                continue
            self.reported[key] = t
            ref = {**obj, "apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}
            await self.recorder.event(ref, WARNING, EVENT_REASON, "; ".join(msgs))

    async def _write_status(self, inputs: C.Inputs) -> None:
        """status.loadBalancer of each Ingress of a served class: the addresses of every live controller serving
        its class (their Leases), this one's always among them."""
        by_class = presence.addresses_by_class(self.informers["leases"].list())
        failed = None
        for ing in inputs.ingresses:
            cls = C.ingress_class(ing, inputs.ingress_classes)
            if cls not in self.classes:
                continue
            want = load_balancer(sorted(set(by_class.get(cls, ())) | set(self.addresses)))
            meta = ing.get("metadata") or {}
            have = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if have == want:
                continue
            try:
                await self.client.patch("ingresses", meta["name"], {"status": {"loadBalancer": {"ingress": want}}},
                                        meta.get("namespace"), subresource="status")
            except errors.NotFound:
                pass
            except Exception as e:  # noqa: BLE001 - the others still get theirs; the sync is retried
                failed = e
        if failed is not None:
            raise failed
