"""Pod network across machines on real kernel objects: simulated nodes (network namespaces looking like
Docker hosts, each running the real PodNetwork in its own process, see tests/netsim.py) on one LAN get
host-gw routes; nodes on two LANs joined by a router that knows nothing of pod ranges get the VXLAN overlay.
Checked with real traffic and with what ``ip route`` / ``ip neigh`` / ``bridge fdb`` / ``iptables -S`` show.
Needs root; everything lives in namespaces this test made, removed also on failure.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest

from node.network.bridge import bridge_name
from node.network.overlay import DEVICE, PORT, VNI, vtep_mac
from tests.netsim import Lab, ip_json, ping, sh, tcp_echo

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables") is None,
    reason="pod network tests need root and iptables (they create namespaces, bridges, VXLAN devices, rules)")

MADE: set[str] = set()
BIG = 256 * 1024  # a TCP payload far larger than one packet: segments at the pods' MTU must get across


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        MADE.update(lab.namespaces)
        lab.close()


@pytest.fixture
def subnets():
    """Distinct (LAN /24 in 172.31.x, pod /24 in 10.244.x) pairs for this test."""
    lans, pods = random.sample(range(100, 250), 4), random.sample(range(100, 250), 4)
    return [(f"172.31.{a}.0/24", f"10.244.{b}.0/24") for a, b in zip(lans, pods)]


def route(ns: str, cidr: str) -> dict | None:
    found = ip_json(ns, "route", "show", "exact", cidr)
    return found[0] if found else None


def has_device(ns: str) -> bool:
    return subprocess.run(["ip", "-n", ns, "link", "show", DEVICE], capture_output=True).returncode == 0


def mtu(ns: str, ifname: str) -> int:
    (link,) = ip_json(ns, "link", "show", ifname)
    return link["mtu"]


def k8n_rules(ns: str) -> list[str]:
    return [r for r in sh("iptables-save", ns=ns).splitlines() if "k8n:" in r]


def assert_pods_talk(a: tuple[str, str], b: tuple[str, str]) -> None:
    (ns_a, ip_a), (ns_b, ip_b) = a, b
    assert ping(ns_a, ip_b) and ping(ns_b, ip_a), "pods on the two nodes must reach each other"
    intact, _ = tcp_echo(ns_b, ip_b, ns_a, BIG)
    assert intact, f"{BIG} bytes over TCP from {ip_a} to {ip_b} and back"


async def test_nodes_on_one_lan_get_host_gw_routes(lab, subnets):
    (lan, cidr0), (_, cidr1) = subnets[:2]
    lan = lab.lan(lan)
    n0, n1 = lab.node(lan, cidr0), lab.node(lan, cidr1)
    pod0, pod1 = lab.pod(n0), lab.pod(n1)
    lab.sync(n0, n1)

    assert route(n0.name, cidr1)["gateway"] == n1.ip and route(n0.name, cidr1)["dev"] == "eth0"
    assert route(n1.name, cidr0)["gateway"] == n0.ip
    assert not has_device(n0.name) and not has_device(n1.name), "no overlay when every peer is on the LAN"
    assert_pods_talk(pod0, pod1)


async def test_nodes_behind_a_router_get_the_vxlan_overlay(lab, subnets):
    (lan_a, cidr0), (lan_b, cidr1) = subnets[:2]
    lan_a, lan_b = lab.lan(lan_a), lab.lan(lan_b)
    n0, n1 = lab.node(lan_a, cidr0), lab.node(lan_b, cidr1)
    pod0, pod1 = lab.pod(n0), lab.pod(n1)

    n0.backend = "host-gw"  # the peer's address is behind the router: host-gw cannot route to it
    with pytest.raises(RuntimeError, match="Nexthop has invalid gateway|unreachable"):
        n0.call(["sync", lab.peers(n1)])
    n0.backend = "auto"
    lab.sync(n0, n1)

    for node, peer in ((n0, n1), (n1, n0)):
        r = route(node.name, peer.pod_cidr)
        assert (r["dev"], r["gateway"], r["flags"]) == (DEVICE, peer.pod_cidr.split("/")[0], ["onlink"])
        (neigh,) = ip_json(node.name, "neigh", "show", "dev", DEVICE)
        assert (neigh["dst"], neigh["lladdr"], neigh["state"]) == (peer.pod_cidr.split("/")[0],
                                                                   vtep_mac(peer.ip), ["PERMANENT"])
        (fdb,) = ip_json(node.name, "bridge", "fdb", "show", "dev", DEVICE)
        assert (fdb["mac"], fdb["dst"], fdb["state"]) == (vtep_mac(peer.ip), peer.ip, "permanent")
        (link,) = ip_json(node.name, "-d", "link", "show", DEVICE)
        vx = link["linkinfo"]["info_data"]
        assert (vx["id"], vx["port"], vx["local"], vx["learning"]) == (VNI, PORT, node.ip, False)
        assert link["address"] == vtep_mac(node.ip)
        assert mtu(node.name, DEVICE) == 1450

    assert mtu(pod0[0], "eth0") == mtu(pod1[0], "eth0") == 1450, "pods' MTU leaves room for the encapsulation"
    assert_pods_talk(pod0, pod1)
    _, mss = tcp_echo(pod1[0], pod1[1], pod0[0], 10)
    assert mss <= 1450 - 40  # (less 12 bytes with TCP timestamps); 1448 at MTU 1500
    assert ping(n0.name, pod1[1]), "a node reaches another node's pods (from its VXLAN address)"

    # traffic forwarded into the overlay from the LAN (as a NodePort DNAT'd to a pod elsewhere would be),
    # through a node whose FORWARD policy drops
    sh("ip", "route", "add", cidr1, "via", n0.ip, ns=lab.router)
    assert ping(lab.router, pod1[1])


async def test_vxlan_can_be_forced_on_one_lan_and_follows_a_node_ip_change(lab, subnets):
    (lan, cidr0), (_, cidr1) = subnets[:2]
    lan = lab.lan(lan)
    n0, n1 = lab.node(lan, cidr0, backend="vxlan"), lab.node(lan, cidr1, backend="vxlan")
    pod0, pod1 = lab.pod(n0), lab.pod(n1)
    lab.sync(n0, n1)

    assert route(n0.name, cidr1)["dev"] == DEVICE and route(n1.name, cidr0)["dev"] == DEVICE
    assert_pods_talk(pod0, pod1)

    new_ip = n1.ip.rsplit(".", 1)[0] + ".99"  # n1's address changes: its agent and the others re-sync
    sh("ip", "addr", "del", f"{n1.ip}/24", "dev", "eth0", ns=n1.name)
    sh("ip", "addr", "add", f"{new_ip}/24", "dev", "eth0", ns=n1.name)
    sh("ip", "route", "add", "default", "via", lan.replace(".0/24", ".1"), ns=n1.name)
    n1.ip = new_ip
    lab.sync(n0, n1)
    (link,) = ip_json(n1.name, "-d", "link", "show", DEVICE)
    assert (link["linkinfo"]["info_data"]["local"], link["address"]) == (new_ip, vtep_mac(new_ip))
    assert [f["dst"] for f in ip_json(n0.name, "bridge", "fdb", "show", "dev", DEVICE)] == [new_ip]
    assert_pods_talk(pod0, pod1)


async def test_the_pods_mtu_follows_the_backend_and_the_underlay_also_for_existing_pods(lab, subnets):
    (lan, cidr0), (_, cidr1) = subnets[:2]
    lan = lab.lan(lan)
    jumbo = lab.node(lan, cidr1, mtu=9000)
    assert mtu(lab.pod(jumbo)[0], "eth0") == 9000 - 50

    n0 = lab.node(lan, cidr0, backend="host-gw")
    pod_ns, _ = lab.pod(n0)
    (uid,) = n0.pods
    assert mtu(pod_ns, "eth0") == 1500

    n0.backend = "auto"  # the agent restarted with the overlay possible: it re-attaches the pods it adopts
    n0.call(["ensure"], ["attach", uid, f"/var/run/netns/{pod_ns}"])
    assert mtu(pod_ns, "eth0") == 1450
    assert mtu(n0.name, bridge_name(n0.name)) == 1450


async def test_peers_leaving_take_their_entries_and_teardown_leaves_nothing(lab, subnets):
    (lan_a, cidr0), (lan_b, cidr1), (_, cidr2) = subnets[:3]
    lan_a, lan_b = lab.lan(lan_a), lab.lan(lan_b)
    n0, n1, n2 = lab.node(lan_a, cidr0), lab.node(lan_b, cidr1), lab.node(lan_b, cidr2)
    pod0, pod1 = lab.pod(n0), lab.pod(n1)
    lab.sync(n0, n1, n2)
    assert {r["dst"] for r in ip_json(n0.name, "route", "show", "dev", DEVICE)} == {cidr1, cidr2}

    n0.call(["sync", lab.peers(n1)])  # n2 left (each call is a fresh PodNetwork: as after a restart)
    assert [r["dst"] for r in ip_json(n0.name, "route", "show", "dev", DEVICE)] == [cidr1]
    assert [n["dst"] for n in ip_json(n0.name, "neigh", "show", "dev", DEVICE)] == [cidr1.split("/")[0]]
    assert [f["dst"] for f in ip_json(n0.name, "bridge", "fdb", "show", "dev", DEVICE)] == [n1.ip]
    assert_pods_talk(pod0, pod1)

    n0.call(["sync", {}])  # the last VXLAN peer left: no device, no rules for it
    assert not has_device(n0.name)
    assert not [r for r in k8n_rules(n0.name) if DEVICE in r]

    n0.call(["sync", lab.peers(n1)], ["teardown"])
    assert not has_device(n0.name)
    assert k8n_rules(n0.name) == []
    assert route(n0.name, cidr1) is None
    assert not [link for link in ip_json(n0.name, "link", "show") if link["ifname"] != "lo" and
                link["ifname"] != "eth0"], "teardown removes the bridge, the veths and the VXLAN device"
    assert not n0.state_dir.exists()


def test_nothing_leaked():
    """Runs last: every namespace this module made (and everything in it) is gone."""
    listed = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    assert MADE and not MADE & listed
