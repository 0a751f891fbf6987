"""Deployment at scale on hollow nodes: apply Deployments of N replicas in all until all are available,
then roll out a new template (maxSurge 25%, maxUnavailable 25%) until that rollout is complete.

Run:  python -m tests.perf.bench_deployment                            (100 nodes, 3,000 replicas)
      python -m tests.perf.bench_deployment --nodes 100 --replicas 3000
      python -m tests.perf.bench_deployment --nodes 1000 --replicas 30000 --deployments 30 --relist

``--deployments N`` applies N Deployments of replicas/N each at once (one named ``bench`` by default).
``--relist`` restarts nats-server after the rollout (same store directory, same port) and reports
how each control-plane informer recovered (the informers' relist log lines, a fresh list+watch of
every pod from this process, and a scale-up by one as the end-to-end proof the control plane works
again). ``--py-spy FILE`` records the control plane from apply to all available (raw, 100 Hz).

Starts its own nats-server, the control plane in one process (``python -m master``: API server,
node view, controllers, scheduler) and the hollow nodes in another (``python -m node.hollow``);
this process applies the Deployment and polls its status every 0.5 s. Prints figures with their
conditions; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import signal
import subprocess
import shutil
import tempfile
import time
from pathlib import Path

from bus import aio
from bus.client import ApiClient
from bus.informer import Informer
from tests.perf.busauth import use_server
from bus.natsserver import NatsServer
from bus.proc import stop_process
from tests import builders
from tests.builders import container, requests, rolling
from tests.conftest import wait_for_api
from tests.perf.bench_scheduler import cpu_seconds, spawn, stream_writes, wait_nodes
from tests.perf.conditions import fsync_line


def deployment(replicas: int, name: str = "bench") -> dict:
    return builders.deployment(name, replicas=replicas, strategy=rolling("25%", "25%"), grace=0, containers=[
        container("c", pull=None, env=[{"name": "V", "value": "1"}], resources=requests("10m", "16Mi"))])


def split(replicas: int, n: int) -> dict[str, int]:
    """Deployment name -> replicas: ``bench`` alone, or ``bench-0`` … ``bench-<n-1>`` sharing ``replicas``."""
    if n <= 1:
        return {"bench": replicas}
    return {f"bench-{i}": replicas // n + (1 if i < replicas % n else 0) for i in range(n)}


async def until_complete(client: ApiClient, wanted: dict[str, int], timeout: float) -> dict:
    """Poll until every Deployment's current generation is fully updated and available; returns the
    elapsed time, the time of each quarter of the replicas becoming available, and the lowest
    available count (summed) seen."""
    t0 = time.monotonic()
    replicas = sum(wanted.values())
    quarters: dict[int, float] = {}
    min_available = None
    while True:
        if len(wanted) == 1:
            deps = [await client.get("deployments", next(iter(wanted)))]
        else:
            deps = [d for d in (await client.list("deployments", "default"))[0] if d["metadata"]["name"] in wanted]
        now = time.monotonic() - t0
        updated_avail = available = complete = 0
        for d in deps:
            st = d.get("status") or {}
            n = wanted[d["metadata"]["name"]]
            if st.get("observedGeneration", 0) < d["metadata"]["generation"]:
                available += st.get("availableReplicas", 0)
                continue
            updated_avail += min(st.get("updatedReplicas", 0), st.get("availableReplicas", 0))
            available += st.get("availableReplicas", 0)
            complete += (st.get("updatedReplicas") == n and st.get("availableReplicas") == n
                         and st.get("replicas") == n)
        for q in (1, 2, 3):
            if q not in quarters and updated_avail >= replicas * q // 4:
                quarters[q] = now
        min_available = available if min_available is None else min(min_available, available)
        if complete == len(wanted):
            return {"elapsed": now, "quarters": quarters, "min_available": min_available}
        if now > timeout:
            raise TimeoutError(f"not complete after {timeout:.0f}s: {updated_avail}/{replicas} updated and available")
        await asyncio.sleep(0.5)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def sample_rss(pid: int, peak: list[int], period: float = 0.25) -> None:
    """Keep ``peak[0]`` the highest VmRSS (KiB) of ``pid`` seen."""
    while True:
        peak[0] = max(peak[0], rss_kib(pid))
        await asyncio.sleep(period)


WRITTEN = ("pods", "events", "replicasets", "deployments", "leases", "nodes")  # buckets whose writes it reports


RELISTED = re.compile(r"informer (\S+) relisted (\d+) objects in ([\d.]+)s")


async def measure_relist(srv: NatsServer, client_url: str, log: Path, wanted: dict[str, int],
                         timeout: float) -> dict:
    """Restart nats-server (same store, same port) and report how the control plane recovered."""
    mark = log.stat().st_size
    t0 = time.monotonic()
    srv.stop()
    srv.start()
    up = time.monotonic() - t0
    client = await ApiClient.connect(client_url)
    client.timeout = 30.0
    try:
        await wait_for_api(client_url)
        t1 = time.monotonic()
        probe = Informer(client, "pods")  # what a relist of every pod costs a fresh informer
        synced = await probe.start(timeout=120)
        fresh = (time.monotonic() - t1, len(probe) if synced else f"NOT SYNCED after 120s: {len(probe)}")
        await probe.stop()
        name = next(iter(wanted))
        t2 = time.monotonic()
        await client.scale("deployments", name, wanted[name] + 1)
        await until_complete(client, {**wanted, name: wanted[name] + 1}, timeout)
        scaled = time.monotonic() - t2
    finally:
        await client.close()
    with open(log, "rb") as f:
        f.seek(mark)
        lines = f.read().decode(errors="replace")
    relists = [(m[1], int(m[2]), float(m[3])) for m in RELISTED.finditer(lines)]
    return {"up": up, "fresh": fresh, "scaled": scaled, "relists": relists}


async def run(n_nodes: int, replicas: int, keep_logs: bool, deployments: int = 1, relist: bool = False,
              update: bool = True, py_spy: str | None = None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-deploy-"))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log")
    use_server(srv)
    srv.start()
    print(fsync_line(tmp / "js"))
    procs: list[subprocess.Popen] = []
    # hollow nodes renew their leases every 10 s (duration 40 s): the node lifecycle controller's
    # default grace (8 s) would take them for lost and mark their pods not ready mid-benchmark
    os.environ.setdefault("K8N_NODE_MONITOR_GRACE_PERIOD", "40")
    # one control plane, no standby: on a loaded machine a late lease renewal would stop it mid-run
    os.environ.setdefault("K8N_LEADER_ELECT", "false")
    try:
        # INFO with --relist: the informers' relist lines are what it reports
        procs.append(spawn(["-m", "master", "--server", srv.url, "--log-level", "INFO" if relist else "WARNING"],
                           tmp / "control.log"))
        await wait_for_api(srv.url)
        client = await ApiClient.connect(srv.url)
        client.timeout = 30.0
        procs.append(spawn(["-m", "node.hollow", "--server", srv.url, "--count", str(n_nodes), "--log-level",
                            "WARNING"], tmp / "hollow.log"))
        reg = await wait_nodes(client, n_nodes)
        named = {"nats-server": srv.proc.pid, "control plane": procs[0].pid, "hollow nodes": procs[1].pid}
        timeout = max(300.0, replicas / 5)
        wanted = split(replicas, deployments)
        peak = [rss_kib(procs[0].pid)]
        rss0 = peak[0]
        sampler = asyncio.create_task(sample_rss(procs[0].pid, peak))
        spy = None
        if py_spy:
            spy = subprocess.Popen(["/opt/k8n/venv/bin/py-spy", "record", "-p", str(procs[0].pid), "-r", "100",
                                    "-f", "raw", "-o", py_spy, "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def quarters(r: dict) -> str:
            return ", ".join(f"{25 * q}% at {t:.1f}s" for q, t in sorted(r["quarters"].items()))

        what = (f"Deployment of {replicas} replicas" if deployments <= 1
                else f"{deployments} Deployments of {replicas // deployments} replicas ({replicas} pods)")
        print(f"\n== {what} on {n_nodes} hollow nodes ==")
        print(f"  conditions: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
              f"processes: nats-server, control plane (python -m master: apiserver, nodeview, controllers, "
              f"scheduler), hollow nodes ({n_nodes} in 1 process, registered in {reg:.1f}s), this poller", flush=True)

        w0 = await stream_writes(client)
        cpu0 = {k: cpu_seconds(v) for k, v in named.items()}
        await asyncio.gather(*(client.create(deployment(n, name)) for name, n in wanted.items()))
        first = await until_complete(client, wanted, timeout)
        cpu1 = {k: cpu_seconds(v) for k, v in named.items()}
        w1 = await stream_writes(client)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        print(f"  apply -> all {replicas} available: {first['elapsed']:.1f}s "
              f"({replicas / first['elapsed']:.0f} pods/s; {quarters(first)})")
        print("  CPU seconds, apply: " + ", ".join(f"{k} {cpu1[k] - cpu0[k]:.1f}" for k in named))
        print("  CPU ms per pod, apply: " + ", ".join(
            f"{k} {1000 * (cpu1[k] - cpu0[k]) / replicas:.2f}" for k in named))
        print("  writes per pod, apply (each an fsync): " + ", ".join(
            f"{r} {(w1.get(r, 0) - w0.get(r, 0)) / replicas:.2f}" for r in WRITTEN))
        print(f"  control plane RSS: {rss0 / 1024:.0f} MiB before apply, peak {peak[0] / 1024:.0f} MiB "
              f"during apply", flush=True)

        if update:
            async def roll(name: str) -> None:
                d = await client.get("deployments", name)
                d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "2"
                await client.update(d)

            await asyncio.gather(*(roll(name) for name in wanted))
            second = await until_complete(client, wanted, timeout)
            cpu2 = {k: cpu_seconds(v) for k, v in named.items()}
            print(f"  rolling update (maxSurge 25%, maxUnavailable 25%) -> complete: {second['elapsed']:.1f}s "
                  f"({quarters(second)}); lowest available seen {second['min_available']} "
                  f"(floor {sum(n - n * 25 // 100 for n in wanted.values())}); CPU seconds: "
                  + ", ".join(f"{k} {cpu2[k] - cpu1[k]:.1f}" for k in named), flush=True)
        rss, _ = await client.list("replicasets", "default")
        await client.close()
        if relist:
            r = await measure_relist(srv, srv.url, tmp / "control.log", wanted, timeout)
            print(f"  nats-server restart (same store, same port): up in {r['up']:.1f}s; a fresh informer listed "
                  f"and watched {r['fresh'][1]} pods in {r['fresh'][0]:.2f}s; scale +1 available after "
                  f"{r['scaled']:.1f}s")
            if r["relists"]:
                print(f"  control-plane informer relists: max {max(x[2] for x in r['relists']):.2f}s; " + ", ".join(
                    f"{res} {n} in {s:.2f}s" for res, n, s in sorted(r["relists"], key=lambda x: -x[2])))
            else:
                print("  control-plane informer relists: none (every watch resumed from its last revision)")
        sampler.cancel()
        print(f"  control plane peak RSS over the whole run: {peak[0] / 1024:.0f} MiB "
              f"(VmHWM {rss_kib(procs[0].pid, 'VmHWM') / 1024:.0f} MiB)")
        print("  ReplicaSets at the end: " + ", ".join(
            f"{rs['metadata']['name']}={rs['spec']['replicas']}" for rs in rss))
    finally:
        for p in reversed(procs):
            stop_process(p)
        srv.stop()
        if keep_logs:
            print(f"  logs: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=3000)
    ap.add_argument("--deployments", type=int, default=1, help="Deployments sharing the replicas (applied at once)")
    ap.add_argument("--relist", action="store_true", help="restart nats-server at the end and time the recovery")
    ap.add_argument("--no-update", action="store_true", help="skip the rolling update")
    ap.add_argument("--py-spy", metavar="FILE", help="py-spy raw profile of the control plane during the apply")
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    aio.run(run(args.nodes, args.replicas, args.keep_logs, args.deployments, args.relist, not args.no_update,
                args.py_spy))


if __name__ == "__main__":
    main()
