"""Faults, timed: the fault matrix of tests/e2e/test_faults.py, repeated, and the API on R3 against R1.

Run (as root, Docker running, test images built; it takes the e2e lock's place, so hold it):
    flock /tmp/k8n-e2e.lock python -m tests.perf.bench_faults [--repeat N] [--quick]

1. Recovery per fault. Each repeat builds three machines of a rig (tests/rig.py): ``cp`` runs ``k8n up --listen
   <LAN IP> --nats-servers 3 --replicas 2 --no-agent`` (leader-election Leases of 3 s, node-monitor grace 4 s,
   default toleration 2 s), ``w1`` and ``w2`` run ``k8n join`` (Lease renewed every second). A Deployment of 30
   replicas (busybox ``sleep``, rolled 2 at a time, none unavailable) runs over both workers; writers keep making
   acknowledged ConfigMap writes over the bus (no retries, 2 s timeout) and over the HTTPS gateway. A rolling update
   starts and, once it progresses, each fault is a kill -9 of one child in turn, each after the rollout progressed
   past the one before. Per fault it prints:
   - "rollout progressing again": from the kill to the first pod of the new revision that did not exist at the kill
     being Ready (the ReplicaSet controller made it, the scheduler bound it, an agent ran it — all after the kill);
   - "restarted": from the kill to the supervisor's replacement process running (its pid file rewritten);
   - the longest time without an acknowledged write from 1 s before the kill to the rollout progressing again.
   A baseline comes first: the same "progressing again" measure with nothing killed (the rollout's own pace).
   Then a partition: w1's LAN link down → its Node not Ready, every replica Ready on w2 (both from the link going
   down); link up → w1 runs only containers of pods the store binds to it (from the link coming back). After each
   repeat: acknowledged writes verified (lost must be 0) and the invariants (duplicate/orphaned pods, orphaned
   containers).
2. API create throughput and watch latency on R3 against R1 in one run: ``k8n up --no-agent`` on loopback with one
   nats-server (buckets R1) and with three (one JetStream cluster, buckets R3), one control-plane process each;
   measured with tests/perf/bench_api.py's code (creates of pods through the bus client, sequential and 64 in
   flight; watch latency = a ConfigMap create request sent → its add event at an informer in another process).

Prints figures and conditions; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bus.client import ApiClient
from tests.e2e.machines import running_machines
from tests.e2e.upcluster import launch_up, wait_up
from tests.faults import (BASELINE, FAULTS, REPLICAS, UP_ENV, UP_FLAGS, WORKER_ENV, BusTarget, WriteChecker,
                          gateway_target, invariants, partition, rolled_out, rollout_with_kills, web)
from tests.harness import address_on_lo
from tests.perf.bench_api import CpuMeter, bench_create, bench_watch_latency, pct
from tests.waiting import eventually


def machine_conditions() -> str:
    return f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"


async def one_repeat(base: Path, i: int) -> dict:
    out: dict = {}
    async with running_machines(base, UP_FLAGS, up_env=UP_ENV, worker_env=WORKER_ENV, join=(1, 2)) as m:
        client, cp, (w1, w2) = m.client, m.cp, m.workers
        await client.create(web(REPLICAS))
        await eventually(lambda: rolled_out(client, REPLICAS, 1), 180, f"{REPLICAS} replicas Ready",
                         ignore=(Exception,))
        writer = await ApiClient.connect(cp.server, creds=str(cp.admin_creds))
        writer.retries, writer.timeout = 0, 2.0
        checker = WriteChecker([BusTarget(writer), gateway_target(cp.data, cp.info["gateway"])])
        await checker.start(client)
        t0 = time.monotonic()
        try:
            out["faults"] = await rollout_with_kills(client, cp.data, w2.dir / "k8n", 2, checker,
                                                     baseline=True, log=lambda s: print(f"  run {i}: {s}", flush=True))
            await eventually(lambda: rolled_out(client, REPLICAS, 2), 180, "the rollout to complete",
                             ignore=(Exception,))
            out["rollout"] = time.monotonic() - t0
        finally:
            report = await checker.stop()
        await checker.verify(client)
        await writer.close()
        out["writes"] = report
        print(f"  run {i}: rolling update of {REPLICAS} with the 6 kills complete {out['rollout']:.1f} s after it "
              f"started; writes: {report}", flush=True)
        out["partition"] = await partition(client, w1, w2.hostname, REPLICAS)
        print(f"  run {i}: {out['partition']}", flush=True)
        held = await eventually(lambda: invariants(client, [w.hostname for w in m.nodes]), 90, "the invariants",
                                ignore=(Exception,))
        out["invariants"] = held
        print(f"  run {i}: {held}", flush=True)
    return out


def spread(values: list[float | None]) -> str:
    got = sorted(v for v in values if v is not None)
    if not got:
        return "never"
    never = len(values) - len(got)
    text = f"{got[0]:.1f} s" if len(got) == 1 else \
        f"median {statistics.median(got):.1f} s (best {got[0]:.1f}, worst {got[-1]:.1f})"
    return text + (f", {never}× never" if never else "")


def summary(runs: list[dict]) -> None:
    print(f"\nrecovery per fault over {len(runs)} run(s) [{machine_conditions()}; 3 machines (netns) on one host: "
          f"cp = 3 nats-servers R3 + 2 API servers + 2 controller managers + 2 schedulers + gateway, w1/w2 = agents; "
          f"Deployment of {REPLICAS}, maxSurge 2, maxUnavailable 0; leader Lease 3 s; writers: 2 over the bus + "
          f"2 over the gateway, one write each every 50 ms]:")
    for k, fault in enumerate((BASELINE, *FAULTS)):
        rs = [r["faults"][k] for r in runs]
        back = "" if fault == BASELINE else f"; restarted {spread([r.restarted for r in rs])}"
        print(f"  {fault:<26} rollout progressing again {spread([r.progress for r in rs])}{back}; longest write gap "
              f"{spread([r.write_gap for r in rs])}")
    ps = [r["partition"] for r in runs]
    print(f"  {'partition of w1':<26} NotReady {spread([p.not_ready for p in ps])}; all replicas Ready on w2 "
          f"{spread([p.replaced for p in ps])}; stale containers stopped after the link returned "
          f"{spread([p.stale_stopped for p in ps])}")
    w = [r["writes"] for r in runs]
    print(f"  writes: {sum(x.acked for x in w)} acknowledged, {sum(x.failed for x in w)} failed, "
          f"{sum(len(x.lost) for x in w)} acknowledged lost; invariants held in "
          f"{sum(1 for r in runs if r['invariants'])}/{len(runs)} run(s)")


# ---- R3 against R1 --------------------------------------------------------------------------------------------------

async def api_figures(servers: int, base: Path, quick: bool, address: str) -> str:
    data = base / f"r{servers}"
    log = open(base / f"up-r{servers}.log", "ab")
    proc = launch_up(data, log, "--nats-port", "0", "--http-port", "0", "--nats-servers", str(servers),
                     "--listen", address)
    try:
        await asyncio.to_thread(wait_up, proc, data, lambda: (base / f"up-r{servers}.log").read_text()[-3000:])
        url = json.loads((data / "cluster.json").read_text())["server"]
        os.environ["K8N_CREDS_DIR"] = str(data / "creds")  # the informer process's credentials (the admin's)
        client = await ApiClient.connect(url, creds=str(data / "creds" / "admin.creds"))
        for ns in ("bench-seq", "bench-conc", "bench-watch"):
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        n_seq, n_conc, n_watch = (200, 1000, 200) if quick else (500, 3000, 500)
        # every process of the cluster (the control plane, the gateway, the nats-servers): their pid files
        meter = CpuMeter([int(f.read_text()) for f in [*data.glob("*.pid"), *(data / "logs").glob("*.pid")]],
                         "the cluster's processes")
        meter.start()
        seq = await bench_create(client, n_seq, 1, "seq", "bench-seq")
        seq_cpu = meter.per(n_seq)
        meter.start()
        conc = await bench_create(client, n_conc, 64, "c64", "bench-conc")
        conc_cpu = meter.per(n_conc)
        from_ack, from_send = await bench_watch_latency(client, url, n_watch)
        await client.close()
        return (f"R{servers} ({servers} nats-server{'s' if servers > 1 else ''}): creates {seq:,.0f}/s sequential "
                f"({n_seq} pods; {seq_cpu}), {conc:,.0f}/s at 64 in flight ({n_conc}; {conc_cpu}); "
                f"watch latency, create request sent → add "
                f"event at an informer in another process ({n_watch} ConfigMaps, one every 5 ms): p50 "
                f"{pct(from_send, 50) * 1e3:.1f} ms, p99 {pct(from_send, 99) * 1e3:.1f} ms (from the create's "
                f"acknowledgement: p50 {max(0.0, pct(from_ack, 50)) * 1e3:.1f} ms, p99 "
                f"{max(0.0, pct(from_ack, 99)) * 1e3:.1f} ms; the event often arrives first)")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


async def main(repeat: int, quick: bool) -> None:
    base = Path(tempfile.mkdtemp(prefix="k8n-bench-faults-"))
    try:
        runs = []
        for i in range(1, repeat + 1):
            print(f"fault matrix, run {i}/{repeat} ...", flush=True)
            runs.append(await one_repeat(base / f"run{i}", i))
        if runs:
            summary(runs)
        print(f"\nAPI on R3 against R1 [{machine_conditions()}; k8n up --no-agent --listen <an address on lo> (TLS to "
              f"NATS in both), 1 control-plane process, JetStream sync_interval always; load generator in this "
              f"process]:")
        with address_on_lo() as address:
            for servers in (1, 3):
                print("  " + await api_figures(servers, base, quick, address), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=None, help="runs of the fault matrix (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="one run unless --repeat, smaller API counts")
    p.add_argument("--api-only", action="store_true", help="only the API on R3 against R1 (no fault matrix)")
    a = p.parse_args()
    asyncio.run(main(0 if a.api_only else (a.repeat or (1 if a.quick else 3)), a.quick))
