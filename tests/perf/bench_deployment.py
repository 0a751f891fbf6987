"""Deployment at scale on hollow nodes: apply a Deployment of N replicas until all are available,
then roll out a new template (maxSurge 25%, maxUnavailable 25%) until that rollout is complete.

Run:  python -m tests.perf.bench_deployment                            (100 nodes, 3,000 replicas)
      python -m tests.perf.bench_deployment --nodes 100 --replicas 3000

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
import subprocess
import shutil
import tempfile
import time
from pathlib import Path

from bus import aio
from bus.client import ApiClient
from tests.perf.busauth import use_server
from bus.natsserver import NatsServer
from bus.proc import stop_process
from tests import builders
from tests.builders import container, requests, rolling
from tests.conftest import wait_for_api
from tests.perf.bench_scheduler import cpu_seconds, spawn, wait_nodes


def deployment(replicas: int) -> dict:
    return builders.deployment("bench", replicas=replicas, strategy=rolling("25%", "25%"), grace=0, containers=[
        container("c", pull=None, env=[{"name": "V", "value": "1"}], resources=requests("10m", "16Mi"))])


async def until_complete(client: ApiClient, replicas: int, timeout: float) -> dict:
    """Poll until the Deployment's current generation is fully updated and available; returns the
    elapsed time, the time of each quarter of the replicas becoming available, and the lowest
    available count seen after the first quarter."""
    t0 = time.monotonic()
    quarters: dict[int, float] = {}
    min_available = None
    while True:
        d = await client.get("deployments", "bench")
        st = d.get("status") or {}
        now = time.monotonic() - t0
        observed = st.get("observedGeneration", 0) >= d["metadata"]["generation"]
        updated_avail = min(st.get("updatedReplicas", 0), st.get("availableReplicas", 0)) if observed else 0
        for q in (1, 2, 3):
            if q not in quarters and updated_avail >= replicas * q // 4:
                quarters[q] = now
        if observed:
            min_available = st.get("availableReplicas", 0) if min_available is None else min(
                min_available, st.get("availableReplicas", 0))
        if (observed and st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas
                and st.get("replicas") == replicas):
            return {"elapsed": now, "quarters": quarters, "min_available": min_available}
        if now > timeout:
            raise TimeoutError(f"not complete after {timeout:.0f}s: {st}")
        await asyncio.sleep(0.5)


async def run(n_nodes: int, replicas: int, keep_logs: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-deploy-"))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log")
    use_server(srv)
    srv.start()
    procs: list[subprocess.Popen] = []
    # hollow nodes renew their leases every 10 s (duration 40 s): the node lifecycle controller's
    # default grace (8 s) would take them for lost and mark their pods not ready mid-benchmark
    os.environ.setdefault("K8N_NODE_MONITOR_GRACE_PERIOD", "40")
    try:
        procs.append(spawn(["-m", "master", "--server", srv.url, "--log-level", "WARNING"], tmp / "control.log"))
        await wait_for_api(srv.url)
        client = await ApiClient.connect(srv.url)
        client.timeout = 30.0
        procs.append(spawn(["-m", "node.hollow", "--server", srv.url, "--count", str(n_nodes), "--log-level",
                            "WARNING"], tmp / "hollow.log"))
        reg = await wait_nodes(client, n_nodes)
        named = {"nats-server": srv.proc.pid, "control plane": procs[0].pid, "hollow nodes": procs[1].pid}
        timeout = max(300.0, replicas / 5)

        cpu0 = {k: cpu_seconds(v) for k, v in named.items()}
        await client.create(deployment(replicas))
        first = await until_complete(client, replicas, timeout)
        cpu1 = {k: cpu_seconds(v) for k, v in named.items()}

        d = await client.get("deployments", "bench")
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "2"
        await client.update(d)
        second = await until_complete(client, replicas, timeout)
        cpu2 = {k: cpu_seconds(v) for k, v in named.items()}
        rss, _ = await client.list("replicasets", "default")
        await client.close()

        def quarters(r: dict) -> str:
            return ", ".join(f"{25 * q}% at {t:.1f}s" for q, t in sorted(r["quarters"].items()))

        print(f"\n== Deployment of {replicas} replicas on {n_nodes} hollow nodes ==")
        print(f"  conditions: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
              f"processes: nats-server, control plane (python -m master: apiserver, nodeview, controllers, "
              f"scheduler), hollow nodes ({n_nodes} in 1 process, registered in {reg:.1f}s), this poller")
        print(f"  apply -> all {replicas} available: {first['elapsed']:.1f}s "
              f"({replicas / first['elapsed']:.0f} pods/s; {quarters(first)})")
        print(f"  rolling update (maxSurge 25%, maxUnavailable 25%) -> complete: {second['elapsed']:.1f}s "
              f"({quarters(second)}); lowest available seen {second['min_available']} "
              f"(floor {replicas - replicas * 25 // 100})")
        print("  CPU seconds, apply: " + ", ".join(f"{k} {cpu1[k] - cpu0[k]:.1f}" for k in named)
              + "; rolling update: " + ", ".join(f"{k} {cpu2[k] - cpu1[k]:.1f}" for k in named))
        print("  ReplicaSets at the end: " + ", ".join(
            f"{rs['metadata']['name']}={rs['spec']['replicas']}" for rs in rss))
    finally:
        for p in reversed(procs):
            stop_process(p)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if keep_logs:
            print(f"  logs: {tmp}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=3000)
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    aio.run(run(args.nodes, args.replicas, args.keep_logs))


if __name__ == "__main__":
    main()
