"""NetworkPolicy (master/netpol compiles, node/netpol enforces with nftables): programming latency with 100 policies
over 300 pods, and pod-to-pod request throughput with those policies in place against none, in one run.

Run (as root, Docker running, local images built — `bash deploy/node-deps.sh` does both):
    python -m tests.perf.bench_netpol [--quick]

Starts its own nats-server, a control plane (``python -m master``: apiserver, node view, controllers, scheduler),
one real node agent (its policy enforcer in-process) running two real busybox pods in namespace ``bench-0``: ``srv``
(httpd answering its name on port 8080, container port ``http``) and ``cli``; and 3 hollow nodes
(``python -m node.hollow``: Running pods with addresses, no containers) holding 300 hollow pods spread over namespaces
``bench-0``..``bench-4`` (labelled ``team: t0``..``t4``, 60 pods each, labels ``app: a0``..``a49``, a named container
port ``http``) plus 20 probe pods in ``bench-probe``. 100 policies in ``bench-0``, each selecting the pods of one
``app`` *and* ``srv`` and ``cli`` (so the server's ingress chain carries 100 policies' rules): ingress from pods of
another ``app``, from namespaces of one ``team`` (60 pods each), from an ipBlock with an except, on ports 8080 and
9000-9100; every other policy also isolates egress, to pods of another ``app`` on the named port ``http``; only the
last policy admits ``cli`` (and ``cli``'s egress to ``srv``), and policy 0 admits probe pods labelled ``probe: "yes"``.

(a) programming latency, measured from the API request to the moment the node's nftables table (read with
    ``nft list set`` of the entry's address set in a loop, its cost reported as the resolution) holds the change for
    ``srv``: a policy created (ingress from a new /32: a new set, rule and chain content) and deleted; a
    probe pod's label flipped so it joins and leaves policy 0's admitted peers (node view: the peer's membership;
    agent: one element of the entry's address set).
(b) throughput: from inside ``cli`` (the host's Python in its network namespace), new TCP connection + HTTP/1.0 GET
    per request, 8 concurrent clients, closing with RST; interleaved rounds with all policies in place and with none
    (policies deleted, the node's table emptied of them), in the same run. Every new connection crosses both pods'
    chains (established packets are accepted first).
Prints figures with conditions; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import re
import tempfile
import time
import uuid
from pathlib import Path

from bus import subjects
from bus.client import ApiClient
from bus.natsserver import NatsServer
from bus.proc import die_with_parent, stop_process
from bus.resources import NODE_PODS
from node.netpol import peer_set, pod_chain, table_name
from tests.conftest import wait_for_api
from tests.e2e.test_services import _sandbox_pid
from tests.perf.bench_services import pct
from tests.perf.busauth import use_server

IMAGE = "k8n/busybox:latest"
NS0, PROBE_NS = "bench-0", "bench-probe"
N_POLICIES, N_HOLLOW, N_PROBES, N_APPS = 100, 300, 20, 50

CLIENT = r"""
import asyncio, socket, struct, sys, time
ip, seconds, want = sys.argv[1], float(sys.argv[2]), sys.argv[3].encode()
ok = bad = 0
async def worker(deadline):
    global ok, bad
    while time.perf_counter() < deadline:
        try:
            r, w = await asyncio.open_connection(ip, 8080)
            w.write(b"GET / HTTP/1.0\r\n\r\n")
            data = await r.read()
            w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.close()
            ok, bad = (ok + 1, bad) if data.rstrip().endswith(want) else (ok, bad + 1)
        except OSError:
            bad += 1
async def main():
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(t0 + seconds) for _ in range(8)))
    print(ok, bad, time.perf_counter() - t0)
asyncio.run(main())
"""


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)


def pod(name: str, ns: str, node: str, labels: dict, script: str | None = None) -> dict:
    c = {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "ports": [{"name": "http", "containerPort": 8080}]}
    if script:
        c["command"] = ["sh", "-c", script]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "automountServiceAccountToken": False,
                     "containers": [c]}}


def policy(i: int) -> dict:
    sel = {"matchExpressions": [{"key": "app", "operator": "In", "values": [f"a{i % N_APPS}", "srv", "cli"]}]}
    peers = [{"podSelector": {"matchLabels": {"app": f"a{(i + 1) % N_APPS}"}}},
             {"namespaceSelector": {"matchLabels": {"team": f"t{i % 5}"}}},
             {"ipBlock": {"cidr": f"172.16.{i}.0/24", "except": [f"172.16.{i}.128/25"]}}]
    if i == N_POLICIES - 1:
        peers.append({"podSelector": {"matchLabels": {"app": "cli"}}})
    if i == 0:
        peers.append({"namespaceSelector": {"matchLabels": {"role": "probe"}},
                      "podSelector": {"matchLabels": {"probe": "yes"}}})
    spec = {"podSelector": sel, "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"port": 8080}, {"port": 9000, "endPort": 9100}]}]}
    if i % 2:
        to = [{"podSelector": {"matchLabels": {"app": f"a{(i + 3) % N_APPS}"}}}]
        if i == N_POLICIES - 1:
            to.append({"podSelector": {"matchLabels": {"app": "srv"}}})
        spec["policyTypes"].append("Egress")
        spec["egress"] = [{"to": to, "ports": [{"port": "http"}]}]
    return np_object(f"np-{i}", spec)


def np_object(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": NS0},
            "spec": spec}


# ---- reading the node's table ------------------------------------------------------------------------------------

class AddressSet:
    """One address set of the node's table (``node.netpol.peer_set`` of a compiled entry), read with ``nft list
    set`` in a loop (``nft monitor`` drops element events of sets it has not cached)."""

    def __init__(self, table: str, entry_id: str) -> None:
        self.cmd = ["nft", "list", "set", "ip", table, peer_set(entry_id)]
        self.reads: list[float] = []

    def holds(self, ip: str) -> bool:
        t0 = time.perf_counter()
        r = subprocess.run(self.cmd, capture_output=True, text=True)
        self.reads.append(time.perf_counter() - t0)
        return r.returncode == 0 and re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d./])", r.stdout) is not None

    def wait(self, ip: str, want: bool, t0: float, timeout: float = 10.0) -> float:
        """Seconds from ``t0`` until the set holds ``ip`` (``want``) or not."""
        while self.holds(ip) is not want:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{ip} {'not ' if want else ''}in {self.cmd[-1]} after {timeout}s")
            time.sleep(0.002)  # leave the 2 cores to the components measured
        return time.perf_counter() - t0


def settle(table: str, quiet: float = 3.0, timeout: float = 300.0) -> None:
    """Until the table's listing stayed the same for ``quiet`` seconds."""
    t0 = last_change = time.perf_counter()
    last = None
    while time.perf_counter() - last_change < quiet:
        now = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
        if now != last:
            last, last_change = now, time.perf_counter()
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"the table still changing after {timeout}s")
        time.sleep(0.2)


# ---- the parts ---------------------------------------------------------------------------------------------------

async def wait_until(what: str, pred, timeout: float = 120.0, pause: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        got = await pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(pause)


async def running_ip(client: ApiClient, name: str, ns: str) -> str | None:
    try:
        p = await client.get("pods", name, ns)
    except Exception:
        return None
    st = p.get("status") or {}
    return st.get("podIP") if st.get("phase") == "Running" else None


async def latency(client: ApiClient, table: str, node: str, probes: list[tuple[str, str]], n: int
                  ) -> tuple[dict[str, list[float]], list[float], list[float]]:
    """Per change: API request -> the node's table holds it; also API request -> the node's document written
    (seen on a watch of the node's part of the node view, as the agent sees it)."""
    out: dict[str, list[float]] = {"policy created": [], "policy deleted": [], "pod label -> admitted": [],
                                   "pod label -> no longer admitted": []}
    written: list[float] = []  # arrival times of the node's documents
    watch = await client.store.watch(NODE_PODS, subjects.node_pods_namespace(node))

    async def documents() -> None:
        async for ev in watch:
            if ev.object.get("kind") == subjects.NODE_NETWORK_POLICY_KIND:
                written.append(time.perf_counter())

    reader = asyncio.create_task(documents())
    to_document: list[float] = []
    new_policy = AddressSet(table, f"{NS0}/probe/Ingress/0")
    policy0 = AddressSet(table, f"{NS0}/np-0/Ingress/0")  # admits the probe pods labelled probe=yes
    for k in range(n):
        ip = f"198.51.100.{k % 250 + 1}"
        spec = {"podSelector": {"matchLabels": {"app": "srv"}},
                "ingress": [{"from": [{"ipBlock": {"cidr": f"{ip}/32"}}]}]}
        name, pip = probes[k % len(probes)]
        for what, change, check in (
                ("policy created", lambda: client.create(np_object("probe", spec)), (new_policy, ip, True)),
                ("policy deleted", lambda: client.delete("networkpolicies", "probe", NS0), (new_policy, ip, False)),
                ("pod label -> admitted", lambda: client.patch(
                    "pods", name, {"metadata": {"labels": {"probe": "yes"}}}, PROBE_NS), (policy0, pip, True)),
                ("pod label -> no longer admitted", lambda: client.patch(
                    "pods", name, {"metadata": {"labels": {"probe": "no"}}}, PROBE_NS), (policy0, pip, False))):
            aset, addr, want = check
            t0 = time.perf_counter()
            await change()
            out[what].append(await asyncio.to_thread(aset.wait, addr, want, t0))
            await asyncio.sleep(0.05)
            to_document += [t - t0 for t in written if t > t0][:1]
    reader.cancel()
    await watch.stop()
    return out, new_policy.reads + policy0.reads, to_document


def requests_from(cli_pid: int, ip: str, seconds: float) -> tuple[int, int, float]:
    r = subprocess.run(["nsenter", "-t", str(cli_pid), "-n", sys.executable, "-c", CLIENT, ip, str(seconds), "srv"],
                       capture_output=True, text=True, check=True)
    ok, bad, dt = r.stdout.split()
    return int(ok), int(bad), float(dt)


async def set_policies(client: ApiClient, on: bool, table: str, srv_ip: str) -> None:
    chain = ["nft", "list", "chain", "ip", table, pod_chain("Ingress", srv_ip)]

    async def programmed() -> bool:
        r = await asyncio.to_thread(subprocess.run, chain, capture_output=True, text=True)
        return (r.returncode == 0 and r.stdout.count("return") >= N_POLICIES) if on else r.returncode != 0

    there = {p["metadata"]["name"] for p in (await client.list("networkpolicies", NS0))[0]}
    if on:
        await asyncio.gather(*(client.create(policy(i)) for i in range(N_POLICIES) if f"np-{i}" not in there))
    else:
        await asyncio.gather(*(client.delete("networkpolicies", name, NS0) for name in there))
    await wait_until("policies programmed" if on else "policies gone", programmed, 60)


async def throughput(client: ApiClient, table: str, srv_ip: str, cli_pid: int, rounds: int, seconds: float
                     ) -> tuple[dict[str, float], list[float], int]:
    totals = {"policies": [0, 0.0], "none": [0, 0.0]}
    ratios, failed = [], 0
    on = True
    for _ in range(rounds):
        rate = {}
        for kind in ("policies", "none") if on else ("none", "policies"):
            await set_policies(client, kind == "policies", table, srv_ip)
            ok, bad, dt = await asyncio.to_thread(requests_from, cli_pid, srv_ip, seconds)
            totals[kind][0] += ok
            totals[kind][1] += dt
            rate[kind] = ok / dt
            failed += bad
        on = not on  # alternate which goes first
        ratios.append(rate["policies"] / rate["none"])
    return {k: v[0] / v[1] for k, v in totals.items()}, ratios, failed


async def run(n_changes: int, rounds: int, seconds: float, keep_logs: bool = False) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-netpol-"))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log")
    node = f"bench-{uuid.uuid4().hex[:6]}"
    use_server(srv, node)
    srv.start()
    os.environ.setdefault("K8N_NODE_MONITOR_GRACE_PERIOD", "40")  # hollow leases renew every 10 s
    procs: list[subprocess.Popen] = []
    agent = client = None
    try:
        procs.append(spawn(["-m", "master", "--server", srv.url, "--log-level", "WARNING"], tmp / "control.log"))
        await wait_for_api(srv.url)
        client = await ApiClient.connect(srv.url)
        client.timeout = 30.0
        agent = spawn(["-m", "node", "--server", srv.url, "--name", node, "--pod-cidr", "10.244.213.0/24",
                       "--state-dir", str(tmp / "node"), "--drain-on-exit", "--log-level", "WARNING"],
                      tmp / "agent.log")
        procs.append(spawn(["-m", "node.hollow", "--server", srv.url, "--count", "3", "--log-level", "WARNING"],
                           tmp / "hollow.log"))
        for k in range(5):
            await client.create({"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": f"bench-{k}", "labels": {"team": f"t{k}"}}})
        await client.create({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": PROBE_NS, "labels": {"role": "probe"}}})

        async def nodes_ready() -> bool:
            names = {n["metadata"]["name"] for n in (await client.list("nodes"))[0]}
            return {node, "hollow-0", "hollow-1", "hollow-2"} <= names

        await wait_until("nodes registered", nodes_ready)
        await client.create(pod("srv", NS0, node, {"app": "srv"},
                                "mkdir -p /www; echo $HOSTNAME > /www/index.html; exec httpd -f -p 8080 -h /www"))
        await client.create(pod("cli", NS0, node, {"app": "cli"}, "sleep 36000"))
        hollow = [pod(f"h{i}", f"bench-{i % 5}", f"hollow-{i % 3}", {"app": f"a{i % N_APPS}"})
                  for i in range(N_HOLLOW)]
        hollow += [pod(f"probe{i}", PROBE_NS, f"hollow-{i % 3}", {"probe": "no"}) for i in range(N_PROBES)]
        sem = asyncio.Semaphore(32)

        async def create(p: dict) -> None:
            async with sem:
                await client.create(p)

        await asyncio.gather(*(create(p) for p in hollow))
        srv_ip = await wait_until("srv running", lambda: running_ip(client, "srv", NS0), 90)
        await wait_until("cli running", lambda: running_ip(client, "cli", NS0), 90)
        probes = [(f"probe{i}", await wait_until("probe running", lambda i=i: running_ip(client, f"probe{i}", PROBE_NS)))
                  for i in range(N_PROBES)]

        async def all_running() -> bool:
            pods = [p for k in range(5) for p in (await client.list("pods", f"bench-{k}"))[0]]
            return sum((p.get("status") or {}).get("phase") == "Running" for p in pods) == N_HOLLOW + 2

        await wait_until("hollow pods running", all_running)
        table = table_name(node)
        cli_pid = await asyncio.to_thread(_sandbox_pid, "cli")
        t0 = time.perf_counter()
        await set_policies(client, True, table, srv_ip)
        await asyncio.to_thread(settle, table)
        settled = time.perf_counter() - t0 - 3.0
        listing = json.loads(subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True,
                                            text=True).stdout)["nftables"]
        sets = [o["set"] for o in listing if "set" in o]
        n_rules = sum("rule" in o for o in listing)
        n_elements = sum(len(x.get("elem") or ()) for x in sets)
        print(f"== NetworkPolicy: {N_POLICIES} policies over {N_HOLLOW + N_PROBES + 2} pods "
              f"({N_HOLLOW + N_PROBES} hollow pods on 3 hollow nodes, 2 real pods on 1 real node) ==")
        print(f"  conditions: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
              f"{subprocess.run(['nft', '--version'], capture_output=True, text=True).stdout.strip()}, kernel "
              f"{platform.release()}; processes: nats-server, control plane (python -m master), 1 agent, hollow "
              f"nodes, this benchmark; the real node's table: {n_rules} rules, {len(sets)} address sets of "
              f"{n_elements} elements in all")
        print(f"  {N_POLICIES} policies created at once -> the node's table stopped changing: {settled:.1f} s")
        lat, reads, to_document = await latency(client, table, node, probes, n_changes)
        print(f"(a) programming latency, API request -> the node's nft table holds the change ({n_changes} changes "
              f"each; the entry's address set read by `nft list set` in a loop, p50 {pct(reads, 50) * 1e3:.1f} ms "
              f"per read, + 2 ms between reads, which bounds the resolution):")
        for what, vals in lat.items():
            print(f"    {what:34s} p50 {pct(vals, 50) * 1e3:6.1f} ms   p99 {pct(vals, 99) * 1e3:6.1f} ms   "
                  f"max {max(vals) * 1e3:6.1f} ms")
        allv = [v for vals in lat.values() for v in vals]
        print(f"    {'all':34s} p50 {pct(allv, 50) * 1e3:6.1f} ms   p99 {pct(allv, 99) * 1e3:6.1f} ms")
        print(f"    of which API request -> the node's document written (node view): p50 "
              f"{pct(to_document, 50) * 1e3:.1f} ms, p99 {pct(to_document, 99) * 1e3:.1f} ms")
        rates, ratios, failed = await throughput(client, table, srv_ip, cli_pid, rounds, seconds)
        print(f"(b) throughput cli -> srv (real pods, same node, both pods isolated in both directions, {N_POLICIES} "
              f"policies in place; new connection + HTTP/1.0 GET per request, 8 concurrent clients in cli's netns), "
              f"{rounds} interleaved rounds of {seconds:.0f} s: with policies {rates['policies']:.0f} req/s, none "
              f"{rates['none']:.0f} req/s, ratio {rates['policies'] / rates['none']:.2f} (per-round ratios "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; failed requests {failed})")
    finally:
        if client is not None:
            try:
                for ns in (NS0, PROBE_NS, *(f"bench-{k}" for k in range(1, 5))):
                    for p in (await client.list("pods", ns))[0]:
                        await client.delete("pods", p["metadata"]["name"], ns, grace_period_seconds=0)
                deadline = time.monotonic() + 30
                while subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={node}"],
                                     capture_output=True, text=True).stdout.strip() and time.monotonic() < deadline:
                    await asyncio.sleep(0.3)
            finally:
                await client.close()
        if agent is not None:
            agent.terminate()
            agent.wait(60)
        for p in procs[::-1]:
            stop_process(p)
        srv.stop()
        if keep_logs:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 changes of each kind, 2 short throughput rounds")
    ap.add_argument("--keep-logs", action="store_true", help="keep the components' logs (their path is printed)")
    args = ap.parse_args()
    n, rounds, seconds = (10, 2, 2.0) if args.quick else (50, 6, 3.0)
    asyncio.run(run(n, rounds, seconds, args.keep_logs))


if __name__ == "__main__":
    main()
