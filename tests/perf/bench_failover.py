"""Node loss on real Docker: how long until a lost node's pods run again elsewhere.

Run (as root, Docker running, local images built — `bash deploy/node-deps.sh` does both):
    python -m tests.perf.bench_failover [--runs N]

Starts its own nats-server, a control plane (apiserver, node view, controllers, scheduler) and two
node agents (renewing their Lease every 2 s, the agent's default), creates a ReplicaSet of 4
replicas spread over both nodes, kills one agent with SIGKILL (its heartbeats stop; its containers
keep running) and times, from the kill:
- the node marked Ready=Unknown with the unreachable taint (grace period 8 s, the default);
- its pods evicted (default toleration 5 s);
- every replacement Running on the surviving node (the figure; goal <= 15 s, Kubernetes' defaults
  take about 6 minutes).
Default controller settings throughout. Prints figures with conditions; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import tempfile
import time
from pathlib import Path

from tests.perf.busauth import use_server
from bus.natsserver import NatsServer
from tests import builders
from tests.builders import container
from tests.harness import node_ready, start_cluster, stop_cluster, unique_node
from tests.waiting import eventually

UNREACHABLE = "node.kubernetes.io/unreachable"
AGENT_DEFAULTS = ["--lease-seconds", "2", "--metrics-seconds", "10"]


def replicaset(name: str, replicas: int) -> dict:
    return builders.replicaset(name, replicas=replicas, grace=1,
                               containers=[container("main", command=["sleep", "3600"])])


async def pods_by_node(client, app: str) -> dict[str, dict[str, str]]:
    """node -> {pod: phase} of the app's pods that are not terminating."""
    pods, _ = await client.list("pods", "default", label_selector=f"app={app}")
    out: dict[str, dict[str, str]] = {}
    for p in pods:
        if not p["metadata"].get("deletionTimestamp") and p["spec"].get("nodeName"):
            out.setdefault(p["spec"]["nodeName"], {})[p["metadata"]["name"]] = p.get("status", {}).get("phase", "")
    return out


async def one_run(srv: NatsServer, tmp: Path, replicas: int = 4) -> dict[str, float]:
    c = await start_cluster(srv, tmp, agent_extra=AGENT_DEFAULTS)
    client = c.client
    node_b, cidr_b = unique_node()
    agent_b = c.start_agent(node_b, cidr_b, AGENT_DEFAULTS)
    try:
        await eventually(lambda: node_ready(client, node_b), 30, "node B Ready")
        await client.create(replicaset("web", replicas))

        async def spread():
            by = await pods_by_node(client, "web")
            running = sum(1 for n in by.values() for ph in n.values() if ph == "Running")
            return running == replicas and len(by.get(c.node, {})) and len(by.get(node_b, {}))

        await eventually(spread, 60, f"{replicas} pods Running on both nodes")
        lost = set((await pods_by_node(client, "web"))[node_b])
        agent_b.send_signal(signal.SIGKILL)
        agent_b.wait()
        t0 = time.monotonic()
        marks: dict[str, float] = {}
        while time.monotonic() - t0 < 120:
            by = await pods_by_node(client, "web")
            if "tainted" not in marks:
                n = await client.get("nodes", node_b)
                if any(t.get("key") == UNREACHABLE for t in n["spec"].get("taints") or []):
                    marks["tainted"] = time.monotonic() - t0
            if "evicted" not in marks and not lost & set(by.get(node_b, {})):
                marks["evicted"] = time.monotonic() - t0
            on_a = by.get(c.node, {})
            if sum(1 for ph in on_a.values() if ph == "Running") == replicas:
                marks["replaced"] = time.monotonic() - t0
                break
            await asyncio.sleep(0.05)
        marks["moved"] = len(lost)
        return marks
    finally:
        try:
            await client.scale("replicasets", "web", 0, "default")
            await eventually(lambda: _none_left(client), 60, "pods gone")
            await client.delete("replicasets", "web", "default")
        except Exception as e:  # clean up as much as possible
            print(f"cleanup: {e}")
        c.start_agent(node_b, cidr_b, AGENT_DEFAULTS)  # let B come back and stop its old containers
        await eventually(lambda: node_ready(client, node_b), 30, "node B back")
        await stop_cluster(c)


async def _none_left(client) -> bool:
    pods, _ = await client.list("pods", "default", label_selector="app=web")
    return not pods


async def main(runs: int) -> None:
    print(f"node-loss failover: 2 agents, ReplicaSet of 4, kill -9 one agent; default settings "
          f"(grace 8 s, toleration 5 s, eviction 10/s, agent lease renewal 2 s) "
          f"[{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
          f"control plane in 1 process, 2 agent processes]")
    results = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="k8n-bench-failover-") as d:
            tmp = Path(d)
            srv = NatsServer(tmp / "jetstream", port=0, log_file=tmp / "nats-server.log")
            use_server(srv)
            srv.start()
            try:
                m = await one_run(srv, tmp)
            finally:
                srv.stop()
        results.append(m)
        print(f"run {i + 1}: {m['moved']} pods on the lost node; tainted {m.get('tainted', float('nan')):.1f} s, "
              f"evicted {m.get('evicted', float('nan')):.1f} s, all replacements Running "
              f"{m.get('replaced', float('nan')):.1f} s after the kill")
    done = [m["replaced"] for m in results if "replaced" in m]
    if done:
        print(f"replacement Running after node loss: best {min(done):.1f} s, worst {max(done):.1f} s "
              f"over {len(done)} run(s) (goal <= 15 s)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1)
    asyncio.run(main(p.parse_args().runs))
