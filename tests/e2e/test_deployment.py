"""Deployments on a real cluster (control plane process, a node agent running pods in Docker),
checked as a user would: pods that are Ready, what ``k8n rollout``/``k8n scale`` print and exit with."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from bus import errors
from tests import builders
from tests.builders import container, rolling
from tests.harness import NEEDS_DOCKER, start_cluster, stop_cluster
from tests.waiting import eventually, stays

pytestmark = list(NEEDS_DOCKER)

K8N = shutil.which("k8n") or str(Path(sys.executable).with_name("k8n"))
REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture
async def cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path)
    yield c
    for kind in ("deployments", "replicasets"):  # nothing left to make pods again
        for obj in (await c.client.list(kind))[0]:
            try:
                await c.client.delete(kind, obj["metadata"]["name"], obj["metadata"]["namespace"])
            except errors.NotFound:  # the garbage collector was first
                pass
    await stop_cluster(c)


def deployment(name: str, replicas: int = 3, command: str = "sleep 3600", strategy: dict | None = None,
               probe: dict | None = None, **spec) -> dict:
    main = container("main", command, **({"readinessProbe": probe} if probe else {}))
    return builders.deployment(name, replicas=replicas, grace=1, containers=[main],
                               **{"strategy": strategy or rolling(1, 1), **spec})


async def k8n(cluster, *args: str, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(K8N, *args, "--server", cluster.url, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


def ready(pod: dict) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


async def pods_of(cluster, app: str) -> list[dict]:
    return (await cluster.client.list("pods", "default", label_selector=f"app={app}"))[0]


async def ready_pods(cluster, app: str) -> list[dict]:
    return [p for p in await pods_of(cluster, app) if ready(p)]


async def rolled_out(cluster, name: str) -> bool:
    d = await cluster.client.get("deployments", name)
    st, want = d.get("status") or {}, d["spec"]["replicas"]
    return (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and st.get("updatedReplicas") == want
            and st.get("availableReplicas") == want and st.get("replicas") == want)


def command_of(obj: dict) -> str:
    return obj["spec"]["template"]["spec"]["containers"][0]["command"][-1]


class Checker:
    """Polls every 100 ms what a user would see: Ready pods of the app, and which templates run."""

    def __init__(self, cluster, app: str) -> None:
        self.cluster, self.app = cluster, app
        self.min_ready: int | None = None
        self.samples: list[list[dict]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            pods = await pods_of(self.cluster, self.app)
            n = sum(ready(p) for p in pods)
            self.min_ready = n if self.min_ready is None else min(self.min_ready, n)
            self.samples.append(pods)
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_rolling_update_keeps_availability_then_history_and_undo(cluster):
    c = cluster.client
    await c.create(deployment("web", 3, "sleep 3600"))
    code, out, err = await k8n(cluster, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert code == 0, err
    assert out.strip().endswith('deployment "web" successfully rolled out')
    assert len(await ready_pods(cluster, "web")) == 3
    d = await c.get("deployments", "web")
    conds = {x["type"]: (x["status"], x["reason"]) for x in d["status"]["conditions"]}
    assert conds["Available"] == ("True", "MinimumReplicasAvailable")
    assert conds["Progressing"] == ("True", "NewReplicaSetAvailable")
    assert d["metadata"]["annotations"][REVISION] == "1"
    [rs1] = (await c.list("replicasets", "default"))[0]
    h1 = rs1["metadata"]["labels"]["pod-template-hash"]
    assert rs1["metadata"]["name"] == f"web-{h1}" and rs1["metadata"]["ownerReferences"][0]["controller"]

    checker = Checker(cluster, "web")
    await eventually(lambda: checker.samples, 5, "the checker's first sample")  # it watches the whole rollout
    d["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "sleep 3601"]
    await c.update(d)
    code, out, err = await k8n(cluster, "rollout", "status", "deploy", "web", "--timeout", "90s")
    await checker.stop()
    assert code == 0, err
    assert out.strip().endswith('deployment "web" successfully rolled out')
    assert checker.min_ready is not None and checker.min_ready >= 3 - 1, f"available dropped to {checker.min_ready}"
    pods = await ready_pods(cluster, "web")
    assert len(pods) == 3 and all(command_of({"spec": {"template": p}}) == "sleep 3601" for p in pods)
    assert h1 not in {p["metadata"]["labels"]["pod-template-hash"] for p in pods}

    code, out, _ = await k8n(cluster, "rollout", "history", "deployment/web")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].strip() == "deployment.apps/web" and lines[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert [ln.split()[0] for ln in lines[2:]] == ["1", "2"]
    code, out, _ = await k8n(cluster, "rollout", "history", "deployment/web", "--revision", "1")
    assert code == 0 and "with revision #1" in out and "sleep 3600" in out

    code, out, err = await k8n(cluster, "rollout", "undo", "deployment/web", "--to-revision", "1")
    assert (code, out.strip()) == (0, "deployment.apps/web rolled back"), err
    code, out, err = await k8n(cluster, "rollout", "status", "deployment/web", "--timeout", "90s")
    assert code == 0, err
    d = await c.get("deployments", "web")
    assert command_of(d) == "sleep 3600" and d["metadata"]["annotations"][REVISION] == "3"
    pods = await ready_pods(cluster, "web")
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {h1}  # the revision-1 ReplicaSet again
    code, out, _ = await k8n(cluster, "rollout", "history", "deployment/web")
    assert [ln.split()[0] for ln in out.strip().splitlines()[2:]] == ["2", "3"]
    code, out, _ = await k8n(cluster, "rollout", "undo", "deployment/web", "--to-revision", "3")
    assert out.strip() == "deployment.apps/web skipped rollback (current template already matches revision 3)"


async def test_recreate_stops_old_pods_before_starting_new_ones(cluster):
    c = cluster.client
    await c.create(deployment("rec", 2, "sleep 3600", strategy={"type": "Recreate"}))
    await eventually(lambda: rolled_out(cluster, "rec"), 60, "2 pods available")
    checker = Checker(cluster, "rec")
    d = await c.get("deployments", "rec")
    d["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "sleep 3602"]
    await c.update(d)
    await eventually(lambda: rolled_out(cluster, "rec"), 60, "the new pods available")
    await checker.stop()
    mixed = [s for s in checker.samples if len({command_of({"spec": {"template": p}}) for p in s}) > 1]
    assert not mixed, "old and new pods existed at the same time"
    seen = [{command_of({"spec": {"template": p}}) for p in s} for s in checker.samples]
    assert {"sleep 3600"} in seen and {"sleep 3602"} in seen
    assert len(await ready_pods(cluster, "rec")) == 2


async def test_pause_scale_resume_and_restart(cluster):
    c = cluster.client
    await c.create(deployment("pz", 2, "sleep 3600"))
    await eventually(lambda: rolled_out(cluster, "pz"), 60, "2 pods available")
    code, out, _ = await k8n(cluster, "rollout", "pause", "deployment/pz")
    assert (code, out.strip()) == (0, "deployment.apps/pz paused")
    code, _, err = await k8n(cluster, "rollout", "pause", "deployment/pz")
    assert code == 1 and 'deployments.apps "pz" is already paused' in err
    await c.patch("deployments", "pz", {"spec": {"template": {"metadata": {"labels": {"app": "pz", "v": "2"}}}}})
    code, out, _ = await k8n(cluster, "scale", "deploy/pz", "--replicas", "3")
    assert (code, out.strip()) == (0, "deployment.apps/pz scaled")
    await eventually(lambda: _count(ready_pods(cluster, "pz"), 3), 60, "3 pods while paused")

    async def one_replicaset():
        return len((await c.list("replicasets", "default"))[0]) == 1

    await stays(one_replicaset, 1.0, "one ReplicaSet: a paused deployment does not roll out")
    d = await c.get("deployments", "pz")
    prog = next(x for x in d["status"]["conditions"] if x["type"] == "Progressing")
    assert (prog["status"], prog["reason"]) == ("Unknown", "DeploymentPaused")

    code, out, _ = await k8n(cluster, "rollout", "resume", "deploy/pz")
    assert (code, out.strip()) == (0, "deployment.apps/pz resumed")
    code, out, err = await k8n(cluster, "rollout", "status", "deploy/pz", "--timeout", "90s")
    assert code == 0, err
    pods = await ready_pods(cluster, "pz")
    assert len(pods) == 3 and all(p["metadata"]["labels"].get("v") == "2" for p in pods)

    code, out, _ = await k8n(cluster, "rollout", "restart", "deploy/pz")
    assert (code, out.strip()) == (0, "deployment.apps/pz restarted")
    code, out, err = await k8n(cluster, "rollout", "status", "deploy/pz", "--timeout", "90s")
    assert code == 0, err
    after = await ready_pods(cluster, "pz")
    assert len(after) == 3 and not {p["metadata"]["uid"] for p in after} & {p["metadata"]["uid"] for p in pods}

    code, out, _ = await k8n(cluster, "scale", "deployment", "pz", "--replicas", "1")
    assert (code, out.strip()) == (0, "deployment.apps/pz scaled")
    await eventually(lambda: _count(pods_of(cluster, "pz"), 1), 60, "scaled down to 1 pod")


async def _count(coro, n: int) -> bool:
    return len(await coro) == n


async def test_rollout_status_fails_past_the_progress_deadline(cluster):
    c = cluster.client
    never = {"exec": {"command": ["false"]}, "periodSeconds": 1}
    await c.create(deployment("stuck", 1, "sleep 3600", probe=never, progressDeadlineSeconds=5))
    code, out, err = await k8n(cluster, "rollout", "status", "deployment/stuck", "--timeout", "60s")
    assert code != 0
    assert 'Waiting for deployment "stuck" rollout to finish: 0 of 1 updated replicas are available...' in out
    assert err.strip() == 'error: deployment "stuck" exceeded its progress deadline'
    d = await c.get("deployments", "stuck")
    prog = next(x for x in d["status"]["conditions"] if x["type"] == "Progressing")
    assert (prog["status"], prog["reason"]) == ("False", "ProgressDeadlineExceeded")
    code, _, err = await k8n(cluster, "rollout", "status", "deployment/stuck", "--timeout", "2s")
    assert code != 0 and "exceeded its progress deadline" in err
