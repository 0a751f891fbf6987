"""The Kubernetes HTTP API path against the bus path, in one run: pod creates through the HTTPS gateway of
``k8n up --no-agent`` as ../shared/bench/loadgen.py sends them (TLS, bearer token, one keep-alive HTTP/1.1 connection
per request in flight, ~300 B JSON pods), then the same creates through the client library on NATS.

Run:  python -m tests.perf.bench_http                     (3,000 pods at 1 and at 64 in flight, each path; 1,000 GETs)
      python -m tests.perf.bench_http --n 2000 --concurrency 1 64 --profile

Starts ``k8n up --no-agent`` on a temp data dir (free ports; under ``flock /tmp/k8n-e2e.lock``) and stops it at the
end (``--keep`` leaves it up). Reports CPU µs per request from /proc of nats-server, the API server, the rest of the
control plane, the gateway (with its child processes) and this load generator, and KV writes per request; ``--profile``
runs py-spy on the gateway and control plane during the HTTP phase at the highest concurrency. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import yaml

from bus import aio
from bus.client import ApiClient
from bus.connect import creds_path
from bus.errors import ApiError
from bus.proc import die_with_parent
from bus.roles import ADMIN, Identity
from tests.perf.conditions import PySpy, children, cmdline, conf_value, cpu_seconds, describe, fsync_line, interrupt, \
    kv_writes, rss_bytes, stat_fields

ORDER = ("nats-server", "apiserver", "control plane", "gateway", "loadgen", "other")


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))] if s else float("nan")


def pod(name: str, run: str) -> dict:
    """loadgen.py's pod: busybox with resource requests, ~300 bytes of JSON."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "loadgen", "run": run}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
                     "restartPolicy": "Never", "terminationGracePeriodSeconds": 0}}


# ---------------------------------------------------------------- the cluster's processes
def label(pid: int) -> str:
    argv = cmdline(pid)
    if argv and os.path.basename(argv[0]) == "nats-server":
        return "nats-server"
    if "master.gateway" in argv:
        return "gateway"
    if "master" in argv and "-m" in argv:
        comps = argv[argv.index("--components") + 1] if "--components" in argv[:-1] else ""
        return "apiserver" if comps == "apiserver" else "control plane"
    return "other"


def processes(up_pid: int) -> dict[int, tuple[str, str]]:
    """pid -> (label, start time) of every process under ``k8n up``; a component's own children share its label."""
    out: dict[int, tuple[str, str]] = {}
    todo: list[tuple[int, str | None]] = [(p, None) for p in children(up_pid)]
    while todo:
        pid, lab = todo.pop()
        lab = lab or label(pid)
        try:
            out[pid] = (lab, stat_fields(pid)[19])
        except OSError:
            continue
        todo += [(c, lab) for c in children(pid)]
    return out


class Meter:
    """CPU seconds per label (processes that start meanwhile count from 0) and KV writes per bucket between
    ``start()`` and ``stop()``."""

    def __init__(self, up_pid: int, monitor: str) -> None:
        self.up_pid, self.monitor = up_pid, monitor
        self.quiet = 10.0  # KV writes/s of a cluster at rest
        self.t0: dict[int, tuple[str, float]] = {}
        self.self0, self.w0 = 0.0, {}

    def _now(self) -> dict[int, tuple[str, float]]:
        return {p: (lab, cpu_seconds(p)) for p, (lab, _) in processes(self.up_pid).items()}

    def start(self) -> None:
        self.w0 = kv_writes(self.monitor)
        self.t0, self.self0 = self._now(), time.process_time()

    def stop(self) -> tuple[dict[str, float], dict[str, int]]:
        out: Counter[str] = Counter({"loadgen": time.process_time() - self.self0})
        for p, (lab, cpu) in self._now().items():
            before = self.t0.get(p, (lab, 0.0))[1]
            if cpu == cpu and before == before:  # NaN: gone as it was read
                out[lab] += cpu - before
        w = {k: v - self.w0.get(k, 0) for k, v in kv_writes(self.monitor).items()}
        return dict(out), {k: v for k, v in sorted(w.items(), key=lambda kv: -kv[1]) if v}


# ---------------------------------------------------------------- phases
async def phase(name: str, n: int, conc: int, op, meter: Meter | None) -> dict:
    """``n`` calls of ``op(i)`` (returns a status) with ``conc`` in flight; latency, codes, CPU per label."""
    lat: list[float] = []
    codes: Counter = Counter()
    errors: list[str] = []
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            t = time.perf_counter()
            try:
                st = await op(i)
            except Exception as e:  # noqa: BLE001 - counted by status (an ApiError's) or by type
                st = e.code if isinstance(e, ApiError) else type(e).__name__
                errors.append(repr(e)[:200])
            lat.append(time.perf_counter() - t)
            codes[st] += 1

    if meter:
        meter.start()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    wall = time.perf_counter() - t0
    cpu, w = meter.stop() if meter else ({}, {})
    ok = sum(v for k, v in codes.items() if k in (200, 201))
    r = {"phase": name, "n": n, "rate": ok / wall, "p50": pct(lat, 50) * 1e3, "p99": pct(lat, 99) * 1e3,
         "cpu_us": {k: v * 1e6 / n for k, v in cpu.items()}, "writes": sum(w.values()) / n}
    print(f"  {name:<18} {r['rate']:7.1f}/s  p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  codes {dict(codes)}"
          + (f"  KV writes/req {r['writes']:.2f}: " + ", ".join(f"{k} {v / n:.2f}" for k, v in w.items()) if w else "")
          + (f"  e.g. {errors[0]}" if errors else ""), flush=True)
    return r


class Http:
    def __init__(self, ddir: Path, conns: int) -> None:
        kc = yaml.safe_load((ddir / "kubeconfig").read_text())
        cluster, user = kc["clusters"][0]["cluster"], kc["users"][0]["user"]
        self.server = cluster["server"].rstrip("/")
        ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=conns, ssl=ctx, keepalive_timeout=120),
            headers={"Accept": "application/json", "Content-Type": "application/json",
                     "Authorization": f"Bearer {user['token']}"}, timeout=aiohttp.ClientTimeout(total=120))

    async def req(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        async with self.session.request(method, self.server + path, data=data) as r:
            return r.status, await r.read()


async def creates_and_gets(label_: str, create, get, drain, a: argparse.Namespace, meter: Meter,
                           profile=None) -> list[dict]:
    """Warm-up, the create phases (one per concurrency level), then sequential GETs of the last level's pods. After
    each phase, what the control plane still does because of it (until the cluster is quiet) is measured apart; then
    ``drain`` deletes the pods made before the next create phase, so that no phase measures work on earlier ones."""
    out, names = [], [f"warmup-{i:04d}" for i in range(50)]
    await phase(f"{label_} warm-up", 50, 8, lambda i: create(names[i], "warmup"), None)
    for c in a.concurrency:
        await drain(names)
        spy = profile() if profile and c == max(a.concurrency) else None
        try:
            r = await phase(f"{label_} create C={c}", a.n, c, lambda i, c=c: create(f"c{c}-{i:06d}", f"c{c}"), meter)
        finally:
            if spy:
                spy.stop()
        out.append(await after(r, meter))
        names = [f"c{c}-{i:06d}" for i in range(a.n)]
    if not a.no_get:
        out.append(await after(await phase(f"{label_} GET seq", 1000, 1, lambda i: get(random.choice(names)), meter),
                               meter))
    await drain(names)
    return out


async def after(r: dict, meter: Meter) -> dict:
    """Add to phase result ``r`` the server-side CPU and KV writes per request from its end until the cluster is
    quiet: the control plane's work on what the phase made that the phase's own window missed."""
    meter.start()
    took = await settle(meter.monitor, meter.quiet)
    cpu, w = meter.stop()
    r["after_us"] = sum(v for k, v in cpu.items() if k != "loadgen") * 1e6 / r["n"]
    r["after_writes"] = sum(w.values()) / r["n"]
    print(f"  {'after':<18} quiet after {took:.1f}s: server CPU {r['after_us']:,.0f} µs/req, KV writes/req "
          f"{r['after_writes']:.2f}" + "".join(f", {k} {v / r['n']:.2f}" for k, v in w.items()), flush=True)
    return r


async def settle(monitor: str, quiet: float, timeout: float = 60.0) -> float:
    """Seconds until the KV writes per second stay at or below ``quiet`` for two seconds in a row (the control plane
    done with what the last phase made), at most ``timeout``."""
    t0, calm, last = time.monotonic(), 0, sum(kv_writes(monitor).values())
    while calm < 2 and time.monotonic() - t0 < timeout:
        await asyncio.sleep(1.0)
        now = sum(kv_writes(monitor).values())
        calm, last = (calm + 1 if now - last <= quiet else 0), now
    return time.monotonic() - t0


def profile(up_pid: int, ddir: Path) -> PySpy:
    """py-spy on the gateway (with its child processes) and the control-plane processes."""
    return PySpy({f"{lab} {pid}": pid for pid, (lab, _) in processes(up_pid).items()
                  if lab in ("gateway", "apiserver", "control plane") and label(pid) == lab}, ddir / "logs",
                 with_children=tuple(f"gateway {pid}" for pid, (lab, _) in processes(up_pid).items()))


# ---------------------------------------------------------------- the run
async def bench(ddir: Path, up_pid: int, a: argparse.Namespace) -> None:
    conf = ddir / "nats-server.conf"
    print(describe(conf_value(conf, "sync_interval")))
    print(fsync_line(ddir / "jetstream"))
    print("processes: " + ", ".join(f"{lab} {pid}" for pid, (lab, _) in processes(up_pid).items()))
    nats = json.loads((ddir / "cluster.json").read_text())["server"]
    client = await ApiClient.connect(nats, creds=str(creds_path(Identity(ADMIN), ddir / "creds")))
    client.timeout = 60.0
    http = Http(ddir, max(a.concurrency + [8]))
    try:
        monitor = conf_value(conf, "http")
        meter = Meter(up_pid, monitor)
        meter.start()
        await asyncio.sleep(3.0)
        idle, w = meter.stop()
        meter.quiet = quiet = max(10.0, 2 * sum(w.values()) / 3)  # at rest (leases), with a margin
        print("idle, CPU ms per second: " + ", ".join(f"{lab} {idle[lab] / 3 * 1e3:.0f}" for lab in ORDER
                                                      if lab in idle) + f"; KV writes/s {sum(w.values()) / 3:.1f}")
        tag = f"{os.getpid()}-{random.randint(0, 1 << 16):x}"
        ns, bns = f"bench-http-{tag}", f"bench-bus-{tag}"
        st, body = await http.req("GET", "/version")
        print(f"HTTP: {http.server}, version {json.loads(body).get('gitVersion') if st == 200 else st}")
        st, body = await http.req("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                                  "metadata": {"name": ns}})
        if st not in (200, 201):
            raise RuntimeError(f"namespace create: {st} {body[:300]!r}")

        async def h_create(name: str, run: str) -> int:
            return (await http.req("POST", f"/api/v1/namespaces/{ns}/pods", pod(name, run)))[0]

        async def h_get(name: str) -> int:
            return (await http.req("GET", f"/api/v1/namespaces/{ns}/pods/{name}"))[0]

        async def b_create(name: str, run: str) -> int:
            await client.create(pod(name, run), namespace=bns)
            return 201

        async def b_get(name: str) -> int:
            await client.get("pods", name, bns)
            return 200

        async def drain(names: list[str], namespace: str) -> None:
            """Delete ``names`` through the bus (64 in flight), then wait for the cluster to quieten."""
            async def delete(i: int) -> int:
                await client.delete("pods", names[i], namespace, grace_period_seconds=0)
                return 200

            await phase("delete", len(names), 64, delete, None)
            print(f"  {'settle':<18} quiet (≤ {quiet:.0f} KV writes/s) after {await settle(monitor, quiet):.1f}s",
                  flush=True)

        prof = (lambda: profile(up_pid, ddir)) if a.profile and PySpy.BINARY.exists() else None
        if a.profile and not prof:
            print(f"  (--profile: {PySpy.BINARY} not found; not profiling)")
        results = await creates_and_gets("HTTP", h_create, h_get, lambda x: drain(x, ns), a, meter, prof)
        if not a.no_bus:
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bns}})
            print(f"bus: {nats} (client library, admin credentials)")
            results += await creates_and_gets("bus", b_create, b_get, lambda x: drain(x, bns), a, meter)
    finally:
        await http.session.close()
        await client.close()
    report(results, up_pid, a)


def report(results: list[dict], up_pid: int, a: argparse.Namespace) -> None:
    labels = [lab for lab in ORDER if any(lab in r["cpu_us"] for r in results)]
    print(f"\n{'':<43}| CPU µs per request during the phase{'':<{max(0, 11 * len(labels) - 27)}}| after, until quiet")
    print(f"{'phase':<16} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} | "
          + " ".join(f"{lab:>10}" for lab in labels) + f" {'total':>7} {'writes':>6} | {'CPU µs':>7} {'writes':>6}")
    for r in results:
        cpu = r["cpu_us"]
        print(f"{r['phase']:<16} {r['rate']:7.1f} {r['p50']:7.2f} {r['p99']:7.2f} | "
              + " ".join(f"{cpu.get(lab, 0):10,.0f}" for lab in labels)
              + f" {sum(cpu.values()):7,.0f} {r['writes']:6.2f} | {r['after_us']:7,.0f} {r['after_writes']:6.2f}")
    print("(writes: KV writes per request, every bucket; 'after': server-side CPU and writes per request of the phase "
          "from its end until the cluster is quiet)")
    by = {r["phase"]: r["cpu_us"] for r in results}
    for c in a.concurrency:
        h, b = by.get(f"HTTP create C={c}"), by.get(f"bus create C={c}")
        if not h:
            continue
        api_lab = "apiserver" if "apiserver" in h else "control plane"
        path = ("nats-server", api_lab, "gateway")  # the request's path (the controllers' work is the pods')
        gw, api = h.get("gateway", 0.0), h.get(api_lab) or float("nan")
        line = (f"C={c}: gateway CPU per create / API-server CPU per create = {gw / api:.2f} "
                f"({gw:,.0f} / {api:,.0f} µs, {api_lab} process)")
        if b:
            hs, bs = sum(h.get(k, 0) for k in path), sum(b.get(k, 0) for k in path)
            line += (f"; CPU per create on the request path ({' + '.join(path)}), HTTP {hs:,.0f} µs vs bus "
                     f"{bs:,.0f} µs: the HTTP path adds {100 * (hs - bs) / bs:.0f} %")
        print(line)
    print("RSS at the end: " + ", ".join(f"{lab} {rss_bytes(pid) / 2**20:.0f} MiB"
                                          for pid, (lab, _) in processes(up_pid).items()))
    print(f"conditions: {a.n} pods per level, in flight {a.concurrency}; the load generator (aiohttp / client "
          f"library) is this one Python process, on the same machine"
          + (f"; HTTP create C={max(a.concurrency)} ran under py-spy (100 Hz, non-blocking)" if a.profile else ""))


# ---------------------------------------------------------------- k8n up
def start_up(ddir: Path, a: argparse.Namespace) -> subprocess.Popen:
    """``k8n up --no-agent`` on ``ddir``, free ports; the caller waits for it (:func:`wait_up`)."""
    exe = Path(sys.executable).parent / "k8n"
    argv = ([str(exe)] if exe.exists() else [sys.executable, "-m", "bus.cli"]) + [
        "up", "--no-agent", "--data-dir", str(ddir), "--nats-port", "0", "--http-port", "0", *a.up_arg]
    log = open(ddir / "up.log", "ab")
    # its own process group: a Ctrl-C reaches only this process, which stops it; it dies with this one unless --keep
    return subprocess.Popen(argv, stdout=log, stderr=log, process_group=0,
                            preexec_fn=None if a.keep else die_with_parent)


def wait_up(proc: subprocess.Popen, ddir: Path) -> None:
    deadline = time.monotonic() + 120
    while b"k8n is up" not in (ddir / "up.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"k8n up did not come up: {(ddir / 'up.log').read_text()[-2000:]}")
        time.sleep(0.2)


def stop_up(proc: subprocess.Popen, seen: dict[int, tuple[str, str]]) -> None:
    """SIGINT to k8n up (it stops its components and nats-server), then SIGKILL to whatever is left of it."""
    interrupt(proc)
    for pid, (lab, started) in seen.items():
        try:
            if stat_fields(pid)[19] == started:  # the same process, not a reused pid
                print(f"killing leftover {lab} {pid}", file=sys.stderr)
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="pods per concurrency level and path (3000)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 64], help="requests in flight (1 64)")
    ap.add_argument("--no-get", action="store_true", help="skip the 1,000 sequential GETs")
    ap.add_argument("--no-bus", action="store_true", help="skip the bus path")
    ap.add_argument("--keep", action="store_true", help="leave the cluster up and print its data dir")
    ap.add_argument("--profile", action="store_true", help="py-spy the gateway and control plane during the HTTP "
                                                           "phase at the highest concurrency (keeps the logs)")
    ap.add_argument("--up-arg", action="append", default=[], help="an argument for k8n up (--up-arg=--replicas=2)")
    a = ap.parse_args()
    ddir = Path(tempfile.mkdtemp(prefix="k8n-bench-http-"))
    proc, ok = None, False
    seen: dict[int, tuple[str, str]] = {}
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up as Ctrl-C does
    try:
        proc = start_up(ddir, a)
        wait_up(proc, ddir)
        seen = processes(proc.pid)
        aio.run(bench(ddir, proc.pid, a))
        ok = True
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        keep = a.keep and ok
        if proc is not None and not keep:
            seen.update(processes(proc.pid))
            stop_up(proc, seen)
        if keep:
            print(f"cluster left up: k8n up pid {proc.pid}, data dir {ddir} (KUBECONFIG={ddir / 'kubeconfig'}; "
                  f"stop: kill -INT {proc.pid})")
        elif a.profile:
            print(f"logs and profiles kept in {ddir}")
        else:
            shutil.rmtree(ddir, ignore_errors=True)


if __name__ == "__main__":
    main()
