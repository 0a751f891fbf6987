"""NetworkPolicy enforced by the agents' nftables tables (node/netpol) on real Docker pods and two nodes on this
machine: every check is a real HTTP request from inside a client pod (busybox ``wget``) to a web pod whose httpd
answers its own name, so an answer proves which pod was reached, and a refusal is a timeout (dropped).

Pods: web servers ``web-a`` (node A) and ``web-b`` (node B), labelled ``app: web``, serving on 8080 (container port
``http``) and 8081 (unnamed); ``db-b`` (node B, ``app: db``) the same; clients ``client-a`` (A) and ``client-b`` (B)
labelled ``app: client``, ``stranger`` (A) ``app: stranger``, and ``x-client`` (B) ``app: client`` in namespace
``np-x`` (labelled ``team: x``). Each test creates its policies and deletes them at the end (everything is open
again), so the tests are independent."""

from __future__ import annotations

import contextlib
import random
import subprocess
import urllib.request

import pytest
import pytest_asyncio

from bus import errors, nodeclient
from bus.natsserver import NatsServer
from node import netpol
from node.netpol import table_name
from tests import builders
from tests.builders import container, pod
from tests.harness import NEEDS_DOCKER, node_ready, start_cluster, stop_cluster
from tests.nftcheck import assert_diffs_converge
from tests.waiting import eventually

pytestmark = [*NEEDS_DOCKER, pytest.mark.asyncio(loop_scope="module")]

NET = random.randint(100, 250)  # ClusterIPs 10.96.NET.x
NS_X = f"np-x-{random.getrandbits(16):04x}"
WEB = ("mkdir -p /www; echo $HOSTNAME > /www/index.html; httpd -p 8081 -h /www; exec httpd -f -p 8080 -h /www")


def web_pod(name: str, node: str, app: str = "web") -> dict:
    web = container("web", WEB, ports=[{"name": "http", "containerPort": 8080}, {"containerPort": 8081}])
    return pod(name, labels={"app": app}, node=node, grace=1, containers=[web])


def client_pod(name: str, node: str, app: str = "client", ns: str = "default") -> dict:
    return pod(name, ns, labels={"app": app}, node=node, grace=1, script="sleep 3600")


def policy(name: str, ns: str = "default", **spec) -> dict:
    spec.setdefault("podSelector", {})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


WEB_SELECTOR = {"matchLabels": {"app": "web"}}
CLIENTS = {"matchLabels": {"app": "client"}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cl(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("netpol")
    srv = NatsServer(tmp / "jetstream", port=0, log_file=tmp / "nats-server.log")
    srv.start()
    c = None
    try:
        c = await start_cluster(srv, tmp)
        c.node_b = f"{c.node}b"
        c.start_agent(c.node_b, f"10.244.{int(c.cidr.split('.')[2]) + 1}.0/24", extra=["--no-proxy"])
        await eventually(lambda: node_ready(c.client, c.node_b), 30, "node B Ready")
        await c.client.create(builders.namespace(NS_X, labels={"team": "x"}))
        await eventually(lambda: _has_default_sa(c.client, NS_X), 20, "np-x's default ServiceAccount")
        for p in (web_pod("web-a", c.node), web_pod("web-b", c.node_b), web_pod("db-b", c.node_b, app="db"),
                  client_pod("client-a", c.node), client_pod("client-b", c.node_b),
                  client_pod("stranger", c.node, app="stranger"), client_pod("x-client", c.node_b, ns=NS_X)):
            await c.client.create(p)
        c.ip = {}
        for ns, name in (("default", "web-a"), ("default", "web-b"), ("default", "db-b"), ("default", "client-a"),
                         ("default", "client-b"), ("default", "stranger"), (NS_X, "x-client")):
            c.ip[name] = await eventually(lambda: running_ip(c.client, name, ns), 60, f"{name} running")
        for name in ("web-a", "web-b", "db-b"):
            await eventually(lambda: _serves(c.ip[name], 8080, name), 20, f"{name} serving")
        yield c
    finally:
        if c is not None:
            await stop_cluster(c)
            tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
            srv.stop()
            for node in (c.node, getattr(c, "node_b", c.node)):
                assert table_name(node) not in tables, "the agent's --drain-on-exit left its policy table"
        else:
            srv.stop()


async def _has_default_sa(client, ns: str) -> bool:
    try:
        return bool(await client.get("serviceaccounts", "default", ns))
    except errors.NotFound:
        return False


async def running_ip(client, name: str, ns: str = "default") -> str | None:
    try:
        p = await client.get("pods", name, ns)
    except errors.NotFound:
        return None
    st = p.get("status") or {}
    return st.get("podIP") if st.get("phase") == "Running" else None


def _serves(ip: str, port: int, name: str) -> bool:
    """From the node itself (not subject to policies: it takes the output path)."""
    try:
        return urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2).read().decode().strip() == name
    except OSError:
        return False


async def fetch(client, frm: str, ip: str, port: int = 8080, ns: str = "default") -> str:
    """What ``frm`` gets from ``http://ip:port/`` ('' when nothing answers within 2 s)."""
    session = await nodeclient.exec_(client, ns, frm, ["sh", "-c", f"timeout 2 wget -qO- http://{ip}:{port}/"])
    out = b"".join([d async for _s, d in session]).decode().strip()
    return out if session.exit_code == 0 else ""


class Checks:
    def __init__(self, cl) -> None:
        self.cl = cl

    async def reaches(self, frm: str, to: str, port: int = 8080, ns: str = "default", ip: str | None = None) -> None:
        """``frm`` gets ``to``'s answer (waiting for the policy to arrive)."""
        target = ip or self.cl.ip[to]
        await eventually(lambda: _is(fetch(self.cl.client, frm, target, port, ns), to), 10, f"{frm} → {to}:{port}")

    async def blocked(self, frm: str, to: str, port: int = 8080, ns: str = "default", ip: str | None = None) -> None:
        target = ip or self.cl.ip[to]
        await eventually(lambda: _is(fetch(self.cl.client, frm, target, port, ns), ""), 10, f"{frm} ↛ {to}:{port}")
        assert await fetch(self.cl.client, frm, target, port, ns) == "", f"{frm} → {to}:{port} came back"


async def _is(aw, want: str) -> bool:
    return await aw == want


@contextlib.asynccontextmanager
async def policies(cl, *objs: dict):
    """The policies in place for the block; deleted after it, and then every pod is open again."""
    for o in objs:
        await cl.client.create(o)
    try:
        yield Checks(cl)
    finally:
        for o in objs:
            with contextlib.suppress(errors.NotFound):
                await cl.client.delete("networkpolicies", o["metadata"]["name"], o["metadata"]["namespace"])
        await eventually(lambda: _is(fetch(cl.client, "stranger", cl.ip["web-b"]), "web-b"), 10, "open again")


# ---- tests ---------------------------------------------------------------------------------------------------------

async def test_incremental_transactions_converge_to_the_full_ruleset():
    """Real nft in two private namespaces: full(old) + diff(old→new) holds exactly what full(new) holds, for pods
    whose rules change, come and go."""
    from tests.unit.test_netpol_render import doc

    docs = (doc(30), doc(30, changed=3), doc(20), doc(40, changed=35), doc(40, shared=False), None)
    assert_diffs_converge("k8n-np-convergence", [netpol.render(d) for d in docs], netpol.full, netpol.diff)


async def test_without_policies_every_pod_reaches_every_pod(cl):
    ch = Checks(cl)
    for frm, ns in (("client-a", "default"), ("stranger", "default"), ("client-b", "default"), ("x-client", NS_X)):
        for to in ("web-a", "web-b"):
            await ch.reaches(frm, to, ns=ns)
    assert table_name(cl.node) in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


async def test_deny_all_ingress_then_deleted_is_open_again(cl):
    async with policies(cl, policy("deny-web", podSelector=WEB_SELECTOR)) as ch:
        for frm in ("client-a", "client-b", "stranger"):
            for to in ("web-a", "web-b"):
                await ch.blocked(frm, to)
        assert _serves(cl.ip["web-a"], 8080, "web-a"), "the node itself still reaches its pod"
        await ch.reaches("web-a", "db-b")  # ingress only: the isolated pod still reaches out
    for frm in ("client-a", "stranger"):  # the policy deleted: open again
        await Checks(cl).reaches(frm, "web-a")


async def test_pod_selector_allows_matching_pods_across_nodes_both_ways(cl):
    allow = policy("web-from-clients", podSelector=WEB_SELECTOR, ingress=[{"from": [{"podSelector": CLIENTS}]}])
    async with policies(cl, allow) as ch:
        await ch.reaches("client-a", "web-a")  # same node
        await ch.reaches("client-a", "web-b")  # A → B
        await ch.reaches("client-b", "web-a")  # B → A
        await ch.blocked("stranger", "web-a")
        await ch.blocked("stranger", "web-b")
        await ch.blocked("x-client", "web-a", ns=NS_X)  # same labels, other namespace
        await ch.reaches("stranger", "db-b")  # db is selected by no policy


async def test_policies_apply_after_service_dnat(cl):
    ip = f"10.96.{NET}.10"
    await cl.client.create(builders.service("web-svc", cluster_ip=ip, selector={"app": "web"},
                                            ports=[{"name": "http", "port": 80, "targetPort": 8080}]))
    try:
        allow = policy("web-from-clients", podSelector=WEB_SELECTOR, ingress=[{"from": [{"podSelector": CLIENTS}]}])
        async with policies(cl, allow) as ch:
            got = await eventually(lambda: fetch(cl.client, "client-a", ip, 80), 20, "client-a through the Service")
            assert got in ("web-a", "web-b")
            await ch.blocked("stranger", "web-svc", port=80, ip=ip)
    finally:
        await cl.client.delete("services", "web-svc", "default")


async def test_namespace_selector(cl):
    allow = policy("web-from-team-x", podSelector=WEB_SELECTOR,
                   ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}])
    async with policies(cl, allow) as ch:
        await ch.reaches("x-client", "web-a", ns=NS_X)
        await ch.reaches("x-client", "web-b", ns=NS_X)
        await ch.blocked("client-a", "web-a")
        await ch.blocked("client-b", "web-a")


async def test_ip_block_with_except(cl):
    allow = policy("web-from-block", podSelector=WEB_SELECTOR, ingress=[{"from": [{"ipBlock": {
        "cidr": "10.244.0.0/16", "except": [f"{cl.ip['client-a']}/32"]}}]}])
    async with policies(cl, allow) as ch:
        await ch.reaches("client-b", "web-a")
        await ch.reaches("stranger", "web-b")
        await ch.blocked("client-a", "web-a")
        await ch.blocked("client-a", "web-b")


async def test_egress_deny_and_egress_to_pods_and_to_an_ip_block(cl):
    deny = policy("client-a-out", podSelector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"])
    async with policies(cl, deny) as ch:
        await ch.blocked("client-a", "web-a")
        await ch.blocked("client-b", "web-b")  # B → B
        await ch.reaches("stranger", "web-a")
    to_web = policy("clients-to-web", podSelector=CLIENTS, policyTypes=["Egress"],
                    egress=[{"to": [{"podSelector": WEB_SELECTOR}]}])
    async with policies(cl, to_web) as ch:
        await ch.reaches("client-a", "web-a")
        await ch.reaches("client-a", "web-b")
        await ch.reaches("client-b", "web-a")
        await ch.blocked("client-a", "db-b")
    to_block = policy("clients-to-block", podSelector=CLIENTS, policyTypes=["Egress"],
                      egress=[{"to": [{"ipBlock": {"cidr": f"{cl.ip['web-b']}/32"}}], "ports": [{"port": 8080}]}])
    async with policies(cl, to_block) as ch:
        await ch.reaches("client-a", "web-b")
        await ch.blocked("client-a", "web-b", port=8081)
        await ch.blocked("client-a", "web-a")


async def test_named_ports_on_ingress_and_egress(cl):
    ingress = policy("web-http-only", podSelector=WEB_SELECTOR, ingress=[{"ports": [{"port": "http"}]}])
    async with policies(cl, ingress) as ch:
        await ch.reaches("stranger", "web-b")
        await ch.blocked("stranger", "web-b", port=8081)
    egress = policy("clients-http-only", podSelector=CLIENTS, policyTypes=["Egress"],
                    egress=[{"to": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": "http"}]}])
    async with policies(cl, egress) as ch:
        await ch.reaches("client-a", "db-b")
        await ch.blocked("client-a", "db-b", port=8081)


async def test_pod_label_changes_are_enforced(cl):
    allow = policy("web-from-clients", podSelector=WEB_SELECTOR, ingress=[{"from": [{"podSelector": CLIENTS}]}])
    async with policies(cl, allow) as ch:
        await ch.blocked("stranger", "web-b")
        await cl.client.patch("pods", "stranger", {"metadata": {"labels": {"app": "client"}}})
        try:
            await ch.reaches("stranger", "web-b")
        finally:
            await cl.client.patch("pods", "stranger", {"metadata": {"labels": {"app": "stranger"}}})
        await ch.blocked("stranger", "web-b")
        await cl.client.patch("pods", "db-b", {"metadata": {"labels": {"app": "web"}}})  # db-b now selected
        try:
            await ch.blocked("stranger", "db-b")
        finally:
            await cl.client.patch("pods", "db-b", {"metadata": {"labels": {"app": "db"}}})
        await ch.reaches("stranger", "db-b")
