"""The ingress (``k8n ingress``: haproxy programmed from Ingresses) on a real cluster: one ``k8n up --no-agent`` with
one node agent (tests/e2e/upcluster.py), the ingress controller started as a user starts it, a Deployment ``web`` of
2 busybox ``httpd`` pods behind a ClusterIP Service (80 → 8080) and a 1-pod ``canary`` Deployment and Service.
Root only (Docker, nftables).

(a) requests/s through the ingress (Host: tput.test → Service web) against straight to the Service's ClusterIP
    (the node's nftables proxy), same backend pods, same client (asyncio + uvloop in this process, C connections,
    N requests per run), alternating runs so noise hits both; twice: HTTP/1.1 keep-alive (the client reuses a
    connection until the server closes it: busybox httpd closes after every answer, haproxy keeps the client side
    open and opens a new connection to the pod per request) and a new connection per request (Connection: close).
    Prints the ratio per round and its median, p50/p99 latency, the connections the client opened per request, and
    CPU µs per request of haproxy (master + workers, /proc/<pid>/stat), of the pods' httpd (their containers'
    cgroups: httpd forks a child per connection), of the client, and of the whole machine (/proc/stat: kernel
    networking included, other tenants too), with the SYNs retransmitted on the host and dropped by the pods (each a
    1 s stall: busybox httpd listens with a backlog of 9, so more than ~8 connections in flight overflow it).
(b) Ingress change → effective, p50/p99 over N changes of each kind: from sending the API write (the Python
    Kubernetes client through the gateway, a merge patch or create, as a user's client does) until a request through
    the ingress shows the new behaviour; each change is classified by whether haproxy got a new worker (a reload) or
    not (the controller's runtime-API commands):
    - a path moved (Ingress ``paths`` changed: a new path answers),
    - a canary weight 0 → 100 → 0 (the answer switches backend),
    - a new host (an Ingress created; it is deleted again before the next one),
    - a backend switched to another Service (a spare pool backend and a map entry: runtime API),
    - the defaultBackend switched to another Service (a line of the configuration: a validated hitless reload).

    flock /tmp/k8n-e2e.lock python -m tests.perf.bench_ingress [--requests 10000] [--concurrency 8] [--rounds 3]
                                                               [--changes 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bus import ingress as I
from tests.builders import container, deployment, service
from tests.e2e.upcluster import K8N, UpCluster
from tests.perf.conditions import cpu_seconds, descendants, describe, interrupt
from tests.waiting import eventually_sync

NS = "default"
PATHS = 200  # files /www/p0 … /www/p199 in the web pods: the path-change targets
WEB_SCRIPT = ("mkdir -p /www && echo web > /www/index.html && "
              f"for i in $(seq 0 {PATHS - 1}); do echo web > /www/p$i; done && exec httpd -f -p 8080 -h /www")
CANARY_SCRIPT = "mkdir -p /www && echo canary > /www/index.html && exec httpd -f -p 8080 -h /www"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the load client -----------------------------------------------------------------------------------------------

def _reset(w: asyncio.StreamWriter) -> None:
    """Close with RST: no TIME_WAIT socket left on either side (tens of thousands of connections from one source
    address would otherwise meet the pods' TIME_WAIT sockets and wait for SYN retransmits, on both paths alike)."""
    sock = w.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.close()


@dataclass
class Run:
    ok: int = 0
    bad: int = 0
    connections: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the run, per part
    tcp: dict[str, int] = field(default_factory=dict)  # TCP counters' increase during the run

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


async def load(addr: str, port: int, host: str, n: int, concurrency: int, keepalive: bool, want: bytes) -> Run:
    """``n`` GETs of / with ``concurrency`` in flight, each worker on its own connection, reconnecting whenever the
    server closes (``Connection: close`` or no length); ``keepalive`` false sends ``Connection: close``."""
    req = (f"GET / HTTP/1.1\r\nHost: {host}\r\n{'' if keepalive else 'Connection: close' + chr(13) + chr(10)}"
           "\r\n").encode()
    run = Run()
    left = n

    async def worker() -> None:
        nonlocal left
        r = w = None
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            try:
                if w is None:
                    r, w = await asyncio.open_connection(addr, port)
                    run.connections += 1
                w.write(req)
                head = await r.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").lower().split("\r\n")
                status = lines[0].split(" ", 2)
                headers = dict(ln.split(":", 1) for ln in lines[1:] if ":" in ln)
                length = headers.get("content-length")
                body = await (r.readexactly(int(length)) if length is not None else r.read())
                close = (length is None or "close" in headers.get("connection", "")
                         or (status[0] == "http/1.0" and "keep-alive" not in headers.get("connection", "")))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                run.bad += 1
                if w is not None:
                    _reset(w)
                r = w = None
                continue
            if close:
                _reset(w)
                r = w = None
            if status[1] == "200" and body == want:
                run.ok += 1
                run.latencies.append(time.perf_counter() - t0)
            else:
                run.bad += 1
        if w is not None:
            _reset(w)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - t0
    return run


# ---- CPU accounting ------------------------------------------------------------------------------------------------

def cgroup_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of the cgroup holding ``pid`` (a container: its forked children included, reaped or not):
    cgroup v1 ``cpuacct.usage`` or v2 ``cpu.stat`` usage_usec. NaN when unreadable."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return float("nan")
    for ln in lines:
        _, ctrls, path = ln.split(":", 2)
        if "cpuacct" in ctrls.split(","):
            for base in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"):
                f = Path(base + path) / "cpuacct.usage"
                if f.exists():
                    return int(f.read_text()) / 1e9
    for ln in lines:
        _, ctrls, path = ln.split(":", 2)
        if ctrls == "":
            for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                f = Path(base + path) / "cpu.stat"
                if f.exists():
                    usage = next(x for x in f.read_text().splitlines() if x.startswith("usage_usec"))
                    return int(usage.split()[1]) / 1e6
    return float("nan")


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat: user, nice, system, irq, softirq)."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()
    return sum(int(f[i]) for i in (1, 2, 3, 6, 7)) / os.sysconf("SC_CLK_TCK")


def tcp_ext(pid: int | str = "self") -> dict[str, int]:
    """TcpExt counters of the network namespace ``pid`` is in (/proc/<pid>/net/netstat)."""
    try:
        rows = [ln.split()[1:] for ln in Path(f"/proc/{pid}/net/netstat").read_text().splitlines()
                if ln.startswith("TcpExt:")]
    except OSError:
        return {}
    return dict(zip(rows[0], map(int, rows[1]))) if len(rows) == 2 else {}


def tree_cpu_seconds(pid: int, live_descendants: bool = True) -> float:
    """CPU seconds of a process and its reaped children (``haproxy -c``, reloaded-away workers), plus its live
    descendants' if ``live_descendants``."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    own = sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + (sum(cpu_seconds(d) for d in descendants(pid)) if live_descendants else 0.0)


class Meter:
    """CPU seconds of haproxy (every process of it), the web pods' containers, this process (the client) and the
    machine, read before and after a run."""

    def __init__(self, haproxy_master: int, httpd_pids: list[int]) -> None:
        self.master, self.httpd = haproxy_master, httpd_pids

    def snapshot(self) -> dict[str, float]:
        return {"haproxy": sum(cpu_seconds(p) for p in [self.master, *descendants(self.master)]),
                "httpd": sum(cgroup_cpu_seconds(p) for p in self.httpd),
                "client": time.process_time(), "machine": machine_busy_seconds()}

    def tcp(self) -> dict[str, int]:
        """SYNs retransmitted on this host (the client's and haproxy's connects), SYNs the pods dropped."""
        pods = [tcp_ext(p) for p in self.httpd]
        return {"SYN retransmits on the host (every tenant's)": tcp_ext().get("TCPSynRetrans", 0),
                "pod listen drops": sum(t.get("ListenDrops", 0) for t in pods)}


async def measured(meter: Meter, coro) -> Run:
    before, tcp = meter.snapshot(), meter.tcp()
    run = await coro
    after, tcp2 = meter.snapshot(), meter.tcp()
    run.cpu = {k: after[k] - before[k] for k in before}
    run.tcp = {k: tcp2[k] - tcp[k] for k in tcp}
    return run


# ---- the cluster ---------------------------------------------------------------------------------------------------

def objects() -> list[dict]:
    web = deployment("web", NS, replicas=2, grace=1, containers=[container("web", WEB_SCRIPT)])
    canary = deployment("canary", NS, replicas=1, grace=1, containers=[container("web", CANARY_SCRIPT)])
    return [web, canary, service("web", NS, selector={"app": "web"}), service("canary", NS, selector={"app": "canary"}),
            ingress("tput", "tput.test", "/", "web"), ingress("paths", "paths.test", "/p0", "web", "Exact"),
            ingress("main", "can.test", "/", "web"),
            ingress("main-canary", "can.test", "/", "canary", annotations={I.CANARY: "true", I.CANARY_WEIGHT: "0"}),
            ingress("switch", "switch.test", "/", "web")]


def default_ingress(svc: str) -> dict:
    """An Ingress with only a defaultBackend: every unknown host goes there (made for the last kind of change only:
    the others expect 404 for unknown hosts)."""
    return {**ingress("dflt", "dflt.test", "/", svc), "spec": {"ingressClassName": "k8n", "defaultBackend": {
        "service": {"name": svc, "port": {"number": 80}}}}}


def ingress(name: str, host: str, path: str, svc: str, ptype: str = "Prefix", annotations: dict | None = None) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
            "spec": {"ingressClassName": "k8n", "rules": [rule(host, path, svc, ptype)]}}


def rule(host: str, path: str, svc: str, ptype: str = "Prefix") -> dict:
    return {"host": host, "http": {"paths": [{"path": path, "pathType": ptype,
                                              "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}


def probe(port: int, host: str, path: str = "/", addr: str = "127.0.0.1") -> str:
    """One GET on a new connection: ``"<status> <body>"`` (or the error's name)."""
    try:
        with socket.create_connection((addr, port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as e:
        return type(e).__name__
    head, _, body = data.partition(b"\r\n\r\n")
    return f"{head.split(b' ', 2)[1].decode() if head else '?'} {body.decode(errors='replace').strip()}"


def container_pids(c: UpCluster, deployment_name: str) -> list[int]:
    """The main process (httpd) of every container of this node's pods of a Deployment (pod names start with its)."""
    out = []
    for cid in c.containers():
        info = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True).stdout)[0]
        pod_name = (info["Config"].get("Labels") or {}).get("io.k8n.pod.name", "")
        pid = info["State"].get("Pid") or 0
        if pid and pod_name.startswith(deployment_name + "-") and b"httpd" in Path(f"/proc/{pid}/cmdline").read_bytes():
            out.append(pid)
    return out


class Ingress:
    """``k8n ingress`` as a user runs it beside ``k8n up --no-agent``, for the cluster's node, on 127.0.0.1."""

    def __init__(self, c: UpCluster) -> None:
        self.http, self.https = free_port(), free_port()
        self.state = c.data / "ingress" / c.node
        self.argv = [K8N, "ingress", "--name", c.node, "--ingress-http-port", str(self.http),
                     "--ingress-https-port", str(self.https), "--ingress-bind-address", "127.0.0.1",
                     "--ingress-addresses", "127.0.0.1"]
        self.log = c.tmp / "ingress.log"
        self.proc = subprocess.Popen(self.argv, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=c.env,
                                     start_new_session=True)
        try:
            eventually_sync(self._up, 60, lambda: f"k8n ingress to serve:\n{self.log.read_text()[-3000:]}")
        except BaseException:
            self.proc.terminate()  # and its haproxy with it
            self.proc.wait(15)
            raise

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"k8n ingress exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return self.master() > 0 and probe(self.http, "nothing.test").startswith("404")

    def master(self) -> int:
        try:
            return int((self.state / "haproxy.pid").read_text())
        except (OSError, ValueError):
            return 0

    def workers(self) -> set[int]:
        return set(descendants(self.master()))

    def stop(self) -> None:
        master = self.master()
        interrupt(self.proc, 30)  # the controller stops haproxy on SIGINT
        if master and Path(f"/proc/{master}").exists() and b"haproxy" in Path(f"/proc/{master}/cmdline").read_bytes():
            os.killpg(master, signal.SIGKILL)  # the controller should have stopped it; never leave it serving


# ---- (b) change → effective ----------------------------------------------------------------------------------------

PATH, WEIGHT = "path moved", "canary weight 0 ↔ 100"
HOST, SWITCH = "new host (Ingress created)", "backend switched to another Service"
DEFAULT = "defaultBackend switched"


class Changes:
    def __init__(self, c: UpCluster, ing: Ingress) -> None:
        from kubernetes import client, config

        self.api = client.NetworkingV1Api(config.new_client_from_config(config_file=str(c.kubeconfig)))
        self.ing = ing
        self.results: dict[str, list[tuple[float, float, bool]]] = {}  # kind → (effective s, write s, reloaded)
        self.cpu: dict[str, tuple[float, float]] = {}  # kind → CPU seconds per change: controller, haproxy

    def kind(self, name: str, n: int, one) -> None:
        """``n`` changes ``one(i)`` of a kind, with the controller's and haproxy's CPU per change."""
        # the controller: itself and the haproxy -c it ran (haproxy, its child, is never reaped meanwhile)
        c0, h0 = tree_cpu_seconds(self.ing.proc.pid, False), tree_cpu_seconds(self.ing.master())
        for i in range(n):
            one(i)
        time.sleep(0.5)  # the configuration written behind a runtime change (haproxy -c) is part of its cost
        self.cpu[name] = ((tree_cpu_seconds(self.ing.proc.pid, False) - c0) / n,
                          (tree_cpu_seconds(self.ing.master()) - h0) / n)

    def measure(self, kind: str, write, host: str, path: str, want: str, timeout: float = 10.0) -> None:
        before = self.ing.workers()
        t0 = time.perf_counter()
        write()
        acked = time.perf_counter() - t0
        while (got := probe(self.ing.http, host, path)) != want:
            if time.perf_counter() - t0 > timeout:
                raise AssertionError(f"{kind}: {host}{path} still answers {got!r} after {timeout}s, want {want!r}")
            time.sleep(0.002)
        took = time.perf_counter() - t0
        reloaded = bool(self.ing.workers() - before)
        self.results.setdefault(kind, []).append((took, acked, reloaded))

    def patch(self, name: str, body: dict):
        return lambda: self.api.patch_namespaced_ingress(name, NS, body)

    def run(self, n: int) -> None:
        def path(i: int) -> None:  # paths.test/p<i> → /p<i+1>
            self.measure(PATH, self.patch("paths", {"spec": {"rules": [rule("paths.test", f"/p{i + 1}", "web",
                                                                                "Exact")]}}),
                         "paths.test", f"/p{i + 1}", "200 web")

        def weight(i: int) -> None:  # 0 → 100, 100 → 0, …
            w, want = ("100", "200 canary") if i % 2 == 0 else ("0", "200 web")
            self.measure(WEIGHT, self.patch("main-canary", {"metadata": {"annotations": {I.CANARY_WEIGHT: w}}}),
                         "can.test", "/", want)

        def host(i: int) -> None:  # a new Ingress for a new host (deleted before the next)
            h = f"h{i}.test"
            self.measure(HOST, lambda: self.api.create_namespaced_ingress(NS, ingress(f"h{i}", h, "/", "web")),
                         h, "/", "200 web")
            self.api.delete_namespaced_ingress(f"h{i}", NS)
            eventually_sync(lambda: probe(self.ing.http, h).startswith("404"), 10, f"{h} gone")

        def switch(i: int) -> None:  # switch.test: web → canary → web …
            svc = "canary" if i % 2 == 0 else "web"
            self.measure(SWITCH, self.patch("switch", {"spec": {"rules": [rule("switch.test", "/", svc)]}}),
                         "switch.test", "/", f"200 {svc}")

        def default(i: int) -> None:  # any unknown host: web → canary → web …
            if i == 0:
                self.api.create_namespaced_ingress(NS, default_ingress("web"))
                eventually_sync(lambda: probe(self.ing.http, "unknown.test") == "200 web", 10, "the default backend")
            svc = "canary" if i % 2 == 0 else "web"
            self.measure(DEFAULT, self.patch("dflt", {"spec": {"defaultBackend": {
                "service": {"name": svc, "port": {"number": 80}}}}}), "unknown.test", "/", f"200 {svc}")

        for name, one in ((PATH, path), (WEIGHT, weight), (HOST, host), (SWITCH, switch), (DEFAULT, default)):
            self.kind(name, n, one)

    def report(self) -> None:
        print("\n(b) Ingress change → effective (API write sent → first request through the ingress with the new "
              "answer; probes on new connections every ~2 ms)")
        for kind, rows in self.results.items():
            for how, sel in (("runtime API", False), ("reload", True)):
                part = [r for r in rows if r[2] == sel]
                if not part:
                    continue
                eff = [r[0] * 1000 for r in part]
                ack = [r[1] * 1000 for r in part]
                print(f"  {kind:<36} {how:<11} {len(part):3d} changes: p50 {pct(eff, 50):6.1f} ms, "
                      f"p99 {pct(eff, 99):6.1f} ms, max {max(eff):6.1f} ms (the API write alone: "
                      f"p50 {pct(ack, 50):.1f} ms)")
            ctl, hap = self.cpu.get(kind, (float("nan"),) * 2)
            print(f"  {'':36} CPU per change: controller {ctl * 1000:.1f} ms (haproxy -c included), "
                  f"haproxy {hap * 1000:.1f} ms{' (the delete included)' if kind == HOST else ''}")
        for how, sel in (("runtime API", False), ("reload", True)):
            eff = [r[0] for rows in self.results.values() for r in rows if r[2] == sel]
            if eff:
                print(f"  all {how} changes ({len(eff)}): p50 {pct(eff, 50) * 1000:.1f} ms, "
                      f"p99 {pct(eff, 99) * 1000:.1f} ms  (goal p99 ≤ 1000 ms: "
                      f"{'met' if pct(eff, 99) <= 1.0 else 'NOT met'})")


# ---- (a) throughput ------------------------------------------------------------------------------------------------

def report_runs(label: str, runs: dict[str, list[Run]], ratios: list[float]) -> None:
    print(f"\n  {label}: ingress / ClusterIP per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f} (goal ≥ 0.8: "
          f"{'met' if statistics.median(ratios) >= 0.8 else 'NOT met'})")
    print(f"    {'path':<10} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'failed':>6} {'conn/req':>8} "
          f"{'busy':>5} | CPU µs/request: {'haproxy':>7} {'httpd':>6} {'client':>6} {'sum':>5} {'machine':>7}")
    sums = {}
    for path, rs in runs.items():
        ok = sum(r.ok for r in rs)
        lat = [x * 1000 for r in rs for x in r.latencies]
        cpu = {k: sum(r.cpu[k] for r in rs) / max(ok, 1) * 1e6 for k in rs[0].cpu}
        sums[path] = cpu["haproxy"] + cpu["httpd"] + cpu["client"]
        busy = sum(r.cpu["machine"] for r in rs) / sum(r.seconds for r in rs) / (os.cpu_count() or 1)
        print(f"    {path:<10} {statistics.median(r.rate for r in rs):7.0f} {pct(lat, 50):7.2f} {pct(lat, 99):7.2f} "
              f"{max(lat, default=0):7.0f} {sum(r.bad for r in rs):6d} "
              f"{sum(r.connections for r in rs) / max(ok, 1):8.2f} {busy:5.0%} | {'':16}{cpu['haproxy']:7.0f} "
              f"{cpu['httpd']:6.0f} {cpu['client']:6.0f} {sums[path]:5.0f} {cpu['machine']:7.0f}")
        print(f"    {'':10} {sum(x > 500 for x in lat)} requests over 500 ms; "
              + ", ".join(f"{k} {sum(r.tcp[k] for r in rs)}" for k in rs[0].tcp))
    print(f"    (busy: the machine's CPU busy share during the runs, every tenant included; conn/req: connections the "
          f"client opened per request; sum: haproxy + httpd + client, kernel work in their context included)\n"
          f"    with the cores the limit, ingress / ClusterIP → ClusterIP's sum / ingress's sum = "
          f"{sums['ClusterIP'] / sums['ingress']:.2f}")


async def throughput(ing: Ingress, cluster_ip: str, meter: Meter, n: int, concurrency: int, rounds: int) -> None:
    print(f"\n(a) requests/s, GET / (4-byte body), {n} requests per run, {concurrency} connections, {rounds} rounds "
          "alternating ClusterIP and ingress (req/s: median of the rounds; latency and CPU over all rounds)")
    paths = {"ClusterIP": (cluster_ip, 80, "web"), "ingress": ("127.0.0.1", ing.http, "tput.test")}
    for label, keepalive in (("HTTP/1.1 keep-alive (reused until the server closes)", True),
                             ("new connection per request (Connection: close)", False)):
        runs: dict[str, list[Run]] = {p: [] for p in paths}
        ratios = []
        for rnd in range(rounds):
            order = list(paths) if rnd % 2 == 0 else list(reversed(paths))
            for p in order:
                addr, port, host = paths[p]
                runs[p].append(await measured(meter, load(addr, port, host, n, concurrency, keepalive, b"web\n")))
            ratios.append(runs["ingress"][-1].rate / runs["ClusterIP"][-1].rate)
        report_runs(label, runs, ratios)


# ---- main ----------------------------------------------------------------------------------------------------------

def conditions_line(c: UpCluster, ing: Ingress) -> str:
    hv = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    nft = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{describe()}\n  {hv}; {nft}; kernel {platform.release()}\n"
            f"  cluster: k8n up --no-agent --nats-port 0 --http-port 0 + 1 node agent ({c.node}, pod CIDR {c.cidr}); "
            f"{' '.join(Path(a).name if i == 0 else a for i, a in enumerate(ing.argv))}; haproxy nbthread default "
            f"(= {os.cpu_count()} CPUs); backend: Deployment web, 2 busybox httpd pods (fork per connection), "
            "Service web 80 → 8080; load and probes from this host")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench_ingress", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, help="requests per throughput run (default 10,000)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="connections in flight (over 8, busybox httpd's listen backlog of 9 overflows: 1 s SYN "
                        "retransmits, counted in the output, then dominate both paths)")
    p.add_argument("--rounds", type=int, help="throughput rounds, ClusterIP and ingress each (default 3)")
    p.add_argument("--changes", type=int, help="Ingress changes measured per kind (default 20)")
    p.add_argument("--quick", action="store_true", help="defaults of 2,000 requests, 2 rounds, 6 changes per kind")
    args = p.parse_args(argv)
    for name, full, quick in (("requests", 10000, 2000), ("rounds", 3, 2), ("changes", 20, 6)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.changes = min(args.changes, PATHS - 1)
    if os.geteuid() != 0:
        sys.exit("needs root (Docker, nftables)")
    if not shutil.which("haproxy"):
        sys.exit("haproxy is not installed (bash deploy/node-deps.sh)")
    import uvloop

    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        c = UpCluster(Path(tmp))
        ing = None
        try:
            c.start()
            c.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objects()))
            c.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
            c.kubectl("rollout", "status", "deployment/canary", "--timeout=120s", timeout=130)
            cluster_ip = c.kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
            eventually_sync(lambda: probe(80, "web", addr=cluster_ip) == "200 web", 60,
                            f"the ClusterIP {cluster_ip} to answer from the host")
            ing = Ingress(c)
            eventually_sync(lambda: probe(ing.http, "tput.test") == "200 web", 60, "the ingress to route tput.test")
            eventually_sync(lambda: probe(ing.http, "switch.test") == "200 web", 60, "switch.test")
            eventually_sync(lambda: probe(ing.http, "can.test") == "200 web", 60, "can.test")
            eventually_sync(lambda: probe(ing.http, "paths.test", "/p0") == "200 web", 60, "paths.test/p0")
            web = container_pids(c, "web")
            print(conditions_line(c, ing))
            print(f"  ClusterIP {cluster_ip}:80 answers from the host; web pods' httpd pids {web} "
                  f"(CPU from their containers' cgroups)")
            meter = Meter(ing.master(), web)
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            asyncio.run(throughput(ing, cluster_ip, meter, args.requests, args.concurrency, args.rounds))
            asyncio.set_event_loop_policy(None)
            ch = Changes(c, ing)
            ch.run(args.changes)
            ch.report()
            print(f"\n  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            if ing is not None:
                ing.stop()
            c.stop()


if __name__ == "__main__":
    main()
