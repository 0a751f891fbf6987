"""Faults, with nothing lost, on three machines of a rig (tests/rig.py): ``cp`` runs ``k8n up --listen <LAN IP>
--nats-servers 3 --replicas 2 --no-agent`` (three nats-servers as one JetStream cluster, buckets at R3; two API
servers, two controller managers and two schedulers electing leaders on 3 s Leases; a node view; the HTTPS
gateway), ``w1`` and ``w2`` run ``k8n join``. Checked as an operator checks a cluster after an incident:

- a rolling update of a 30-replica Deployment spread over both workers, during which one of each part is killed
  with SIGKILL in turn — an API server replica, the controller-manager leader, the scheduler leader, the gateway,
  an agent, one nats-server of three, each after the rollout progressed past the one before — completes, while
  writers over the bus and over the gateway lose none of the writes they were acknowledged (tests/faults.py
  WriteChecker), with no duplicate pod, no orphaned pod, no orphaned container;
- a worker cut off its LAN goes NotReady and its pods are replaced on the other worker; when its link returns it
  stops the stale containers (it runs only what the store binds to it).

The full matrix, repeated and timed: ``python -m tests.perf.bench_faults``."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bus.client import ApiClient
from tests.e2e.machines import Machines, running_machines
from tests.faults import (FAULTS, REPLICAS, UP_ENV, UP_FLAGS, WORKER_ENV, BusTarget, WriteChecker, by_node,
                          gateway_target, invariants, partition, rolled_out, rollout_with_kills, web)
from tests.harness import NEEDS_DOCKER, node_ready
from tests.waiting import eventually

pytestmark = [*NEEDS_DOCKER, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

ANY = (Exception,)  # while parts are down, a poll may fail: that is "not yet"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory):
    async with running_machines(tmp_path_factory.mktemp("faults"), UP_FLAGS, up_env=UP_ENV, worker_env=WORKER_ENV,
                                join=(1, 2)) as m:
        yield m


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def spread(cluster: Machines) -> Machines:
    """Deployment ``web`` (30 replicas) rolled out over both workers."""
    await cluster.client.create(web(REPLICAS))
    await eventually(lambda: rolled_out(cluster.client, REPLICAS, 1), 120,
                     lambda: f"{REPLICAS} replicas Ready\n{cluster.logs()}", ignore=ANY)
    return cluster


def nodes(m: Machines) -> list[str]:
    return [w.hostname for w in m.nodes]


async def test_a_rolling_update_survives_a_kill_9_of_each_part_and_loses_no_acknowledged_write(spread):
    client, cp, w1, w2 = spread.client, spread.cp, *spread.workers
    placed = by_node([p for p in (await client.list("pods", "default"))[0]])
    assert placed[w1.hostname] and placed[w2.hostname], f"the replicas are spread over both workers: {placed}"
    writer = await ApiClient.connect(cp.server, creds=str(cp.admin_creds))
    writer.retries, writer.timeout = 0, 2.0  # every attempt counts; no answer in 2 s: failed (outcome unknown)
    checker = WriteChecker([BusTarget(writer), gateway_target(cp.data, cp.info["gateway"])])
    await checker.start(client)
    try:
        results = await rollout_with_kills(client, cp.data, w2.dir / "k8n", 2, checker, log=print)
        await eventually(lambda: rolled_out(client, REPLICAS, 2), 120,
                         lambda: f"the rollout to complete\n{spread.logs()}", ignore=ANY)
    finally:
        report = await checker.stop()
    await checker.verify(client)
    await writer.close()
    print(report)
    assert [r.fault for r in results] == list(FAULTS)
    for r in results:
        assert r.restarted is not None, f"{r.child} was restarted after kill -9: {r}"
        assert r.progress is not None, f"the rollout progressed after {r.fault} was killed: {r}"
    assert report.acked > 200 and report.verified == len(checker.acked), report
    assert report.lost == [], report
    held = await eventually(lambda: invariants(client, nodes(spread)), 60, "no duplicate or orphaned pod or container",
                            ignore=ANY)
    assert held, held


async def test_a_partitioned_worker_goes_not_ready_its_pods_move_and_it_stops_them_when_it_returns(spread):
    client, (w1, w2) = spread.client, spread.workers
    await eventually(lambda: rolled_out(client, REPLICAS, 2), 60, "the Deployment rolled out", ignore=ANY)
    on_w1 = by_node((await client.list("pods", "default"))[0])[w1.hostname]
    assert on_w1, "w1 runs some of the replicas"
    result = await partition(client, w1, w2.hostname, REPLICAS)
    print(result)
    assert result.not_ready is not None, result
    assert result.replaced is not None, f"every replica Ready on {w2.hostname}: {result}\n{spread.logs()}"
    assert result.stale >= on_w1, f"w1 kept running its pods' containers while cut off: {result}"
    assert result.stale_stopped is not None, f"w1 stops what the store no longer binds to it: {result}"
    await eventually(lambda: node_ready(client, w1.hostname), 60, "w1 Ready again", ignore=ANY)
    held = await eventually(lambda: invariants(client, nodes(spread)), 60, "no duplicate or orphaned pod or container",
                            ignore=ANY)
    assert held, held
