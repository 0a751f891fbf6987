"""Services through the node's service proxy (node/proxy, nftables) with real Docker pods: each web
pod's busybox httpd answers with its own name, so every check reads which pod answered (the
sandbox's gateway accepts any TCP connection: a connect alone proves nothing).

One cluster for the module: node A runs the agent with its proxy; node B (same machine, its own
bridge and podCIDR) runs with ``--no-proxy``, so every Service check goes through A's nft table,
also for endpoints on B. Endpoints come from the endpoints controller (selectors, readiness). ClusterIPs
and NodePorts are given explicitly (random, so concurrent runs on this machine do not collide)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import pytest_asyncio

from bus import errors, nodeclient
from bus.natsserver import NatsServer
from node.proxy.nft import table_name
from tests import builders
from tests.builders import container, pod
from tests.harness import NEEDS_DOCKER, node_ready, start_cluster, stop_cluster
from tests.nftcheck import assert_diffs_converge
from tests.waiting import eventually

pytestmark = [*NEEDS_DOCKER, pytest.mark.asyncio(loop_scope="module")]

NET = random.randint(100, 250)  # ClusterIPs 10.96.NET.x
uuid_suffix = f"{random.getrandbits(24):06x}"


def cluster_ip(n: int) -> str:
    return f"10.96.{NET}.{n}"


def node_port() -> int:
    return random.randint(30000, 32767)


WEB = ("mkdir -p /www; echo $HOSTNAME > /www/index.html; touch /www/ready; exec httpd -f -p 8080 -h /www")
ECHO = ("printf '#!/bin/sh\\necho $HOSTNAME\\nexec cat\\n' > /echo.sh; chmod +x /echo.sh; "
        "exec nc -ll -p 9000 -e /echo.sh")
UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5353)); print("ready", flush=True)
while True:
    data, peer = s.recvfrom(512); s.sendto(sys.argv[1].encode() + b" " + data, peer)
"""


def web_pod(name: str, node: str, app: str = "web") -> dict:
    """A pod on ``node`` whose httpd answers its name on port 8080 (``http``), Ready once it serves."""
    web = container("web", WEB, ports=[{"name": "http", "containerPort": 8080}], readinessProbe={
        "exec": {"command": ["test", "-f", "/www/ready"]}, "periodSeconds": 1, "failureThreshold": 1})
    return pod(name, labels={"app": app, "name": name}, node=node, grace=1, containers=[web])


def plain_pod(name: str, node: str, script: str, **labels: str) -> dict:
    return pod(name, labels={"name": name, **labels}, node=node, grace=1, script=script)


def service(name: str, ip: str, selector: dict, ports: list[dict], **spec) -> dict:
    return builders.service(name, cluster_ip=ip, selector=selector, ports=ports, **spec)


# ---- the shared cluster --------------------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cl(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("services")
    srv = NatsServer(tmp / "jetstream", port=0, log_file=tmp / "nats-server.log")
    srv.start()
    c = None
    try:
        c = await start_cluster(srv, tmp)
        c.node_b = f"{c.node}b"
        c.start_agent(c.node_b, f"10.244.{int(c.cidr.split('.')[2]) + 1}.0/24", extra=["--no-proxy"])
        await eventually(lambda: node_ready(c.client, c.node_b), 30, "node B Ready")
        node = await c.client.get("nodes", c.node)
        c.host_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        for i in range(3):
            await c.client.create(web_pod(f"web-{i}", c.node))
        await c.client.create(plain_pod("client", c.node, "sleep 3600"))
        for name in ("web-0", "web-1", "web-2", "client"):
            await eventually(lambda: ready_ip(c.client, name), 40, f"{name} Ready")
        yield c
    finally:
        if c is not None:
            await stop_cluster(c)
            tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
            srv.stop()
            assert table_name(c.node) not in tables, "the agent's --drain-on-exit left its nft table"
        else:
            srv.stop()


async def ready_ip(client, name: str) -> str | None:
    try:
        p = await client.get("pods", name, "default")
    except errors.NotFound:
        return None
    conds = {x["type"]: x["status"] for x in (p.get("status") or {}).get("conditions") or []}
    return p["status"].get("podIP") if conds.get("Ready") == "True" else None


async def endpoints_ready(client, name: str, count: int) -> bool:
    try:
        ep = await client.get("endpoints", name, "default")
    except errors.NotFound:
        return False
    return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or []) == count


def http_get(ip: str, port: int, timeout: float = 3) -> str:
    return urllib.request.urlopen(f"http://{ip}:{port}/", timeout=timeout).read().decode().strip()


async def answers_from_node(ip: str, port: int, n: int) -> list[str]:
    return [await asyncio.to_thread(http_get, ip, port) for _ in range(n)]


async def exec_in(client, pod: str, script: str) -> tuple[int, str]:
    session = await nodeclient.exec_(client, "default", pod, ["sh", "-c", script])
    out = b"".join([d async for _s, d in session]).decode()
    return session.exit_code, out


async def answers_from_pod(client, pod: str, ip: str, port: int, n: int) -> list[str]:
    code, out = await exec_in(client, pod, f"for i in $(seq {n}); do timeout 3 wget -qO- http://{ip}:{port}/; done")
    return out.split()


async def serves_exactly(ip: str, port: int, names: set[str]) -> bool:
    try:
        return set(await answers_from_node(ip, port, 24)) == names
    except OSError:
        return False


# ---- tests ---------------------------------------------------------------------------------------------------------

async def test_incremental_transactions_converge_to_the_full_ruleset():
    """Real nft in two private namespaces: full(old) + diff(old→new) holds exactly what full(new) holds."""
    from node.proxy import model, nft

    def state(n: int, shift: int) -> nft.State:
        services = [service(f"s{i}", f"10.96.0.{i + 1}", {}, [{"name": "http", "port": 80},
                                                             {"name": "dns", "port": 53, "protocol": "UDP"}],
                            sessionAffinity="ClientIP" if i % 3 == 0 else "None",
                            type="NodePort" if i % 4 == 0 else "ClusterIP") for i in range(n)]
        for i, s in enumerate(services):
            s["metadata"]["namespace"] = "default"
            s["spec"]["ports"][0]["nodePort"] = 30000 + i
        endpoints = {f"s{i}": {"subsets": [{"addresses": [{"ip": f"10.244.{(i + shift) % 5}.{j + 1}"}
                                                          for j in range((i + shift) % 4)],
                                            "ports": [{"name": "http", "port": 8080},
                                                      {"name": "dns", "port": 5353, "protocol": "UDP"}]}]}
                     for i in range(n)}
        return nft.render(model.desired(services, lambda ns, name: endpoints.get(name), "192.0.2.77", "10.244.0.0/16"))

    states = [state(30, 0), *(state(n, shift) for n, shift in ((30, 1), (24, 2), (33, 3)))]  # endpoints move,
    assert_diffs_converge("k8n-convergence", states, nft.full, nft.diff)  # services go, services come


async def test_clusterip_spreads_over_ready_pods_from_node_and_pod(cl):
    ip = cluster_ip(10)
    await cl.client.create(service("web", ip, {"app": "web"}, [{"name": "http", "port": 80, "targetPort": "http"}]))
    await eventually(lambda: endpoints_ready(cl.client, "web", 3), 20, "3 ready endpoints")
    await eventually(lambda: serves_exactly(ip, 80, {"web-0", "web-1", "web-2"}), 10, "answers from all 3 pods")
    from_pod = await answers_from_pod(cl.client, "client", ip, 80, 24)
    assert len(from_pod) == 24 and set(from_pod) == {"web-0", "web-1", "web-2"}


async def test_not_ready_pod_leaves_rotation_and_comes_back(cl):
    ip = cluster_ip(10)
    await eventually(lambda: serves_exactly(ip, 80, {"web-0", "web-1", "web-2"}), 20, "all 3 pods in rotation")
    code, _ = await exec_in(cl.client, "web-2", "rm /www/ready")
    assert code == 0
    await eventually(lambda: endpoints_ready(cl.client, "web", 2), 20, "web-2 not ready in the Endpoints")
    await eventually(lambda: serves_exactly(ip, 80, {"web-0", "web-1"}), 10, "web-2 out of rotation")
    assert set(await answers_from_node(ip, 80, 30)) == {"web-0", "web-1"}
    await exec_in(cl.client, "web-2", "touch /www/ready")
    await eventually(lambda: serves_exactly(ip, 80, {"web-0", "web-1", "web-2"}), 20, "web-2 back in rotation")


async def test_scale_up_and_down_is_reflected(cl):
    ip = cluster_ip(10)
    await cl.client.create(web_pod("web-3", cl.node))
    await eventually(lambda: serves_exactly(ip, 80, {"web-0", "web-1", "web-2", "web-3"}), 40, "web-3 in rotation")
    await cl.client.delete("pods", "web-3", "default", grace_period_seconds=0)
    await eventually(lambda: serves_exactly(ip, 80, {"web-0", "web-1", "web-2"}), 20, "web-3 out of rotation")


async def test_session_affinity_client_ip_sticks_to_one_pod(cl):
    ip = cluster_ip(11)
    await cl.client.create(service("sticky", ip, {"app": "web"}, [{"name": "http", "port": 80, "targetPort": 8080}],
                                   sessionAffinity="ClientIP"))
    await eventually(lambda: endpoints_ready(cl.client, "sticky", 3), 20, "3 ready endpoints")
    first = await eventually(lambda: _try_get(ip, 80), 10, "the sticky service to answer")
    assert set(await answers_from_node(ip, 80, 20)) == {first}


def _try_get(ip: str, port: int) -> str | None:
    try:
        return http_get(ip, port, timeout=1)
    except OSError:
        return None


async def test_nodeport_on_the_node_address_from_node_and_pod(cl):
    port = node_port()
    await cl.client.create(service("np", cluster_ip(12), {"app": "web"},
                                   [{"name": "http", "port": 80, "targetPort": "http", "nodePort": port}],
                                   type="NodePort"))
    await eventually(lambda: serves_exactly(cl.host_ip, port, {"web-0", "web-1", "web-2"}), 20,
                     f"NodePort {cl.host_ip}:{port} answering from all pods")
    from_pod = await answers_from_pod(cl.client, "client", cl.host_ip, port, 12)
    assert len(from_pod) == 12 and set(from_pod) <= {"web-0", "web-1", "web-2"}


async def test_hairpin_pod_reaches_itself_through_its_service(cl):
    ip = cluster_ip(13)
    await cl.client.create(service("self0", ip, {"name": "web-0"}, [{"port": 80, "targetPort": 8080}]))
    await eventually(lambda: serves_exactly(ip, 80, {"web-0"}), 20, "self0 served by web-0")
    assert await answers_from_pod(cl.client, "web-0", ip, 80, 3) == ["web-0"] * 3


async def test_cross_node_endpoint_through_node_a_proxy(cl):
    await cl.client.create(web_pod("far-0", cl.node_b, app="far"))
    await eventually(lambda: ready_ip(cl.client, "far-0"), 40, "far-0 Ready on node B")
    ip = cluster_ip(14)
    await cl.client.create(service("far", ip, {"app": "far"}, [{"name": "http", "port": 8000, "targetPort": "http"}]))
    await eventually(lambda: serves_exactly(ip, 8000, {"far-0"}), 20, "far served by the pod on node B")
    assert await answers_from_pod(cl.client, "client", ip, 8000, 3) == ["far-0"] * 3
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert table_name(cl.node) in tables and table_name(cl.node_b) not in tables


async def test_service_without_ready_endpoints_refuses_at_once(cl):
    ip = cluster_ip(15)
    await cl.client.create(service("empty", ip, {"app": "nothing"}, [{"name": "http", "port": 80, "targetPort": 8080},
                                                                      {"name": "dns", "port": 53, "protocol": "UDP"}]))

    def refused() -> float | None:
        t0 = time.monotonic()
        try:
            socket.create_connection((ip, 80), timeout=3).close()
        except ConnectionRefusedError:
            return time.monotonic() - t0
        except OSError:
            return None
        return None

    elapsed = await eventually(lambda: asyncio.to_thread(refused), 15, "connection refused")
    assert elapsed < 0.5
    code, out = await exec_in(cl.client, "client", f"timeout 3 wget -qO- http://{ip}:80/ 2>&1; echo rc=$?")
    assert "refused" in out.lower() and "rc=1" in out, out


async def test_udp_service(cl):
    await cl.client.create(plain_pod("udp-0", cl.node, "sleep 3600", app="udp"))
    await eventually(lambda: ready_ip(cl.client, "udp-0"), 40, "udp-0 Ready")
    pid = _sandbox_pid("udp-0")
    # the server is the host's python inside the pod's network namespace (busybox has no UDP server)
    server = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", UDP_SERVER, "udp-0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        ip = cluster_ip(16)
        await cl.client.create(service("udp", ip, {"app": "udp"},
                                       [{"name": "echo", "port": 53, "targetPort": 5353, "protocol": "UDP"}]))
        answer = await eventually(lambda: asyncio.to_thread(_udp_ask, ip, 53, b"hello"), 20, "a UDP answer")
        assert answer == "udp-0 hello"
    finally:
        server.kill()
        server.wait()


def _udp_ask(ip: str, port: int, data: bytes) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(data, (ip, port))
        try:
            return s.recv(512).decode()
        except OSError:
            return None


def _sandbox_pid(pod: str) -> int:
    cid = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.k8n.pod.name={pod}",
                          "--filter", "label=io.k8n.container.name=POD"], capture_output=True, text=True).stdout.split()
    info = json.loads(subprocess.run(["docker", "inspect", cid[0]], capture_output=True, text=True).stdout)
    return info[0]["State"]["Pid"]


def _service_ips(table: str) -> set[str]:
    r = subprocess.run(["nft", "-j", "list", "map", "ip", table, "service-ips"], capture_output=True, text=True)
    if r.returncode != 0:
        return set()
    found = set()
    for obj in json.loads(r.stdout)["nftables"]:
        for elem in (obj.get("map") or {}).get("elem") or []:
            found.add(elem[0]["concat"][0])
    return found


async def test_standalone_proxy_programs_keeps_rules_on_kill_and_cleans_up_when_asked(cl):
    """``python -m node.proxy`` for node B (whose agent runs without one)."""
    table = table_name(cl.node_b)
    ip = cluster_ip(19)
    await cl.client.create(service("solo", ip, {"name": "web-0"}, [{"port": 80, "targetPort": 8080}]))
    cmd = [sys.executable, "-m", "node.proxy", "--name", cl.node_b, "--server", cl.url, "--cleanup-on-exit",
           "--creds-dir", str(cl.server.creds_dir)]
    log = open(cl.tmp / "proxy-b.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        await eventually(lambda: ip in _service_ips(table), 20, "node B's table holding the Service")
        proc.kill()
        proc.wait()
        assert ip in _service_ips(table), "kill -9 must keep the rules"
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        await cl.client.delete("services", "solo", "default")
        await eventually(lambda: ip not in _service_ips(table) and table in _tables(), 20,
                         "the restarted proxy dropping the deleted Service")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert table not in _tables(), "--cleanup-on-exit must remove the table"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)


def _tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


async def test_proxy_restart_keeps_established_and_new_connections(cl):
    """kill -9 the agent (and its in-process proxy): the rules stay in the kernel; the restarted
    proxy replaces its table atomically; an established flow survives all of it."""
    await cl.client.create(plain_pod("echo-0", cl.node, ECHO, app="echo"))
    await eventually(lambda: ready_ip(cl.client, "echo-0"), 40, "echo-0 Ready")
    ip = cluster_ip(17)
    await cl.client.create(service("echo", ip, {"app": "echo"}, [{"port": 9000}]))
    conn = await eventually(lambda: asyncio.to_thread(_echo_connect, ip), 20, "the echo service")
    try:
        assert conn.echo("one") == "one"
        cl.agent.send_signal(signal.SIGKILL)
        cl.agent.wait()
        assert conn.echo("two") == "two"
        fresh = _echo_connect(ip)
        assert fresh is not None, "a new connection while the proxy is down"
        fresh.close()
        cl.start_agent()
        # a Service created after the restart works: the new proxy has synced (its first sync replaced the table)
        await cl.client.create(service("after", cluster_ip(18), {"name": "web-1"}, [{"port": 80, "targetPort": 8080}]))
        await eventually(lambda: serves_exactly(cluster_ip(18), 80, {"web-1"}), 40, "a new Service after the restart")
        assert conn.echo("three") == "three"
        fresh = _echo_connect(ip)
        assert fresh is not None, "a new connection after the restart"
        fresh.close()
    finally:
        conn.close()


class EchoConn:
    """A connection to the echo service whose greeting named the pod."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.reader = sock, sock.makefile("rb")

    def echo(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\n")
        return self.reader.readline().decode().strip()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _echo_connect(ip: str) -> EchoConn | None:
    try:
        s = socket.create_connection((ip, 9000), timeout=2)
    except OSError:
        return None
    s.settimeout(3)
    conn = EchoConn(s)
    try:
        greeting = conn.reader.readline().decode().strip()
    except OSError:
        greeting = ""
    if greeting != "echo-0":
        conn.close()
        return None
    return conn
