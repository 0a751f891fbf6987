"""Real agents on Docker: losing a node (kill -9 of its agent) taints it, evicts its pods and the
ReplicaSet replaces them on the other node; the node coming back is Ready again and its old
containers are stopped. The HPA scales a Deployment up when its pod starts burning CPU (a file made by exec) and
down once the burn stops and the (shortened) stabilization window has passed, acting on the pods' metrics samples
as they arrive (its periodic sync set far off); it reports pods without requests."""

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

# burns a CPU while /tmp/burn exists (made and removed by exec)
BURNER = "while :; do while [ -f /tmp/burn ]; do :; done; sleep 0.2; done"
SYNC_PERIOD = 60  # the HPA's periodic sync, far off: what it does within a test is its reaction to samples


def burner(name: str, cpu: str = "100m") -> dict:
    """A Deployment of one pod requesting ``cpu`` that burns a CPU while its /tmp/burn exists."""
    return builders.deployment(name, replicas=1, grace=1,
                               containers=[container("main", BURNER, resources=requests(cpu))])


def cpu_hpa(name: str, kind: str = "Deployment", target: int = 50, max_replicas: int = 3,
            down_window: int | None = 3) -> dict:
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name},
            "minReplicas": 1, "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                  "averageUtilization": target}}}]}
    if down_window is not None:
        spec["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": down_window}}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def burn(client, pod: str, on: bool) -> None:
    """Start (``on``) or stop the burn in ``pod``, through exec as a user would."""
    from bus import nodeclient

    session = await nodeclient.exec_(client, "default", pod, ["sh", "-c", "touch /tmp/burn" if on
                                                              else "rm -f /tmp/burn"])
    [_ async for _ in session]
    assert session.exit_code == 0


async def hpa_ready(client, name: str) -> dict | None:
    """The HPA once it computes from the pods' metrics (ScalingActive=True)."""
    hpa = await client.get("horizontalpodautoscalers", name, "default")
    conds = {x["type"]: x for x in (hpa.get("status") or {}).get("conditions") or []}
    return hpa if (conds.get("ScalingActive") or {}).get("status") == "True" else None


async def remove_workload(client, plural: str, name: str) -> None:
    try:
        await client.delete("horizontalpodautoscalers", name, "default")
    except errors.NotFound:
        pass
    try:
        await client.scale(plural, name, 0, "default")
    except errors.NotFound:
        return
    await eventually(lambda: _no_pods(client, name), 30, f"{name}'s pods gone")
    await client.delete(plural, name, "default")


@pytest.fixture
async def hpa_cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path, env={"K8N_HPA_SYNC_PERIOD": str(SYNC_PERIOD)})
    yield c
    await remove_workload(c.client, "deployments", "burn")
    await remove_workload(c.client, "replicasets", "burn")
    await stop_cluster(c)


async def test_hpa_scales_a_deployment_up_as_its_pod_burns_cpu_and_down_when_it_stops(hpa_cluster):
    c = hpa_cluster.client
    await c.create(burner("burn"))
    await c.create(cpu_hpa("burn"))
    (pod,) = await eventually(lambda: running_on(c, "burn"), 60, "the burn pod Running")
    await eventually(lambda: hpa_ready(c, "burn"), 30, "the HPA to compute from the pod's metrics")

    async def replicas():
        return (await c.get_scale("deployments", "burn", "default"))["spec"]["replicas"]

    async def rescaled_to(size):
        return [e for e in await events(c, "SuccessfulRescale") if f"New size: {size};" in e["message"]]

    started = time.monotonic()
    await burn(c, pod, True)
    await eventually(lambda: _eq(replicas(), 3), 30, "the HPA to scale up to maxReplicas 3 under the burn")
    reaction = time.monotonic() - started
    assert reaction < 15, reaction  # from a sample, not the 60 s sync (nor Kubernetes' 15 s one)
    hpa = await c.get("horizontalpodautoscalers", "burn", "default")  # written with the scale, in the same pass
    st, conds = hpa["status"], {x["type"]: x for x in hpa["status"]["conditions"]}
    assert st["desiredReplicas"] == 3 and st.get("lastScaleTime")
    assert conds["ScalingActive"]["status"] == "True" and conds["AbleToScale"]["status"] == "True"
    assert conds["ScalingLimited"]["reason"] == "TooManyReplicas"  # 1 core of a 100m request wants more than 3
    assert st["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    assert await eventually(lambda: rescaled_to(3), 10, "the rescale event")

    await burn(c, pod, False)
    await eventually(lambda: _eq(replicas(), 1), 30, "the HPA to scale back down once the burn stops")
    (down,) = await eventually(lambda: rescaled_to(1), 10, "the rescale event")
    assert down["message"] == "New size: 1; reason: All metrics below target"

    async def desired_one():  # the status is written right after the scale and its event
        return (await c.get("horizontalpodautoscalers", "burn", "default"))["status"]["desiredReplicas"] == 1
    await eventually(desired_one, 10, "the HPA's status to say 1 replica")


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
