"""What Prometheus metrics cost on the API path: pod create throughput and the API server's CPU per create with
metrics on (``K8N_TELEMETRY_SECONDS``, default 5 s: counted per request, published with JetStream's figures every
period) against off (``0``: nothing counted, nothing published), in one run, alternating rounds.

Each round starts a fresh API server process (``python -m master --components apiserver``) with the mode's setting on
the same nats-server (JetStream fsync on every write), warms it up, lets it settle 10 s, then creates ``--pods`` pods
with ``--concurrency`` in flight from this process. A subscriber takes the telemetry off the bus as the gateway would.
Figures per mode: the median of the rounds' throughput, and CPU µs per create of the API server process (from /proc:
it holds on a noisy machine), then the overhead of on against off. Then the per-request counting alone: one API server
in this process, its metrics toggled between alternating rounds (no process restarts between them), and one
``ApiMetrics.observe`` timed in a loop. Not a pass/fail test.

    python -m tests.perf.bench_telemetry [--pods 3000] [--rounds 3] [--concurrency 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bus import aio, subjects
from bus.client import ApiClient
from bus.natsserver import DURABLE_SYNC, NatsServer
from bus.proc import die_with_parent, stop_process
from tests.conftest import wait_for_api
from tests.perf.bench_api import POD_BYTES, bench_create, cpu_seconds
from tests.perf.busauth import use_server
from tests.perf.conditions import fsync_line


def spawn_apiserver(url: str, log: Path, seconds: float) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "master", "--server", url, "--components", "apiserver",
                             "--log-level", "WARNING"], stdout=out, stderr=out, preexec_fn=die_with_parent,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "K8N_TELEMETRY_SECONDS": str(seconds)})


async def one_round(srv: NatsServer, tmp: Path, seconds: float, pods: int, concurrency: int, tag: str,
                    client: ApiClient, settle: float) -> tuple[float, float, int]:
    """(creates/s, API server CPU µs per create, telemetry messages seen) of one round."""
    api = spawn_apiserver(srv.url, tmp / "api.log", seconds)
    seen = 0

    async def count(_msg) -> None:
        nonlocal seen
        seen += 1

    sub = await client.nc.subscribe(subjects.telemetry_wildcard(), cb=count)
    try:
        await wait_for_api(srv.url)
        ns = f"bench-{tag}"
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await bench_create(client, 300, concurrency, f"warm-{tag}", ns)
        await asyncio.sleep(settle)  # both modes alike: the warm-up's writes settle, the first publication is out
        cpu0 = cpu_seconds(api.pid)
        rate = await bench_create(client, pods, concurrency, f"p-{tag}", ns)
        cpu = (cpu_seconds(api.pid) - cpu0) / pods * 1e6
        return rate, cpu, seen
    finally:
        await sub.unsubscribe()
        stop_process(api)


async def run(pods: int, rounds: int, concurrency: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="k8n-bench-telemetry-") as d:
        tmp = Path(d)
        srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log", sync_interval=DURABLE_SYNC)
        use_server(srv)
        srv.start()
        print(fsync_line(tmp / "js"))
        client = await ApiClient.connect(srv.url)
        results: dict[str, list[tuple[float, float, int]]] = {"on": [], "off": []}
        try:
            for r in range(rounds):
                order = ("on", "off") if r % 2 == 0 else ("off", "on")
                for mode in order:
                    got = await one_round(srv, tmp, seconds if mode == "on" else 0, pods, concurrency,
                                          f"{mode}{r}", client, 10.0)
                    results[mode].append(got)
                    print(f"  round {r + 1} metrics {mode:3}: {got[0]:,.0f} creates/s, API server CPU "
                          f"{got[1]:,.0f} µs/create, {got[2]} telemetry messages", flush=True)
        finally:
            await client.close()
            srv.stop()
    cond = (f"[{os.cpu_count()} cores shared, {platform.python_implementation()} {platform.python_version()}, "
            f"1 nats-server (JetStream sync_interval {DURABLE_SYNC}), 1 API server process restarted per round, "
            f"{rounds} rounds alternating, {pods} pod creates per round, {concurrency} in flight, pod ~{POD_BYTES} B "
            f"msgpack, telemetry every {seconds:g} s when on]")
    med = {m: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for m, v in results.items()}
    for m in ("off", "on"):
        print(f"metrics {m:3}: {med[m][0]:,.0f} creates/s (median), API server CPU {med[m][1]:,.0f} µs/create "
              f"(median) {cond}")
    print(f"metrics on against off: throughput {(med['on'][0] / med['off'][0] - 1) * 100:+.1f} %, API server CPU "
          f"per create {(med['on'][1] / med['off'][1] - 1) * 100:+.1f} % (goal: at most 5 % worse) {cond}")
    ab = await toggled(pods, rounds, concurrency)
    print(f"the same with one API server in this process, its request counting toggled between rounds (no "
          f"publication; CPU of this process: API server + load generator): on {ab['on']:,.0f} µs/create, off "
          f"{ab['off']:,.0f} µs/create (medians of {rounds} rounds of {pods}): {(ab['on'] / ab['off'] - 1) * 100:+.1f} %")
    print(f"in isolation: counting one request (ApiMetrics.observe, counter + histogram) costs "
          f"{observe_cost() * 1e6:.2f} µs of CPU [this process, {platform.python_version()}]")


async def toggled(pods: int, rounds: int, concurrency: int) -> dict[str, float]:
    """Median CPU µs per create of this process (an in-process API server and the load generator) with the API
    server's request metrics on and off, alternating: the per-request cost alone, without a second process's noise."""
    import time

    from bus import roles, telemetry
    from bus.roles import Identity
    from bus.store import connect_store
    from master.apiserver.server import ApiServer

    with tempfile.TemporaryDirectory(prefix="k8n-bench-telemetry-") as d:
        srv = NatsServer(Path(d) / "js", port=0, log_file=Path(d) / "nats.log", sync_interval=DURABLE_SYNC)
        use_server(srv)
        os.environ["K8N_SERVICE_ACCOUNT_KEY_FILE"] = str(Path(d) / "pki" / "sa.key")  # not the first run's (gone)
        srv.start()
        try:
            store = await connect_store(srv.url, Identity(roles.APISERVER))
            telemetry.enter(roles.APISERVER, seconds=3600.0)
            api = ApiServer(store.nc, store)
            metrics = api.metrics
            await api.start()
            client = await ApiClient.connect(srv.url)
            await bench_create(client, 300, concurrency, "warm")
            out: dict[str, list[float]] = {"on": [], "off": []}
            for r in range(rounds):
                for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                    api.metrics = metrics if mode == "on" else None
                    t = time.process_time()
                    await bench_create(client, pods, concurrency, f"{mode}{r}")
                    out[mode].append((time.process_time() - t) / pods * 1e6)
            await client.close()
            await api.stop()
            await store.nc.close()
        finally:
            srv.stop()
    return {m: statistics.median(v) for m, v in out.items()}


def observe_cost(n: int = 200_000) -> float:
    """CPU seconds of one :meth:`ApiMetrics.observe` of a pod create (what each request adds when metrics are on)."""
    import time

    from prometheus_client import CollectorRegistry

    from bus.resources import by_plural
    from master.apiserver.request import Request
    from master.apiserver.telemetry import ApiMetrics

    m = ApiMetrics(CollectorRegistry())
    req = Request(by_plural("pods"), "create", "default", None)
    t = time.process_time()
    for _ in range(n):
        m.observe(req, 201, 0.002)
    return (time.process_time() - t) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pods", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0, help="telemetry-seconds when on (default 5)")
    a = p.parse_args()
    aio.run(run(a.pods, a.rounds, a.concurrency, a.seconds))


if __name__ == "__main__":
    main()
