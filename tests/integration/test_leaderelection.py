"""Two controller-manager processes against one API server: exactly one leads (holds the Lease and
runs the controllers), and when it is killed with SIGKILL the other takes over within the lease
duration; a clean stop hands over at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bus.client import ApiClient
from bus.proc import die_with_parent, stop_process
from tests.conftest import wait_for_api
from tests.builders import node
from tests.waiting import eventually, stays

pytestmark = [pytest.mark.slow]
LEASE = 3  # seconds (K8N_LEADER_ELECT_LEASE_DURATION)


def start(url: str, components: str, log_path) -> subprocess.Popen:
    out = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "master", "--server", url, "--components", components,
                             "--log-level", "INFO"], stdout=out, stderr=out, preexec_fn=die_with_parent,
                            env={**os.environ, "K8N_LEADER_ELECT_LEASE_DURATION": str(LEASE), "PYTHONUNBUFFERED": "1"})


def acting(log_path) -> bool:
    """The manager set its controllers up: it leads."""
    return "controller nodeipam set up" in log_path.read_text()


async def holder(client) -> str:
    lease = await client.get("leases", "kube-controller-manager", "kube-system")
    return lease["spec"].get("holderIdentity") or ""


async def pod_cidr(client, name) -> str | None:
    return ((await client.get("nodes", name)).get("spec") or {}).get("podCIDR")


@pytest.fixture
async def cluster(nats_server, tmp_path):
    api = start(nats_server.url, "apiserver", tmp_path / "api.log")
    await wait_for_api(nats_server.url)
    client = await ApiClient.connect(nats_server.url)
    procs = {}
    yield client, procs
    for p in procs.values():
        stop_process(p)
    stop_process(api)
    await client.close()


async def test_one_leader_and_failover_after_kill_9(cluster, nats_server, tmp_path):
    client, procs = cluster
    logs = {n: tmp_path / f"cm-{n}.log" for n in ("a", "b")}
    for n in ("a", "b"):
        procs[n] = start(nats_server.url, "controllers", logs[n])

    await eventually(lambda: acting(logs["a"]) or acting(logs["b"]), 20, "a controller manager to lead")
    leader = "a" if acting(logs["a"]) else "b"
    standby = "b" if leader == "a" else "a"
    lease = await client.get("leases", "kube-controller-manager", "kube-system")
    assert lease["spec"]["leaseDurationSeconds"] == LEASE
    first_holder = lease["spec"]["holderIdentity"]
    assert first_holder.startswith(os.uname().nodename + "_")
    await client.create(node("n1"))
    await eventually(lambda: pod_cidr(client, "n1"), 10, "the leader to assign a podCIDR")

    async def leader_renews_standby_waits():
        return not acting(logs[standby]) and await holder(client) == first_holder

    await stays(leader_renews_standby_waits, 2 * LEASE, "the standby waiting while the leader renews")

    procs[leader].send_signal(signal.SIGKILL)
    procs[leader].wait()
    killed = time.monotonic()
    await eventually(lambda: acting(logs[standby]), 3 * LEASE + 5, "the standby to take over")
    took = time.monotonic() - killed
    new = await client.get("leases", "kube-controller-manager", "kube-system")
    assert new["spec"]["holderIdentity"] not in ("", first_holder)
    assert new["spec"]["leaseTransitions"] == lease["spec"]["leaseTransitions"] + 1
    # the lease is taken at most one duration (+ a retry period) after the standby last saw it renewed
    assert took < LEASE + 2.5, f"takeover took {took:.1f}s"
    await client.create(node("n2"))
    await eventually(lambda: pod_cidr(client, "n2"), 10, "the new leader to act")


async def test_clean_stop_releases_the_lease(cluster, nats_server, tmp_path):
    client, procs = cluster
    logs = {n: tmp_path / f"cm-{n}.log" for n in ("a", "b")}
    procs["a"] = start(nats_server.url, "controllers", logs["a"])
    await eventually(lambda: acting(logs["a"]), 20, "the first manager to lead")
    procs["b"] = start(nats_server.url, "controllers", logs["b"])
    await eventually(lambda: "waiting to lead" in logs["b"].read_text(), 20, "the second manager to stand by")
    procs["a"].send_signal(signal.SIGTERM)
    procs["a"].wait(10)
    stopped = time.monotonic()
    assert "released" in logs["a"].read_text()
    await eventually(lambda: acting(logs["b"]), 10, "the standby to take over")
    assert time.monotonic() - stopped < LEASE  # no wait for expiry
