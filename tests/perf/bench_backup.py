"""Backup and restore of a cluster holding N pods: time, file size and CPU seconds of every process.

A nats-server (``sync_interval: always``) and an API server process; ``--pods`` pods (a typical spec, ~1 KiB stored)
created through the API with 256 in flight (no agent, no controllers), plus the objects the API server makes at its
first start. Then ``k8n backup``'s work (``bus.cli.backup.take``: the API server's cut, then this process reads every
bucket as of it and writes the file) and ``k8n restore --data-dir``'s (``restore_into_dir``: a nats-server of its
own on a fresh data directory, every bucket made and written, 512 writes in flight, then stopped), both with its
default (flushed at the end, every file fsynced) and with an fsync per write (``sync_interval: always``).

    python -m tests.perf.bench_backup [--pods 30000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import tempfile
import time
from pathlib import Path

from bus.client import ApiClient
from bus.cli.backup import restore_into_dir, take
from bus.natsserver import NatsServer
from tests import builders as b
from tests.conftest import start_apiserver_process, wait_for_api
from tests.perf.busauth import use_server
from tests.perf.conditions import cpu_seconds, describe, fsync_line

NS = "bench-backup"
IN_FLIGHT = 256


def pod(i: int) -> dict:
    p = b.pod(f"web-{i:06d}", NS, labels={"app": "web", "tier": "frontend", "shard": str(i % 16)})
    p["spec"]["containers"][0].update({"ports": [{"containerPort": 8080, "name": "http"}],
                                       "env": [{"name": "MODE", "value": "production"}],
                                       "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}})
    return p


async def create_pods(client: ApiClient, n: int) -> float:
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with sem:
            await client.create(pod(i))

    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def main(n: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-backup-"))
    srv = use_server(NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log"))
    srv.start()
    print(fsync_line(tmp / "js"))
    print(describe(srv.sync_interval))
    api = start_apiserver_process(srv.url, tmp / "api.log")
    try:
        await wait_for_api(srv.url)
        client = await ApiClient.connect(srv.url)
        client.timeout = 30.0
        await client.create(b.namespace(NS))
        took = await create_pods(client, n)
        print(f"created {n} pods in {took:.1f}s ({n / took:,.0f}/s, {IN_FLIGHT} in flight)")
        for r in range(rounds):
            path = tmp / f"backup-{r}.k8nbak"
            c0 = (self_cpu(), cpu_seconds(srv.proc.pid), cpu_seconds(api.pid))
            t0 = time.perf_counter()
            head = await take(client.nc, path)
            wall = time.perf_counter() - t0
            c1 = (self_cpu(), cpu_seconds(srv.proc.pid), cpu_seconds(api.pid))
            size = path.stat().st_size
            print(f"backup: {head['objects']} objects (pods bucket at revision {head['buckets']['pods']['revision']}) "
                  f"in {wall:.2f}s, file {size / 2**20:.1f} MiB ({size / head['objects']:.0f} B/object gzip, "
                  f"{head['rawBytes'] / head['objects']:.0f} B/object stored), "
                  f"writes held {head['heldMs']:.0f} ms; CPU s: k8n backup {c1[0] - c0[0]:.2f}, "
                  f"nats-server {c1[1] - c0[1]:.2f}, API server {c1[2] - c0[2]:.2f}")
            for every_write in (False, True):
                target = tmp / f"restored-{r}"
                target.mkdir()
                s0, k0 = self_cpu(), children_cpu()
                t0 = time.perf_counter()
                got = await restore_into_dir(path, target, sync_every_write=every_write)
                wall = time.perf_counter() - t0
                s1, k1 = self_cpu(), children_cpu()
                how = "an fsync per write" if every_write else "flushed at the end, then every file fsynced (default)"
                print(f"restore into a new data dir ({how}): {got['objects']} objects in {wall:.2f}s "
                      f"({got['objects'] / wall:,.0f} objects/s, nats-server start and stop included); CPU s: "
                      f"k8n restore {s1 - s0:.2f}, its nats-server {k1 - k0:.2f}")
                shutil.rmtree(target, ignore_errors=True)
        await client.close()
    finally:
        api.terminate()
        api.wait(10)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    asyncio.run(main(a.pods, a.rounds))
