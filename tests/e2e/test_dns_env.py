"""Service discovery seen from inside real pods: the cluster DNS of the pod's node (busybox ``nslookup`` for
the answers, libc resolution through ``ping`` for the search path), the pod's resolv.conf and /etc/hosts,
headless Services answering the ready pod IPs, and the Service environment variables of a pod started after
its Services. One cluster for the module (a control plane, one agent); Services have random explicit
ClusterIPs so concurrent runs on this machine do not collide."""

from __future__ import annotations

import random
import re

import pytest
import pytest_asyncio

from bus import errors, nodeclient
from bus.natsserver import NatsServer
from tests import builders
from tests.builders import container
from tests.harness import NEEDS_DOCKER, start_cluster, stop_cluster
from tests.waiting import eventually

pytestmark = [*NEEDS_DOCKER, pytest.mark.asyncio(loop_scope="module")]

NS = "dnse2e"
NET = random.randint(1, 99)  # ClusterIPs 10.96.NET.x (tests/e2e/test_services.py uses 100-250)
WEB_IP, LATE_IP = f"10.96.{NET}.{random.randint(2, 120)}", f"10.96.{NET}.{random.randint(121, 250)}"
WEB = "mkdir -p /www; echo $HOSTNAME > /www/index.html; touch /www/ready; exec httpd -f -p 8080 -h /www"


def pod(name: str, script: str, labels: dict | None = None, readiness: bool = False, **spec) -> dict:
    """A pod of namespace NS running ``script`` (Ready once /www/ready exists, if ``readiness``)."""
    probe = {"exec": {"command": ["test", "-f", "/www/ready"]}, "periodSeconds": 1, "failureThreshold": 1}
    c = container("main", script, **({"readinessProbe": probe} if readiness else {}))
    return builders.pod(name, NS, labels=labels or {}, grace=1, containers=[c], **spec)


def service(name: str, ip: str) -> dict:
    return builders.service(name, NS, cluster_ip=ip, selector={"app": "web"},
                            ports=[{"name": "http", "port": 80, "targetPort": 8080}])


async def ready_ip(client, name: str) -> str | None:
    try:
        p = await client.get("pods", name, NS)
    except errors.NotFound:
        return None
    conds = {x["type"]: x["status"] for x in (p.get("status") or {}).get("conditions") or []}
    return p["status"].get("podIP") if conds.get("Ready") == "True" else None


async def run(client, pod_name: str, script: str) -> tuple[int, str]:
    session = await nodeclient.exec_(client, NS, pod_name, ["sh", "-c", script])
    out = b"".join([d async for _s, d in session]).decode()
    return session.exit_code, out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cl(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dns")
    srv = NatsServer(tmp / "jetstream", port=0, log_file=tmp / "nats-server.log")
    srv.start()
    c = None
    try:
        c = await start_cluster(srv, tmp)
        client = c.client
        await client.create(builders.namespace(NS))
        await client.create(service("web", WEB_IP))
        await client.create(service("db", "None"))  # headless, the same pods
        await client.create(pod("web-0", WEB, {"app": "web"}, readiness=True, nodeName=c.node,
                                hostname="web-0", subdomain="db"))  # a per-pod name under the headless db
        await client.create(pod("web-1", WEB, {"app": "web"}, readiness=True, nodeName=c.node))
        # started after the Services: their variables are in its environment
        await client.create(pod("client", "sleep 3600", nodeName=c.node))
        await client.create(pod("nolinks", "sleep 3600", nodeName=c.node, enableServiceLinks=False))
        c.ips = {}
        for name in ("web-0", "web-1", "client", "nolinks"):
            c.ips[name] = await eventually(lambda: ready_ip(client, name), 40, f"{name} Ready")
        c.gateway = c.cidr.rsplit(".", 1)[0] + ".1"
        yield c
    finally:
        if c is not None:
            await stop_cluster(c)
        srv.stop()


def addresses(nslookup_output: str) -> set[str]:
    """The answers of busybox nslookup (not its server's address, which comes with a port)."""
    return set(re.findall(r"^Address: ([0-9.]+)$", nslookup_output, re.M))


async def test_pod_resolv_conf_points_at_the_node_dns_and_hosts_has_the_pod(cl):
    code, out = await run(cl.client, "client", "cat /etc/resolv.conf")
    assert code == 0
    assert out.splitlines()[:3] == [f"nameserver {cl.gateway}",
                                   f"search {NS}.svc.cluster.local svc.cluster.local cluster.local",
                                   "options ndots:5"]
    code, out = await run(cl.client, "client", "cat /etc/hosts")
    assert f"{cl.ips['client']}\tclient" in out.splitlines()


async def test_service_name_resolves_plain_with_namespace_and_fully_qualified(cl):
    code, out = await run(cl.client, "client", f"nslookup web.{NS}.svc.cluster.local")
    assert code == 0 and addresses(out) == {WEB_IP}, out
    code, out = await run(cl.client, "client", "nslookup web")  # busybox nslookup: first search domain
    assert f"Name:\tweb.{NS}.svc.cluster.local" in out and WEB_IP in addresses(out), out
    for name in ("web", f"web.{NS}", f"web.{NS}.svc", f"web.{NS}.svc.cluster.local"):
        # libc resolution with the search path and ndots:5 (ping prints the address it resolved)
        code, out = await run(cl.client, "client", f"ping -c1 -W1 {name} 2>&1 | head -1")
        assert f"PING {name} ({WEB_IP})" in out, (name, out)


async def test_srv_record_for_the_named_port(cl):
    code, out = await run(cl.client, "client", f"nslookup -type=SRV _http._tcp.web.{NS}.svc.cluster.local")
    assert code == 0 and f"0 100 80 web.{NS}.svc.cluster.local" in out, out


async def test_headless_service_answers_the_ready_pod_ips(cl):
    name = f"db.{NS}.svc.cluster.local"

    async def answers():
        return addresses((await run(cl.client, "client", f"nslookup {name}"))[1])

    both = {cl.ips["web-0"], cl.ips["web-1"]}
    await eventually(lambda: _eq(answers(), both), 20, "both pod IPs")
    code, out = await run(cl.client, "client", f"nslookup web-0.db.{NS}.svc.cluster.local")
    assert code == 0 and addresses(out) == {cl.ips["web-0"]}, out  # hostname + subdomain
    code, out = await run(cl.client, "web-0", "cat /etc/hosts")
    assert f"{cl.ips['web-0']}\tweb-0.db.{NS}.svc.cluster.local\tweb-0" in out.splitlines()
    await run(cl.client, "web-1", "rm /www/ready")  # its readiness probe fails: out of the answer
    try:
        await eventually(lambda: _eq(answers(), {cl.ips["web-0"]}), 20, "only the ready pod")
    finally:
        await run(cl.client, "web-1", "touch /www/ready")
    await eventually(lambda: _eq(answers(), both), 20, "both pod IPs again")


async def test_missing_and_outside_names_fail_cleanly(cl):
    code, out = await run(cl.client, "client", f"nslookup nope.{NS}.svc.cluster.local")
    assert code != 0 and "NXDOMAIN" in out, out
    code, out = await run(cl.client, "client", "nslookup example.com.")
    assert code != 0 and "SERVFAIL" in out and not addresses(out), out


async def test_service_env_vars_in_a_pod_started_after_the_services(cl):
    await cl.client.create(service("late", LATE_IP))  # after the pods started: never in their environment
    kubernetes = await cl.client.get("services", "kubernetes", "default")
    code, out = await run(cl.client, "client", "env")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["WEB_SERVICE_HOST"] == WEB_IP and env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_PORT"] == f"tcp://{WEB_IP}:80" and env["WEB_PORT_80_TCP_ADDR"] == WEB_IP
    assert env["WEB_PORT_80_TCP_PROTO"] == "tcp" and env["WEB_PORT_80_TCP_PORT"] == "80"
    assert env["KUBERNETES_SERVICE_HOST"] == kubernetes["spec"]["clusterIP"]
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert not any(k.startswith(("DB_", "LATE_")) for k in env)  # headless: none; created later: none
    code, out = await run(cl.client, "nolinks", "env")
    assert "KUBERNETES_SERVICE_HOST=" in out and "WEB_SERVICE_HOST" not in out


async def test_http_through_the_short_name_and_the_service_proxy(cl):
    names = {"web-0", "web-1"}

    async def fetched() -> str:
        return (await run(cl.client, "client", "timeout 3 wget -qO- http://web/"))[1].strip()

    got = await eventually(lambda: _in(fetched(), names), 20, "a web pod answering through http://web/")
    assert got in names


async def _eq(coro, want) -> bool:
    return await coro == want


async def _in(coro, allowed: set[str]) -> str | None:
    got = await coro
    return got if got in allowed else None
