"""ReplicaSets and ReplicationControllers on a real cluster (control plane, scheduler, an agent
running pods in Docker): replica counts kept through pod deletion, scaling, adoption and release,
an agent kill -9, fast scaling with a lagging cache; background, foreground and orphan deletion."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest

from bus import errors
from tests import builders
from tests.builders import pod
from tests.harness import NEEDS_DOCKER, node_ready, start_cluster, stop_cluster
from tests.waiting import eventually, stays

pytestmark = list(NEEDS_DOCKER)


@pytest.fixture
async def cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path)
    yield c
    for kind in ("replicasets", "replicationcontrollers"):  # else they replace the pods stop_cluster deletes
        for o in (await c.client.list(kind))[0]:
            try:
                await c.client.delete(kind, o["metadata"]["name"], o["metadata"]["namespace"])
            except errors.NotFound:
                pass
    await stop_cluster(c)


SLEEPER = "trap 'exit 0' TERM; sleep 3600 & wait"


def template(app: str) -> dict:
    return builders.template({"app": app}, script=SLEEPER, grace=1)


def replicaset(name: str, replicas: int) -> dict:
    return builders.replicaset(name, replicas=replicas, template=template(name))


async def pods_of(client, app: str, active: bool = True) -> list[dict]:
    items, _ = await client.list("pods", "default", label_selector=f"app={app}")
    if active:
        items = [p for p in items if not p["metadata"].get("deletionTimestamp")
                 and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    return items


def ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions") or [])


async def exactly_running(client, app: str, n: int) -> list[dict] | None:
    pods = await pods_of(client, app)
    return pods if len(pods) == n and all(p["status"].get("phase") == "Running" and ready(p) for p in pods) else None


async def rs_status(client, name: str, kind: str = "replicasets") -> dict:
    return (await client.get(kind, name)).get("status") or {}


def containers_of(uids: list[str]) -> list[str]:
    out = []
    for uid in uids:
        out += subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.pod.uid={uid}"],
                              capture_output=True, text=True).stdout.split()
    return out


async def test_replicaset_runs_replaces_and_scales(cluster):
    c = cluster.client
    await c.create(replicaset("web", 3))
    pods = await eventually(lambda: exactly_running(c, "web", 3), 40, "3 Running pods")
    rs = await c.get("replicasets", "web")
    assert all(p["metadata"]["name"].startswith("web-") for p in pods)
    assert all(p["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}] for p in pods)

    async def status_is(**want):
        st = await rs_status(c, "web")
        return all(st.get(k) == v for k, v in want.items())

    await eventually(lambda: status_is(replicas=3, readyReplicas=3, availableReplicas=3, fullyLabeledReplicas=3,
                                       observedGeneration=rs["metadata"]["generation"]), 15, "status of 3 ready")

    victim = pods[0]["metadata"]["name"]
    await c.delete("pods", victim)

    async def replaced():
        now = await exactly_running(c, "web", 3)
        return now if now and victim not in {p["metadata"]["name"] for p in now} else None

    await eventually(replaced, 40, "the deleted pod replaced")

    await c.scale("replicasets", "web", 5)
    await eventually(lambda: exactly_running(c, "web", 5), 40, "scaled up to 5")
    await c.scale("replicasets", "web", 2)
    await eventually(lambda: exactly_running(c, "web", 2), 40, "scaled down to 2")
    await eventually(lambda: status_is(replicas=2, readyReplicas=2), 15, "status of 2")
    assert (await c.get_scale("replicasets", "web"))["spec"]["replicas"] == 2
    events, _ = await c.list("events", "default", field_selector="involvedObject.name=web")
    reasons = {e["reason"] for e in events}
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons


async def test_replication_controller_keeps_its_pods(cluster):
    c = cluster.client
    await c.create({"apiVersion": "v1", "kind": "ReplicationController",
                    "metadata": {"name": "legacy", "namespace": "default"},
                    "spec": {"replicas": 2, "template": template("legacy")}})
    pods = await eventually(lambda: exactly_running(c, "legacy", 2), 40, "2 Running pods")
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController" for p in pods)
    await c.scale("replicationcontrollers", "legacy", 1)
    await eventually(lambda: exactly_running(c, "legacy", 1), 40, "scaled down to 1")
    async def one_ready():
        st = await rs_status(c, "legacy", "replicationcontrollers")
        return st if st and st.get("readyReplicas") == 1 and st.get("replicas") == 1 else None

    await eventually(one_ready, 15, "status: 1 replica, 1 ready")


async def test_orphans_are_adopted_and_relabelled_pods_released(cluster):
    c = cluster.client
    await c.create(pod("orphan", labels={"app": "adopt"}, script=SLEEPER, grace=1))
    await eventually(lambda: exactly_running(c, "adopt", 1), 40, "the orphan running")
    await c.create(replicaset("adopt", 2))
    pods = await eventually(lambda: exactly_running(c, "adopt", 2), 40, "2 Running pods")
    rs_uid = (await c.get("replicasets", "adopt"))["metadata"]["uid"]
    assert "orphan" in {p["metadata"]["name"] for p in pods}, "the orphan was adopted instead of replaced"
    adopted = await c.get("pods", "orphan")
    assert [(r["uid"], r["controller"]) for r in adopted["metadata"]["ownerReferences"]] == [(rs_uid, True)]

    await c.patch("pods", "orphan", {"metadata": {"labels": {"app": "debug"}}})

    async def released():
        p = await c.get("pods", "orphan")
        return not p["metadata"].get("ownerReferences")

    await eventually(released, 15, "the relabelled pod released")
    now = await eventually(lambda: exactly_running(c, "adopt", 2), 40, "a replacement for the released pod")
    assert "orphan" not in {p["metadata"]["name"] for p in now}
    assert (await c.get("pods", "orphan"))["status"]["phase"] == "Running", "a released pod is left running"


async def test_replica_count_survives_an_agent_kill_9(cluster):
    c = cluster.client
    await c.create(replicaset("steady", 3))
    before = await eventually(lambda: exactly_running(c, "steady", 3), 40, "3 Running pods")
    uids = {p["metadata"]["uid"] for p in before}

    async def none_replaced():
        return {p["metadata"]["uid"] for p in await pods_of(c, "steady", active=False)} == uids

    cluster.agent.send_signal(signal.SIGKILL)
    cluster.agent.wait()
    await stays(none_replaced, 1, "the pods kept while the agent is down")
    cluster.start_agent()
    await eventually(lambda: node_ready(c, cluster.node), 30, "the node Ready again")
    await stays(none_replaced, 3, "the pods kept by the restarted agent")
    after = await eventually(lambda: exactly_running(c, "steady", 3), 30, "3 Running pods")
    assert {p["metadata"]["uid"] for p in after} == {p["metadata"]["uid"] for p in before}, "no pod replaced"
    assert len(await pods_of(c, "steady", active=False)) == 3, "no duplicates"
    assert len(containers_of([p["metadata"]["uid"] for p in after])) == 6, "one sandbox and one container each"


async def test_background_deletion_removes_pods_and_containers(cluster):
    c = cluster.client
    await c.create(replicaset("bg", 2))
    pods = await eventually(lambda: exactly_running(c, "bg", 2), 40, "2 Running pods")
    uids = [p["metadata"]["uid"] for p in pods]
    await c.delete("replicasets", "bg")
    await eventually(lambda: _no_pods(c, "bg"), 30, "the pods deleted")
    await eventually(lambda: not containers_of(uids), 30, "their containers removed")
    with pytest.raises(errors.NotFound):
        await c.get("replicasets", "bg")


async def _no_pods(c, app):
    return not await pods_of(c, app, active=False)


async def test_foreground_deletion_removes_the_pods_first(cluster):
    c = cluster.client
    await c.create(replicaset("fg", 2))
    pods = await eventually(lambda: exactly_running(c, "fg", 2), 40, "2 Running pods")
    uids = [p["metadata"]["uid"] for p in pods]
    await c.delete("replicasets", "fg", propagation_policy="Foreground")
    rs = await c.get("replicasets", "fg")
    assert rs["metadata"]["deletionTimestamp"] and "foregroundDeletion" in rs["metadata"]["finalizers"]

    async def rs_gone():
        try:
            await c.get("replicasets", "fg")
        except errors.NotFound:
            return True
        return False

    await eventually(rs_gone, 60, "the ReplicaSet removed", interval=0.1)
    assert await _no_pods(c, "fg"), "the ReplicaSet went before its pods"  # the owner goes only after its pods
    await eventually(lambda: not containers_of(uids), 30, "their containers removed")


async def test_orphan_deletion_leaves_the_pods_running(cluster):
    c = cluster.client
    await c.create(replicaset("keep", 2))
    before = await eventually(lambda: exactly_running(c, "keep", 2), 40, "2 Running pods")
    await c.delete("replicasets", "keep", propagation_policy="Orphan")

    async def rs_gone():
        try:
            await c.get("replicasets", "keep")
        except errors.NotFound:
            return True
        return False

    await eventually(rs_gone, 15, "the ReplicaSet removed")

    async def left_running():
        after = await exactly_running(c, "keep", 2)
        return after is not None and {p["metadata"]["uid"] for p in after} == {p["metadata"]["uid"] for p in before} \
            and all(not p["metadata"].get("ownerReferences") for p in after)

    await stays(left_running, 2, "the orphaned pods left running, without owner")


async def test_fast_scaling_never_leaves_more_than_the_target(cluster):
    c = cluster.client
    await c.create(replicaset("burst", 0))
    await eventually(lambda: rs_status(c, "burst"), 10, "the controller to see the ReplicaSet")
    for _ in range(3):  # a scenario's pace, not a wait: each scale-down lands while creates are in flight
        await c.scale("replicasets", "burst", 10)
        await asyncio.sleep(0.3)
        await c.scale("replicasets", "burst", 0)
        await asyncio.sleep(0.3)
    await c.scale("replicasets", "burst", 10)
    most = 0

    async def settled():
        nonlocal most
        active = await pods_of(c, "burst")
        most = max(most, len(active))
        return await exactly_running(c, "burst", 10)

    await eventually(settled, 60, "10 Running pods")

    async def no_more_than_10():
        nonlocal most
        most = max(most, len(await pods_of(c, "burst")))
        return most <= 10

    await stays(no_more_than_10, 2, lambda: f"at most 10 active pods (saw {most})", interval=0.2)
    assert most == 10, f"at most 10 active pods while settling, saw {most}"
    await eventually(lambda: _count(c, "burst", 10), 30, "terminating pods gone, exactly 10 left")


async def _count(c, app, n):
    return len(await pods_of(c, app, active=False)) == n
