"""Pieces for fault tests and benchmarks on a running cluster (tests/e2e/test_faults.py, tests/perf/bench_faults.py).

- :class:`WriteChecker`: writers that keep making API writes for the whole run — over the bus
  (``bus.client.ApiClient``, no retries: every attempt counts) and over the HTTPS gateway — and record every write
  that was *acknowledged* (2xx with a resourceVersion). :meth:`WriteChecker.verify` then reads each object back: an
  acknowledged create must exist, an object must hold a value at least as new as the last acknowledged one.
  Each writer owns its keys and updates them with compare-and-set from the last state it knows, re-reading after an
  unknown outcome, so no write of its own can silently overwrite a newer one.
- :func:`invariants`: what must hold in the cluster once it has settled — no duplicate pods (no ReplicaSet with more
  active pods than it wants; no pod whose containers run on two machines, or on a machine it is not bound to), no
  orphaned pods (their controller gone), no orphaned containers (a container of a node whose pod the store does not
  have).
- Fault helpers: :func:`kill9` a child of ``k8n up``/``k8n join`` by its pid file (``<data dir>/logs/<child>.pid``),
  :func:`leader_child` (which child of ``k8n up`` holds a leader-election Lease).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import ssl
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import orjson

from bus import errors
from bus.client import ApiClient
from bus.resources import by_kind, by_plural

CONFIGMAPS = by_plural("configmaps")
TERMINAL = ("Succeeded", "Failed")


# ---- acknowledged writes --------------------------------------------------------------------------------------------

Reply = tuple[int, Any]  # (HTTP-style code, body); an exception: the outcome is unknown


class BusTarget:
    """Writes through the bus: one API request per attempt (``retries`` 0), ``timeout`` seconds each."""

    name = "bus"

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def call(self, verb: str, ns: str, name: str | None = None, body: dict | None = None) -> Reply:
        code, out, _ = await self.client.call(CONFIGMAPS, verb, ns, name, body)
        return code, out


class GatewayTarget:
    """Writes through the HTTPS gateway (what kubectl speaks), with the admin's bearer token, the cluster CA checked."""

    name = "gateway"

    def __init__(self, url: str, token: str, ca_file: Path, timeout: float = 3.0) -> None:
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        self.ssl = ssl.create_default_context(cafile=str(ca_file))
        self.session: aiohttp.ClientSession | None = None

    async def call(self, verb: str, ns: str, name: str | None = None, body: dict | None = None) -> Reply:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        method = {"create": "POST", "update": "PUT", "get": "GET"}[verb]
        path = f"{self.url}/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if verb != "create" else "")
        async with self.session.request(method, path, ssl=self.ssl, headers={"Authorization": f"Bearer {self.token}"},
                                        data=orjson.dumps(body) if body is not None else None) as r:
            return r.status, orjson.loads(await r.read() or b"null")

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def gateway_target(data: Path, url: str) -> GatewayTarget:
    """The gateway of the ``k8n up`` whose data directory is ``data``, as its admin (the kubeconfig's token)."""
    from bus.cli.runner import admin_token

    return GatewayTarget(url, admin_token(data)[1], data / "pki" / "ca.crt")


@dataclass
class Ack:
    seq: int
    rv: int
    at: float  # time.monotonic() of the acknowledgement


@dataclass
class WriteReport:
    attempted: int = 0
    acked: int = 0
    failed: int = 0  # answered with an error, or no answer (outcome unknown)
    verified: int = 0
    lost: list[str] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)  # why writes failed

    def __str__(self) -> str:
        why = ", ".join(f"{n}× {r}" for r, n in self.reasons.most_common(4))
        return (f"{self.attempted} writes attempted: {self.acked} acknowledged, {self.failed} failed"
                f"{f' ({why})' if why else ''}; {self.verified} acknowledged objects verified, {len(self.lost)} lost"
                + (f": {self.lost[:5]}" if self.lost else ""))


class WriteChecker:
    """Writers over the given targets, ``per_target`` each, one write every ``interval`` seconds per writer; each
    writer owns ``keys`` ConfigMaps it updates in turn (``data.seq``: a number that only grows) and creates a new one
    every fifth write. ``start()``, the fault run, ``stop()``, then ``verify(client)``."""

    def __init__(self, targets: list, namespace: str = "faults-writes", per_target: int = 2, keys: int = 3,
                 interval: float = 0.05) -> None:
        self.targets, self.ns, self.per_target = targets, namespace, per_target
        self.keys, self.interval = keys, interval
        self.acked: dict[str, Ack] = {}  # object name → its last acknowledged write
        self.acks: list[float] = []  # when each acknowledgement came
        self.report = WriteReport()
        self.seq = itertools.count(1)
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def start(self, client: ApiClient) -> None:
        try:
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}})
        except errors.AlreadyExists:
            pass
        for target in self.targets:
            for w in range(self.per_target):
                self.tasks.append(asyncio.create_task(self._writer(target, f"{target.name}{w}")))

    async def stop(self) -> WriteReport:
        self.stopping.set()
        await asyncio.gather(*self.tasks)
        for target in self.targets:
            if hasattr(target, "close"):
                await target.close()
        return self.report

    def _failed(self, why: str) -> None:
        self.report.failed += 1
        self.report.reasons[why] += 1

    async def _attempt(self, target, verb: str, name: str | None, body: dict) -> dict | None:
        """One write; the object it acknowledged (recorded), or None."""
        self.report.attempted += 1
        try:
            code, out = await target.call(verb, self.ns, name, body)
        except Exception as e:  # no answer: the write may or may not be in
            self._failed(type(e).__name__)
            return None
        rv = (out or {}).get("metadata", {}).get("resourceVersion") if isinstance(out, dict) else None
        if 200 <= code < 300 and rv:
            now = time.monotonic()
            self.report.acked += 1
            self.acked[out["metadata"]["name"]] = Ack(int(out["data"]["seq"]), int(rv), now)
            self.acks.append(now)
            return out
        self._failed(f"{code} {(out or {}).get('reason', '') if isinstance(out, dict) else ''}".strip())
        return None

    async def _writer(self, target, wid: str) -> None:
        known: dict[str, dict | None] = {f"{wid}-k{i}": None for i in range(self.keys)}
        for step in itertools.count():
            if self.stopping.is_set():
                return
            seq = next(self.seq)
            if step % 5 == 4:
                await self._attempt(target, "create", None, configmap(self.ns, f"{wid}-c{seq}", seq))
            else:
                name = f"{wid}-k{step % self.keys}"
                current = known[name]
                if current is None:  # first write, or the last outcome unknown: read what is there
                    try:
                        code, current = await target.call("get", self.ns, name)
                    except Exception:
                        code = 0
                    if code == 404:
                        known[name] = await self._attempt(target, "create", None, configmap(self.ns, name, seq))
                        await asyncio.sleep(self.interval)
                        continue
                    if code != 200:
                        await asyncio.sleep(self.interval)
                        continue
                body = {**current, "data": {"seq": str(seq)}}  # CAS: the resourceVersion read or last acknowledged
                known[name] = await self._attempt(target, "update", name, body)
            await asyncio.sleep(self.interval)

    async def verify(self, client: ApiClient) -> WriteReport:
        """Read every object written back (a list straight off the store, then a get through the API for anything
        the list misses): each acknowledged write must be there, or something newer."""
        items, _ = await client.list("configmaps", self.ns)
        stored = {o["metadata"]["name"]: o for o in items}
        for name, ack in sorted(self.acked.items()):
            obj = stored.get(name)
            if obj is None:
                try:
                    obj = await client.get("configmaps", name, self.ns)
                except errors.NotFound:
                    self.report.lost.append(f"{name}: acknowledged (seq {ack.seq}, rv {ack.rv}), not in the store")
                    continue
            seq, rv = int(obj["data"]["seq"]), int(obj["metadata"]["resourceVersion"])
            if seq < ack.seq or rv < ack.rv:
                self.report.lost.append(f"{name}: acknowledged seq {ack.seq} rv {ack.rv}, stored seq {seq} rv {rv}")
            else:
                self.report.verified += 1
        return self.report

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without an acknowledged write between ``start`` and ``end`` (monotonic)."""
        inside = [start, *(t for t in self.acks if start < t < end), end]
        return max(b - a for a, b in zip(inside, inside[1:]))


def configmap(ns: str, name: str, seq: int) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"seq": str(seq)}}


# ---- invariants -----------------------------------------------------------------------------------------------------

@dataclass
class Invariants:
    duplicates: list[str] = field(default_factory=list)
    orphaned_pods: list[str] = field(default_factory=list)
    orphaned_containers: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:  # true: everything holds
        return not (self.duplicates or self.orphaned_pods or self.orphaned_containers)

    def __str__(self) -> str:
        return (f"{len(self.duplicates)} duplicate pods {self.duplicates[:5]}, {len(self.orphaned_pods)} orphaned pods "
                f"{self.orphaned_pods[:5]}, {len(self.orphaned_containers)} orphaned containers "
                f"{self.orphaned_containers[:5]}")


def active(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in TERMINAL


def containers(nodes: list[str], running: bool = True) -> list[dict]:
    """Docker containers of ``nodes``' pods (sandboxes included): id, node, pod uid, pod and container name."""
    fmt = '{{.ID}} {{.Label "io.k8n.node"}} {{.Label "io.k8n.pod.uid"}} {{.Label "io.k8n.pod.namespace"}}/' \
          '{{.Label "io.k8n.pod.name"}} {{.Label "io.k8n.container.name"}}'
    out = []
    for node in nodes:
        r = subprocess.run(["docker", "ps", *([] if running else ["-a"]), "--filter", f"label=io.k8n.node={node}",
                            "--format", fmt], capture_output=True, text=True, timeout=30)
        for line in r.stdout.splitlines():
            cid, n, uid, pod, name = line.split(" ")
            out.append({"id": cid, "node": n, "uid": uid, "pod": pod, "container": name})
    return out


async def invariants(client: ApiClient, nodes: list[str]) -> Invariants:
    """Duplicate pods, orphaned pods and orphaned containers on ``nodes`` right now (see the module's docstring)."""
    pods, _ = await client.list("pods")
    owners: dict[str, set[str]] = {}  # kind → uids that exist
    result = Invariants()
    for pod in pods:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if not ref.get("controller"):
                continue
            if ref["kind"] not in owners:
                res = by_kind(ref["kind"])
                owners[ref["kind"]] = {o["metadata"]["uid"] for o in (await client.list(res))[0]} if res else set()
            if ref["uid"] not in owners[ref["kind"]]:
                result.orphaned_pods.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']} "
                                            f"(its {ref['kind']} {ref['name']} is gone)")
    for rs in (await client.list("replicasets"))[0]:
        mine = [p for p in pods if active(p) and any(r.get("uid") == rs["metadata"]["uid"] and r.get("controller")
                                                     for r in p["metadata"].get("ownerReferences") or [])]
        if len(mine) > rs["spec"].get("replicas", 1):
            result.duplicates.append(f"ReplicaSet {rs['metadata']['name']} wants {rs['spec'].get('replicas', 1)}, "
                                     f"has {len(mine)} active pods")
    bound = {p["metadata"]["uid"]: p["spec"].get("nodeName") for p in pods}
    running = await asyncio.to_thread(containers, nodes)
    where = Counter((c["uid"], c["container"]) for c in running)
    for c in running:
        if c["uid"] in bound and bound[c["uid"]] != c["node"]:
            result.duplicates.append(f"{c['pod']} ({c['container']}) runs on {c['node']}, bound to {bound[c['uid']]}")
        elif where[(c["uid"], c["container"])] > 1:
            result.duplicates.append(f"{c['pod']} ({c['container']}) runs {where[(c['uid'], c['container'])]} times")
    for c in await asyncio.to_thread(containers, nodes, False):
        if c["uid"] not in bound:
            result.orphaned_containers.append(f"{c['id']} of {c['pod']} ({c['container']}) on {c['node']}: "
                                              "its pod is not in the store")
    return result


# ---- faults ---------------------------------------------------------------------------------------------------------

def pid_file(data: Path, child: str) -> Path:
    """``<data dir>/logs/<child>.pid``: written by ``k8n up`` and ``k8n join`` for each child they supervise."""
    return data / "logs" / f"{child}.pid"


def read_pid(path: Path) -> int:
    return int(path.read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is dead: its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill9(path: Path) -> int:
    """SIGKILL to the process whose pid ``path`` holds; its pid."""
    pid = read_pid(path)
    os.kill(pid, signal.SIGKILL)
    return pid


def restarted(path: Path, old: int) -> int | None:
    """The pid of the process that replaced ``old`` in ``path``, once it runs (None before)."""
    try:
        pid = read_pid(path)
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid != old and alive(pid) else None


async def leader_child(client: ApiClient, data: Path, lease: str, prefix: str) -> str:
    """The child of ``k8n up`` (``<prefix>-<n>``) holding Lease ``kube-system/<lease>``: the one whose log says it
    waits to lead with the Lease's holder identity. LookupError when no child's log names the holder."""
    holder = ((await client.get("leases", lease, "kube-system")).get("spec") or {}).get("holderIdentity")
    for log in sorted((data / "logs").glob(f"{prefix}-*.log")):
        if holder and f"identity {holder})" in log.read_text(errors="replace"):
            return log.stem
    raise LookupError(f"no {prefix} log names the holder of lease {lease} ({holder!r})")


async def timed(pred: Callable[[], Awaitable[Any]], timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until ``pred()`` is truthy (polled every ``interval``), None after ``timeout``; errors count as no."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if await pred():
                return time.monotonic() - t0
        except Exception:
            pass
        await asyncio.sleep(interval)
    return None


# ---- a rolling update under faults ----------------------------------------------------------------------------------

APP = "web"
REPLICAS = 30
# the rig of the fault tests: cp runs every part of the control plane twice (NATS three times) with short Leases and
# node-lifecycle settings, the workers renew their node's Lease every second
UP_FLAGS = ("--nats-servers", "3", "--replicas", "2", "--no-agent")
UP_ENV = {"K8N_LEADER_ELECT_LEASE_DURATION": "3", "K8N_NODE_MONITOR_GRACE_PERIOD": "4",
          "K8N_DEFAULT_TOLERATION_SECONDS": "2"}
WORKER_ENV = {"K8N_LEASE_SECONDS": "1", "K8N_BACKOFF_INITIAL": "1", "K8N_BACKOFF_MAX": "4"}


def web(replicas: int, rev: int = 1, ns: str = "default") -> dict:
    """A Deployment ``web`` of ``replicas`` busybox pods (``sleep``, grace 1 s) rolled two at a time with none
    unavailable; its template is labelled ``rev`` (bump it for a rolling update)."""
    from tests import builders

    tmpl = builders.template({"app": APP, "rev": str(rev)}, [builders.container("main", "exec sleep 3600")], grace=1)
    return builders.deployment(APP, ns, replicas=replicas, app={"app": APP}, template=tmpl,
                               strategy=builders.rolling(2, 0))


def ready(pod: dict) -> bool:
    return active(pod) and any(c["type"] == "Ready" and c["status"] == "True"
                               for c in (pod.get("status") or {}).get("conditions") or [])


async def web_pods(client: ApiClient, ns: str = "default") -> list[dict]:
    return (await client.list("pods", ns, label_selector=f"app={APP}"))[0]


async def rolled_out(client: ApiClient, replicas: int, rev: int, ns: str = "default") -> bool:
    """The Deployment says all ``replicas`` are updated and available, and that many pods of revision ``rev`` are
    Ready with no other pod of it active."""
    d = await client.get("deployments", APP, ns)
    st = d.get("status") or {}
    if not (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and
            st.get("updatedReplicas") == st.get("availableReplicas") == st.get("replicas") == replicas):
        return False
    pods = [p for p in await web_pods(client, ns) if active(p)]
    return len(pods) == replicas and all(ready(p) and p["metadata"]["labels"].get("rev") == str(rev) for p in pods)


def by_node(pods: list[dict]) -> Counter:
    return Counter(p["spec"].get("nodeName") for p in pods if ready(p))


@dataclass
class FaultResult:
    fault: str
    child: str
    pid: int
    progress: float | None = None  # s from the kill to a pod made after it Ready
    restarted: float | None = None  # s from the kill to the child running again
    write_gap: float = 0.0  # the longest time without an acknowledged write around it

    def __str__(self) -> str:
        def s(v: float | None) -> str:
            return "never" if v is None else f"{v:.1f} s"

        killed = f"({self.child}, pid {self.pid})" if self.pid else "(nothing killed)"
        return (f"{self.fault:<26} {killed}: rollout progressing again {s(self.progress)}, "
                + (f"restarted {s(self.restarted)}, " if self.pid else "")
                + f"longest gap between acknowledged writes {self.write_gap:.1f} s")


FAULTS = ("API server replica", "controller-manager leader", "scheduler leader", "gateway", "agent", "nats-server")


async def victim(client: ApiClient, cp_data: Path, agent_data: Path, fault: str) -> tuple[str, Path]:
    """The child to kill for ``fault`` and its pid file (the agent: the one ``k8n join`` runs from ``agent_data``)."""
    if fault == "agent":
        return "agent", pid_file(agent_data, "agent")
    child = {"API server replica": "apiserver-1", "gateway": "gateway", "nats-server": "nats-2"}.get(fault)
    if child is None:
        lease, prefix = {"controller-manager leader": ("kube-controller-manager", "controller-manager"),
                         "scheduler leader": ("kube-scheduler", "scheduler")}[fault]
        child = await leader_child(client, cp_data, lease, prefix)
    return child, pid_file(cp_data, child)


BASELINE = "none (baseline)"


async def kill_during_rollout(client: ApiClient, checker: WriteChecker | None, fault: str, child: str,
                              path: Path | None, timeout: float = 60.0) -> FaultResult:
    """kill -9 ``child`` (``path`` None: kill nothing, for a baseline), then wait for the rollout to progress (a pod
    of the new revision that did not exist at the kill is Ready: the ReplicaSet controller made it, the scheduler
    bound it, an agent ran it, all after the kill) and for the child to run again."""
    before = {p["metadata"]["name"] for p in await web_pods(client)}
    t0 = time.monotonic()
    pid = kill9(path) if path else 0
    result = FaultResult(fault, child, pid)

    async def progress() -> bool:
        return any(ready(p) and p["metadata"]["name"] not in before for p in await web_pods(client))

    async def back() -> bool:
        return path is None or restarted(path, pid) is not None

    result.progress, result.restarted = await asyncio.gather(timed(progress, timeout), timed(back, timeout))
    if checker is not None:
        result.write_gap = checker.longest_gap(t0 - 1, time.monotonic())
    return result


async def rollout_with_kills(client: ApiClient, cp_data: Path, agent_data: Path, rev: int,
                             checker: WriteChecker | None = None, faults: tuple[str, ...] = FAULTS,
                             baseline: bool = False, log: Callable[[str], None] = lambda _: None,
                             ) -> list[FaultResult]:
    """Start a rolling update to revision ``rev`` and, once it progresses, kill each of ``faults`` in turn, each
    after the rollout progressed past the one before (with ``baseline``, first the same measure with no kill)."""
    await client.patch("deployments", APP, {"spec": {"template": {"metadata": {"labels": {"rev": str(rev)}}}}},
                       "default")

    async def started() -> bool:
        return any(ready(p) and p["metadata"]["labels"].get("rev") == str(rev) for p in await web_pods(client))

    await timed(started, 60)
    out = []
    for fault in (BASELINE, *faults) if baseline else faults:
        child, path = ("-", None) if fault == BASELINE else await victim(client, cp_data, agent_data, fault)
        out.append(await kill_during_rollout(client, checker, fault, child, path))
        log(str(out[-1]))
    return out


@dataclass
class PartitionResult:
    not_ready: float | None = None  # s from the link going down to the node not Ready
    replaced: float | None = None  # s from the link going down to every replica Ready on the other node
    stale_stopped: float | None = None  # s from the link coming back to the node running only what the store binds
    stale: int = 0  # the partitioned node's running pod containers when its link came back

    def __str__(self) -> str:
        def s(v: float | None) -> str:
            return "never" if v is None else f"{v:.1f} s"

        return (f"partition: node not Ready {s(self.not_ready)} after the link went down, every replica Ready on the "
                f"other node {s(self.replaced)}; link back: {self.stale} stale containers stopped "
                f"{s(self.stale_stopped)} after")


async def node_condition(client: ApiClient, node: str) -> str:
    n = await client.get("nodes", node)
    return next((c["status"] for c in (n.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"),
                "Unknown")


def only_bound(pods: list[dict], node: str) -> bool:
    """Whether the containers running on ``node`` are all of pods the store binds to it."""
    mine = {p["metadata"]["uid"] for p in pods if p["spec"].get("nodeName") == node}
    return all(c["uid"] in mine for c in containers([node]))


async def partition(client: ApiClient, machine, other: str, replicas: int, timeout: float = 90.0) -> PartitionResult:
    """Take ``machine`` (a rig machine whose node runs some of the replicas) off its LAN; measure until its Node is
    not Ready and every replica is Ready on ``other``; bring the link back and measure until the machine runs no
    container of a pod the store does not bind to it."""
    node = machine.hostname
    result = PartitionResult()
    machine.link_down()
    try:
        async def not_ready() -> bool:
            return await node_condition(client, node) != "True"

        async def replaced() -> bool:
            return by_node(await web_pods(client)).get(other, 0) == replicas

        result.not_ready, result.replaced = await asyncio.gather(timed(not_ready, timeout), timed(replaced, timeout))
        result.stale = len([c for c in containers([node]) if c["container"] != "POD"])
    finally:
        machine.link_up()

    async def cleaned() -> bool:
        return await asyncio.to_thread(only_bound, (await client.list("pods"))[0], node)

    result.stale_stopped = await timed(cleaned, timeout)
    return result
