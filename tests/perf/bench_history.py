"""What object history and audit cost and how fast history reads are, in one run.

- Lookup: ``k8n history``'s request (the API server's ``history`` subresource on the bus, authorized as a get) for
  an object with 10 revisions, p50/p99 over ``--lookups`` sequential requests; beside it the raw read the API server
  makes (one batched direct get on the kind's history stream).
- Write path: ConfigMap creates with history and audit on (the defaults) and off (``K8N_HISTORY=false``,
  ``K8N_AUDIT_MAX_AGE=0``), alternating rounds on one nats-server, each mode with a fresh API server process:
  throughput with ``--concurrency`` creates in flight, and CPU microseconds per create of the API server and of
  nats-server (which copies each change into the history stream and stores each audit record), from /proc.

    python -m tests.perf.bench_history [--creates 2000] [--rounds 2] [--concurrency 32] [--lookups 2000]
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

from bus import history
from bus.client import ApiClient, resource_of
from bus.natsserver import DURABLE_SYNC, NatsServer
from tests.conftest import wait_for_api
from tests.perf.bench_authz import cpu_seconds, pct, spawn
from tests.perf.busauth import use_server

NS = "default"
MODES = {"on": {}, "off": {"K8N_HISTORY": "false", "K8N_AUDIT_MAX_AGE": "0"},
         "history-only": {"K8N_AUDIT_MAX_AGE": "0"}, "audit-only": {"K8N_HISTORY": "false"}}


def configmap(name: str, i: int = 0) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
            "data": {"revision": str(i), "payload": "x" * 200}}


async def creates(client: ApiClient, n: int, concurrency: int, tag: str) -> float:
    """Seconds for ``n`` creates with ``concurrency`` in flight."""
    cms = resource_of("configmaps")
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            code, body, _ = await client.call(cms, "create", NS, body=configmap(f"c-{tag}-{i}"))
            assert code == 201, body

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t


async def sequential(client: ApiClient, n: int, tag: str) -> list[float]:
    """Latencies of ``n`` creates one at a time: the request path (the history copy is the server's, afterwards)."""
    cms, out = resource_of("configmaps"), []
    for i in range(n):
        t = time.perf_counter()
        code, body, _ = await client.call(cms, "create", NS, body=configmap(f"s-{tag}-{i}"))
        out.append(time.perf_counter() - t)
        assert code == 201, body
    return out


async def lookups(client: ApiClient, n: int) -> dict[str, list[float]]:
    cms = resource_of("configmaps")
    await client.create(configmap("ten", 0))
    for i in range(1, 10):
        cur = await client.get("configmaps", "ten", NS)
        cur["data"]["revision"] = str(i)
        await client.update(cur)
    deadline = time.monotonic() + 10
    while len(await history.read_object(client.nc, cms, NS, "ten")) < 10:  # the stream copies asynchronously
        assert time.monotonic() < deadline, "the history did not catch up"
        await asyncio.sleep(0.05)
    out: dict[str, list[float]] = {"API request": [], "stream read": []}
    for i in range(n + 100):  # the first 100 warm up
        t = time.perf_counter()
        doc = await client.request(cms, "get", NS, "ten", subresource=history.HISTORY)
        t1 = time.perf_counter()
        items = await history.read_object(client.nc, cms, NS, "ten")
        t2 = time.perf_counter()
        assert len(doc["items"]) == 10 and len(items) == 10
        if i >= 100:
            out["API request"].append(t1 - t)
            out["stream read"].append(t2 - t1)
    return out


async def run(n: int, rounds: int, concurrency: int, lookups_n: int, modes: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="k8n-bench-history-") as d:
        tmp = Path(d)
        srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log", sync_interval=DURABLE_SYNC)
        use_server(srv)
        srv.start()
        client = await ApiClient.connect(srv.url)
        results: dict[str, list[dict]] = {m: [] for m in modes}
        lookup: dict[str, list[float]] = {}
        try:
            for r in range(rounds):
                for mode, env in MODES.items():
                    if mode not in modes:
                        continue
                    api = spawn(["-m", "master", "--server", srv.url, "--components", "apiserver", "--log-level",
                                 "WARNING"], tmp / "api.log", env)
                    try:
                        await wait_for_api(srv.url)
                        await creates(client, 100, concurrency, f"w{r}{mode}")  # warm up
                        api0, nats0 = cpu_seconds(api.pid), cpu_seconds(srv.proc.pid)
                        secs = await creates(client, n, concurrency, f"{r}{mode}")
                        await asyncio.sleep(0.5)  # let nats-server finish copying into the history stream
                        api1, nats1 = cpu_seconds(api.pid), cpu_seconds(srv.proc.pid)
                        lat = await sequential(client, 300, f"{r}{mode}")
                        results[mode].append({"rate": n / secs, "api": (api1 - api0) / n,
                                              "nats": (nats1 - nats0) / n, "lat": lat})
                        if mode == "on" and r == 0:
                            lookup = await lookups(client, lookups_n)
                            info = await client.nc.jetstream().stream_info("HIST_k8n-configmaps")
                            print(f"history stream: {info.state.messages} messages, persist mode "
                                  f"{info.config.persist_mode or 'default'}")
                    finally:
                        api.send_signal(signal.SIGTERM)
                        api.wait(20)
        finally:
            await client.close()
            srv.stop()
    report(results, lookup, n, rounds, concurrency, lookups_n)


def report(results: dict, lookup: dict, n: int, rounds: int, concurrency: int, lookups_n: int) -> None:
    print(f"conditions: {os.cpu_count()} cores (shared), CPython {platform.python_version()}, one nats-server "
          f"(sync_interval {DURABLE_SYNC}), one API server process, admin client on the bus; {n} ConfigMap creates "
          f"(~300 B) per mode per round, {concurrency} in flight, then 300 one at a time; {rounds} alternating rounds")
    for name, lat in lookup.items():
        print(f"history lookup, object with 10 revisions, {name:11s}: p50 {pct(lat, 50) * 1e3:5.2f} ms  "
              f"p99 {pct(lat, 99) * 1e3:5.2f} ms  ({lookups_n} sequential)")
    for mode, rs in results.items():
        print(f"{mode:12s}: {sum(x['rate'] for x in rs) / len(rs):7.0f} creates/s "
              f"(rounds {[round(x['rate']) for x in rs]}); CPU per create: API server "
              f"{sum(x['api'] for x in rs) / len(rs) * 1e6:5.0f} µs, nats-server "
              f"{sum(x['nats'] for x in rs) / len(rs) * 1e6:5.0f} µs; one at a time p50 "
              f"{pct([v for x in rs for v in x['lat']], 50) * 1e3:.2f} ms p99 "
              f"{pct([v for x in rs for v in x['lat']], 99) * 1e3:.2f} ms")
    on, off = results["on"], results["off"]
    rate = (sum(x["rate"] for x in on) / sum(x["rate"] for x in off) - 1) * 100
    cpu_on = sum(x["api"] + x["nats"] for x in on) / len(on)
    cpu_off = sum(x["api"] + x["nats"] for x in off) / len(off)
    print(f"on vs off: throughput {rate:+.1f} %, CPU per create (API server + nats-server) "
          f"{(cpu_on / cpu_off - 1) * 100:+.1f} %")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench_history", description=__doc__.split("\n")[0])
    p.add_argument("--creates", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--lookups", type=int, default=2000)
    p.add_argument("--split", action="store_true", help="also measure history alone and audit alone")
    args = p.parse_args()
    modes = list(MODES) if args.split else ["on", "off"]
    asyncio.run(run(args.creates, args.rounds, args.concurrency, args.lookups, modes))


if __name__ == "__main__":
    main()
