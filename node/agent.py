"""The node agent (kubelet): registers its Node, renews its Lease, runs the pods bound to it in
Docker with pod networking, reports their status, and serves logs/exec/stats for them.

It watches only its own pods (the node view bucket, keyed by node), so its cost does not grow
with the cluster."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.roles import Identity
from bus import errors, roles, subjects, telemetry
from bus.client import ApiClient
from bus.config import PAUSE_IMAGE, data_dir
from bus.events import EventRecorder
from bus.informer import Informer, revision_of
from bus.meta import micro_now
from bus.resources import NODE_PODS
from bus.settings import SettingsError, setting
from node import admission, eviction
from node import nodeinfo
from node.env import service_env
from node.podworker import Instance, PodWorker
from node.volumes import Volumes

log = logging.getLogger(__name__)
MIN_METRICS_SECONDS = 1.0  # the shortest metrics period (a sample's CPU rate is over one period)


@dataclass
class AgentConfig:
    """The agent's settings. Those made with ``setting`` are its documented flags (``--lease-seconds``), each
    also read from the environment (``K8N_LEASE_SECONDS``); ``python -m node.settings --write`` puts them in
    the README's table."""

    name: str
    server: str
    state_dir: Path
    node_ip: str | None = setting(None, "InternalIP to report (default: the default route's source address)")
    pod_cidr: str | None = setting(None, "this node's pod range (default: a /24 of the cluster CIDR the control "
                                         "plane assigns)")
    cluster_cidr: str = "10.244.0.0/16"
    cluster_domain: str = setting("cluster.local", "DNS domain served by the node's cluster DNS (on the bridge "
                                                   "address, port 53) and searched by pods")
    bridge: str | None = setting(None, "bridge name (default: derived from the node name)")
    network_backend: str = setting("auto", "how pods reach other nodes' pods: `auto` (host-gw to a node on a "
                                           "directly connected network, VXLAN to the others), `host-gw` or "
                                           "`vxlan`; pods' MTU is the node's link's less 50 unless `host-gw`")
    lease_seconds: float = setting(2.0, "seconds between renewals of the node's Lease in `kube-node-lease`")
    status_seconds: float = setting(10.0, "seconds between Node status reports")
    metrics_seconds: float = setting(10.0, "seconds between node and pod metrics on the bus (1 or more; the HPA "
                                           "acts on each pod sample)")
    backoff_initial: float = setting(10.0, "seconds of the first CrashLoopBackOff delay (doubles per restart)")
    backoff_max: float = setting(300.0, "seconds CrashLoopBackOff delays stop growing at")
    resync_seconds: float = 10.0
    relist_seconds: float = 1.0
    pause_image: str = setting(PAUSE_IMAGE, "the image of the container that holds each pod's network "
                                                "namespace")
    drain_on_exit: bool = setting(False, "on a clean stop, remove this node's pod containers, networking and "
                                         "proxy table (`k8n up` sets it)")
    eviction_hard: str = setting(eviction.DEFAULT_EVICTION_HARD, "hard eviction thresholds, `SIGNAL<QUANTITY` or "
                                 "`SIGNAL<PERCENT%` separated by commas (signals: `memory.available`, "
                                 "`allocatableMemory.available`, `nodefs.available`, `nodefs.inodesFree`, "
                                 "`imagefs.available`, `imagefs.inodesFree`, `pid.available`); empty: no eviction")
    eviction_pressure_transition_period: float = setting(
        300.0, "seconds a pressure condition stays True after its thresholds are no longer met")
    eviction_monitoring_seconds: float = setting(10.0, "seconds between two measurements of the eviction signals "
                                                       "(at most one pod is evicted per round)")
    eviction_nodefs_path: str | None = setting(None, "a directory on the filesystem measured as `nodefs` (default: "
                                                     "the agent's state directory, where pods' volumes are)")
    eviction_imagefs_path: str | None = setting(None, "a directory on the filesystem measured as `imagefs` (default: "
                                                      "Docker's data root)")
    image_gc_high_threshold: float = setting(85.0, "percent of imagefs used at which unused images are removed")
    image_gc_low_threshold: float = setting(80.0, "percent of imagefs used image GC frees down to")
    image_minimum_gc_age: float = setting(120.0, "seconds an image is kept after it was first seen, used or not")
    image_gc_seconds: float = setting(300.0, "seconds between two image garbage collections")
    proxy: bool = True  # run the service proxy (node/proxy) in this process
    network_policy: bool = True  # enforce NetworkPolicy (node/netpol) in this process
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from node.network.overlay import BACKENDS

        if not self.metrics_seconds >= MIN_METRICS_SECONDS:
            raise SettingsError(f"--metrics-seconds (K8N_METRICS_SECONDS) {self.metrics_seconds}: expected "
                                f"{MIN_METRICS_SECONDS:g} or more")
        try:
            eviction.parse_thresholds(self.eviction_hard)
        except eviction.ThresholdError as e:
            raise SettingsError(f"--eviction-hard (K8N_EVICTION_HARD): {e}") from None
        if not 0 <= self.image_gc_low_threshold <= self.image_gc_high_threshold <= 100:
            raise SettingsError(f"--image-gc-low-threshold {self.image_gc_low_threshold:g} and "
                                f"--image-gc-high-threshold {self.image_gc_high_threshold:g}: expected "
                                "0 <= low <= high <= 100")
        if self.network_backend not in BACKENDS:
            raise SettingsError(f"--network-backend (K8N_NETWORK_BACKEND) {self.network_backend!r}: expected one "
                                f"of {', '.join(BACKENDS)}")


class Agent:
    def __init__(self, config: AgentConfig, client: ApiClient, runtime: Any = None, network: Any = None) -> None:
        self.config = config
        self.client = client
        self.name = config.name
        self.host_ip = config.node_ip or nodeinfo.host_ip()
        if runtime is None:
            from node.runtime import DockerRuntime

            runtime = DockerRuntime(config.name, pause_image=config.pause_image,
                                    state_dir=config.state_dir / "runtime")
        self.runtime = runtime
        self.network = network
        self.dns: Any = None  # node.dns.NodeDns once started
        self.recorder = EventRecorder(client, "kubelet", config.name)
        self.volumes = Volumes(config.state_dir / "pods", self.get_object, client=client)
        self.workers: dict[str, PodWorker] = {}
        self.informer: Informer | None = None
        self.netpol: Any = None  # node.netpol.PolicyEnforcer once started
        self._tasks: list[asyncio.Task] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._images: set[str] = set()
        self._dead_ids: set[str] = set()
        self._refused: set[tuple] = set()  # pods this agent will not run (node.admission), logged once each
        self._stopping = asyncio.Event()
        self.pressure: Any = None  # node.pressure.PressureManager once started
        self.node_uid: str | None = None

    # ---- helpers the pod workers use (node.podhost.PodHost; NodeServices sees node.services.ServicesHost) --

    async def get_object(self, resource: str, name: str, namespace: str) -> dict:
        return await self.client.get(resource, name, namespace or None)

    async def service_env(self, pod: dict) -> dict[str, str]:
        """The Service variables for the pod's containers (from the DNS view's informer when running)."""
        ns = (pod.get("metadata") or {}).get("namespace") or "default"
        if self.dns is not None and self.dns.view.synced:
            services = self.dns.view.services_in(ns, "default")
        else:
            services = [s for n in {ns, "default"} for s in (await self.client.list("services", n))[0]]
        return service_env(services, ns, (pod.get("spec") or {}).get("enableServiceLinks", True))

    async def image_present(self, image: str) -> bool:
        if image in self._images:
            return True
        ok = await self.runtime.image_present(image)
        if ok:
            self._images.add(image)
        return ok

    async def sandbox_alive(self, sandbox: Any) -> bool:
        """False only on evidence: the relist saw it exited, or saw it before and no longer."""
        return sandbox.id not in self._dead_ids

    def wake_at(self, uid: str, when: float) -> None:
        old = self._timers.pop(uid, None)
        if old:
            old.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - time.time())
        self._timers[uid] = loop.call_later(delay + 0.01, self._wake, uid)

    def _wake(self, uid: str) -> None:
        self._timers.pop(uid, None)
        w = self.workers.get(uid)
        if w:
            w.trigger()

    def forget(self, uid: str) -> None:
        self.workers.pop(uid, None)
        t = self._timers.pop(uid, None)
        if t:
            t.cancel()

    # ---- start / stop ------------------------------------------------------------------------

    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        node = await self.register()
        self.node_uid = node["metadata"].get("uid")
        await self._start_pressure()
        cidr = await self.wait_pod_cidr(node)
        if self.network is None:
            from node.network import PodNetwork

            self.network = PodNetwork(self.name, cidr, self.config.state_dir / "network", bridge=self.config.bridge,
                                      node_ip=self.host_ip, backend=self.config.network_backend)
        await self.network.ensure_node()
        self.proxy = None
        if self.config.proxy:
            from node.proxy import ServiceProxy

            self.proxy = ServiceProxy(self.client, self.name, self.host_ip, self.config.cluster_cidr)
            await self.proxy.start()
        if self.config.network_policy:
            from node.netpol import PolicyEnforcer

            self.netpol = PolicyEnforcer(self.name)  # started by start_pods, once the node's document is read
        if getattr(self.network, "gateway", None):
            from node.dns import NodeDns

            self.dns = NodeDns(self.client, self.network.gateway, domain=self.config.cluster_domain)
            await self.dns.start()  # logs and carries on when it cannot listen
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="lease"))
        self._tasks.append(asyncio.create_task(self._status_loop(), name="node-status"))
        await self.start_pods()
        from node.services import NodeServices

        self.services = NodeServices(self)
        await self.services.start()
        self._tasks.append(asyncio.create_task(self.services.metrics_loop(), name="metrics"))
        self._tasks.append(asyncio.create_task(self._routes_loop(), name="routes"))
        log.info("agent %s ready: podCIDR %s, host IP %s", self.name, cidr, self.host_ip)

    async def _start_pressure(self) -> None:
        """The eviction manager and, with Docker, image GC (node.pressure, node.imagegc)."""
        from node.imagegc import ImageGC
        from node.pressure import PressureManager

        cfg = self.config
        api = getattr(self.runtime, "api", None)
        imagefs = cfg.eviction_imagefs_path
        if imagefs is None and api is not None:
            try:
                imagefs = (await asyncio.to_thread(api.info)).get("DockerRootDir")
            except Exception as e:
                log.warning("Docker's data root: %s", e)
        gc = None
        if api is not None and imagefs:
            gc = ImageGC(api, imagefs, cfg.pause_image, self._pod_images, self._node_event,
                         high=cfg.image_gc_high_threshold, low=cfg.image_gc_low_threshold,
                         min_age=cfg.image_minimum_gc_age)
            self._tasks.append(asyncio.create_task(gc.loop(cfg.image_gc_seconds), name="image-gc"))
        self.pressure = PressureManager(self, eviction.parse_thresholds(cfg.eviction_hard),
                                        nodefs=cfg.eviction_nodefs_path or str(cfg.state_dir), imagefs=imagefs,
                                        monitoring_seconds=cfg.eviction_monitoring_seconds,
                                        transition_period=cfg.eviction_pressure_transition_period, image_gc=gc)
        await self.pressure.measure()
        self._tasks.append(asyncio.create_task(self.pressure.loop(), name="eviction"))

    def _pod_images(self) -> list[str]:
        return [c.get("image", "") for w in list(self.workers.values()) if w.pod
                for key in ("initContainers", "containers") for c in w.spec.get(key) or []]

    async def _node_event(self, type_: str, reason: str, message: str) -> None:
        node = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": self.name, "uid": self.node_uid}}
        await self.recorder.event(node, type_, reason, message)

    async def start_pods(self) -> None:
        """Watch this node's pods, adopt the containers a previous run left, then drive every pod.

        The informer runs while ``adopt()`` awaits Docker and the network, and its handlers are only
        added afterwards: events of that window reach no handler. Adding the handlers replays the
        cache (``on_add`` for every pod still there: updates, e.g. a deletionTimestamp, reach the
        adopted workers), and :meth:`sync_workers` tells the workers whose pod left the cache meanwhile
        that it is gone; the relist loop repeats that check, so a worker converges to the cache even
        if an event was missed."""
        source: Any = self.client.store
        if self.netpol is not None:
            source = self.netpol.source(source)  # the node's policy document arrives with its pods
        self.informer = Informer(source, NODE_PODS, subjects.node_pods_namespace(self.name))
        await self.informer.start()
        if self.netpol is not None:
            await self.netpol.start()  # enforced before any pod starts
        await self.adopt()
        self.informer.add_handler(on_add=self._on_pod, on_update=lambda old, new: self._on_pod(new),
                                  on_delete=self._on_pod_deleted)
        self.sync_workers()
        self._tasks.append(asyncio.create_task(self._relist_loop(), name="relist"))

    async def stop(self) -> None:
        self._stopping.set()
        for t in self._tasks:
            t.cancel()
        await _bounded("background tasks", asyncio.gather(*self._tasks, return_exceptions=True))
        if getattr(self, "services", None):
            await _bounded("node services", self.services.stop())
        if self.informer:
            await _bounded("pod informer", self.informer.stop())
        if self.dns is not None:
            await _bounded("cluster DNS", self.dns.stop())
        await _bounded("token manager", self.volumes.stop())
        workers = list(self.workers.values())
        await _bounded("pod workers", asyncio.gather(*(w.stop() for w in workers), return_exceptions=True))
        if getattr(self, "proxy", None):
            await _bounded("service proxy", self.proxy.stop(cleanup=self.config.drain_on_exit))
        if self.netpol is not None:
            await _bounded("network policy", self.netpol.stop(cleanup=self.config.drain_on_exit))
        if self.config.drain_on_exit:
            await asyncio.gather(*(self._drain(w) for w in workers), return_exceptions=True)
            if self.network is not None:
                await self.network.teardown()

    async def _drain(self, w: PodWorker) -> None:
        await w.kill_containers(grace=min(w.grace_seconds(), 5), quiet=True)
        await w._remove_sandbox()
        await self.network.detach(w.uid)

    # ---- node object -------------------------------------------------------------------------

    async def register(self) -> dict:
        want = nodeinfo.node_object(self.name, self.host_ip, self.config.labels, self.config.pod_cidr)
        while True:
            try:
                return await self.client.create(want)
            except errors.AlreadyExists:
                patch = {"metadata": {"labels": want["metadata"]["labels"]}, "status": want["status"]}
                await self.client.patch("nodes", self.name, {"metadata": patch["metadata"]})
                return await self.client.patch("nodes", self.name, {"status": patch["status"]}, subresource="status")
            except errors.Unavailable:
                await asyncio.sleep(0.5)

    async def wait_pod_cidr(self, node: dict) -> str:
        while True:
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                return cidr
            await asyncio.sleep(0.2)
            node = await self.client.get("nodes", self.name)

    async def _lease_loop(self) -> None:
        lease_ns = "kube-node-lease"
        lease: dict | None = None
        while True:
            now = micro_now()
            try:
                if lease is None:
                    try:
                        lease = await self.client.get("leases", self.name, lease_ns)
                    except errors.NotFound:
                        lease = await self.client.create(nodeinfo.lease_object(self.name, now))
                lease["spec"]["renewTime"] = now
                lease["spec"]["holderIdentity"] = self.name
                lease = await self.client.update(lease)
            except errors.ApiError as e:
                log.debug("lease renewal failed: %s", e)
                lease = None
            except Exception as e:
                log.warning("lease renewal failed: %s", e)
                lease = None
            await asyncio.sleep(self.config.lease_seconds)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_seconds)
            await self.post_status()

    async def post_status(self) -> None:
        """The Node's conditions (the pressure ones from the eviction manager) and addresses."""
        pressure = self.pressure.node_conditions() if self.pressure is not None else None
        try:
            await self.client.patch("nodes", self.name, {"status": nodeinfo.heartbeat_status(self.host_ip, pressure)},
                                    subresource="status")
        except Exception as e:
            log.warning("node status update failed: %s", e)

    async def _routes_loop(self) -> None:
        """A route to every other node's podCIDR: host-gw via its InternalIP, or through the VXLAN overlay
        (``config.network_backend``)."""
        nodes = Informer(self.client, "nodes")
        nodes.add_handler(on_add=lambda o: None)
        await nodes.start()
        last: dict[str, str] | None = None
        try:
            while True:
                peers = {}
                for n in nodes.list():
                    if n["metadata"]["name"] == self.name:
                        continue
                    cidr = (n.get("spec") or {}).get("podCIDR")
                    ip = next((a["address"] for a in (n.get("status") or {}).get("addresses") or []
                               if a.get("type") == "InternalIP"), None)
                    if cidr and ip:
                        peers[cidr] = ip
                if peers != last:
                    try:
                        await self.network.sync_routes(peers)
                        last = peers
                    except Exception as e:
                        log.warning("route sync failed: %s", e)
                await asyncio.sleep(2)
        finally:
            await nodes.stop()

    # ---- pods ------------------------------------------------------------------------------

    def _refuse(self, pod: dict, why: str) -> None:
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"), meta.get("uid"))
        if key in self._refused:
            return
        self._refused.add(key)
        log.error("refusing pod %s/%s: %s", meta.get("namespace"), meta.get("name"), why)

    def _on_pod(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        if w is None:
            refusal = admission.refusal(pod)
            if refusal is not None:  # only API servers write the view; this is the second line of defence
                self._refuse(pod, refusal)
                return
            w = PodWorker(self, uid, pod)
            w.rejected = _evicted(pod)  # evicted before a restart of the agent: never run again
            self.workers[uid] = w
            w.start()
        else:
            w.update(pod)

    def _on_pod_deleted(self, pod: dict) -> None:
        w = self.workers.get(pod["metadata"]["uid"])
        if w is not None:
            w.update(None)

    def _cached_pods(self) -> dict[str, dict]:
        """The pods of the informer's cache by uid."""
        if self.informer is None:
            return {}
        return {uid: o for o in self.informer.list() if (uid := (o.get("metadata") or {}).get("uid"))}

    def sync_workers(self) -> None:
        """Level-triggered check of the workers against the informer's cache (after adoption and on
        every relist): a worker whose pod is no longer cached (deleted, or replaced by a pod of the
        same name) is told it is gone; one holding an older version than the cache gets the cached one.
        Events missed (e.g. while the handlers were not registered yet) cannot leave a worker behind."""
        if self.informer is None or not self.informer.synced:
            return
        cached = self._cached_pods()
        for uid, w in list(self.workers.items()):
            if w.done:
                continue
            pod = cached.get(uid)
            if pod is None:
                if not w.deleted:
                    log.info("pod %s: gone from the node's pods; terminating it", w.name)
                    w.update(None)
            elif pod is not w.pod and revision_of(pod) > revision_of(w.pod or {}):
                w.update(pod)

    async def adopt(self) -> None:
        """After a restart: take over the containers of pods still bound here, remove the rest."""
        containers = await self.runtime.list_containers()
        pods = {o["metadata"]["uid"]: o for o in self.informer.list()} if self.informer else {}
        by_pod: dict[str, list] = {}
        for c in containers:
            by_pod.setdefault(c.pod_uid, []).append(c)
        for uid, cs in by_pod.items():
            pod = pods.get(uid)
            if pod is None:
                await self._remove_orphans(uid, cs)
                continue
            w = PodWorker(self, uid, pod)
            w.rejected = _evicted(pod)
            for c in sorted(cs, key=lambda c: c.attempt):
                if c.container_name == "POD":
                    if c.state == "running":
                        w.sandbox = await self.runtime.sandbox(c.id)
                        w.pod_ip = self.host_ip if w.spec.get("hostNetwork") else \
                            await self.network.attach(uid, w.sandbox.netns_path)
                    else:
                        await self.runtime.remove_sandbox(c.id)
                    continue
                inst = Instance(c.id, c.attempt, state=c.state)
                prev = w.current.get(c.container_name)
                if prev is not None:
                    old = w.previous.get(c.container_name)
                    if old is not None:
                        await self.runtime.remove_container(old.id)
                    w.previous[c.container_name] = prev
                w.current[c.container_name] = inst
            w.start_time = (pod.get("status") or {}).get("startTime")
            if w.sandbox is not None:
                for inst in w.current.values():
                    await w._inspect(inst)
                for c in w.spec.get("containers") or []:
                    inst = w.current.get(c["name"])
                    if inst is not None and inst.state == "running":
                        w.resume_probes(c, inst)
            # the awaits above let the informer move on: start from the pod as it is now (a pod deleted
            # meanwhile is gone from the cache, and its worker removes the containers just adopted)
            now = self._cached_pods().get(uid)
            if now is None:
                w.deleted = True
            else:
                w.pod = now
            self.workers[uid] = w
            w.start()
            log.info("adopted pod %s (%d containers)", w.name, len(w.current))
        await self.network.gc({uid for uid in pods})

    async def _remove_orphans(self, uid: str, cs: list) -> None:
        for c in cs:
            try:
                if c.container_name == "POD":
                    await self.runtime.remove_sandbox(c.id)
                else:
                    await self.runtime.stop_container(c.id, 2)
                    await self.runtime.remove_container(c.id)
            except Exception as e:
                log.warning("removing orphan container %s: %s", c.id[:12], e)
        try:
            await self.network.detach(uid)
        except Exception:
            pass
        self.volumes.cleanup(uid)

    async def _relist_loop(self) -> None:
        """Like the kubelet's PLEG: notice containers that changed state and wake their pods."""
        seen: dict[str, str] = {}
        gone: set[str] = set()
        while True:
            try:
                self.sync_workers()
            except Exception:
                log.exception("checking the pod workers against the cache failed")
            try:
                containers = await self.runtime.list_containers()
                now: dict[str, str] = {}
                for c in containers:
                    now[c.id] = c.state
                    if seen.get(c.id) != c.state:
                        w = self.workers.get(c.pod_uid)
                        if w is not None:
                            inst = w.current.get(c.container_name)
                            if inst is not None and inst.id == c.id and c.state != "running":
                                inst.state, inst.inspected = c.state, False
                            w.trigger()
                gone |= seen.keys() - now.keys()
                if len(gone) > 10000:
                    gone = set(list(gone)[-5000:])
                dead = {cid for cid, state in now.items() if state not in ("running", "created")} | gone
                self._dead_ids = dead
                for w in self.workers.values():
                    if w.sandbox is not None and w.sandbox.id in dead:
                        w.trigger()
                seen = now
            except Exception as e:
                log.warning("container relist failed: %s", e)
            await asyncio.sleep(self.config.relist_seconds)


def _evicted(pod: dict) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Failed" and st.get("reason") == eviction.REASON


async def _bounded(what: str, aw: Any, seconds: float = 5.0) -> None:
    """One step of the shutdown, given ``seconds``: a step that hangs is logged and left behind, so the
    drain after it (containers, networking, the proxy's table) still happens."""
    try:
        await asyncio.wait_for(aw, seconds)
    except asyncio.TimeoutError:
        log.error("stopping the %s took longer than %.0f s; going on without it", what, seconds)
    except Exception as e:
        log.warning("stopping the %s failed: %s", what, e)


async def run(config: AgentConfig, stop: asyncio.Event) -> None:
    tel = telemetry.enter(roles.NODE, config.name)  # before anything that counts (kubelet, proxy, DNS) is made
    client = await ApiClient.connect(config.server, Identity.node(config.name))
    agent = Agent(config, client)
    if tel is not None:
        tel.start(client.nc)
    try:
        while not stop.is_set():
            try:
                await client.get("namespaces", "default")
                break
            except Exception:
                await asyncio.sleep(0.3)
        await agent.start()
        await stop.wait()
    finally:
        await agent.stop()
        if tel is not None:
            await tel.stop()
        await client.close()


def default_state_dir(name: str) -> Path:
    return data_dir() / "nodes" / name
