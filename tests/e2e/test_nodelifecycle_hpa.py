"""Real agents on Docker: losing a node (kill -9 of its agent) taints it, evicts its pods and the
ReplicaSet replaces them on the other node; the node coming back is Ready again and its old
containers are stopped. The HPA scales a ReplicaSet up under a CPU-burning container and down
once the burn stops and the (shortened) stabilization window has passed."""

from __future__ import annotations

import signal
import time

import pytest

from bus import errors
from tests import builders
from tests.builders import container, requests
from tests.harness import NEEDS_DOCKER, no_containers, node_ready, start_cluster, stop_cluster, unique_node
from tests.waiting import eventually

pytestmark = list(NEEDS_DOCKER)
UNREACHABLE = "node.kubernetes.io/unreachable"


def replicaset(name: str, replicas: int, script: str, cpu: str | None = None) -> dict:
    main = container("main", script, **({"resources": requests(cpu)} if cpu else {}))
    return builders.replicaset(name, replicas=replicas, grace=1, containers=[main])


async def running_on(client, app: str) -> dict[str, str]:
    """name -> node of the app's Running pods that are not terminating."""
    pods, _ = await client.list("pods", "default", label_selector=f"app={app}")
    return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods
            if p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")}


async def remove_replicaset(client, name: str) -> None:
    try:
        await client.scale("replicasets", name, 0, "default")
    except errors.NotFound:
        return
    await eventually(lambda: _no_pods(client, name), 30, f"{name}'s pods gone")
    await client.delete("replicasets", name, "default")


async def _no_pods(client, app):
    return not (await client.list("pods", "default", label_selector=f"app={app}"))[0]


async def events(client, reason: str) -> list[dict]:
    return [e for e in (await client.list("events"))[0] if e.get("reason") == reason]


@pytest.fixture
async def two_nodes(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path)
    node_b, cidr_b = unique_node()
    c.start_agent(node_b, cidr_b)
    await eventually(lambda: node_ready(c.client, node_b), 30, "node B Ready")
    c.node_b, c.cidr_b = node_b, cidr_b
    yield c
    await remove_replicaset(c.client, "web")
    await stop_cluster(c)


async def test_node_loss_evicts_and_replaces_pods_and_the_node_comes_back(two_nodes):
    c, a, b = two_nodes.client, two_nodes.node, two_nodes.node_b
    await c.patch("nodes", a, {"spec": {"unschedulable": True}})  # first place the pods on B
    await c.create(replicaset("web", 2, "sleep 3600"))
    await eventually(lambda: _count_on(c, "web", b, 2), 30, "2 pods Running on node B")
    old = set(await running_on(c, "web"))
    await c.patch("nodes", a, {"spec": {"unschedulable": None}})

    agent_b = two_nodes.agents[-1]
    agent_b.send_signal(signal.SIGKILL)
    agent_b.wait()
    killed = time.monotonic()

    async def tainted():
        n = await c.get("nodes", b)
        ready = next(x for x in n["status"]["conditions"] if x["type"] == "Ready")
        taints = [t for t in n["spec"].get("taints") or [] if t["key"] == UNREACHABLE and t["effect"] == "NoExecute"]
        return ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown" and taints

    await eventually(tainted, 15, "node B Ready=Unknown with the unreachable taint")
    t_taint = time.monotonic() - killed
    await eventually(lambda: _replaced(c, old, a), 30, "2 replacement pods Running on node A")
    t_replaced = time.monotonic() - killed
    assert 6.5 <= t_taint < 12, t_taint  # the 8 s grace period, from the last 1 s lease renewal
    assert t_replaced < t_taint + 12, (t_taint, t_replaced)  # 5 s toleration + scheduling + start
    assert [e for e in await events(c, "NodeNotReady") if e["involvedObject"]["name"] == b]
    evicted = {e["involvedObject"]["name"] for e in await events(c, "TaintManagerEviction")}
    assert old <= evicted

    two_nodes.start_agent(b, two_nodes.cidr_b)  # the node comes back

    async def healthy():
        n = await c.get("nodes", b)
        return await node_ready(c, b) and not any(t["key"] == UNREACHABLE for t in n["spec"].get("taints") or [])

    await eventually(healthy, 30, "node B Ready again without the taint")
    await eventually(lambda: no_containers(b), 30, "node B's old containers stopped")
    assert set(await running_on(c, "web")).isdisjoint(old)
    assert all(node == a for node in (await running_on(c, "web")).values())


async def _count_on(c, app, node, n):
    on = await running_on(c, app)
    return len(on) == n and all(v == node for v in on.values())


async def _replaced(c, old, node):
    on = await running_on(c, "web")
    new = {k: v for k, v in on.items() if k not in old}
    return len(new) == 2 and all(v == node for v in new.values())


# ---- HPA ------------------------------------------------------------------------------------------

BURN = "end=$(($(date +%s)+{secs})); while [ $(date +%s) -lt $end ]; do :; done; exec sleep 3600"


@pytest.fixture
async def hpa_cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path, env={"K8N_HPA_SYNC_PERIOD": "2"})
    yield c
    for name in ("burn",):
        try:
            await c.client.delete("horizontalpodautoscalers", name, "default")
        except errors.NotFound:
            pass
    await remove_replicaset(c.client, "burn")
    await stop_cluster(c)


async def test_hpa_scales_up_under_cpu_burn_and_down_after_the_window(hpa_cluster):
    c = hpa_cluster.client
    await c.create(replicaset("burn", 1, BURN.format(secs=30), cpu="100m"))
    await c.create({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "burn", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "burn"},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                               "target": {"type": "Utilization", "averageUtilization": 50}}}],
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}}})

    async def replicas():
        return (await c.get_scale("replicasets", "burn", "default"))["spec"]["replicas"]

    async def hpa_reporting(desired):  # the HPA scales first, then writes its status
        hpa = await c.get("horizontalpodautoscalers", "burn", "default")
        return hpa if (hpa.get("status") or {}).get("desiredReplicas") == desired else None

    async def rescaled_to(size):
        return any(f"New size: {size}" in e["message"] for e in await events(c, "SuccessfulRescale"))

    await eventually(lambda: _eq(replicas(), 3), 40, "the HPA to scale up to maxReplicas 3")
    hpa = await eventually(lambda: hpa_reporting(3), 10, "the HPA status to report 3")
    await eventually(lambda: rescaled_to(3), 10, "the rescale event")
    st = hpa["status"]
    conds = {x["type"]: x for x in st["conditions"]}
    assert st["desiredReplicas"] == 3 and st.get("lastScaleTime")
    assert conds["ScalingActive"]["status"] == "True" and conds["AbleToScale"]["status"] == "True"
    assert st["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    assert any("New size: 3" in e["message"] for e in await events(c, "SuccessfulRescale"))

    await eventually(lambda: _eq(replicas(), 1), 90, "the HPA to scale back down once the burn stops")
    hpa = await eventually(lambda: hpa_reporting(1), 10, "the HPA status to report 1")
    await eventually(lambda: rescaled_to(1), 10, "the rescale event")
    assert hpa["status"]["desiredReplicas"] == 1
    assert any("New size: 1; reason: All metrics below target" in e["message"]
               for e in await events(c, "SuccessfulRescale"))


async def test_hpa_reports_pods_without_requests(hpa_cluster):
    c = hpa_cluster.client
    await c.create(replicaset("burn", 1, "exec sleep 3600"))
    await c.create({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "burn", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "burn"},
                 "minReplicas": 1, "maxReplicas": 3}})

    async def reported():
        hpa = await c.get("horizontalpodautoscalers", "burn", "default")
        conds = {x["type"]: x for x in (hpa.get("status") or {}).get("conditions") or []}
        sa = conds.get("ScalingActive") or {}
        return sa.get("status") == "False" and sa.get("reason") == "FailedGetResourceMetric" and \
            "missing request for cpu" in sa.get("message", "")

    await eventually(reported, 30, "ScalingActive=False: missing request for cpu")
    assert (await c.get_scale("replicasets", "burn", "default"))["spec"]["replicas"] == 1


async def _eq(coro, value):
    return (await coro) == value
