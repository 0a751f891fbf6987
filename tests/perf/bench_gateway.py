"""Gateway overhead: p50/p99 of GET pod and POST pod through the HTTP API gateway (HTTPS, keep-alive, bearer
token — as kubectl talks to it) versus the same request on the bus (``k8n.api.pods.get|create``), in one run.

Run:  python -m tests.perf.bench_gateway [--n 1000]

Starts its own nats-server (JetStream on a temp dir), one apiserver process (``python -m master``) and one
gateway process (``python -m master.gateway``); the client runs in this process, one request at a time, the
HTTP and bus samples interleaved in rounds so both see the same machine. Prints each figure with its
conditions. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import orjson

from bus import aio, codec
from bus.client import ApiClient
from tests.perf.busauth import use_server
from bus.natsserver import NatsServer
from bus.proc import die_with_parent
from bus.resources import by_plural
from tests.conftest import start_apiserver_process, wait_for_api
from tests.perf.bench_api import pct, pod

ROUNDS = 5
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(url: str, tmp: Path, port: int) -> subprocess.Popen:
    (tmp / "tokens.csv").write_text(f'{TOKEN},bench,bench,"system:masters"\n')
    out = open(tmp / "gateway.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "master.gateway", "--server", url, "--port", str(port),
                             "--token-file", str(tmp / "tokens.csv"), "--cert-dir", str(tmp / "pki"),
                             "--log-level", "WARNING"],
                            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=die_with_parent)


async def wait_http(session: aiohttp.ClientSession, url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url + "/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not come up")
        await asyncio.sleep(0.2)


def stop_all(procs: tuple[subprocess.Popen, ...], srv: NatsServer, tmp: Path) -> None:
    """Stop the benchmark's processes (SIGTERM, then SIGKILL after 15 s), its nats-server, and remove its files."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def summary(what: str, lat: list[float]) -> str:
    return f"{what}: p50 {pct(lat, 50)*1e3:.2f} ms, p99 {pct(lat, 99)*1e3:.2f} ms ({len(lat)} requests)"


@contextlib.asynccontextmanager
async def gateway_stack(prefix: str) -> AsyncIterator[tuple[NatsServer, Path, str]]:
    """A nats-server, one API server process and one gateway process, up and answering: ``(server, temp dir, the
    gateway's https base URL)``; everything stopped and removed after."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log")
    use_server(srv)
    srv.start()
    api = start_apiserver_process(srv.url, tmp / "api.log")
    port = free_port()
    gw = start_gateway(srv.url, tmp, port)
    base = f"https://127.0.0.1:{port}"
    try:
        await wait_for_api(srv.url)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=False),
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            await wait_http(session, base)
        yield srv, tmp, base
    finally:
        stop_all((gw, api), srv, tmp)


async def main(n: int) -> None:
    async with gateway_stack("k8n-bench-gw-") as (srv, tmp, base):
        client = await ApiClient.connect(srv.url)
        pods = by_plural("pods")
        ctx = ssl.create_default_context(cafile=str(tmp / "pki" / "ca.crt"))
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        conn = aiohttp.TCPConnector(limit=1, ssl=ctx)  # one keep-alive connection, the certificate checked
        async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
            await client.create(pod("target"))
            get_url = f"{base}/api/v1/namespaces/default/pods/target"
            post_url = f"{base}/api/v1/namespaces/default/pods"
            lat = {"http get": [], "bus get": [], "http post": [], "bus post": []}
            for _ in range(50):  # warm up both paths (connections, consumers, caches)
                async with session.get(get_url) as r:
                    await r.read()
                await client.request(pods, "get", "default", "target")
            per = max(1, n // ROUNDS)
            for rnd in range(ROUNDS):
                for i in range(per):
                    t = time.perf_counter()
                    async with session.get(get_url) as r:
                        body = await r.read()
                    lat["http get"].append(time.perf_counter() - t)
                    assert r.status == 200, body
                    t = time.perf_counter()
                    await client.request(pods, "get", "default", "target")
                    lat["bus get"].append(time.perf_counter() - t)
                for i in range(per):
                    data = orjson.dumps(pod(f"h-{rnd}-{i:05d}"))
                    t = time.perf_counter()
                    async with session.post(post_url, data=data) as r:
                        body = await r.read()
                    lat["http post"].append(time.perf_counter() - t)
                    assert r.status == 201, body
                    t = time.perf_counter()
                    await client.request(pods, "create", "default", body=pod(f"b-{rnd}-{i:05d}"))
                    lat["bus post"].append(time.perf_counter() - t)
        await client.close()
        cond = (f"[{os.cpu_count()} cores shared, {platform.python_implementation()} {platform.python_version()}, "
                f"1 nats-server, 1 apiserver process, 1 gateway process (HTTPS, keep-alive), client in 1 process, "
                f"sequential, pod ~{len(codec.pack(pod('h-0-00000')))} B msgpack / "
                f"{len(orjson.dumps(pod('h-0-00000')))} B JSON, {ROUNDS} interleaved rounds]")
        for verb in ("get", "post"):
            h, b = lat[f"http {verb}"], lat[f"bus {verb}"]
            label = "GET pod" if verb == "get" else "POST pod (create)"
            print(summary(f"{label} through the HTTP gateway", h))
            print(summary(f"{label} on the bus (k8n.api.pods.{'get' if verb == 'get' else 'create'})", b))
            print(f"  gateway overhead: p50 +{(pct(h, 50) - pct(b, 50))*1e3:.2f} ms, "
                  f"p99 +{(pct(h, 99) - pct(b, 99))*1e3:.2f} ms")
        print(cond)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="requests per measurement (default 1000)")
    a = ap.parse_args()
    aio.run(main(a.n))
    sys.exit(0)
