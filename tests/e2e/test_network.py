"""Pod networking on real kernel objects: bridges, veths, network namespaces standing in for pod
sandboxes, iptables rules and routes, checked with real traffic. Needs root (CI runs as root).

Every name and subnet is unique to this run, so engineers' test runs on one machine do not collide;
fixtures tear everything down even when a test fails, and the last test proves nothing leaked.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pyroute2 import AsyncIPRoute, IPRoute, netns

from node.network import PodNetwork
from node.network.netlink import listed
from node.network.veth import host_ifname

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables") is None,
    reason="pod networking tests need root and iptables (they create bridges, veths, namespaces, rules)")

RUN = uuid.uuid4().hex[:6]
CLUSTER = ipaddress.ip_network("10.244.0.0/16")
CREATED = {"links": set(), "netns": set(), "subnets": set(), "bridges": set()}
PING = ["busybox", "ping"] if shutil.which("busybox") else ["ping"]


# ---- helpers -------------------------------------------------------------------------------------

def ping(ip: str, netns_name: str | None = None, attempts: int = 3) -> bool:
    prefix = ["ip", "netns", "exec", netns_name] if netns_name else []
    for _ in range(attempts):  # the first packet may wait for ARP on a freshly wired port
        if subprocess.run([*prefix, *PING, "-c1", "-W1", ip], capture_output=True).returncode == 0:
            return True
    return False


TCP_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()
"""
TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7777), timeout=3); c.sendall(b"hello k8n")
print(c.recv(100).decode())
"""


def tcp_echo(server_ns: str, server_ip: str, client_ns: str) -> str:
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", TCP_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        out = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", TCP_CLIENT, server_ip],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    finally:
        server.kill()
        server.wait()


async def used_networks() -> list[ipaddress.IPv4Network]:
    async with AsyncIPRoute() as ipr:
        nets = [ipaddress.ip_network(f"{r.get('dst')}/{r['dst_len']}", strict=False)
                for r in await listed(await ipr.get_routes(family=2, table=254)) if r.get("dst")]
        nets += [ipaddress.ip_interface(f"{a.get('address')}/{a['prefixlen']}").network
                 for a in await listed(await ipr.get_addr(family=2))]
    return nets


async def free_subnet() -> str:
    """A /24 of 10.244.0.0/16 that no route or address on this machine touches yet."""
    used = await used_networks()
    candidates = [f"10.244.{i}.0/24" for i in range(100, 250) if f"10.244.{i}.0/24" not in CREATED["subnets"]]
    random.shuffle(candidates)
    for cidr in candidates:
        net = ipaddress.ip_network(cidr)
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0 and u != CLUSTER):
            CREATED["subnets"].add(cidr)
            return cidr
    pytest.fail("no free /24 in 10.244.100.0-10.244.249.0")


async def link_exists(name: str) -> bool:
    async with AsyncIPRoute() as ipr:
        return bool(await ipr.link_lookup(ifname=name))


async def pod_view(netns_name: str) -> dict:
    """What `ip addr` / `ip route` inside the pod would show."""
    async with AsyncIPRoute(netns=netns_name, flags=0) as ns:
        links = {link.get("ifname"): link for link in await listed(await ns.get_links())}
        addrs = [(a.get("label"), f"{a.get('address')}/{a['prefixlen']}")
                 for a in await listed(await ns.get_addr(family=2))]
        default = [r.get("gateway") for r in await listed(await ns.get_routes(family=2, table=254))
                   if r["dst_len"] == 0]
    return {"up": {n for n, link in links.items() if link["flags"] & 1}, "addrs": addrs, "default": default,
            "mtu": {n: link.get("mtu") for n, link in links.items()}}


def iptables_rules(bridge: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"k8n:{bridge}" in line]


async def route_via(cidr: str) -> str | None:
    """The gateway of the main-table route for exactly ``cidr``; "connected" if it has none."""
    net = ipaddress.ip_network(cidr)
    async with AsyncIPRoute() as ipr:
        for r in await listed(await ipr.get_routes(family=2, table=254)):
            if r.get("dst") == str(net.network_address) and r["dst_len"] == net.prefixlen:
                return r.get("gateway") or "connected"
    return None


# ---- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
async def make_node(tmp_path):
    """A factory of PodNetworks ("nodes") with ensure_node done; all torn down afterwards."""
    made: list[PodNetwork] = []

    async def make(cidr: str | None = None) -> PodNetwork:
        name = f"t-{RUN}-{uuid.uuid4().hex[:8]}"
        pn = PodNetwork(name, cidr or await free_subnet(), tmp_path / name)
        CREATED["bridges"].add(pn.bridge)
        made.append(pn)
        await pn.ensure_node()
        return pn

    yield make
    errors = []
    for pn in made:  # every node is torn down even if one teardown fails
        try:
            await pn.teardown()
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def make_pod():
    """A factory of network namespaces standing in for pod sandboxes: (uid, name, path)."""
    made: list[str] = []

    def make() -> tuple[str, str, str]:
        uid = str(uuid.uuid4())
        name = f"k8nt-{RUN}-{uid[:8]}"
        netns.create(name)
        made.append(name)
        CREATED["netns"].add(name)
        CREATED["links"].add(host_ifname(uid))
        return uid, name, f"/var/run/netns/{name}"

    yield make
    for name in made:
        if name in netns.listnetns():
            netns.remove(name)


# ---- tests ---------------------------------------------------------------------------------------

async def test_pods_on_one_node_reach_each_other_and_the_node_reaches_them(make_node, make_pod):
    node = await make_node()
    (uid_a, ns_a, path_a), (uid_b, ns_b, path_b) = make_pod(), make_pod()
    started = time.perf_counter()
    ip_a = await node.attach(uid_a, path_a)
    took_ms = (time.perf_counter() - started) * 1000
    print(f"\nattach of one pod: {took_ms:.1f} ms")
    ip_b = await node.attach(uid_b, path_b)

    net = ipaddress.ip_network(node.pod_cidr)
    assert ip_a != ip_b and {ipaddress.ip_address(ip_a), ipaddress.ip_address(ip_b)} <= set(net.hosts())
    assert node.allocated() == {uid_a: ip_a, uid_b: ip_b}
    view = await pod_view(ns_a)
    assert ("eth0", f"{ip_a}/24") in view["addrs"]
    assert {"lo", "eth0"} <= view["up"]
    assert view["default"] == [node.gateway]

    host = host_ifname(uid_a)
    assert Path(f"/sys/class/net/{host}/master").resolve().name == node.bridge
    assert Path(f"/sys/class/net/{host}/brport/hairpin_mode").read_text().strip() == "1"

    assert ping(ip_b, ns_a) and ping(ip_a, ns_b), "pods on one bridge must reach each other"
    assert ping(ip_a) and ping(ip_b), "the node must reach its pods"
    assert ping(node.gateway, ns_a)
    assert tcp_echo(ns_b, ip_b, ns_a) == "HELLO K8N"


async def test_pods_on_two_nodes_on_one_machine_reach_each_other(make_node, make_pod):
    node1, node2 = await make_node(), await make_node()
    assert node1.bridge != node2.bridge
    (uid_a, ns_a, path_a), (uid_b, ns_b, path_b) = make_pod(), make_pod()
    ip_a = await node1.attach(uid_a, path_a)
    ip_b = await node2.attach(uid_b, path_b)

    # both bridges are connected on this host: no host-gw route is needed (nor added)
    assert await node1.sync_routes({node2.pod_cidr: node2.gateway}) == {}
    assert ping(ip_b, ns_a) and ping(ip_a, ns_b), "pods on two nodes must reach each other"
    assert tcp_echo(ns_a, ip_a, ns_b) == "HELLO K8N"


async def test_attach_is_idempotent_and_repairs_what_is_missing(make_node, make_pod):
    node = await make_node()
    (uid_a, ns_a, path_a), (uid_b, ns_b, path_b) = make_pod(), make_pod()
    ip_a = await node.attach(uid_a, path_a)
    ip_b = await node.attach(uid_b, path_b)
    assert await node.attach(uid_a, path_a) == ip_a
    assert (await pod_view(ns_a))["addrs"].count(("eth0", f"{ip_a}/24")) == 1

    async with AsyncIPRoute() as ipr:  # something removed the host end (and with it the pod's eth0)
        await ipr.link("del", ifname=host_ifname(uid_a))
    assert "eth0" not in (await pod_view(ns_a))["up"]
    assert await node.attach(uid_a, path_a) == ip_a
    assert ping(ip_b, ns_a)
    assert node.allocated() == {uid_a: ip_a, uid_b: ip_b}


async def test_detach_frees_the_ip_and_the_veth(make_node, make_pod):
    node = await make_node()
    (uid_a, ns_a, path_a), (uid_b, ns_b, path_b) = make_pod(), make_pod()
    ip_a = await node.attach(uid_a, path_a)
    await node.attach(uid_b, path_b)

    await node.detach(uid_a)
    assert not await link_exists(host_ifname(uid_a))
    assert "eth0" not in (await pod_view(ns_a))["mtu"]
    assert uid_a not in node.allocated()
    assert not ping(ip_a, attempts=1)
    await node.detach(uid_a)  # idempotent

    netns.remove(ns_b)  # the sandbox went first: its veth went with it
    await node.detach(uid_b)
    assert node.allocated() == {}
    assert not await link_exists(host_ifname(uid_b))


async def test_gc_releases_pods_that_are_not_live(make_node, make_pod):
    node = await make_node()
    pods = [make_pod() for _ in range(3)]
    ips = {uid: await node.attach(uid, path) for uid, _, path in pods}
    live, dead = pods[0][0], {pods[1][0], pods[2][0]}

    released = await node.gc({live})
    assert set(released) == dead
    assert node.allocated() == {live: ips[live]}
    for uid in dead:
        assert not await link_exists(host_ifname(uid))
    assert await link_exists(host_ifname(live)) and ping(ips[live])


async def test_a_restarted_node_keeps_its_allocations(make_node, make_pod):
    node = await make_node()
    uid, ns, path = make_pod()
    ip = await node.attach(uid, path)
    again = PodNetwork(node.node_name, node.pod_cidr, node.state_dir)  # the agent restarted
    await again.ensure_node()
    assert again.allocated() == {uid: ip}
    assert await again.attach(uid, path) == ip
    uid2, _, path2 = make_pod()
    assert await again.attach(uid2, path2) != ip


async def test_ensure_node_is_idempotent(make_node):
    node = await make_node()
    await node.ensure_node()
    await node.ensure_node()
    rules = iptables_rules(node.bridge)
    assert len(rules) == 3, rules
    assert sum(f"-A DOCKER-USER -i {node.bridge}" in r for r in rules) == 1
    assert sum(f"-A DOCKER-USER -o {node.bridge}" in r for r in rules) == 1
    assert sum(f"-A POSTROUTING -s {node.pod_cidr} ! -d 10.244.0.0/16" in r and "MASQUERADE" in r
               for r in rules) == 1
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    async with AsyncIPRoute() as ipr:
        (index,) = await ipr.link_lookup(ifname=node.bridge)
        addrs = [f"{a.get('address')}/{a['prefixlen']}"
                 for a in await listed(await ipr.get_addr(index=index, family=2))]
    assert addrs == [f"{node.gateway}/24"]


async def test_host_gw_routes_follow_the_peers(make_node):
    node, neighbour = await make_node(), await make_node()
    underlay, remote = await free_subnet(), await free_subnet()
    underlay_net = ipaddress.ip_network(underlay)
    my_ip, peer_ip = str(underlay_net.network_address + 1), str(underlay_net.network_address + 2)
    dummy = f"k8nu{RUN}"
    CREATED["links"] |= {dummy, f"{dummy}p"}
    async with AsyncIPRoute() as ipr:  # this host's "InternalIP" on a simulated underlay (a veth pair)
        await ipr.link("add", ifname=dummy, kind="veth", peer={"ifname": f"{dummy}p"})
        (index,) = await ipr.link_lookup(ifname=dummy)
        (peer,) = await ipr.link_lookup(ifname=f"{dummy}p")
        await ipr.addr("add", index=index, address=my_ip, prefixlen=24)
        await ipr.link("set", index=index, state="up")
        await ipr.link("set", index=peer, state="up")
    try:
        peers = {remote: peer_ip,                      # a node elsewhere: routed
                 neighbour.pod_cidr: peer_ip,          # directly connected bridge: skipped
                 await free_subnet(): my_ip,                 # a node on this host: skipped
                 node.pod_cidr: my_ip}                 # ourselves: skipped
        assert await node.sync_routes(peers) == {remote: peer_ip}
        assert await route_via(remote) == peer_ip
        assert await route_via(neighbour.pod_cidr) == "connected"  # the kernel's route only

        restarted = PodNetwork(node.node_name, node.pod_cidr, node.state_dir)
        assert await restarted.sync_routes({}) == {}  # the peer went away: its route goes too
        assert await route_via(remote) is None

        await node.sync_routes({remote: peer_ip})
        await node.teardown()
        assert await route_via(remote) is None
    finally:
        async with AsyncIPRoute() as ipr:
            await ipr.link("del", ifname=dummy)


async def test_teardown_removes_bridge_rules_veths_and_state(make_node, make_pod):
    node = await make_node()
    uid, ns, path = make_pod()
    await node.attach(uid, path)
    await node.teardown()
    assert not await link_exists(node.bridge)
    assert not await link_exists(host_ifname(uid))
    assert iptables_rules(node.bridge) == []
    assert not node.state_dir.exists()
    await node.teardown()  # idempotent


async def test_attach_time_per_pod(make_node, make_pod):
    """Prints the figure (not a timed pass/fail): wall time of attach for 10 pods on one node."""
    node = await make_node()
    pods = [make_pod() for _ in range(10)]
    times, ips = [], set()
    for uid, _, path in pods:
        started = time.perf_counter()
        ips.add(await node.attach(uid, path))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(f"\nattach, 10 pods: median {times[5]:.1f} ms, min {times[0]:.1f} ms, max {times[-1]:.1f} ms")
    assert len(ips) == 10
    assert ping(node.allocated()[pods[-1][0]], pods[0][1])


def test_nothing_leaked():
    """Runs last: every bridge, veth, namespace, rule and route this run made is gone."""
    with IPRoute() as ipr:
        links = {link.get("ifname") for link in ipr.get_links()}
    assert not (CREATED["bridges"] | CREATED["links"]) & links
    assert not CREATED["netns"] & set(netns.listnetns())
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert not [b for b in CREATED["bridges"] if f"k8n:{b}" in saved]
    with IPRoute() as ipr:
        routes = {f"{r.get('dst')}/{r['dst_len']}" for r in ipr.get_routes(family=2, table=254)}
    assert not routes & CREATED["subnets"]
