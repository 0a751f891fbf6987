"""What ResourceQuota admission costs a pod create: creates per second and latency with C concurrent clients in a
namespace without a quota, and in one whose quota (pods and requests.cpu, hard far above the load) is charged with
a compare-and-set on every create — through one API server, then two sharing the load (their charges conflict and
are retried).

Run:  python -m tests.perf.bench_quota            (600 creates per case, 32 clients)
      python -m tests.perf.bench_quota --quick    (150 creates)

Starts its own nats-server (JetStream on a temp dir) and the API servers in this process. Prints each figure with
its conditions. Not a pass/fail test."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from bus import errors, roles
from bus.client import ApiClient
from bus.connect import connect as bus_connect
from bus.natsauth import Credentials
from bus.natsserver import NatsServer
from bus.roles import Identity
from master.apiserver.server import ApiServer
from tests import builders
from tests.perf.busauth import use_server


def pod(name: str, ns: str) -> dict:
    return builders.pod(name, ns, automountServiceAccountToken=False,
                        containers=[builders.container("app", resources=builders.requests("10m", "16Mi"))])


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Conflicts:
    """Counts the quota compare-and-sets that lost (wrapping the API servers' store update)."""

    def __init__(self) -> None:
        self.n = 0

    def wrap(self, api: ApiServer) -> None:
        update = api.store.update

        async def counted(res, namespace, name, obj, revision):
            try:
                return await update(res, namespace, name, obj, revision)
            except errors.Conflict:
                if res.plural == "resourcequotas":
                    self.n += 1
                raise

        api.store.update = counted


async def run_case(clients: list[ApiClient], ns: str, n: int) -> tuple[float, list[float]]:
    lat: list[float] = []
    sem = asyncio.Semaphore(len(clients))

    async def one(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            await clients[i % len(clients)].create(pod(f"b{i:05d}", ns))
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0, lat


async def main_async(n: int, concurrency: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-quota-"))
    srv = use_server(NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log"))
    srv.start()
    servers, conns = [], []
    try:
        conflicts = Conflicts()

        async def start_server() -> None:
            nc = await bus_connect(srv.url, Credentials.load(srv.credentials(Identity(roles.APISERVER))))
            conns.append(nc)
            api = ApiServer(nc)
            await api.start()
            servers.append(api)
            conflicts.wrap(api)

        await start_server()
        clients = [await ApiClient.connect(srv.url) for _ in range(concurrency)]
        admin = clients[0]
        print(f"pod creates, {n} per case, {concurrency} concurrent clients, nats-server + API servers in one process "
              f"(Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs)")
        for servers_used in (1, 2):
            if servers_used == 2:
                await start_server()  # joins the queue group: the load is shared
            for quota in (False, True):
                ns = f"s{servers_used}-{'q' if quota else 'none'}"
                await admin.create(builders.namespace(ns))
                if quota:
                    await admin.create({"apiVersion": "v1", "kind": "ResourceQuota",
                                        "metadata": {"name": "q", "namespace": ns},
                                        "spec": {"hard": {"pods": "100000", "requests.cpu": "10k"}}})
                    q = await admin.get("resourcequotas", "q", ns)  # the controller's part, done by hand here
                    q["status"] = {"hard": q["spec"]["hard"], "used": {"pods": "0", "requests.cpu": "0"}}
                    await admin.update_status(q)
                before = conflicts.n
                wall, lat = await run_case(clients, ns, n)
                label = f"{servers_used} API server{'s' if servers_used > 1 else ''}, " + \
                    ("quota charged" if quota else "no quota")
                extra = f", {conflicts.n - before} quota CAS conflicts retried" if quota else ""
                print(f"  {label:<34} {n / wall:7.0f} creates/s   p50 {pct(lat, 50) * 1e3:6.1f} ms   "
                      f"p99 {pct(lat, 99) * 1e3:6.1f} ms{extra}")
                if quota:
                    used = (await admin.get("resourcequotas", "q", ns))["status"]["used"]
                    assert used["pods"] == str(n), used  # every create charged once
        for c in clients:
            await c.close()
    finally:
        for api in servers:
            await api.stop()
        for nc in conns:
            await nc.close()
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--clients", type=int, default=32)
    args = p.parse_args()
    asyncio.run(main_async(150 if args.quick else 600, args.clients))


if __name__ == "__main__":
    main()
