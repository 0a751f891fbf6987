"""What authorization costs: GET and POST of a pod, on the bus and through the HTTPS gateway, with authorization on
(``Node,RBAC``) and off (``AlwaysAllow``), in one run, alternating rounds.

The caller is a ServiceAccount allowed to get and create pods by a RoleBinding (``edit``), so RBAC does its real work
(the admin, in ``system:masters``, would skip it). On the bus the requests come from the gateway's identity naming
that user, as the gateway sends them; through the gateway they carry the account's token (the gateway caches its
TokenReview). Figures: client-side p50/p99 latency, and CPU microseconds per request of the serving processes (API
server; API server + gateway for HTTP), from /proc — the figure that holds on a noisy machine.

    python -m tests.perf.bench_authz [--requests 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from bus import aio, roles
from bus.client import ApiClient, resource_of
from bus.natsserver import DURABLE_SYNC, NatsServer
from bus.proc import die_with_parent
from bus.roles import Identity
from tests import builders
from tests.conftest import wait_for_api
from tests.perf.bench_gateway import wait_http
from tests.perf.busauth import use_server

NS = "bench"
SA_USER = {"username": f"system:serviceaccount:{NS}:bench", "groups": ["system:serviceaccounts",
                                                                        f"system:serviceaccounts:{NS}",
                                                                        "system:authenticated"]}
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(*pids: int) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen([sys.executable, *argv], stdout=out, stderr=out, preexec_fn=die_with_parent,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **env})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def bus_round(gw: ApiClient, n: int, tag: str) -> dict[str, list[float]]:
    pods = resource_of("pods")
    out: dict[str, list[float]] = {"POST": [], "GET": []}
    for i in range(n):
        body = builders.pod(f"b-{tag}-{i}", NS)
        t = time.perf_counter()
        code, got, _ = await gw.call(pods, "create", NS, body=body, user=SA_USER)
        out["POST"].append(time.perf_counter() - t)
        assert code == 201, got
    for i in range(n):
        t = time.perf_counter()
        code, _, _ = await gw.call(pods, "get", NS, f"b-{tag}-{i}", user=SA_USER)
        out["GET"].append(time.perf_counter() - t)
        assert code == 200, code
    return out


async def http_round(session: aiohttp.ClientSession, base: str, token: str, n: int, tag: str) -> dict:
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    out: dict[str, list[float]] = {"POST": [], "GET": []}
    for i in range(n):
        data = orjson.dumps(builders.pod(f"h-{tag}-{i}", NS))
        t = time.perf_counter()
        async with session.post(f"{base}/api/v1/namespaces/{NS}/pods", data=data, headers=h) as r:
            await r.read()
            assert r.status == 201, (r.status, await r.text())
        out["POST"].append(time.perf_counter() - t)
    for i in range(n):
        t = time.perf_counter()
        async with session.get(f"{base}/api/v1/namespaces/{NS}/pods/h-{tag}-{i}", headers=h) as r:
            await r.read()
            assert r.status == 200, r.status
        out["GET"].append(time.perf_counter() - t)
    return out


async def run(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="k8n-bench-authz-") as d:
        tmp = Path(d)
        srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log", sync_interval=DURABLE_SYNC)
        use_server(srv)
        srv.start()
        admin = await ApiClient.connect(srv.url)
        results: dict[tuple[str, str], list[dict]] = {}
        try:
            for r in range(rounds):
                for mode in ("Node,RBAC", "AlwaysAllow"):
                    env = {"K8N_AUTHORIZATION_MODE": mode}
                    api = spawn(["-m", "master", "--server", srv.url, "--components", "apiserver", "--log-level",
                                 "WARNING"], tmp / "api.log", env)
                    port = free_port()
                    gw_proc = spawn(["-m", "master.gateway", "--server", srv.url, "--port", str(port), "--cert-dir",
                                     str(tmp / "pki"), "--authorization-mode", mode, "--log-level", "WARNING"],
                                    tmp / "gateway.log", {})
                    try:
                        await wait_for_api(srv.url)
                        if r == 0 and mode == "Node,RBAC":
                            await setup(admin)
                        token = (await admin.request(resource_of("serviceaccounts"), "create", NS, "bench",
                                                     subresource="token", body={"spec": {}}))["status"]["token"]
                        gw = await ApiClient.connect(srv.url, Identity(roles.GATEWAY))
                        ctx = ssl.create_default_context(cafile=str(tmp / "pki" / "ca.crt"))
                        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
                            base = f"https://127.0.0.1:{port}"
                            await wait_http(session, base, timeout=60)
                            await bus_round(gw, 50, f"w{r}{mode[0].lower()}")  # warm both paths
                            await http_round(session, base, token, 50, f"w{r}{mode[0].lower()}")
                            api0 = cpu_seconds(api.pid)
                            bus = await bus_round(gw, n, f"{r}{mode[0].lower()}")
                            api1, gw1 = cpu_seconds(api.pid), cpu_seconds(gw_proc.pid)
                            http = await http_round(session, base, token, n, f"{r}{mode[0].lower()}")
                            api2, gw2 = cpu_seconds(api.pid), cpu_seconds(gw_proc.pid)
                        # the bus path is served by the API server alone; HTTP by the gateway and the API server
                        results.setdefault(("bus", mode), []).append({**bus, "cpu": (api1 - api0) / (2 * n)})
                        results.setdefault(("http", mode), []).append(
                            {**http, "cpu": ((api2 - api1) + (gw2 - gw1)) / (2 * n)})
                        await gw.close()
                        await delete_all(admin)
                    finally:
                        for p in (gw_proc, api):
                            p.send_signal(signal.SIGTERM)
                            p.wait(20)
        finally:
            await admin.close()
            srv.stop()
    report(results, n, rounds)


async def setup(admin: ApiClient) -> None:
    await admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    await admin.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench", "namespace": NS}})
    await admin.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                        "metadata": {"name": "bench-edit", "namespace": NS},
                        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": NS}],
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}})


async def delete_all(admin: ApiClient) -> None:
    items, _ = await admin.list("pods", NS)
    await asyncio.gather(*(admin.delete("pods", p["metadata"]["name"], NS, grace_period_seconds=0) for p in items))


def report(results: dict, n: int, rounds: int) -> None:
    print(f"conditions: {os.cpu_count()} cores, CPython {platform.python_version()}, one nats-server "
          f"(sync_interval {DURABLE_SYNC}), one API server process, one gateway process; caller: a ServiceAccount "
          f"with the edit ClusterRole by a RoleBinding; {n} sequential POSTs then {n} GETs of a pod per path and "
          f"mode per round, {rounds} alternating rounds")
    for path in ("bus", "http"):
        for verb in ("GET", "POST"):
            row = []
            for mode in ("Node,RBAC", "AlwaysAllow"):
                lat = [x for res in results[(path, mode)] for x in res[verb]]
                row.append(f"{mode:11s} p50 {pct(lat, 50) * 1e3:6.2f} ms  p99 {pct(lat, 99) * 1e3:6.2f} ms")
            print(f"{path:4s} {verb:4s} | " + " | ".join(row))
        on = [res["cpu"] for res in results[(path, "Node,RBAC")]]
        off = [res["cpu"] for res in results[(path, "AlwaysAllow")]]
        a, b = sum(on) / len(on) * 1e6, sum(off) / len(off) * 1e6
        print(f"{path:4s} CPU per request (GET and POST averaged, serving processes): authorization on {a:.0f} µs, "
              f"off {b:.0f} µs ({(a - b) / b * 100:+.1f} %); per round on {[round(x * 1e6) for x in on]}, "
              f"off {[round(x * 1e6) for x in off]}")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench_authz", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    aio.run(run(args.requests, args.rounds))


if __name__ == "__main__":
    main()
