"""Containers that Docker creates but cannot start (the command is not in the image): the pod reports it as
the kubelet did on Docker (waiting RunContainerError / CrashLoopBackOff, last state terminated with Docker's
exit code 127 and reason ContainerCannotRun), restarts keep at most the current and the previous container,
and nothing of the pod is left in Docker once it is deleted or its node drains."""

from __future__ import annotations

import signal

import docker
import pytest

from bus import errors
from node.runtime.model import LABEL_CONTAINER_NAME, LABEL_POD_UID, SANDBOX_NAME
from tests.builders import container, pod
from tests.harness import NEEDS_DOCKER, start_cluster, stop_cluster
from tests.waiting import eventually

pytestmark = list(NEEDS_DOCKER)

MISSING = "/does-not-exist"


@pytest.fixture
async def cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path)
    yield c
    await stop_cluster(c)


@pytest.fixture
def dockerc():
    client = docker.from_env()
    yield client
    client.close()


def bad_pod(name: str, node: str, **spec) -> dict:
    """A pod whose one container's command is not in the image."""
    return pod(name, node=node, grace=2, containers=[container("main", command=[MISSING])], **spec)


def containers_of(dockerc, uid: str) -> list:
    """Every Docker container (any state) labelled with the pod's uid, sandbox included."""
    return dockerc.containers.list(all=True, filters={"label": f"{LABEL_POD_UID}={uid}"})


async def main_status(client, name: str) -> dict | None:
    p = await client.get("pods", name)
    return next(iter((p.get("status") or {}).get("containerStatuses") or []), None)


async def crash_looping(client, name: str, restarts: int) -> dict | None:
    st = await main_status(client, name)
    if st and st["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" and st["restartCount"] >= restarts:
        return st
    return None


async def gone(client, name: str) -> bool:
    try:
        await client.get("pods", name)
        return False
    except errors.NotFound:
        return True


def assert_cannot_run(terminated: dict) -> None:
    assert terminated["exitCode"] in (126, 127), terminated  # what Docker reports for a missing binary
    assert terminated["reason"] == "ContainerCannotRun", terminated
    assert MISSING in terminated.get("message", ""), terminated


async def test_missing_command_crash_loops_and_deleting_the_pod_removes_every_container(cluster, dockerc):
    c = cluster.client
    uid = (await c.create(bad_pod("nobin", cluster.node)))["metadata"]["uid"]
    first = await eventually(lambda: _waiting_in(c, "nobin", {"RunContainerError", "CrashLoopBackOff"}), 30,
                             "the start failure in the pod's status")
    assert first["ready"] is False and not first["state"].get("running")
    # backoff 1s, 2s, 4s (the harness's agent flags): three restarts in well under a minute
    st = await eventually(lambda: crash_looping(c, "nobin", 3), 60, "CrashLoopBackOff after 3 restarts")
    assert_cannot_run(st["lastState"]["terminated"])
    p = await c.get("pods", "nobin")
    assert p["status"]["phase"] == "Running"  # restartPolicy Always: restarting, not failed
    events, _ = await c.list("events", "default", field_selector="involvedObject.name=nobin")
    reasons = {e["reason"] for e in events}
    assert {"Created", "Failed", "BackOff"} <= reasons and "Started" not in reasons
    # Kubernetes keeps at most the current and one previous instance of a container
    apps = [x for x in containers_of(dockerc, uid) if x.labels.get(LABEL_CONTAINER_NAME) != SANDBOX_NAME]
    assert 1 <= len(apps) <= 2, [(x.name, x.status) for x in apps]
    assert st["containerID"] in {f"docker://{x.id}" for x in apps}

    await c.delete("pods", "nobin")
    await eventually(lambda: gone(c, "nobin"), 30, "pod object removed")
    # the agent removes the pod's containers before it removes the pod object
    left = containers_of(dockerc, uid)
    assert not left, [(x.name, x.status) for x in left]


async def test_missing_command_with_restart_never_fails_the_pod(cluster, dockerc):
    c = cluster.client
    uid = (await c.create(bad_pod("nobin-never", cluster.node, restartPolicy="Never")))["metadata"]["uid"]
    await eventually(lambda: _phase(c, "nobin-never", "Failed"), 30, "phase Failed")
    st = await main_status(c, "nobin-never")
    assert "terminated" in st["state"], st
    assert_cannot_run(st["state"]["terminated"])
    assert st["restartCount"] == 0
    await c.delete("pods", "nobin-never")  # a terminal pod is removed at once; the agent then cleans up
    await eventually(lambda: gone(c, "nobin-never"), 30, "pod object removed")
    await eventually(lambda: not containers_of(dockerc, uid), 30, "the pod's containers removed")


async def test_draining_agent_removes_containers_that_never_started(cluster, dockerc):
    c = cluster.client
    uid = (await c.create(bad_pod("nobin-drain", cluster.node)))["metadata"]["uid"]
    await eventually(lambda: crash_looping(c, "nobin-drain", 1), 40, "CrashLoopBackOff")
    assert containers_of(dockerc, uid)
    cluster.agent.send_signal(signal.SIGTERM)  # the harness runs agents with --drain-on-exit
    assert cluster.agent.wait(30) == 0
    left = containers_of(dockerc, uid)
    assert not left, [(x.name, x.status) for x in left]


async def _waiting_in(c, name, reasons):
    st = await main_status(c, name)
    return st if st and st["state"].get("waiting", {}).get("reason") in reasons else None


async def _phase(c, name, phase):
    return ((await c.get("pods", name)).get("status") or {}).get("phase") == phase
