"""Simulated machines for pod-network tests and benchmarks (root only): every "node" is a network namespace
running the real ``node.network.PodNetwork`` in a process of its own (``ip netns exec``), on a LAN that is a
bridge in a switch namespace; a router namespace has a port on every LAN and forwards between them, knowing
nothing of pod ranges. Each
node namespace is made to look like a Docker host (FORWARD policy DROP, a ``DOCKER-USER`` chain), so the
rules PodNetwork adds are needed. Nothing is created in the machine's own namespace: removing the
namespaces removes everything. Names start with ``t-`` (the leak check looks for them).

    python -m tests.netsim '<request JSON>'   # what a node's process runs (see SimNode.call)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(*cmd: str, ns: str | None = None, check: bool = True) -> str:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    out = subprocess.run([*prefix, *cmd], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} (netns {ns}): {out.stderr.strip()}")
    return out.stdout


def ip_json(ns: str, *args: str) -> list[dict]:
    """``ip -j <args>`` inside ``ns``, parsed (``bridge`` when args start with it)."""
    tool = ["bridge"] if args and args[0] == "bridge" else ["ip"]
    return json.loads(sh(*tool, "-j", "-n", ns, *(args[1:] if tool == ["bridge"] else args)) or "[]")


@dataclass
class SimNode:
    name: str  # the network namespace
    ip: str
    pod_cidr: str
    backend: str
    state_dir: Path
    pods: dict[str, str] = field(default_factory=dict)  # uid → pod netns name

    def call(self, *ops: list) -> list:
        """Run ``ops`` ([op, args...]: ensure, attach uid netns_path, sync peers, teardown) with a
        fresh PodNetwork in this node's namespace (state kept in ``state_dir``, as a restarted agent)."""
        request = {"name": self.name, "pod_cidr": self.pod_cidr, "state_dir": str(self.state_dir),
                   "node_ip": self.ip, "backend": self.backend, "ops": ops}
        out = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-m", "tests.netsim",
                              json.dumps(request)], capture_output=True, text=True, cwd=REPO, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"PodNetwork in {self.name}: {out.stderr.strip()}")
        return json.loads(out.stdout)


class Lab:
    """Switch, router, LANs, nodes and pods of one test; ``close()`` removes every namespace it made."""

    def __init__(self, state_root: Path) -> None:
        self.run = uuid.uuid4().hex[:6]
        self.state_root = state_root
        self.router, self.switch = f"t-{self.run}-r", f"t-{self.run}-s"
        self.namespaces: list[str] = []
        self.nodes: list[SimNode] = []
        self._lans: dict[str, str] = {}  # subnet → bridge in the switch
        self._ns(self.switch)
        self._ns(self.router)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.router)
        sh("ip", "link", "set", "lo", "up", ns=self.router)

    def _ns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        return name

    def _plug(self, ns: str, ifname: str, lan: str, mtu: int = 1500) -> None:
        """A veth from ``ns`` (named ``ifname`` there, up) into the LAN's bridge in the switch."""
        port = f"p{len(self.namespaces)}-{ifname}"[:15]
        sh("ip", "link", "add", ifname, "netns", ns, "mtu", str(mtu), "type", "veth",
           "peer", "name", port, "netns", self.switch, "mtu", str(mtu))
        sh("ip", "link", "set", port, "master", self._lans[lan], "up", ns=self.switch)
        sh("ip", "link", "set", ifname, "up", ns=ns)

    def lan(self, subnet: str) -> str:
        """A LAN: a bridge in the switch, the router on it with the subnet's first address (the nodes' gateway)."""
        net = ipaddress.ip_network(subnet)
        bridge = f"lan{len(self._lans)}"
        sh("ip", "link", "add", bridge, "type", "bridge", ns=self.switch)
        sh("ip", "link", "set", bridge, "up", ns=self.switch)
        self._lans[str(net)] = bridge
        self._plug(self.router, bridge, str(net))
        sh("ip", "addr", "add", f"{net.network_address + 1}/{net.prefixlen}", "dev", bridge, ns=self.router)
        return str(net)

    def node(self, lan: str, pod_cidr: str, backend: str = "auto", mtu: int = 1500) -> SimNode:
        """A node on ``lan`` (its default route via the router) with the real PodNetwork's ensure_node done."""
        net = ipaddress.ip_network(lan)
        index = len(self.nodes)
        name = self._ns(f"t-{self.run}-n{index}")
        host_ip = str(net.network_address + 10 + index)
        self._plug(name, "eth0", str(net), mtu)
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{host_ip}/{net.prefixlen}", "dev", "eth0"],
                    ["ip", "route", "add", "default", "via", str(net.network_address + 1)],
                    # what dockerd does to a host: FORWARD drops unless DOCKER-USER accepts
                    ["iptables", "-N", "DOCKER-USER"], ["iptables", "-A", "DOCKER-USER", "-j", "RETURN"],
                    ["iptables", "-A", "FORWARD", "-j", "DOCKER-USER"], ["iptables", "-P", "FORWARD", "DROP"]):
            sh(*cmd, ns=name)
        node = SimNode(name, host_ip, pod_cidr, backend, self.state_root / name)
        self.nodes.append(node)
        node.call(["ensure"])
        return node

    def pod(self, node: SimNode) -> tuple[str, str]:
        """A namespace standing in for a pod sandbox, wired by the node's PodNetwork: (netns, pod IP)."""
        uid = str(uuid.uuid4())
        name = self._ns(f"t-{self.run}-p{uid[:8]}")
        node.pods[uid] = name
        (ip,) = node.call(["attach", uid, f"/var/run/netns/{name}"])
        return name, ip

    def peers(self, *nodes: SimNode) -> dict[str, str]:
        return {n.pod_cidr: n.ip for n in nodes}

    def sync(self, *nodes: SimNode) -> None:
        """Every node routes to every other one (what each agent's routes loop does)."""
        for n in nodes:
            n.call(["sync", self.peers(*(m for m in nodes if m is not n))])

    def close(self) -> None:
        errors = []
        for node in self.nodes:  # what the agent's drain does; then the namespaces take the rest
            try:
                node.call(["teardown"])
            except Exception as e:
                errors.append(e)
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if errors:
            raise errors[0]


ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); f = c.makefile("rb"); n = int(f.readline()); c.sendall(f.read(n)); c.close()
"""
ECHO_CLIENT = """
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[2]))
c = socket.create_connection((sys.argv[1], 7777), timeout=5)
c.sendall(b"%d\\n" % len(data) + data)
back = b"".join(iter(lambda: c.recv(65536), b""))
print(back == data, c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
"""


def tcp_echo(server_ns: str, server_ip: str, client_ns: str, size: int) -> tuple[bool, int]:
    """Send ``size`` random bytes from ``client_ns`` to an echo server in ``server_ns``: (echoed intact,
    the client's TCP MSS)."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", ECHO_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        out = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", ECHO_CLIENT, server_ip,
                              str(size)], capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            return False, 0
        intact, mss = out.stdout.split()
        return intact == "True", int(mss)
    finally:
        server.kill()
        server.wait()


def ping(ns: str, ip: str, attempts: int = 3) -> bool:
    for _ in range(attempts):  # the first packet may wait for ARP on a freshly wired port
        if subprocess.run(["ip", "netns", "exec", ns, "busybox", "ping", "-c1", "-W1", ip],
                          capture_output=True).returncode == 0:
            return True
    return False


async def _serve(request: dict) -> list:
    from node.network import PodNetwork

    pn = PodNetwork(request["name"], request["pod_cidr"], Path(request["state_dir"]), node_ip=request["node_ip"],
                    backend=request["backend"])
    results = []
    for op, *args in request["ops"]:
        if op == "ensure":
            results.append(await pn.ensure_node())
        elif op == "attach":
            results.append(await pn.attach(*args))
        elif op == "sync":
            results.append(await pn.sync_routes(args[0]))
        elif op == "teardown":
            results.append(await pn.teardown())
        else:
            raise ValueError(f"unknown op {op!r}")
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_serve(json.loads(sys.argv[1])))))
