"""HPA reaction: from a CPU load starting in a real pod to the HPA's scale request (the Deployment's
``spec.replicas`` change seen on a watch), p50/p99 over N changes, with the agents' metrics period 1 s.

    python -m tests.perf.bench_hpa [--changes 10] [--metrics-seconds 1] [--sync-period 15]

Root only (Docker). Starts its own nats-server (authentication on, JetStream ``sync_interval: always``), a control
plane (``python -m master``: API server, controllers, scheduler) and one node agent, then a Deployment of one busybox
pod requesting 100m CPU that burns a CPU while its /tmp/burn exists, and an HPA (cpu 50 % of request, 1–2 replicas,
scale-down window 2 s). Each change: ``touch /tmp/burn`` by exec in the pod (the clock starts before the exec
request) → the watch sees ``spec.replicas`` 2; then the burn stops and the HPA scales back to 1 (the scale-down
time is printed too: it is the window by design). Also prints the processes' CPU: the control plane and the agent
during the changes, and over a quiet spell (one pod, the HPA evaluating on every sample) per second and, for the
agent, per metrics period. Prints figures with conditions; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bus.natsserver import NatsServer
from tests.e2e.test_nodelifecycle_hpa import burn, burner, cpu_hpa, hpa_ready, remove_workload, running_on
from tests.harness import start_cluster, stop_cluster
from tests.perf.busauth import use_server
from tests.perf.conditions import cpu_seconds, describe
from tests.waiting import eventually

NAME = "burn"


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


async def replicas_change(client, rv: int, old: int, timeout: float = 60) -> float:
    """perf_counter() when a watch from ``rv`` sees the Deployment's spec.replicas differ from ``old``."""
    w = await client.watch("deployments", "default", since=rv)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ev = await asyncio.wait_for(w.__anext__(), max(0.1, deadline - time.monotonic()))
            obj = ev.object
            if obj["metadata"]["name"] == NAME and (obj.get("spec") or {}).get("replicas") != old:
                return time.perf_counter()
    finally:
        await w.stop()
    raise TimeoutError(f"spec.replicas stayed {old}")


async def steady(client, replicas: int) -> str:
    """Until the Deployment runs exactly ``replicas`` pods (none terminating) and the HPA computes; one pod's name."""
    async def settled():
        on = await running_on(client, NAME)
        pods, _ = await client.list("pods", "default", label_selector=f"app={NAME}")
        return sorted(on) if len(on) == replicas == len(pods) else None

    names = await eventually(settled, 60, f"{replicas} pod(s) of {NAME} Running")
    await eventually(lambda: hpa_ready(client, NAME), 30, "the HPA to compute from the pods' metrics")
    return names[0]


async def one_change(client) -> tuple[float, float, float]:
    """(load start → scale request, exec round trip, load stop → scaled back to 1) in seconds."""
    pod = await steady(client, 1)
    await asyncio.sleep(2.5)  # a few quiet samples: the pod's CPU is at rest when the load starts
    _, rv = await client.list("deployments", "default")
    seen = asyncio.create_task(replicas_change(client, rv, 1))
    await asyncio.sleep(0.05)  # the watch is open
    t0 = time.perf_counter()
    await burn(client, pod, True)
    t_exec = time.perf_counter() - t0
    t_up = await seen - t0
    await steady(client, 2)
    _, rv = await client.list("deployments", "default")
    seen = asyncio.create_task(replicas_change(client, rv, 2))
    await asyncio.sleep(0.05)
    t1 = time.perf_counter()
    await burn(client, pod, False)
    t_down = await seen - t1
    return t_up, t_exec, t_down


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-hpa-"))
    srv = use_server(NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log"))
    srv.start()
    c = None
    try:
        c = await start_cluster(srv, tmp, env={"K8N_HPA_SYNC_PERIOD": str(args.sync_period)},
                                agent_extra=["--metrics-seconds", str(args.metrics_seconds), "--log-level",
                                             "WARNING"])
        client, pids = c.client, {"control plane": c.control.pid, "agent": c.agent.pid}
        await client.create(burner(NAME))
        await client.create(cpu_hpa(NAME, max_replicas=2, down_window=2))
        await steady(client, 1)
        print(describe())
        print(f"conditions: 1 node agent and the control plane (one `python -m master` process) on this host, "
              f"metrics period {args.metrics_seconds:g} s, HPA sync period {args.sync_period:g} s, cpu target 50 % of "
              f"a 100m request, 1-2 replicas, scale-down window 2 s; load = one busybox shell loop (~1 core)")
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        w0 = time.monotonic()
        ups, execs, downs = [], [], []
        for i in range(args.changes):
            up, ex, down = await one_change(client)
            ups.append(up)
            execs.append(ex)
            downs.append(down)
            print(f"  change {i + 1}: load start -> scale request {up * 1e3:.0f} ms (exec {ex * 1e3:.0f} ms); "
                  f"load stop -> scaled back {down:.1f} s", flush=True)
        wall = time.monotonic() - w0
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        print(f"HPA reaction, load start in a real pod -> the Deployment's spec.replicas change on a watch, "
              f"{len(ups)} changes: p50 {pct(ups, 50):.2f} s, p99 {pct(ups, 99):.2f} s, max {max(ups):.2f} s "
              f"(mean {statistics.mean(ups):.2f} s; of which the exec that starts the load: median "
              f"{statistics.median(execs) * 1e3:.0f} ms); load stop -> scaled back to 1: p50 {pct(downs, 50):.1f} s "
              f"(the 2 s window, by design)")
        print(f"CPU during the changes ({wall:.0f} s): " + ", ".join(
            f"{k} {v:.1f} s ({v / wall * 1e3:.0f} ms/s)" for k, v in cpu.items()))
        await steady(client, 1)
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        await asyncio.sleep(args.quiet)
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        print(f"CPU over {args.quiet:g} s quiet (1 pod, its sample every {args.metrics_seconds:g} s, the HPA "
              f"evaluating on each): control plane {cpu['control plane'] / args.quiet * 1e3:.0f} ms/s, agent "
              f"{cpu['agent'] / args.quiet * 1e3:.0f} ms/s = "
              f"{cpu['agent'] / (args.quiet / args.metrics_seconds) * 1e3:.1f} ms per metrics period (the agent's "
              f"lease renewals, status and pod checks included)")
        await remove_workload(client, "deployments", NAME)
    finally:
        if c is not None:
            await stop_cluster(c)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench_hpa", description=__doc__.splitlines()[0])
    p.add_argument("--changes", type=int, default=10, help="load changes measured")
    p.add_argument("--metrics-seconds", type=float, default=1.0, help="the agent's metrics period")
    p.add_argument("--sync-period", type=float, default=15.0, help="the HPA's periodic sync (K8N_HPA_SYNC_PERIOD)")
    p.add_argument("--quiet", type=float, default=20.0, help="seconds of the quiet CPU measurement")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("needs root (Docker)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
