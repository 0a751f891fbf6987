"""Scheduling throughput: pods created through the API until a watch sees them bound.

Run:  python -m tests.perf.bench_scheduler                          (100 nodes, then 1,000 nodes; 10,000 pods each)
      python -m tests.perf.bench_scheduler --nodes 1000 --pods 10000  (one configuration)

Each configuration starts its own nats-server, one apiserver process (``python -m master --components
apiserver``), the scheduler in its own process (``python -m master.scheduler``) and the hollow nodes
in their own process (``python -m node.hollow``); the pod creators (``--concurrency`` requests in
flight) and the watch run in this process. create → bound is measured from the moment a create is
sent to the moment the watch delivers the pod with ``spec.nodeName`` set. Prints figures with their
conditions, CPU µs per bound pod of each process (from /proc: a figure that holds on a busy machine) and writes per
bound pod in each KV bucket (the growth of its stream's last sequence); not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from bus import aio, subjects
from bus.client import ApiClient
from tests.perf.busauth import use_server
from bus.natsserver import NatsServer
from bus.resources import BUCKETS
from bus.proc import die_with_parent, stop_process
from tests import builders
from tests.builders import container, owner_ref, requests
from tests.conftest import wait_for_api
from tests.perf.conditions import cpu_seconds, fsync_line  # noqa: F401 (cpu_seconds: bench_deployment's)


def pod(i: int) -> dict:
    return builders.pod(f"bench-{i:06d}", labels={"app": "bench"},
                        owners=owner_ref("ReplicaSet", "bench", f"bench-rs-{i % 10}", api_version="apps/v1"),
                        containers=[container("c", pull=None, resources=requests("10m", "16Mi"))])


def spawn(argv: list[str], log: Path, profile: bool = False) -> subprocess.Popen:
    """A child process; ``profile``: under cProfile, stats written next to its log on exit."""
    out = open(log, "ab")
    if profile:
        argv = ["-m", "cProfile", "-o", str(log.with_suffix(".prof")), *argv]
    return subprocess.Popen([sys.executable, *argv], stdout=out, stderr=out, preexec_fn=die_with_parent,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def stream_writes(client: ApiClient) -> dict[str, int]:
    """Writes so far per KV bucket (a stream's last sequence counts its puts and deletes)."""
    out = {}
    for res in BUCKETS:
        try:
            out[res.bus_name] = (await client.store.js.stream_info(subjects.stream(res.bus_name))).state.last_seq
        except Exception:  # no such bucket
            pass
    return out


async def wait_nodes(client: ApiClient, n: int, timeout: float = 300.0) -> float:
    t0 = time.monotonic()
    while True:
        items, _ = await client.list("nodes")
        if len(items) >= n:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"only {len(items)}/{n} hollow nodes registered")
        await asyncio.sleep(0.5)


async def wait_bound(client: ApiClient, name: str, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not (await client.get("pods", name)).get("spec", {}).get("nodeName"):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{name} was never bound: is the scheduler running?")
        await asyncio.sleep(0.2)


async def measure(client: ApiClient, n_pods: int, concurrency: int) -> dict:
    sent: dict[str, float] = {}
    bound: dict[str, float] = {}
    _, rv = await client.list("pods", "default")
    watch = await client.watch("pods", "default", since=rv)
    done = asyncio.Event()

    async def watcher() -> None:
        async for ev in watch:
            o = ev.object
            name = o["metadata"]["name"]
            if name not in bound and (o.get("spec") or {}).get("nodeName") and name.startswith("bench-"):
                bound[name] = time.monotonic()
                if len(bound) >= n_pods:
                    done.set()
                    return

    wtask = asyncio.create_task(watcher())
    next_i = 0
    created_at: list[float] = []

    async def creator() -> None:
        nonlocal next_i
        while next_i < n_pods:
            i = next_i
            next_i += 1
            body = pod(i)
            sent[body["metadata"]["name"]] = time.monotonic()
            await client.create(body)
            created_at.append(time.monotonic())

    t0 = time.monotonic()
    await asyncio.gather(*(creator() for _ in range(concurrency)))
    t_created = time.monotonic()
    try:
        await asyncio.wait_for(done.wait(), timeout=max(120.0, n_pods / 50))
    except asyncio.TimeoutError:
        pass
    t_end = time.monotonic()
    wtask.cancel()
    await watch.stop()
    lat = sorted(bound[k] - sent[k] for k in bound)
    last = max(bound.values()) if bound else t_end
    seconds = int(last - t0)
    per_second = [0] * (seconds + 1)
    for t in bound.values():
        per_second[int(t - t0)] += 1
    full = per_second[1:seconds] or per_second  # skip the ramp-up second and the partial last one
    return {"bound": len(bound), "created": len(created_at), "elapsed": last - t0,
            "create_rate": len(created_at) / (t_created - t0), "rate": len(bound) / (last - t0),
            "slowest_second": min(full), "fastest_second": max(full),
            "p50": statistics.median(lat) if lat else float("nan"),
            "p99": lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")}


async def create_all(client: ApiClient, n_pods: int, concurrency: int) -> None:
    next_i = 0

    async def creator() -> None:
        nonlocal next_i
        while next_i < n_pods:
            i = next_i
            next_i += 1
            await client.create(pod(i))

    await asyncio.gather(*(creator() for _ in range(concurrency)))


async def measure_backlog(client: ApiClient, n_pods: int, start: Callable[[], None],
                          on_first: Callable[[], None]) -> dict:
    """``--backlog``: the pods exist before the scheduler starts (``start``); the scheduler's own throughput from
    the first bound pod to the last (``on_first`` runs when the first is seen), as scheduler_perf measures it."""
    _, rv = await client.list("pods", "default")
    watch = await client.watch("pods", "default", since=rv)
    bound: dict[str, float] = {}
    t0 = time.monotonic()
    start()

    async def watcher() -> None:
        async for ev in watch:
            name = ev.object["metadata"]["name"]
            if name not in bound and (ev.object.get("spec") or {}).get("nodeName"):
                if not bound:
                    on_first()
                bound[name] = time.monotonic()
                if len(bound) >= n_pods:
                    return

    try:
        await asyncio.wait_for(watcher(), timeout=max(120.0, n_pods / 50))
    except asyncio.TimeoutError:
        pass
    await watch.stop()
    times = sorted(bound.values()) or [t0]
    seconds = int(times[-1] - times[0])
    per_second = [0] * (seconds + 1)
    for t in times:
        per_second[int(t - times[0])] += 1
    full = per_second[:seconds] or per_second
    return {"bound": len(bound), "elapsed": times[-1] - times[0], "startup": times[0] - t0,
            "rate": (len(times) - 1) / max(1e-9, times[-1] - times[0]), "slowest_second": min(full),
            "fastest_second": max(full)}


async def run_config(n_nodes: int, n_pods: int, concurrency: int, keep_logs: bool, profile: tuple = (),
                     backlog: bool = False) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-sched-"))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log")
    use_server(srv)
    srv.start()
    print(fsync_line(tmp / "js"))
    procs: list[subprocess.Popen] = []
    try:
        procs.append(spawn(["-m", "master", "--server", srv.url, "--components", "apiserver", "--log-level",
                            "WARNING"], tmp / "apiserver.log", profile="apiserver" in profile))
        await wait_for_api(srv.url)
        client = await ApiClient.connect(srv.url)
        client.timeout = 30.0
        procs.append(spawn(["-m", "node.hollow", "--server", srv.url, "--count", str(n_nodes), "--log-level",
                            "WARNING"], tmp / "hollow.log", profile="hollow" in profile))
        reg = await wait_nodes(client, n_nodes)

        def start_scheduler() -> None:
            procs.append(spawn(["-m", "master.scheduler", "--server", srv.url, "--log-level", "INFO"],
                               tmp / "scheduler.log", profile="scheduler" in profile))

        if backlog:
            await backlog_config(client, srv, procs, n_nodes, n_pods, concurrency, reg, start_scheduler)
            return
        start_scheduler()
        probe = pod(n_pods + 1)
        probe["metadata"]["name"] = "probe"
        await client.create(probe)
        await wait_bound(client, "probe")
        named = {"nats-server": srv.proc.pid, "apiserver": procs[0].pid, "hollow": procs[1].pid,
                 "scheduler": procs[2].pid, "load+watch": os.getpid()}
        cpu0 = {k: cpu_seconds(v) for k, v in named.items()}
        w0 = await stream_writes(client)
        r = await measure(client, n_pods, concurrency)
        cpu = {k: cpu_seconds(v) - cpu0[k] for k, v in named.items()}
        w = {k: v - w0.get(k, 0) for k, v in (await stream_writes(client)).items()}
        items, _ = await client.list("pods", "default")
        running = sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running")
        nodes_used = len({p["spec"].get("nodeName") for p in items if p["spec"].get("nodeName")})
        await client.close()
        print(f"\n== {n_nodes} hollow nodes, {n_pods} pods ==")
        print(f"  conditions: {os.cpu_count()} cores, {platform.python_implementation()} "
              f"{platform.python_version()}; processes: nats-server, apiserver, scheduler, hollow nodes "
              f"({n_nodes} in 1 process, registered in {reg:.1f}s), load generator + watch "
              f"({concurrency} creates in flight)")
        print(f"  bound {r['bound']}/{n_pods} in {r['elapsed']:.1f}s -> {r['rate']:.0f} pods/s average "
              f"(create -> bound); slowest second {r['slowest_second']} pods, fastest {r['fastest_second']}")
        print(f"  create throughput meanwhile {r['create_rate']:.0f} creates/s; create->bound latency "
              f"p50 {r['p50'] * 1000:.0f} ms, p99 {r['p99'] * 1000:.0f} ms")
        print("  CPU seconds used during the measurement: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
        print("  CPU µs per bound pod: "
              + ", ".join(f"{k} {v * 1e6 / max(1, r['bound']):.0f}" for k, v in cpu.items()))
        print("  writes per bound pod: " + ", ".join(f"{k} {v / max(1, r['bound']):.2f}"
                                                     for k, v in sorted(w.items(), key=lambda kv: -kv[1]) if v)
              + f"; all {sum(w.values()) / max(1, r['bound']):.2f}")
        print(f"  pods on {nodes_used} distinct nodes; {running} Running (hollow) when measured")
    finally:
        for p in reversed(procs):
            stop_process(p)
        srv.stop()
        if keep_logs:
            print(f"  logs: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


async def backlog_config(client: ApiClient, srv: NatsServer, procs: list, n_nodes: int, n_pods: int,
                         concurrency: int, reg: float, start_scheduler: Callable[[], None]) -> None:
    t0 = time.monotonic()
    await create_all(client, n_pods, concurrency)
    created = time.monotonic() - t0
    named = {"nats-server": srv.proc.pid, "apiserver": procs[0].pid, "hollow": procs[1].pid}
    cpu0: dict[str, float] = {}
    w0: dict[str, int] = {}

    def first_bound() -> None:
        named["scheduler"] = procs[2].pid
        cpu0.update({k: cpu_seconds(v) for k, v in named.items()})
        asyncio.ensure_future(stream_writes(client)).add_done_callback(lambda f: w0.update(f.result()))

    r = await measure_backlog(client, n_pods, start_scheduler, first_bound)
    cpu = {k: cpu_seconds(v) - cpu0[k] for k, v in named.items() if k in cpu0}
    w = {k: v - w0.get(k, 0) for k, v in (await stream_writes(client)).items()}
    await client.close()
    n = max(1, r["bound"] - 1)
    print(f"\n== {n_nodes} hollow nodes, {n_pods} pods created first ({created:.1f}s), then the scheduler ==")
    print(f"  conditions: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
          f"processes: nats-server, apiserver, scheduler, hollow nodes ({n_nodes} in 1 process, registered in "
          f"{reg:.1f}s), watch")
    print(f"  bound {r['bound']}/{n_pods}: first {r['startup']:.1f}s after the scheduler started (its start-up: "
          f"list and watch), then {r['elapsed']:.1f}s -> {r['rate']:.0f} pods/s; slowest second "
          f"{r['slowest_second']} pods, fastest {r['fastest_second']}")
    print("  CPU µs per bound pod (first bound -> last): "
          + ", ".join(f"{k} {v * 1e6 / n:.0f}" for k, v in cpu.items()))
    print("  writes per bound pod: " + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(w.items(), key=lambda kv: -kv[1])
                                                 if v) + f"; all {sum(w.values()) / n:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, help="one configuration with this many hollow nodes "
                                               "(default: 100, then 1000)")
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=256, help="creates in flight")
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--backlog", action="store_true", help="create the pods first, then start the scheduler: its own "
                                                           "throughput, first bound pod to last")
    ap.add_argument("--profile", default="", help="comma-separated processes to run under cProfile "
                                                 "(scheduler, apiserver, hollow); implies --keep-logs")
    args = ap.parse_args()
    profile = tuple(x for x in args.profile.split(",") if x)
    for n in ([args.nodes] if args.nodes else [100, 1000]):
        aio.run(run_config(n, args.pods, args.concurrency, args.keep_logs or bool(profile), profile, args.backlog))


if __name__ == "__main__":
    main()
