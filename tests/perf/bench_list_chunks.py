"""A list of 10,000 pods through the HTTP gateway in chunks of 500 (``limit``/``continue``, as kubectl pages)
against one unchunked list: wall time and peak memory of the gateway and API server processes.

Run:  python -m tests.perf.bench_list_chunks [--pods 10000] [--chunk 500] [--rounds 3]

Starts its own nats-server, one API server process and one gateway process (bench_gateway's stack), creates the pods
directly on the bus (objects only: nothing runs them), then lists them as JSON over HTTPS from this process. Peak
memory is each process's VmHWM, reset (``/proc/<pid>/clear_refs``) before each measurement; the chunked lists run
first, so the unchunked list cannot leave them a larger heap to reuse. Prints figures and conditions; not a
pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import ssl
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import orjson

from bus import aio
from bus.client import ApiClient
from tests.perf.bench_api import POD_BYTES, pod
from tests.perf.bench_gateway import TOKEN, gateway_stack


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pid_of(cmdline: str) -> int:
    """The pid of the benchmark's own child process whose command line contains ``cmdline``."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if cmdline in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    return int(d.name)
            except OSError:
                continue
    raise RuntimeError(f"no process running {cmdline!r}")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := current RSS


async def list_all(session: aiohttp.ClientSession, url: str, chunk: int | None) -> tuple[int, int, int]:
    """(items, requests, JSON bytes) of one full list, following continue tokens."""
    items = requests = size = 0
    token = None
    while True:
        params = {"limit": str(chunk), **({"continue": token} if token else {})} if chunk else {}
        async with session.get(url, params=params) as r:
            raw = await r.read()
            body = orjson.loads(raw)
            assert r.status == 200, body
        size += len(raw)
        requests += 1
        items += len(body["items"])
        token = body["metadata"].get("continue")
        if not token:
            return items, requests, size


async def measure(session, url: str, chunk: int | None, rounds: int, pids: dict[str, int]) -> dict:
    times, peaks = [], {k: [] for k in pids}
    base = {k: _status_kib(p, "VmRSS") for k, p in pids.items()}
    for _ in range(rounds):
        for p in pids.values():
            reset_peak(p)
        t = time.perf_counter()
        n, reqs, size = await list_all(session, url, chunk)
        times.append(time.perf_counter() - t)
        for k, p in pids.items():
            peaks[k].append(_status_kib(p, "VmHWM"))
    return {"items": n, "requests": reqs, "bytes": size, "time": statistics.median(times), "base": base,
            "peak": {k: max(v) for k, v in peaks.items()}}


async def main(pods: int, chunk: int, rounds: int) -> None:
    async with gateway_stack("k8n-bench-chunks-") as (srv, tmp, base):
        client = await ApiClient.connect(srv.url)
        sem = asyncio.Semaphore(64)

        async def create(i: int) -> None:
            async with sem:
                await client.create(pod(f"p-{i:05d}"))

        t = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(pods)))
        created = time.perf_counter() - t
        await client.close()
        pids = {"gateway": pid_of(f"-m master.gateway --server {srv.url}"),
                "apiserver": pid_of(f"-m master --server {srv.url}")}
        ctx = ssl.create_default_context(cafile=str(tmp / "pki" / "ca.crt"))
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        url = f"{base}/api/v1/pods"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=ctx), headers=headers) as s:
            await list_all(s, url, chunk)  # warm-up (consumers, connections)
            chunked = await measure(s, url, chunk, rounds, pids)
            whole = await measure(s, url, None, rounds, pids)
        print(f"created {pods} pods on the bus in {created:.1f} s")
        for label, m in ((f"chunked (limit={chunk})", chunked), ("unchunked", whole)):
            mem = ", ".join(f"{k} peak {m['peak'][k] / 1024:.0f} MiB (RSS before {m['base'][k] / 1024:.0f} MiB)"
                            for k in pids)
            print(f"list {m['items']} pods {label}: {m['time'] * 1e3:.0f} ms median of {rounds}, "
                  f"{m['requests']} request(s), {m['bytes'] / 2**20:.1f} MiB of JSON; {mem}")
        print(f"[{os.cpu_count()} cores shared, {platform.python_implementation()} {platform.python_version()}, "
              f"1 nats-server, 1 apiserver process, 1 gateway process (HTTPS, keep-alive, JSON), client in this "
              f"process, pods created directly on the bus ({POD_BYTES} B msgpack as sent, larger once defaulted)]")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    aio.run(main(a.pods, a.chunk, a.rounds))
    sys.exit(0)
