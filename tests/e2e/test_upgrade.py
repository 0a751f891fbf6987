"""A rolling upgrade from the previous release (deploy/releases.txt, run from its own tree: tests/oldrelease.py) to
the working tree, as an operator does it: API server replicas one at a time (a new one serving before an old one
stops), then the controllers/scheduler/nodeview process, then the node agent (stopped without draining; the new
one adopts its pods), then ``k8n upgrade apply``. Meanwhile four clients each write and read every ~50 ms, each
request retried at most once, and a watch looks for pods deleted, made anew or not Ready.

What a user checks afterwards: the same pods (uids, containers, IPs, no restart) Ready all along, the Node Ready
reporting the new version, the Secret and ConfigMap as they were, no request failed, a Deployment made while old
controllers and agent worked through new API servers ran, and the Deployment still scales."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time

import pytest

from bus import errors
from bus.client import ApiClient
from bus.roles import ADMIN, Identity
from node.nodeinfo import KUBELET_VERSION
from tests import builders
from tests.harness import NEEDS_DOCKER, node_ready
from tests.oldrelease import RollingCluster, old_release, remove_containers, running_containers  # noqa: F401
from tests.waiting import eventually

pytestmark = [*NEEDS_DOCKER, pytest.mark.timeout(300)]

NS = "upgrade"
SECRET = {"password": "hunter2", "token": "t0k3n\n"}
SETTINGS = {"color": "blue", "size": "3"}
PERIOD = 0.05  # seconds between two rounds of the steady client
RETRY_AFTER = 0.5  # seconds before the one retry a request may have
ATTEMPT_TIMEOUT = 5.0


class SteadyClient:
    """Clients of the new code, ``workers`` of them at once, each writing (a merge patch of its own ConfigMap: the
    same patch twice is harmless, so a retry after a lost reply is safe) and reading it back every ``PERIOD``; a
    request failing is retried once after ``RETRY_AFTER``. ``failed``: what failed after its retry (and reads not
    seeing the last write); ``retried``: what needed the retry."""

    def __init__(self, client: ApiClient, ns: str, workers: int = 4) -> None:
        self.client, self.ns, self.workers = client, ns, workers
        self.phase = "start"
        self.ok = 0
        self.retried: list[str] = []
        self.failed: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        for i in range(self.workers):
            await self.client.create(builders.configmap(f"steady-{i}", self.ns, data={"n": "0"}))
            self._tasks.append(asyncio.create_task(self._run(f"steady-{i}"), name=f"steady-{i}"))
        await eventually(lambda: self.ok >= 10, 20, "the steady client's first rounds")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def rounds(self, n: int) -> None:
        """Until ``n`` more rounds have succeeded."""
        goal = self.ok + n
        await eventually(lambda: self.ok >= goal or any(t.done() for t in self._tasks), 30,
                         f"{n} more rounds of the steady client")

    async def _once(self, what: str, call) -> object:
        try:
            return await call()
        except errors.ApiError as e:
            if e.code < 500 and e.code != 429:  # the request was wrong: no retry makes it right
                self.failed.append(f"{self.phase}: {what}: {e!r}")
                raise _Failed from None
            first = e
        except Exception as e:  # no reply, a connection lost
            first = e
        self.retried.append(f"{self.phase}: {what}: {first!r}")
        await asyncio.sleep(RETRY_AFTER)
        try:
            return await call()
        except Exception as e:
            self.failed.append(f"{self.phase}: {what} (after one retry): {e!r}")
            raise _Failed from None

    async def _run(self, name: str) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                await self._once(f"patch {name} n={n}", lambda: self.client.patch(
                    "configmaps", name, {"data": {"n": str(n)}}, self.ns))
                got = await self._once(f"get {name}", lambda: self.client.get("configmaps", name, self.ns))
                if got["data"]["n"] != str(n):
                    self.failed.append(f"{self.phase}: read {name} n={got['data']['n']} after writing n={n}")
                else:
                    self.ok += 1
            except _Failed:
                pass
            await asyncio.sleep(PERIOD)


class _Failed(Exception):
    pass


class PodWatch:
    """Pods of Deployment web deleted, made anew (uids not among ``known``) or not Ready while it runs."""

    def __init__(self, client: ApiClient, ns: str, known: set[str]) -> None:
        self.client, self.ns, self.known = client, ns, set(known)
        self.changes: list[tuple[str, str, str]] = []  # (uid, "deleted" | "made" | "not Ready", what)
        self._task: asyncio.Task | None = None
        self._watch = None

    async def start(self) -> None:
        self._watch = await self.client.watch("pods", self.ns, label_selector="app=web")
        self._task = asyncio.create_task(self._run(), name="pod-watch")

    async def _run(self) -> None:
        async for ev in self._watch:
            meta = ev.object.get("metadata") or {}
            uid, what = meta.get("uid"), f"{ev.type} {meta.get('name')} at revision {ev.revision}"
            if ev.type == "DELETED" or meta.get("deletionTimestamp"):
                self.changes.append((uid, "deleted", what))
            elif uid not in self.known:
                self.changes.append((uid, "made", what))
                self.known.add(uid)
            elif not _ready(ev.object):
                self.changes.append((uid, "not Ready", f"{what}: {(ev.object.get('status') or {}).get('conditions')}"))

    def of(self, uids) -> list[tuple[str, str, str]]:
        """The changes of the pods ``uids`` (deleted, or not Ready) and any deletion."""
        return [c for c in self.changes if c[0] in uids or c[1] == "deleted"]

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            await self._watch.stop()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def workload() -> list[dict]:
    """A namespace, a Secret (env var and volume of the pods), a ConfigMap and a Deployment of 3 pods whose
    probes (startup, readiness, liveness) read the Secret's volume."""
    main = builders.container(
        "main", "sleep 3600",
        env=[{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}],
        volumeMounts=[{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}],
        readinessProbe={"exec": {"command": ["sh", "-c", 'test "$(cat /etc/creds/password)" = "$PASSWORD"']},
                        "periodSeconds": 1},
        startupProbe={"exec": {"command": ["test", "-s", "/etc/creds/token"]}, "periodSeconds": 1},
        livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1})
    return [builders.namespace(NS), builders.secret("creds", NS, data=SECRET),
            builders.configmap("settings", NS, data=SETTINGS),
            builders.deployment("web", NS, replicas=3, grace=2, containers=[main],
                                pod={"volumes": [{"name": "creds", "secret": {"secretName": "creds"}}]})]


def _ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])


async def ready_pods(client: ApiClient, n: int, app: str = "web") -> dict[str, dict] | None:
    """The pods of Deployment ``app`` by uid when there are ``n``, all Ready."""
    pods = (await client.list("pods", NS, label_selector=f"app={app}"))[0]
    return {p["metadata"]["uid"]: p for p in pods} if len(pods) == n and all(map(_ready, pods)) else None


def containers_of(pods: dict[str, dict]) -> dict[str, tuple[str, int, str]]:
    """uid -> (containerID, restartCount, podIP) of each pod (of its one container)."""
    return {uid: (cs["containerID"], cs["restartCount"], p["status"]["podIP"]) for uid, p in pods.items()
            for cs in p["status"]["containerStatuses"]}


async def node_reports(client: ApiClient, node: str, version: str) -> bool:
    """The Node is Ready and its agent reports ``version``."""
    if not await node_ready(client, node):
        return False
    return (await client.get("nodes", node))["status"]["nodeInfo"]["kubeletVersion"] == version


async def data_unchanged(client: ApiClient) -> None:
    secret = await client.get("secrets", "creds", NS)
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == SECRET
    assert (await client.get("configmaps", "settings", NS))["data"] == SETTINGS


async def apply_upgrade(cluster: RollingCluster) -> None:
    """``k8n upgrade apply`` once every component runs the new code: it checks each component's version and
    rewrites the stored objects to the new storage schema. (The CLI of the working tree, as the admin.)"""
    env = {**os.environ, "K8N_SERVER": cluster.url, "K8N_CREDS_DIR": cluster.creds_dir}
    r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bus.cli", "upgrade", "apply"],
                                capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, f"k8n upgrade apply failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"


async def test_rolling_upgrade_from_the_previous_release_keeps_pods_data_and_requests(nats_server, tmp_path,
                                                                                       old_release):
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise RuntimeError("the Docker engine is not running: bash deploy/node-deps.sh starts it")
    cluster = RollingCluster(nats_server, tmp_path)
    admin = nats_server.credentials(Identity(ADMIN))
    timings: list[tuple[str, float]] = []
    t0 = time.monotonic()

    def mark(what: str) -> None:
        timings.append((what, time.monotonic() - t0))

    def report() -> None:
        print(f"\nsteady client: {steady.ok} rounds, {len(steady.retried)} retried {steady.retried}; timings: "
              + ", ".join(f"{what} {t:.1f}s" for what, t in timings))

    client = steady = watch = None
    try:
        # 1. the old release's cluster, and a workload on it
        api_old = [await cluster.start_apiserver(f"apiserver-old-{i}", old_release) for i in (1, 2)]
        control_old = cluster.start_master("control-old", "controllers,scheduler,nodeview", old_release)
        agent_old = cluster.start_agent("agent-old", old_release)
        client = await ApiClient.connect(cluster.url, creds=admin)
        old_kubelet = old_release.python("from node.nodeinfo import KUBELET_VERSION; print(KUBELET_VERSION)")
        assert old_kubelet != KUBELET_VERSION, f"the working tree's version is the release's ({old_kubelet})"
        await eventually(lambda: node_reports(client, cluster.node, old_kubelet), 60,
                         lambda: f"node Ready, kubeletVersion {old_kubelet}\n{cluster.logs()}")
        for obj in workload():
            await client.create(obj)
        before = await eventually(lambda: ready_pods(client, 3), 60, lambda: f"3 pods Ready\n{cluster.logs()}")
        containers = containers_of(before)
        assert all(restarts == 0 for _, restarts, _ in containers.values())
        mark("old cluster up, 3 pods Ready")

        client.retries, client.timeout = 0, ATTEMPT_TIMEOUT  # the steady client's one retry is its own
        steady = SteadyClient(client, NS)
        await steady.start()
        watch = PodWatch(client, NS, set(before))
        await watch.start()

        # 2. API servers, one at a time: a new one serves before an old one stops
        for i, old in enumerate(api_old, 1):
            steady.phase = f"apiserver {i}"
            await cluster.start_apiserver(f"apiserver-new-{i}")
            await steady.rounds(5)
            assert await old.terminate() == 0, f"{old.what} exited with a failure\n{old.tail()}"
            await steady.rounds(5)
            mark(f"API server {i} of 2 replaced")
        # new API servers serve the old controllers, scheduler and agent: a Deployment made now runs
        await client.create(builders.deployment("during", NS, replicas=1, grace=2, script="sleep 3600"))
        during = await eventually(lambda: ready_pods(client, 1, "during"), 60,
                                  lambda: f"the pod of a Deployment made between the upgrades Ready\n{cluster.logs()}")
        running = running_containers(cluster.node)  # web's 3 pods and during's, each with its sandbox
        assert len(running) == 8, running
        mark("a Deployment run by the old components through the new API servers")

        # 3. the controllers, scheduler and node view: the new process waits for the old one's leases
        steady.phase = "control plane"
        control_new = cluster.start_master("control-new", "controllers,scheduler,nodeview")
        await control_new.wait_for_log(": waiting to lead", 30, count=3)
        assert await control_old.terminate() == 0, f"control-old exited with a failure\n{control_old.tail()}"
        await control_new.wait_for_log("acquired by", 60, count=3)
        mark("controllers/scheduler/nodeview replaced")

        # 4. the node agent: stopped without draining, the new one (same name, podCIDR, state dir) adopts the pods
        steady.phase = "node agent"
        assert await agent_old.terminate() == 0, f"agent-old exited with a failure\n{agent_old.tail()}"
        agent_new = cluster.start_agent("agent-new", drain_on_exit=True)  # draining: the test's cleanup
        await agent_new.wait_for_log(f"agent {cluster.node} ready", 60)
        await eventually(lambda: node_reports(client, cluster.node, KUBELET_VERSION), 30,
                         lambda: f"the Node Ready, kubeletVersion {KUBELET_VERSION}\n{agent_new.tail()}")
        mark("node agent replaced")
        await steady.rounds(20)

        # what a user checks
        after = await eventually(lambda: ready_pods(client, 3), 30, "the 3 pods Ready")
        assert set(after) == set(before), "the pods were replaced"
        assert containers_of(after) == containers, "containers restarted or replaced, or pod IPs changed"
        assert containers_of(await ready_pods(client, 1, "during")) == containers_of(during)
        assert running_containers(cluster.node) == running, "the pods' running containers changed"
        assert watch.changes == [], f"pods deleted, made or not Ready during the upgrade: {watch.changes}"
        await data_unchanged(client)
        assert steady.failed == [], f"requests failed after one retry: {steady.failed} (retried: {steady.retried})"
        assert [p.what for p in cluster.running()] == ["apiserver-new-1", "apiserver-new-2", "control-new",
                                                       "agent-new"]
        steady.phase = "scale"
        await client.scale("deployments", "web", 4, NS)
        scaled = await eventually(lambda: ready_pods(client, 4), 60, "a 4th pod Ready")
        assert set(before) < set(scaled)
        assert containers_of(scaled).items() > containers.items(), "the first 3 pods' containers changed"
        mark("scaled to 4")
        report()

        # 5. the stored objects rewritten for the new code (`k8n upgrade apply`), pods untouched
        steady.phase = "upgrade apply"
        await apply_upgrade(cluster)
        await steady.rounds(20)
        await data_unchanged(client)
        assert containers_of(await ready_pods(client, 4)) == containers_of(scaled)
        mark("k8n upgrade apply")
        await steady.stop()
        await watch.stop()
        assert steady.failed == [], f"requests failed after one retry: {steady.failed} (retried: {steady.retried})"
        assert watch.of(before) == [], f"pods deleted or not Ready: {watch.of(before)}"
        report()
    finally:
        if steady is not None:
            await steady.stop()
        if watch is not None:
            await watch.stop()
        await teardown(cluster, client)


async def teardown(cluster: RollingCluster, client: ApiClient | None) -> None:
    """Stop every process; the pods go with a draining agent (the last one, or one of its release started for the
    purpose when the test ended before it), which also removes the node's networking; fails if a container was
    left."""
    for p in cluster.running():
        if p.what.startswith("control"):
            await p.terminate()
    apiservers = [p for p in cluster.procs if p.what.startswith("apiserver")]
    agent = cluster.agent
    if agent is not None and not (agent.what == "agent-new" and agent.alive()):
        if apiservers and not any(p.alive() for p in apiservers):
            await cluster.start_apiserver("apiserver-cleanup", apiservers[-1].release)
        await agent.terminate()
        agent = cluster.start_agent("agent-cleanup", agent.release, drain_on_exit=True)
        await agent.wait_for_log(f"agent {cluster.node} ready", 60)
    if agent is not None:
        await agent.terminate(60)
    for p in cluster.running():
        await p.terminate()
    if client is not None:
        await client.close()
    leftovers = remove_containers(cluster.node)
    assert not leftovers, f"containers leaked: {leftovers}"
