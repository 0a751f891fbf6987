"""Secret create throughput with JetStream encryption at rest on against off (``bus.atrest``), one run each.

Run:  python -m tests.perf.bench_encryption            (3,000 Secrets per run)
      python -m tests.perf.bench_encryption --quick    (1,000)

Each run starts its own nats-server (JetStream on a fresh temp dir, ``sync_interval: always``, encryption at rest
with ChaCha20-Poly1305 on or off) and one API server process (``python -m master``); this process creates Secrets
through the bus (ApiClient, 64 in flight, as tests/perf/bench_api.py does for pods). Prints creates/s and the CPU
µs per create of nats-server and of the API server (from /proc: they hold on a noisy machine). Not a pass/fail
test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bus import aio, codec
from bus.client import ApiClient
from bus.natsserver import DURABLE_SYNC, NatsServer
from tests.conftest import start_apiserver_process, wait_for_api
from tests.perf.bench_api import cpu_seconds
from tests.perf.busauth import use_server
from tests.perf.conditions import fsync_line

CONCURRENCY = 64
PAYLOAD = base64.b64encode(os.urandom(768)).decode()  # ~1 KiB of Secret data


def secret(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "bench-secrets"},
            "type": "Opaque", "data": {"token": PAYLOAD}}


SECRET_BYTES = len(codec.pack(secret("bench-secret-00000")))


async def creates(client: ApiClient, n: int, prefix: str) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with sem:
            await client.create(secret(f"{prefix}-{i:05d}"))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def run(encrypt: bool, n: int) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-enc-"))
    srv = NatsServer(tmp / "jetstream", port=0, log_file=tmp / "nats.log", encrypt=encrypt)
    os.environ["K8N_SERVICE_ACCOUNT_KEY_FILE"] = str(tmp / "pki" / "sa.key")  # this run's, inside its temp dir
    use_server(srv)
    srv.start()
    proc = start_apiserver_process(srv.url, tmp / "api.log")
    try:
        await wait_for_api(srv.url)
        client = await ApiClient.connect(srv.url)
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-secrets"}})
        await creates(client, 200, "warm")
        pids = {"nats-server": srv.proc.pid, "apiserver": proc.pid}
        before = {k: cpu_seconds(p) for k, p in pids.items()}
        rate = await creates(client, n, "s")
        cpu = {k: (cpu_seconds(p) - before[k]) / n * 1e6 for k, p in pids.items()}
        await client.close()
        encrypted = "Encryption:      ChaCha20-Poly1305" in (tmp / "nats.log").read_text()
        return (f"encryption at rest {'on ' if encrypt else 'off'} (server log says "
                f"{'ChaCha20-Poly1305' if encrypted else 'none'}): {rate:,.0f} Secret creates/s over {n}, "
                f"{CONCURRENCY} in flight; CPU {cpu['nats-server']:,.0f} µs/create in nats-server, "
                f"{cpu['apiserver']:,.0f} µs/create in the apiserver")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def main(n: int, order: list[bool]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-enc-fsync-"))
    try:
        print(fsync_line(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    conditions = (f"[{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
                  f"1 nats-server (JetStream sync_interval {DURABLE_SYNC}), 1 apiserver process, load generator "
                  f"in 1 process on the bus (ApiClient), Secret ~{SECRET_BYTES} B msgpack, one run each]")
    for encrypt in order:
        print(await run(encrypt, n), conditions, flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int, default=0, help="Secrets per run (default 3000, 1000 with --quick)")
    ap.add_argument("--order", default="off,on", help="the runs, in this order (e.g. on,off)")
    a = ap.parse_args()
    aio.run(main(a.n or (1000 if a.quick else 3000), [x.strip() == "on" for x in a.order.split(",")]))
    sys.exit(0)
