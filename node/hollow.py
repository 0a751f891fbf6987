"""Hollow nodes, for scale benchmarks only (Kubernetes' kubemark): N simulated nodes in one process.

    python -m node.hollow [--server URL] --count 1000 [--prefix hollow-]
                          [--cpu 4 --memory 16Gi --pods 110]

Each hollow node has a Node object (capacity/allocatable, Ready=True, labels kubernetes.io/hostname,
kubernetes.io/os=linux, node.kubernetes.io/instance-type=hollow) and a Lease in kube-node-lease
renewed every 10 s (all of them in one batch). Pods bound to any of them are moved to Running
through the status subresource (fake pod IPs from 100.64.0.0/10, one /24 per node; host IPs from the
benchmarking range 198.18.0.0/15); terminating pods are deleted at once (grace 0). No containers,
no network. Never used in functional tests: a real node is ``node/agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import itertools
import logging
from typing import Any, Awaitable, Callable, Iterable

from bus import aio, cmdline, errors
from bus.client import ApiClient
from bus.informer import Informer, revision_of
from bus.meta import format_time
from bus.workqueue import WorkQueue, run_workers

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
POD_NET = ipaddress.ip_network("100.64.0.0/10")
HOST_NET = ipaddress.ip_network("198.18.0.0/15")


async def _bounded(items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]], limit: int = 64) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(x: Any) -> None:
        async with sem:
            try:
                await fn(x)
            except Exception as e:
                log.warning("hollow: %s: %s", x, e)

    await asyncio.gather(*(one(x) for x in items))


def _ready(status: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


class HollowNode:
    def __init__(self, name: str, index: int, cpu: str, memory: str, pods: int) -> None:
        self.name = name
        self.host_ip = str(HOST_NET[index + 1])
        self._pod_base = int(POD_NET[0]) + index * 256
        self._next_ip = 2
        self.cpu, self.memory, self.pods = cpu, memory, pods
        self.lease: dict | None = None
        self.renewing = False

    def node(self) -> dict:
        res = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}
        now = format_time()
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": {
                "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "hollow"}},
            "spec": {},
            "status": {
                "capacity": dict(res), "allocatable": res,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "hollow node is posting ready status", "lastHeartbeatTime": now,
                                "lastTransitionTime": now}],
                "addresses": [{"type": "InternalIP", "address": self.host_ip},
                              {"type": "Hostname", "address": self.name}],
                "nodeInfo": {"kubeletVersion": "k8n-hollow", "operatingSystem": "linux", "architecture": "amd64",
                             "containerRuntimeVersion": "hollow://0"},
            },
        }

    def pod_ip(self) -> str:
        ip = str(ipaddress.ip_address(self._pod_base + self._next_ip))
        self._next_ip = self._next_ip + 1 if self._next_ip < 254 else 2
        return ip

    def running_status(self, pod: dict) -> dict:
        now = format_time()
        status = pod.get("status") or {}
        ip = status.get("podIP") or self.pod_ip()
        conds = {c.get("type"): c for c in status.get("conditions") or []}
        for t in ("Initialized", "ContainersReady", "Ready"):
            conds[t] = {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        containers = [{"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": True,
                       "started": True, "restartCount": 0, "containerID": f"hollow://{pod['metadata'].get('uid')}",
                       "state": {"running": {"startedAt": now}}}
                      for c in (pod.get("spec") or {}).get("containers") or []]
        return {**status, "phase": "Running", "hostIP": self.host_ip, "hostIPs": [{"ip": self.host_ip}],
                "podIP": ip, "podIPs": [{"ip": ip}], "startTime": status.get("startTime") or now,
                "conditions": list(conds.values()), "containerStatuses": containers}


class HollowNodes:
    def __init__(self, client: ApiClient, count: int, prefix: str = "hollow-", cpu: str = "4", memory: str = "16Gi",
                 pods: int = 110, lease_period: float = 10.0, workers: int = 256) -> None:
        self.client = client
        self.nodes = {f"{prefix}{i}": HollowNode(f"{prefix}{i}", i, cpu, memory, pods) for i in range(count)}
        self.lease_period = lease_period
        self.workers = workers  # status writes in flight: a thousand kubelets would have as many and more
        self.pods = Informer(client, "pods")
        self.node_objects = Informer(client, "nodes")
        self.queue = WorkQueue("hollow-pods")
        self._written: dict[str, int] = {}  # pod uid -> resourceVersion of the status this process wrote
        self._slots: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await _bounded(self.nodes.values(), self._register)
        await self._renew_leases()
        self.pods.add_handler(self._enqueue, lambda old, new: self._enqueue(new),
                              lambda pod: self._written.pop(pod["metadata"].get("uid"), None))
        await asyncio.gather(self.pods.start(), self.node_objects.start())
        self._tasks = [asyncio.create_task(run_workers(self.queue, self._reconcile, self.workers)),
                       asyncio.create_task(self._lease_loop())]
        log.info("hollow: %d nodes registered", len(self.nodes))

    async def stop(self) -> None:
        self.queue.shutdown()
        for t in (*self._tasks, *self._slots):
            t.cancel()
        await asyncio.gather(*self._tasks, *self._slots, return_exceptions=True)
        await asyncio.gather(self.pods.stop(), self.node_objects.stop())

    async def _register(self, h: HollowNode) -> None:
        body = h.node()
        try:
            await self.client.create(body)
        except errors.AlreadyExists:
            cur = await self.client.get("nodes", h.name)
            cur["metadata"]["labels"] = {**(cur["metadata"].get("labels") or {}), **body["metadata"]["labels"]}
            cur["status"] = body["status"]
            cur = await self.client.update(cur)
            cur["status"] = body["status"]
            await self.client.update_status(cur)

    # ---- leases

    LEASE_SLOTS = 10

    async def _lease_loop(self) -> None:
        """Each node renews every ``lease_period``, the nodes spread over ``LEASE_SLOTS`` slots (as
        independent kubelets would be) and a slot's renewals all at once: a slow API server delays
        a renewal by its latency, not by the renewals queued before it. A node whose renewal is
        still out skips its turn."""
        nodes = list(self.nodes.values())
        for turn in itertools.count(1):
            await asyncio.sleep(self.lease_period / self.LEASE_SLOTS)
            due = [h for h in nodes[turn % self.LEASE_SLOTS::self.LEASE_SLOTS] if not h.renewing]
            for h in due:
                h.renewing = True
            t = asyncio.create_task(_bounded(due, self._renew, limit=max(1, len(due))))
            self._slots.add(t)
            t.add_done_callback(self._slots.discard)

    async def _renew_leases(self) -> None:
        await _bounded(self.nodes.values(), self._renew)

    async def _renew(self, h: HollowNode) -> None:
        try:
            await self._renew_lease(h)
            await self._post_ready(h)
        finally:
            h.renewing = False

    async def _post_ready(self, h: HollowNode) -> None:
        """Post Ready=True again when the node controller marked the node otherwise (a late renewal):
        what a kubelet's next node status update does."""
        node = self.node_objects.get(None, h.name)
        ready = next((c for c in ((node or {}).get("status") or {}).get("conditions") or ()
                      if c.get("type") == "Ready"), None)
        if node is None or ready is None or ready.get("status") == "True":
            return
        try:
            await self.client.update_status({**node, "status": {**node["status"], **h.node()["status"]}})
        except errors.Conflict:
            pass  # the next renewal looks again

    async def _renew_lease(self, h: HollowNode) -> None:
        now = format_time(micro=True)
        if h.lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": h.name, "namespace": LEASE_NAMESPACE},
                    "spec": {"holderIdentity": h.name, "leaseDurationSeconds": 40, "renewTime": now}}
            try:
                h.lease = await self.client.create(body)
                return
            except errors.AlreadyExists:
                h.lease = await self.client.get("leases", h.name, LEASE_NAMESPACE)
        lease = {**h.lease, "spec": {**(h.lease.get("spec") or {}), "renewTime": now}}
        try:
            h.lease = await self.client.update(lease)
        except errors.Conflict:
            h.lease = None  # re-read next time

    # ---- pods

    def _enqueue(self, pod: dict) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.nodes:
            m = pod["metadata"]
            self.queue.add((m.get("namespace"), m["name"]))

    async def _reconcile(self, key: tuple[str, str]) -> None:
        pod = self.pods.get(*key)
        if pod is None:
            return
        h = self.nodes.get((pod.get("spec") or {}).get("nodeName"))
        if h is None:
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            try:
                await self.client.delete("pods", meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                         preconditions={"uid": meta.get("uid")})
            except errors.NotFound:
                pass
            return
        uid, status = meta.get("uid"), pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed") or revision_of(pod) <= self._written.get(uid, 0):
            return  # finished, or the cache has not caught up with the status written: no write that changes nothing
        if status.get("phase") == "Running" and _ready(status):
            return  # one status write per pod start; again only if the node controller marked it not ready
        done = await self.client.update_status({**pod, "status": h.running_status(pod)})
        self._written[uid] = revision_of(done)


async def run_hollow(server_url: str, count: int, stop: asyncio.Event, **kw: Any) -> None:
    """Run ``count`` hollow nodes until ``stop`` is set."""
    client = await ApiClient.connect(server_url)
    hollow = HollowNodes(client, count, **kw)
    try:
        await hollow.start()
        await stop.wait()
    finally:
        await hollow.stop()
        await client.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="k8n agent --hollow", description="Simulated nodes for scale benchmarks.")
    cmdline.add_common_options(p)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--prefix", default="hollow-")
    p.add_argument("--cpu", default="4")
    p.add_argument("--memory", default="16Gi")
    p.add_argument("--pods", type=int, default=110)
    p.add_argument("--lease-period", type=float, default=10.0)
    args = cmdline.parse(p, argv)

    async def _main() -> None:
        stop = aio.stop_on_signals()
        await run_hollow(args.server, args.count, stop, prefix=args.prefix, cpu=args.cpu, memory=args.memory,
                         pods=args.pods, lease_period=args.lease_period)

    cmdline.run(_main())


if __name__ == "__main__":
    main()
