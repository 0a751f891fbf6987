"""k8n on three machines of a rig (tests/rig.py) for end-to-end tests: ``cp`` runs ``k8n up --listen <its LAN IP>``
(control plane, NATS with TLS, HTTPS gateway and its own agent), ``w1`` and ``w2`` run node agents joined to it, all
on one LAN; ``w1``'s agent is started by hand (credentials minted on ``cp``), ``w2`` runs ``k8n join`` with a token
made on ``cp``. Each machine's hostname (its node's name) ends in the run's id. The host has an address on the LAN, so
the test process reaches the cluster's NATS as the admin (the CLI's identity) the way a user's machine on the LAN
would.

    async def test_x(machines):  # the module-scoped fixture (tests/e2e/conftest.py makes it available)
        machines.client, machines.cp, machines.workers, machines.all   # ApiClient, ControlPlane, [Machine], [Machine]

Stopping deletes every pod, waits for their containers to go, then cleans the rig up (agents drain, ``k8n up``
stops, namespaces, bridges and rules go); a container left behind fails the module. Another shape of cluster (other
``k8n up`` flags and settings, both workers joined): ``async with running_machines(base, up_flags, up_env=...,
worker_env=..., join=(1, 2)) as m`` (tests/e2e/test_faults.py)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import pytest_asyncio

from bus import errors
from bus.client import ApiClient
from tests.harness import node_ready
from tests.rig import ControlPlane, Machine, Rig, three_machines
from tests.waiting import eventually

AGENT_FLAGS = ("--lease-seconds", "1", "--metrics-seconds", "1", "--backoff-initial", "1", "--backoff-max", "4")


@dataclass
class Machines:
    rig: Rig
    cp: ControlPlane
    workers: list[Machine]
    client: ApiClient
    cp_is_node: bool = True  # False: k8n up --no-agent (the control-plane machine runs no pods)

    @property
    def all(self) -> list[Machine]:
        return [self.cp.machine, *self.workers]

    @property
    def nodes(self) -> list[Machine]:
        """The machines that run a node agent."""
        return self.all if self.cp_is_node else list(self.workers)

    def by_node(self, node: str) -> Machine:
        return next(m for m in self.all if m.hostname == node)

    def logs(self) -> str:
        """The ends of k8n up's and the agents' logs (for failure messages)."""
        parts = [f"--- k8n up ({self.cp.machine.name}):\n{self.cp.output()[-2000:]}"]
        worker_logs = ("agent.log", "k8n-join.log", "k8n/logs/agent.log")
        for p in [self.cp.data / "logs" / "agent.log", *(w.dir / f for w in self.workers for f in worker_logs)]:
            if p.exists():
                parts.append(f"--- {p}:\n{p.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)


async def delete_all_pods(client: ApiClient) -> None:
    for p in (await client.list("pods"))[0]:
        try:
            await client.delete("pods", p["metadata"]["name"], p["metadata"]["namespace"], grace_period_seconds=0)
        except errors.ApiError:
            pass


@contextlib.asynccontextmanager
async def running_machines(base: Path, up_flags: tuple[str, ...] = (), **kw) -> AsyncIterator[Machines]:
    """The machines of a rig (``tests.rig.three_machines(base, 2, ..., **kw)``: ``up_flags``, ``up_env``,
    ``worker_env``, ``join``, ``agent_flags``) once every node is Ready; on leaving, every workload and pod deleted,
    their containers gone, the rig cleaned up — AssertionError if an agent left a container behind."""
    kw = {"host_address": True, "agent_flags": AGENT_FLAGS, "unique": True, "join": (2,), **kw}
    rig, cp, workers = await asyncio.to_thread(three_machines, base, 2, up_flags=up_flags, **kw)
    client = None
    left: list[str] = []
    try:
        client = await ApiClient.connect(cp.server, creds=str(cp.admin_creds))
        m = Machines(rig, cp, workers, client, cp_is_node="--no-agent" not in up_flags)
        for machine in m.nodes:
            await eventually(lambda: node_ready(client, machine.hostname), 60,
                             lambda: f"node {machine.hostname} Ready\n{m.logs()}")
        yield m
        for res in ("deployments", "daemonsets", "jobs"):  # their ReplicaSets and pods follow (owner references)
            for obj in (await client.list(res))[0]:
                try:
                    await client.delete(res, obj["metadata"]["name"], obj["metadata"]["namespace"])
                except errors.NotFound:
                    pass
        await delete_all_pods(client)
        try:
            await eventually(lambda: asyncio.to_thread(lambda: not rig.containers()), 60, "the pods' containers to go")
        except AssertionError:
            pass  # the agents' drain and the check below take over
    finally:
        if client is not None:
            await client.close()
        left = await asyncio.to_thread(rig.cleanup)
    assert not left, f"containers left behind by the agents (removed now): {left}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def machines(tmp_path_factory):
    async with running_machines(tmp_path_factory.mktemp("machines")) as m:
        yield m
