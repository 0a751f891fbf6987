"""The restarted agent adopts the running containers while its informer already watches: pod
deletions that land during adoption (before the handlers are registered) must still remove the
containers. The runtime, network and API are fakes; the informer is the real one over an in-memory
store, so the race is made deterministic by holding ``network.attach`` of one pod."""

from __future__ import annotations

import asyncio
import copy

import pytest

from bus import errors, subjects
from node.agent import Agent, AgentConfig
from node.runtime.model import ContainerInfo, ContainerStatus, Sandbox
from tests import builders
from tests.builders import IMAGE, container
from tests.unit.fakestore import FakeStore
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio
NODE = "n1"


class NodePodsStore(FakeStore):
    """The node view bucket: the agent lists it by its node's key prefix, and every pod here is its node's."""

    async def list(self, res, namespace=None):
        return await super().list(res, None)


class FakeClient:
    """The API as the agent uses it: status patches and deletes of pods, events."""

    def __init__(self, store):
        self.store = store
        self.deletes = []

    async def create(self, obj):
        return obj

    async def patch(self, resource, name, body, namespace=None, **kw):
        if resource == "pods" and subjects.object_key(namespace, name) not in self.store.objects:
            raise errors.NotFound(f"pods {name!r} not found")
        return {}

    async def delete(self, resource, name, namespace=None, **kw):
        self.deletes.append(name)
        if subjects.object_key(namespace, name) in self.store.objects:
            self.store.remove(namespace or "default", name)
        return {}

    async def list(self, resource, namespace=None, **kw):
        return [], 0

    async def get(self, resource, name, namespace=None):
        raise errors.NotFound(name)


class FakeRuntime:
    def __init__(self):
        self.containers: dict[str, ContainerInfo] = {}
        self.n = 0

    def add(self, pod, name, state="running"):
        self.n += 1
        cid = f"c{self.n:04d}"
        self.containers[cid] = ContainerInfo(cid, pod["metadata"]["uid"], pod["metadata"]["name"], "default", name,
                                             0, False, "", state, IMAGE, self.n)
        return cid

    def of(self, uid):
        return [c for c in self.containers.values() if c.pod_uid == uid]

    async def list_containers(self, pod_uid=None):
        await asyncio.sleep(0)
        return [c for c in sorted(self.containers.values(), key=lambda c: -c.created)
                if pod_uid is None or c.pod_uid == pod_uid]

    async def sandbox(self, cid):
        await asyncio.sleep(0)
        return Sandbox(cid, f"/proc/{cid}/ns/net", 1)

    async def inspect(self, cid):
        await asyncio.sleep(0)
        c = self.containers[cid]
        return ContainerStatus(**vars(c), started_at="2026-01-01T00:00:00Z")

    async def image_present(self, image):
        return True

    async def ensure_image(self, image, policy=None):
        return image

    async def create_sandbox(self, pod, attempt=0, *, nameserver=None, cluster_domain=""):
        cid = self.add(pod, "POD")
        return Sandbox(cid, f"/proc/{cid}/ns/net", 1)

    async def write_hosts(self, *a, **kw):
        pass

    async def create_container(self, pod, container, sandbox, attempt, env, mounts, init=False):
        return self.add(pod, container["name"], state="created")

    async def start_container(self, cid):
        self.containers[cid].state = "running"

    async def stop_container(self, cid, grace):
        if cid in self.containers:
            self.containers[cid].state = "exited"

    async def remove_container(self, cid):
        self.containers.pop(cid, None)

    async def remove_sandbox(self, cid):
        self.containers.pop(cid, None)


class FakeNetwork:
    """``attach`` of the uid in ``hold`` waits until the test releases it (adoption in progress)."""

    def __init__(self):
        self.hold: str | None = None
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.detached: list[str] = []

    async def attach(self, uid, netns):
        if uid == self.hold:
            self.held.set()
            await self.release.wait()
        return "10.244.0.9"

    async def detach(self, uid):
        self.detached.append(uid)

    async def gc(self, uids):
        pass


def pod(name, uid):
    return builders.pod(name, uid=uid, node=NODE, grace=1,
                        containers=[container("main", pull=None, command=["sleep", "3600"])],
                        phase="Running", started="2026-01-01T00:00:00Z")


@pytest.fixture
async def env(tmp_path):
    store, runtime, network = NodePodsStore(), FakeRuntime(), FakeNetwork()
    # resync far away: only events (or the agent's own level-triggered check) can make a worker act
    cfg = AgentConfig(name=NODE, server="", state_dir=tmp_path, node_ip="192.0.2.9", resync_seconds=3600,
                      relist_seconds=0.05)
    agent = Agent(cfg, FakeClient(store), runtime=runtime, network=network)
    yield agent, store, runtime, network
    await agent.stop()


def running_pod(store, runtime, name, uid):
    p = store.put(pod(name, uid))
    runtime.add(p, "POD")
    runtime.add(p, "main")
    return p


async def settle(n=50):
    for _ in range(n):
        await asyncio.sleep(0)


async def test_pods_deleted_while_the_agent_adopts_them_lose_their_containers(env):
    agent, store, runtime, network = env
    # the newest pods are adopted first (Docker lists newest first): "late" is held in network.attach
    # while "first" is already adopted and has synced once (its status written: nothing more to write)
    running_pod(store, runtime, "keep", "0896e052-6059-5873-b1c8-65f3d7a5e0e1")
    running_pod(store, runtime, "late", "9a1d7761-3766-5d4d-ab8b-6d2ec68755d8")
    running_pod(store, runtime, "first", "71d1e434-3521-5219-8114-c820be9e4770")
    network.hold = "9a1d7761-3766-5d4d-ab8b-6d2ec68755d8"
    start = asyncio.create_task(agent.start_pods())
    await asyncio.wait_for(network.held.wait(), 3)
    await settle()
    assert "71d1e434-3521-5219-8114-c820be9e4770" in agent.workers and agent.workers["71d1e434-3521-5219-8114-c820be9e4770"].last_status is not None
    # both pods are deleted (grace 0) right now: the informer applies the DELs, no handler is registered yet
    store.remove("default", "first")
    store.remove("default", "late")
    await settle()
    assert agent.informer.get("default", "first") is None
    network.release.set()
    await asyncio.wait_for(start, 3)
    await eventually(lambda: not runtime.of("71d1e434-3521-5219-8114-c820be9e4770"), 3, lambda: f"first's containers to go: {runtime.of('u-first')}")
    await eventually(lambda: not runtime.of("9a1d7761-3766-5d4d-ab8b-6d2ec68755d8"), 3, lambda: f"late's containers to go: {runtime.of('u-late')}")
    assert "71d1e434-3521-5219-8114-c820be9e4770" not in agent.workers and "9a1d7761-3766-5d4d-ab8b-6d2ec68755d8" not in agent.workers
    assert len(runtime.of("0896e052-6059-5873-b1c8-65f3d7a5e0e1")) == 2 and "0896e052-6059-5873-b1c8-65f3d7a5e0e1" in agent.workers
    assert agent.client.deletes == []  # already gone from the API: nothing to delete


async def test_graceful_deletion_during_adoption_reaches_the_adopted_worker(env):
    agent, store, runtime, network = env
    first = running_pod(store, runtime, "first", "71d1e434-3521-5219-8114-c820be9e4770")
    running_pod(store, runtime, "late", "9a1d7761-3766-5d4d-ab8b-6d2ec68755d8")  # newer: adopted first and held
    network.hold = "9a1d7761-3766-5d4d-ab8b-6d2ec68755d8"
    start = asyncio.create_task(agent.start_pods())
    await asyncio.wait_for(network.held.wait(), 3)
    # "first" is not adopted yet: the adopter took it from its snapshot of the cache before this update
    terminating = copy.deepcopy(first)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:10Z"
    terminating["metadata"]["deletionGracePeriodSeconds"] = 1
    store.put(terminating)
    await settle()
    network.release.set()
    await asyncio.wait_for(start, 3)
    await eventually(lambda: not runtime.of("71d1e434-3521-5219-8114-c820be9e4770"), 3, "first's containers to go")
    await eventually(lambda: "first" in agent.client.deletes, 3, "the agent to finish the deletion")
    assert len(runtime.of("9a1d7761-3766-5d4d-ab8b-6d2ec68755d8")) == 2


async def test_a_worker_whose_pod_left_the_cache_unnoticed_is_told_on_the_next_relist(env):
    """A pod replaced by one of the same name while the watch was down: the informer's relist
    delivers it as an update (same key), never as a delete; the old pod's worker must still stop."""
    agent, store, runtime, network = env
    running_pod(store, runtime, "web", "eb79fb3b-1e8a-53d8-bb56-914163b3572a")
    await agent.start_pods()
    await settle()
    assert "eb79fb3b-1e8a-53d8-bb56-914163b3572a" in agent.workers
    store.remove("default", "web", emit=False)
    store.put(pod("web", "82e780fa-c431-5b51-b64f-5f0464c9d0b7"), emit=False)
    store.break_watches()
    await eventually(lambda: not runtime.of("eb79fb3b-1e8a-53d8-bb56-914163b3572a"), 3, lambda: f"the old containers to go: {runtime.of('u-old')}")
    await eventually(lambda: {c.container_name for c in runtime.of("82e780fa-c431-5b51-b64f-5f0464c9d0b7")} == {"POD", "main"}, 3,
                     "the new pod's sandbox and container")
    assert "eb79fb3b-1e8a-53d8-bb56-914163b3572a" not in agent.workers and "82e780fa-c431-5b51-b64f-5f0464c9d0b7" in agent.workers
