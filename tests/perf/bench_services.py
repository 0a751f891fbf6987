"""The service proxy (node/proxy, nftables): network programming latency, programming time at
1,000 Services, and request throughput through a ClusterIP against straight to the pod.

Run (as root, Docker running, local images built — `bash deploy/node-deps.sh` does both):
    python -m tests.perf.bench_services [--quick]

Starts its own nats-server, a control plane (apiserver, node view, controllers, scheduler) and one
node agent (its service proxy in-process), one busybox httpd pod answering with its name, then:
(a) network programming latency, p50/p99 over 100 changes (20 with --quick), each probed from the
    node with real HTTP requests whose answer must be the pod's name (the sandbox's gateway answers
    any TCP connection, so a connect proves nothing):
    - an Endpoints change: a selector-less Service's hand-written Endpoints goes from no address
      (the proxy rejects: connection refused) to the pod's address; from the update request to the
      first answer from the pod (and back: to the first refusal);
    - a Service created (its Endpoints written first): from the create request to the first answer;
    - a pod turned Ready by its readiness probe, 20 times (5 with --quick; each flip waits for the
      1 s probe period): from Ready=True seen on a pod watch to the first answer through its Service
      (the endpoints controller and the proxy in between);
(b) programming time for 1,000 Services x 3 endpoints from an empty table, and for one change on top
    (one endpoint added, one Service added), by the proxy's own sync() with synthetic Services and
    Endpoints in a private network namespace (render + diff + nft transaction);
(c) request throughput (new TCP connection + HTTP/1.0 GET per request, 8 concurrent clients on the
    node, each closing with RST after the whole answer so no TIME_WAIT piles up in the pod) through
    the ClusterIP and straight to the pod IP, interleaved rounds in one run; and one client's
    sequential request latency each way.
Prints figures with conditions; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import statistics
import struct
import subprocess
import sys
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from bus.client import ApiClient
from tests.perf.busauth import use_server
from bus.natsserver import NatsServer
from bus.proc import die_with_parent, stop_process
from tests.conftest import wait_for_api

IMAGE = "k8n/busybox:latest"
NET = random.randint(100, 250)  # ClusterIPs 10.96.NET.x / 10.97.NET.x


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def conditions() -> str:
    return (f"[{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
            f"{subprocess.run(['nft', '--version'], capture_output=True, text=True).stdout.strip()}, "
            f"kernel {platform.release()}, 1 nats-server, control plane in 1 process, 1 agent process with its proxy]")


def web_pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "web", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c",
                "mkdir -p /www; echo $HOSTNAME > /www/index.html; exec httpd -f -p 8080 -h /www"],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}


def selectorless(name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"port": 80, "targetPort": 8080}]}}


def endpoints(name: str, pod_ip: str | None) -> dict:
    subsets = [{"addresses": [{"ip": pod_ip}], "ports": [{"port": 8080}]}] if pod_ip else []
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"},
            "subsets": subsets}


def probe(ip: str, port: int = 80) -> str:
    """'refused', the body's first line, or 'other' (timeouts, the gateway's answer)."""
    try:
        with socket.create_connection((ip, port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "other"
    return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip() or "other"


def wait_probe(ip: str, want: str, timeout: float = 10.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if probe(ip) == want:
            return time.perf_counter()
    raise RuntimeError(f"{ip}: no {want!r} within {timeout}s")


async def delete_service(client: ApiClient, name: str) -> None:
    """The Service and its Endpoints (the endpoints controller may have removed those already)."""
    from bus import errors

    for res in ("services", "endpoints"):
        try:
            await client.delete(res, name, "default")
        except errors.NotFound:
            pass


# ---- (a) network programming latency ---------------------------------------------------------

async def endpoints_latency(client: ApiClient, pod_name: str, pod_ip: str, n: int) -> tuple[list[float], list[float]]:
    ip = f"10.96.{NET}.1"
    await client.create(selectorless("lat", ip))
    ep = await client.create(endpoints("lat", None))
    wait_probe(ip, "refused")
    add, remove = [], []
    for _ in range(n):
        ep["subsets"] = endpoints("lat", pod_ip)["subsets"]
        t0 = time.perf_counter()
        ep = await client.update(ep)
        add.append(wait_probe(ip, pod_name) - t0)
        ep["subsets"] = []
        t0 = time.perf_counter()
        ep = await client.update(ep)
        remove.append(wait_probe(ip, "refused") - t0)
    await delete_service(client, "lat")
    return add, remove


async def service_latency(client: ApiClient, pod_name: str, pod_ip: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        name, ip = f"new-{i}", f"10.97.{NET}.{i + 1}"
        await client.create(endpoints(name, pod_ip))
        t0 = time.perf_counter()
        await client.create(selectorless(name, ip))
        out.append(wait_probe(ip, pod_name) - t0)
    for i in range(n):
        await delete_service(client, f"new-{i}")
    return out


async def readiness_latency(client: ApiClient, node: str, n: int) -> list[float]:
    """A pod's readiness probe flips it Ready (exec probe on a file, period 1 s); from the moment the
    bench sees Ready=True on a pod watch to the first answer through the Service's ClusterIP (the
    endpoints controller, then the proxy, in between)."""
    from bus import nodeclient

    pod = web_pod("rdy-web", node)
    pod["metadata"]["labels"] = {"app": "rdy"}
    pod["spec"]["containers"][0]["command"][2] = pod["spec"]["containers"][0]["command"][2].replace(
        "exec httpd", "touch /www/ready; exec httpd")
    pod["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["test", "-f", "/www/ready"]},
                                                     "periodSeconds": 1, "failureThreshold": 1}
    await client.create(pod)
    ip = f"10.96.{NET}.3"
    await client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rdy", "namespace": "default"},
                         "spec": {"clusterIP": ip, "selector": {"app": "rdy"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    await asyncio.to_thread(wait_probe, ip, "rdy-web", 60)

    async def sh(cmd: str) -> None:
        session = await nodeclient.exec_(client, "default", "rdy-web", ["sh", "-c", cmd])
        async for _ in session:
            pass

    out = []
    for _ in range(n):
        await sh("rm /www/ready")
        await asyncio.to_thread(wait_probe, ip, "refused", 30)
        _, rv = await client.list("pods", "default")
        w = await client.watch("pods", "default", since=rv)
        probing = asyncio.create_task(asyncio.to_thread(wait_probe, ip, "rdy-web", 30))
        await sh("touch /www/ready")
        t_ready = None
        async for ev in w:
            conds = (ev.object.get("status") or {}).get("conditions") or []
            if ev.object["metadata"]["name"] == "rdy-web" and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in conds):
                t_ready = time.perf_counter()
                break
        await w.stop()
        out.append(await probing - t_ready)
    await delete_service(client, "rdy")
    await client.delete("pods", "rdy-web", "default", grace_period_seconds=0)
    return out


# ---- (c) throughput ----------------------------------------------------------------------------

def _close_with_reset(w: asyncio.StreamWriter) -> None:
    """Close with RST once the whole answer is read: the server (which closed first) drops its
    TIME_WAIT socket. Otherwise, after ~30,000 connections from the node's one source address, new
    SYNs meet the server's TIME_WAIT sockets and wait for a 1 s retransmit, on both paths alike,
    which swamps what is compared."""
    w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.close()


async def _requests(ip: str, port: int, want: bytes, seconds: float, concurrency: int) -> tuple[int, int]:
    ok = bad = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok, bad
        while time.perf_counter() < deadline:
            try:
                r, w = await asyncio.open_connection(ip, port)
                w.write(b"GET / HTTP/1.0\r\n\r\n")
                data = await r.read()
                _close_with_reset(w)
                if data.endswith(want):
                    ok += 1
                else:
                    bad += 1
            except OSError:
                bad += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, bad


async def throughput(client: ApiClient, pod_name: str, pod_ip: str, rounds: int, seconds: float
                     ) -> tuple[float, float, float, int, float, float]:
    """Interleaved rounds (pod IP, then ClusterIP): req/s totals, the median of the per-round
    ratios, failures; then one client's sequential request latency p50 for each (alternating)."""
    ip = f"10.96.{NET}.2"
    await client.create(selectorless("tput", ip))
    await client.create(endpoints("tput", pod_ip))
    await asyncio.to_thread(wait_probe, ip, pod_name)
    want = pod_name.encode() + b"\n"
    totals = {"direct": [0, 0.0], "cluster": [0, 0.0]}
    ratios = []
    errors = 0
    for _ in range(rounds):
        rate = {}
        for kind, (addr, port) in (("direct", (pod_ip, 8080)), ("cluster", (ip, 80))):
            t0 = time.perf_counter()
            ok, bad = await _requests(addr, port, want, seconds, 8)
            dt = time.perf_counter() - t0
            totals[kind][0] += ok
            totals[kind][1] += dt
            rate[kind] = ok / dt
            errors += bad
        ratios.append(rate["cluster"] / rate["direct"])
    lat: dict[str, list[float]] = {"direct": [], "cluster": []}
    for _ in range(300):
        for kind, addr, port in (("direct", pod_ip, 8080), ("cluster", ip, 80)):
            t0 = time.perf_counter()
            r, w = await asyncio.open_connection(addr, port)
            w.write(b"GET / HTTP/1.0\r\n\r\n")
            data = await r.read()
            _close_with_reset(w)
            if data.endswith(want):
                lat[kind].append(time.perf_counter() - t0)
    await delete_service(client, "tput")
    return (totals["direct"][0] / totals["direct"][1], totals["cluster"][0] / totals["cluster"][1],
            statistics.median(ratios), errors, pct(lat["direct"], 50), pct(lat["cluster"], 50))


# ---- (b) programming time with synthetic objects ------------------------------------------------

class _Source:
    def __init__(self, objs: dict[str, dict]) -> None:
        self.objs = objs

    def list(self) -> list[dict]:
        return list(self.objs.values())

    def get(self, ns, name) -> dict | None:
        return self.objs.get(name)


async def programming_time(n_services: int, repeats: int) -> dict[str, float | list[float]]:
    from pyroute2 import netns

    from node.proxy import ServiceProxy, nft

    ns = f"t-bench-svc-{uuid.uuid4().hex[:6]}"
    netns.create(ns)
    netns.setns(ns)  # this process (and the nft it runs) now works in the private namespace
    try:
        rv = iter(range(1, 1 << 30))  # resourceVersions, as an informer's objects carry them
        services = {f"s{i}": {"metadata": {"namespace": "default", "name": f"s{i}", "resourceVersion": str(next(rv))},
                              "spec": {"clusterIP": f"10.{96 + i // 65000}.{i // 250 % 256}.{i % 250 + 1}",
                                       "ports": [{"name": "http", "port": 80}]}} for i in range(n_services)}
        eps = {f"s{i}": {"metadata": {"resourceVersion": str(next(rv))},
                         "subsets": [{"addresses": [{"ip": f"10.244.{(i * 3 + j) // 250 % 256}.{(i * 3 + j) % 250 + 1}"}
                                                    for j in range(3)], "ports": [{"name": "http", "port": 8080}]}]}
               for i in range(n_services)}
        proxy = ServiceProxy(None, f"bench-{uuid.uuid4().hex[:6]}", "192.0.2.10", "10.244.0.0/16",
                             services=_Source(services), endpoints=_Source(eps))
        t0 = time.perf_counter()
        d = proxy.desired()
        t1 = time.perf_counter()
        state = nft.render(d)
        t2 = time.perf_counter()
        payload = nft.full(proxy.table, state).payload()
        t3 = time.perf_counter()
        await nft.run(payload)
        t4 = time.perf_counter()
        await nft.delete_table(proxy.table)
        full_times, resync_times, commands = [], [], 0
        for _ in range(repeats):  # cold: empty table, no cached renders
            await nft.delete_table(proxy.table)
            proxy.applied = None
            proxy._cache.clear()
            nft._render_port.cache_clear()
            t = time.perf_counter()
            commands = await proxy.sync()
            full_times.append(time.perf_counter() - t)
        for _ in range(max(3, repeats // 4)):  # a restarted proxy: the same table replaced atomically
            proxy.applied = None
            proxy._cache.clear()
            t = time.perf_counter()
            await proxy.sync()
            resync_times.append(time.perf_counter() - t)
        ep_change, svc_add = [], []
        for r in range(repeats):
            old = eps["s7"]["subsets"][0]
            eps["s7"] = {"metadata": {"resourceVersion": str(next(rv))},  # a new object, as the informer delivers
                         "subsets": [{**old, "addresses": [*old["addresses"], {"ip": f"10.245.0.{r + 1}"}]}]}
            t = time.perf_counter()
            ep_cmds = await proxy.sync()
            ep_change.append(time.perf_counter() - t)
            name = f"extra{r}"
            services[name] = {"metadata": {"namespace": "default", "name": name, "resourceVersion": str(next(rv))},
                              "spec": {"clusterIP": f"10.111.0.{r + 1}", "ports": [{"name": "http", "port": 80}]}}
            eps[name] = {"metadata": {"resourceVersion": str(next(rv))},
                         "subsets": [{"addresses": [{"ip": "10.244.200.1"}], "ports": [{"name": "http", "port": 8080}]}]}
            t = time.perf_counter()
            add_cmds = await proxy.sync()
            svc_add.append(time.perf_counter() - t)
        listed = subprocess.run(["nft", "list", "table", "ip", proxy.table], capture_output=True, text=True).stdout
        chains = listed.count("\n\tchain ")
        await nft.delete_table(proxy.table)
        return {"desired": t1 - t0, "render": t2 - t1, "encode": t3 - t2, "nft": t4 - t3, "full": full_times,
                "resync": resync_times,
                "commands": commands, "ep_change": ep_change, "ep_cmds": ep_cmds, "svc_add": svc_add,
                "add_cmds": add_cmds, "chains": chains}
    finally:
        netns.remove(ns)


# ---- main ------------------------------------------------------------------------------------

async def cluster_part(n_changes: int, rounds: int, seconds: float, n_ready: int = 20) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-svc-"))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log")
    use_server(srv)
    srv.start()
    node = f"bench-{uuid.uuid4().hex[:6]}"
    use_server(srv, node)  # the agent's credentials
    control = subprocess.Popen([sys.executable, "-m", "master", "--server", srv.url, "--log-level", "WARNING"],
                               stdout=open(tmp / "control.log", "ab"), stderr=subprocess.STDOUT,
                               preexec_fn=die_with_parent)
    agent = None
    client = None
    try:
        await wait_for_api(srv.url)
        agent = subprocess.Popen([sys.executable, "-m", "node", "--server", srv.url, "--name", node,
                                  "--pod-cidr", f"10.244.{NET}.0/24", "--state-dir", str(tmp / "node"),
                                  "--drain-on-exit", "--log-level", "WARNING"],
                                 stdout=open(tmp / "agent.log", "ab"), stderr=subprocess.STDOUT,
                                 preexec_fn=die_with_parent)
        client = await ApiClient.connect(srv.url)
        await client.create(web_pod("web", node))
        deadline = time.monotonic() + 90
        while True:
            try:
                p = await client.get("pods", "web", "default")
                if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []):
                    pod_ip = p["status"]["podIP"]
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the web pod did not become Ready")
            await asyncio.sleep(0.2)
        add, remove = await endpoints_latency(client, "web", pod_ip, n_changes)
        print(f"(a) network programming latency, Endpoints change -> datapath, {n_changes} changes, probed with "
              f"HTTP from the node: address added -> pod answers: p50 {pct(add, 50) * 1e3:.1f} ms, "
              f"p99 {pct(add, 99) * 1e3:.1f} ms, max {max(add) * 1e3:.1f} ms; address removed -> refused: "
              f"p50 {pct(remove, 50) * 1e3:.1f} ms, p99 {pct(remove, 99) * 1e3:.1f} ms {conditions()}")
        created = await service_latency(client, "web", pod_ip, n_changes)
        print(f"(a) network programming latency, Service created (Endpoints already written) -> pod answers, "
              f"{n_changes} Services: p50 {pct(created, 50) * 1e3:.1f} ms, p99 {pct(created, 99) * 1e3:.1f} ms, "
              f"max {max(created) * 1e3:.1f} ms")
        ready = await readiness_latency(client, node, n_ready)
        print(f"(a) network programming latency, pod turned Ready by its readiness probe (Ready=True seen on a watch) "
              f"-> answers through its Service (endpoints controller + proxy), {n_ready} changes: "
              f"p50 {pct(ready, 50) * 1e3:.1f} ms, p99 {pct(ready, 99) * 1e3:.1f} ms, max {max(ready) * 1e3:.1f} ms")
        direct, cluster, median_ratio, errors, lat_direct, lat_cluster = await throughput(
            client, "web", pod_ip, rounds, seconds)
        print(f"(c) throughput, new connection + HTTP/1.0 GET per request, 8 concurrent asyncio clients on the node, "
              f"busybox httpd in one pod, {rounds} interleaved rounds of {seconds:.0f} s each: pod IP "
              f"{direct:.0f} req/s, ClusterIP {cluster:.0f} req/s, ratio {cluster / direct:.2f} (median of the "
              f"per-round ratios {median_ratio:.2f}; failed requests: {errors}); one client, 300 sequential "
              f"requests each: p50 {lat_direct * 1e3:.2f} ms to the pod IP, {lat_cluster * 1e3:.2f} ms through the "
              f"ClusterIP")
        await client.delete("pods", "web", "default", grace_period_seconds=0)
        deadline = time.monotonic() + 30
        while subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={node}"],
                             capture_output=True, text=True).stdout.strip() and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
    finally:
        if client is not None:
            await client.close()
        if agent is not None:
            agent.terminate()
            agent.wait(60)
        stop_process(control)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="20 changes, 300 Services, short throughput rounds")
    args = ap.parse_args()
    n_changes, n_services, rounds, seconds, repeats = (20, 300, 4, 1.0, 5) if args.quick else (100, 1000, 10, 2.0, 20)
    await cluster_part(n_changes, rounds, seconds, 5 if args.quick else 20)
    r = await programming_time(n_services, repeats)
    print(f"(b) programming time, {n_services} Services x 3 endpoints from an empty table ({r['commands']} nft "
          f"commands, {r['chains']} chains): proxy sync p50 {pct(r['full'], 50) * 1e3:.0f} ms, "
          f"p99 {pct(r['full'], 99) * 1e3:.0f} ms over {repeats} runs (first run split: objects->desired "
          f"{r['desired'] * 1e3:.0f} ms, render {r['render'] * 1e3:.0f} ms, JSON {r['encode'] * 1e3:.0f} ms, "
          f"nft transaction {r['nft'] * 1e3:.0f} ms); a restarted proxy's full resync replacing the same table: "
          f"p50 {pct(r['resync'], 50) * 1e3:.0f} ms")
    print(f"(b) one change on top of {n_services} Services: an endpoint added ({r['ep_cmds']} nft commands) p50 "
          f"{pct(r['ep_change'], 50) * 1e3:.1f} ms, p99 {pct(r['ep_change'], 99) * 1e3:.1f} ms; a Service added "
          f"({r['add_cmds']} commands) p50 {pct(r['svc_add'], 50) * 1e3:.1f} ms, "
          f"p99 {pct(r['svc_add'], 99) * 1e3:.1f} ms [{os.cpu_count()} cores, private network namespace, "
          f"synthetic objects, the proxy's sync() including its full re-render]")


if __name__ == "__main__":
    asyncio.run(main())
