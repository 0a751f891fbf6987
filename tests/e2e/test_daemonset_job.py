"""DaemonSets and Jobs on a real cluster: the control plane process, node agents running pods in Docker."""

from __future__ import annotations

import pytest

from bus import errors
from tests import builders
from tests.builders import container
from tests.harness import NEEDS_DOCKER, allow_privileged, node_ready, start_cluster, stop_cluster, unique_node
from tests.waiting import eventually, stays

pytestmark = list(NEEDS_DOCKER)


@pytest.fixture
async def cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path, env={"K8N_JOB_BACKOFF_INITIAL": "1"})
    yield c
    for plural in ("daemonsets", "jobs"):  # else their controllers replace the pods stop_cluster deletes
        for obj in (await c.client.list(plural))[0]:
            await c.client.delete(plural, obj["metadata"]["name"], obj["metadata"]["namespace"])
        await eventually(lambda: _none_left(c.client, plural), 10, f"{plural} deleted")
    await stop_cluster(c)


async def _none_left(client, plural: str) -> bool:
    return not (await client.list(plural))[0]


def daemonset(name: str, script: str = "sleep 3600", **spec) -> dict:
    return builders.daemonset(name, grace=1, script=script, **spec)


def job(name: str, script: str, restart: str = "Never", volumes: list | None = None, mounts: list | None = None,
        **spec) -> dict:
    """A Job whose pods run ``script`` with POD_NAME in their environment."""
    c = container("main", script, env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                  **({"volumeMounts": mounts} if mounts else {}))
    return builders.job(name, restart=restart, grace=1, containers=[c], pod={"volumes": volumes} if volumes else None,
                        **spec)


async def pods_of(client, selector: str) -> list[dict]:
    return (await client.list("pods", "default", label_selector=selector))[0]


async def running_per_node(client, app: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in await pods_of(client, f"app={app}"):
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
            out.setdefault(p["spec"]["nodeName"], []).append(p["metadata"]["name"])
    return out


async def start_node(cluster) -> str:
    node, cidr = unique_node()
    cluster.start_agent(node, cidr)
    await eventually(lambda: node_ready(cluster.client, node), 30, f"node {node} Ready")
    return node


async def job_condition(client, name: str) -> dict | None:
    j = await client.get("jobs", name)
    return next((c for c in (j.get("status") or {}).get("conditions") or () if c["status"] == "True"), None)


async def event_reasons(client, name: str) -> set[str]:
    evs = (await client.list("events", "default"))[0]
    return {e["reason"] for e in evs if e["involvedObject"].get("name") == name}


# ---- DaemonSet -------------------------------------------------------------------------------


async def test_daemonset_runs_one_pod_per_node_follows_new_nodes_and_respects_taints(cluster):
    c = cluster.client
    node2 = await start_node(cluster)
    await c.create(daemonset("agent"))

    async def one_each(nodes):
        per = await running_per_node(c, "agent")
        return per if set(per) == set(nodes) and all(len(v) == 1 for v in per.values()) else None

    await eventually(lambda: one_each({cluster.node, node2}), 40, "one Running pod on each of 2 nodes")

    async def status_is(**want):
        st = (await c.get("daemonsets", "agent"))["status"]
        return st if all(st.get(k) == v for k, v in want.items()) else None

    st = await eventually(lambda: status_is(desiredNumberScheduled=2, numberReady=2, numberAvailable=2,
                                            updatedNumberScheduled=2, currentNumberScheduled=2), 20, "status 2/2")
    assert st["numberMisscheduled"] == 0 and st["observedGeneration"] == 1
    pod = (await pods_of(c, "app=agent"))[0]
    ref = pod["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "DaemonSet" and ref["controller"] is True
    assert pod["metadata"]["labels"]["controller-revision-hash"] and pod["metadata"]["labels"]["pod-template-generation"] == "1"
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} in pod["spec"]["tolerations"]

    # a node added later gets its pod; a node tainted NoExecute (not tolerated) loses its pod
    node3 = await start_node(cluster)
    await c.patch("nodes", node2, {"spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoExecute"}]}})
    await eventually(lambda: one_each({cluster.node, node3}), 40, "pods on node 1 and the new node 3, none on tainted 2")
    await eventually(lambda: status_is(desiredNumberScheduled=2, numberReady=2, currentNumberScheduled=2), 20,
                     "status after the node changes")

    async def tainted_node_without_pod():
        return node2 not in await running_per_node(c, "agent")

    await stays(tainted_node_without_pod, 1.5, "the tainted node without a pod")
    # node 2's pod went by the DaemonSet's delete or the taint manager's eviction, whichever came first
    assert "SuccessfulCreate" in await event_reasons(c, "agent")


async def test_daemonset_rolling_update_replaces_pods_one_node_at_a_time(cluster):
    c = cluster.client
    node2 = await start_node(cluster)
    await c.create(daemonset("roll", "sleep 3600", updateStrategy={"type": "RollingUpdate",
                                                                    "rollingUpdate": {"maxUnavailable": 1}}))

    async def ready_count():
        st = (await c.get("daemonsets", "roll")).get("status") or {}
        return st.get("numberReady") == 2 and st.get("updatedNumberScheduled") == 2

    await eventually(ready_count, 40, "2 ready pods")
    before = {p["metadata"]["name"] for p in await pods_of(c, "app=roll")}
    await c.patch("daemonsets", "roll", {"spec": {"template": {"spec": {"containers": [
        container("main", "sleep 3601")]}}}})
    running_min, st = 2, {}

    async def rolled_out():  # sampling the Running pods all along
        nonlocal running_min, st
        per = await running_per_node(c, "roll")
        running_min = min(running_min, sum(len(v) for v in per.values()))
        st = (await c.get("daemonsets", "roll")).get("status") or {}
        live = [p for p in await pods_of(c, "app=roll") if not p["metadata"].get("deletionTimestamp")]
        done = (st.get("observedGeneration") == 2 and st.get("updatedNumberScheduled") == 2
                and st.get("numberAvailable") == 2 and len(live) == 2 and not {p["metadata"]["name"] for p in live} & before)
        return live if done else None

    live = await eventually(rolled_out, 60, lambda: f"the rolling update to finish (status {st})", interval=0.1)
    assert running_min >= 1, "maxUnavailable 1: at least one of two pods kept running throughout"
    assert {p["spec"]["nodeName"] for p in live} == {cluster.node, node2}
    assert all(p["metadata"]["labels"]["pod-template-generation"] == "2" for p in live)
    assert all(p["spec"]["containers"][0]["command"][-1] == "sleep 3601" for p in live)


# ---- Job -------------------------------------------------------------------------------------


async def test_job_retries_failed_pods_then_completes(cluster, tmp_path):
    c = cluster.client
    marks = tmp_path / "marks"
    marks.mkdir()
    await allow_privileged(c)  # the pods share a hostPath volume
    # the first two pods to run fail, every later one succeeds (a marker per pod on a hostPath)
    script = 'n=$(ls /marks | wc -l); touch /marks/$POD_NAME; sleep 1; [ "$n" -ge 2 ]'
    await c.create(job("work", script, completions=3, parallelism=2,
                       volumes=[{"name": "marks", "hostPath": {"path": str(marks)}}],
                       mounts=[{"name": "marks", "mountPath": "/marks"}]))
    most_active = 0

    async def finished():  # counting the active pods all along
        nonlocal most_active
        pods = await pods_of(c, "job-name=work")
        most_active = max(most_active, sum(1 for p in pods if p["status"].get("phase") in ("Pending", "Running")
                                           and not p["metadata"].get("deletionTimestamp")))
        assert len(pods) < 10, "no more pods than needed"
        return await job_condition(c, "work")

    await eventually(finished, 100, "Job work to finish")
    j = await c.get("jobs", "work")
    cond = await job_condition(c, "work")
    st = j["status"]
    assert cond["type"] == "Complete", st
    assert st["succeeded"] == 3 and st["failed"] >= 1 and st.get("active", 0) == 0
    assert st["startTime"] <= st["completionTime"]
    assert most_active <= 2, "parallelism 2"
    uid = j["metadata"]["uid"]
    assert j["spec"]["selector"]["matchLabels"] == {"batch.kubernetes.io/controller-uid": uid}
    pods = await pods_of(c, f"batch.kubernetes.io/controller-uid={uid}")
    phases = sorted(p["status"]["phase"] for p in pods)
    assert phases.count("Succeeded") == 3 and phases.count("Failed") == st["failed"], "finished pods are kept"
    assert all(p["metadata"]["labels"]["job-name"] == "work" for p in pods)
    assert {"SuccessfulCreate", "Completed"} <= await event_reasons(c, "work")


async def test_job_failures_deadline_and_ttl(cluster):
    c = cluster.client
    await c.create(job("never", "exit 1", backoffLimit=2))
    await c.create(job("onfailure", "exit 1", restart="OnFailure", backoffLimit=2))
    await c.create(job("slow", "sleep 60", activeDeadlineSeconds=2))
    await c.create(job("brief", "true", ttlSecondsAfterFinished=2))

    async def failed(name):
        cond = await job_condition(c, name)
        return cond if cond and cond["type"] == "Failed" else None

    cond = await eventually(lambda: failed("never"), 40, "Job 'never' Failed")
    assert cond["reason"] == "BackoffLimitExceeded"
    st = (await c.get("jobs", "never"))["status"]
    assert st["failed"] == 3 and st.get("active", 0) == 0, "backoffLimit 2: the third failure fails the Job"
    assert "BackoffLimitExceeded" in await event_reasons(c, "never")

    cond = await eventually(lambda: failed("onfailure"), 40, "Job 'onfailure' Failed")
    assert cond["reason"] == "BackoffLimitExceeded", "container restarts count toward backoffLimit"

    cond = await eventually(lambda: failed("slow"), 20, "Job 'slow' Failed")
    assert cond["reason"] == "DeadlineExceeded"
    assert "DeadlineExceeded" in await event_reasons(c, "slow")

    async def no_live_pods(name):
        return not [p for p in await pods_of(c, f"job-name={name}") if p["status"].get("phase") in ("Pending", "Running")]

    await eventually(lambda: no_live_pods("slow"), 20, "the deadline-exceeded Job's pod stopped")
    await eventually(lambda: no_live_pods("onfailure"), 20, "the failed OnFailure Job's pod stopped")

    async def gone():
        try:
            await c.get("jobs", "brief")
            return False
        except errors.NotFound:
            return not await pods_of(c, "job-name=brief")

    await eventually(gone, 30, "Job with ttlSecondsAfterFinished removed with its pods")
