"""The scheduler against a real nats-server and API server, with Node objects made here (no agents)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bus import roles
from bus.client import ApiClient
from bus.roles import Identity
from master.scheduler import Scheduler
from master.scheduler.testing import make_node
from tests.builders import container, pod, requests
from tests.waiting import eventually, stays


@pytest.fixture
async def start_scheduler(nats_server, apiserver):
    started: list[tuple[Scheduler, ApiClient]] = []

    async def start(name: str = "default-scheduler") -> Scheduler:
        c = await ApiClient.connect(nats_server.url, Identity(roles.SCHEDULER))
        s = Scheduler(c, name, initial_backoff=0.2, max_backoff=1.0)
        await s.start(sync_timeout=10)
        started.append((s, c))
        return s

    yield start
    for s, c in started:
        await s.stop()
        await c.close()


def asking(name: str, cpu: str, memory: str | None = None) -> dict:
    """A pod whose one container requests ``cpu`` (and ``memory``)."""
    return pod(name, containers=[container(resources=requests(cpu, memory))])


async def node_of(client, name: str) -> str | None:
    return (await client.get("pods", name)).get("spec", {}).get("nodeName")


async def bound_to(client, name: str):
    return await eventually(lambda: node_of(client, name), 10, f"pod {name} bound")


async def unbound(client, name: str) -> bool:
    return await node_of(client, name) is None


async def bound_count(client, n: int) -> bool:
    items, _ = await client.list("pods", "default")
    return sum(1 for p in items if p["spec"].get("nodeName")) == n


async def unschedulable_message(client, name: str) -> str | None:
    p = await client.get("pods", name)
    for c in p.get("status", {}).get("conditions") or []:
        if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
            return c.get("message")
    return None


async def events_for(client, name: str, reason: str) -> list[dict]:
    items, _ = await client.list("events", "default")
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


async def test_binds_by_resources_and_explains_what_does_not_fit(client, start_scheduler):
    for n in ("n1", "n2"):
        await client.create(make_node(n, cpu="2", memory="4Gi"))
    await start_scheduler()
    await client.create(asking("small", "1500m", "1Gi"))
    await client.create(asking("big", "3"))
    node = await bound_to(client, "small")
    assert node in ("n1", "n2")
    other = "n2" if node == "n1" else "n1"
    await client.create(asking("second", "1500m"))
    assert await bound_to(client, "second") == other  # the first node has only 500m left

    msg = await eventually(lambda: unschedulable_message(client, "big"))
    assert msg == "0/2 nodes are available: 2 Insufficient cpu."
    big = await client.get("pods", "big")
    assert not big["spec"].get("nodeName") and big["status"]["phase"] == "Pending"
    failed = await eventually(lambda: events_for(client, "big", "FailedScheduling"))
    assert failed[0]["type"] == "Warning" and failed[0]["message"] == msg
    assert failed[0]["source"]["component"] == "default-scheduler"
    scheduled = await eventually(lambda: events_for(client, "small", "Scheduled"))
    assert scheduled[0]["message"] == f"Successfully assigned default/small to {node}"
    assert scheduled[0]["type"] == "Normal"
    conds = {c["type"]: c["status"] for c in (await client.get("pods", "small"))["status"]["conditions"]}
    assert conds["PodScheduled"] == "True"


async def test_selectors_affinity_taints_and_cordons(client, start_scheduler):
    await client.create(make_node("ssd", labels={"disk": "ssd"}))
    await client.create(make_node("gpu", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]))
    await client.create(make_node("cordoned", unschedulable=True))
    await start_scheduler()

    def on_host(host: str) -> dict:
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}}

    await client.create(pod("wants-ssd", nodeSelector={"disk": "ssd"}))
    await client.create(pod("tolerates-gpu", affinity=on_host("gpu"),
                            tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]))
    await client.create(pod("anywhere"))
    await client.create(pod("wants-cordoned", affinity=on_host("cordoned")))
    await client.create(pod("wants-gpu-untolerated", affinity=on_host("gpu")))
    assert await bound_to(client, "wants-ssd") == "ssd"
    assert await bound_to(client, "tolerates-gpu") == "gpu"
    assert await bound_to(client, "anywhere") == "ssd"  # the only node without taint or cordon
    assert await eventually(lambda: unschedulable_message(client, "wants-cordoned")) == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {gpu: yes}, 1 node(s) were unschedulable.")
    assert await eventually(lambda: unschedulable_message(client, "wants-gpu-untolerated")) == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {gpu: yes}, 1 node(s) were unschedulable.")
    assert await node_of(client, "wants-cordoned") is None

    # uncordon: the waiting pod gets its node
    n = await client.get("nodes", "cordoned")
    n["spec"]["unschedulable"] = False
    await client.update(n)
    assert await bound_to(client, "wants-cordoned") == "cordoned"


async def test_pending_pod_scheduled_soon_after_a_fitting_node_appears(client, start_scheduler):
    await client.create(make_node("small", cpu="1"))
    await start_scheduler()
    await client.create(asking("needs-4", "4"))
    assert await eventually(lambda: unschedulable_message(client, "needs-4")) == \
        "0/1 nodes are available: 1 Insufficient cpu."
    await stays(lambda: unbound(client, "needs-4"), 1.5, "needs-4 unbound while its backoff grows")
    t0 = time.monotonic()
    await client.create(make_node("large", cpu="8"))
    assert await bound_to(client, "needs-4") == "large"
    assert time.monotonic() - t0 < 2.0


async def test_nodes_not_ready_are_skipped_until_ready(client, start_scheduler):
    await client.create(make_node("fresh", ready=None))
    await start_scheduler()
    await client.create(pod("p"))
    assert await eventually(lambda: unschedulable_message(client, "p")) == \
        "0/1 nodes are available: 1 node(s) were not ready."
    n = await client.get("nodes", "fresh")
    n["status"]["conditions"] = [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
    await client.update_status(n)
    assert await bound_to(client, "p") == "fresh"


async def test_two_schedulers_side_by_side(client, start_scheduler):
    await client.create(make_node("n1"))
    await start_scheduler()
    await client.create(pod("for-default"))
    await client.create(pod("for-mine", schedulerName="my-scheduler"))
    await client.create(pod("for-nobody", schedulerName="nobody"))
    assert await bound_to(client, "for-default") == "n1"
    await stays(lambda: unbound(client, "for-mine"), 0.5, "for-mine unbound until its scheduler runs")

    await start_scheduler("my-scheduler")
    assert await bound_to(client, "for-mine") == "n1"
    ev = await eventually(lambda: events_for(client, "for-mine", "Scheduled"))
    assert ev[0]["source"]["component"] == "my-scheduler"
    ev = await eventually(lambda: events_for(client, "for-default", "Scheduled"))
    assert ev[0]["source"]["component"] == "default-scheduler"

    async def left_alone():
        return await unbound(client, "for-nobody") and not await events_for(client, "for-nobody", "FailedScheduling")

    await stays(left_alone, 0.5, "the pod of an unknown scheduler left alone")


async def test_last_slots_of_a_node_are_never_double_booked(client, start_scheduler):
    await client.create(make_node("tiny", pods=3))
    await start_scheduler()
    await asyncio.gather(*(client.create(pod(f"p{i}")) for i in range(10)))

    async def settled():
        items, _ = await client.list("pods", "default")
        bound = [p for p in items if p["spec"].get("nodeName")]
        waiting = [p for p in items if not p["spec"].get("nodeName") and
                   any(c["type"] == "PodScheduled" and c["status"] == "False" for c in p["status"].get("conditions") or [])]
        return (bound, waiting) if len(bound) + len(waiting) == 10 else None

    bound, waiting = await eventually(settled)
    assert len(bound) == 3 and {p["spec"]["nodeName"] for p in bound} == {"tiny"}
    assert {await unschedulable_message(client, p["metadata"]["name"]) for p in waiting} == \
        {"0/1 nodes are available: 1 Too many pods."}
    await stays(lambda: bound_count(client, 3), 1.0, "3 pods bound, no more")

    # a bound pod goes away: exactly one waiting pod takes its place
    await client.delete("pods", bound[0]["metadata"]["name"], grace_period_seconds=0)

    async def three_again():
        items, _ = await client.list("pods", "default")
        names = {p["metadata"]["name"] for p in items if p["spec"].get("nodeName")}
        return names if len(names) == 3 and bound[0]["metadata"]["name"] not in names else None

    await eventually(three_again)
    await stays(lambda: bound_count(client, 3), 1.0, "3 pods bound, no more")
