"""hostPort: ``<node address>:hostPort`` (``hostIP`` when a port names one) DNATed to ``podIP:containerPort`` per
protocol, in an nftables table of this node's own (``ip k8n-hp-<hash of node name>``, so two agents on one machine
never touch each other's rules), as the CNI portmap plugin does for the kubelet:

- ``nat-prerouting`` (traffic from elsewhere and from pods) and ``nat-output`` (from the node itself) jump to
  ``hostports``: one ``ip daddr . l4proto . dport → dnat`` rule per mapping;
- ``nat-postrouting`` masquerades the hairpin case (a pod reaching its own hostPort), as portmap does.

The table is rewritten whole in one ``nft -j -f -`` transaction on every change (a node has few host ports) and
deleted when the last mapping goes. Expressions and the transaction runner are the service proxy's
(``node.proxy.nft``)."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from dataclasses import dataclass

from node.proxy.model import PROTOCOLS
from node.proxy.nft import DADDR, DPORT, FAMILY, L4PROTO, SADDR, Tx, _jump, _match, delete_table, run

CHAINS = (("nat-prerouting", "prerouting", -100), ("nat-output", "output", -100), ("nat-postrouting", "postrouting",
                                                                                     100))
CT_DNAT = _match({"ct": {"key": "status"}}, "dnat", "in")


@dataclass(frozen=True, order=True)
class HostPort:
    protocol: str  # nft's name: tcp, udp, sctp
    host_ip: str  # "" — the node's address
    host_port: int
    container_port: int


def table_name(node_name: str) -> str:
    return f"k8n-hp-{hashlib.sha256(node_name.encode()).hexdigest()[:8]}"


def host_ports(pod: dict) -> list[HostPort]:
    """The hostPort mappings a pod asks for (every container's ports with a hostPort, init containers too)."""
    spec = pod.get("spec") or {}
    out: set[HostPort] = set()
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            for p in (c or {}).get("ports") or ():
                hp, cp = p.get("hostPort"), p.get("containerPort")
                proto = PROTOCOLS.get(p.get("protocol") or "TCP")
                host_ip = str(p.get("hostIP") or "")
                if isinstance(hp, int) and isinstance(cp, int) and 0 < hp < 65536 and 0 < cp < 65536 and proto \
                        and (not host_ip or _ipv4(host_ip)):  # the table is IPv4's, as pod networking is
                    out.add(HostPort(proto, host_ip, hp, cp))
    return sorted(out)


def _ipv4(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def render(table: str, node_ip: str, pods: dict[str, tuple[str, tuple[HostPort, ...]]]) -> Tx:
    """The whole table for ``pods`` (uid → (pod IP, mappings)), replacing what was there atomically."""
    tx = Tx(table)
    for verb in ("add", "delete", "add"):
        tx.cmds.append({verb: {"table": {"family": FAMILY, "name": table}}})
    for name, hook, prio in CHAINS:
        tx.add("chain", name=name, type="nat", hook=hook, prio=prio, policy="accept")
    tx.add("chain", name="hostports")
    tx.rules("nat-prerouting", ((_jump("hostports"),),))
    tx.rules("nat-output", ((_jump("hostports"),),))
    for _, (pod_ip, ports) in sorted(pods.items()):
        for hp in ports:
            address = hp.host_ip if hp.host_ip and hp.host_ip != "0.0.0.0" else node_ip
            tx.rules("hostports", ((_match(DADDR, address), _match(L4PROTO, hp.protocol), _match(DPORT, hp.host_port),
                                    {"dnat": {"addr": pod_ip, "port": hp.container_port}}),))
            tx.rules("nat-postrouting", ((_match(SADDR, pod_ip), _match(DADDR, pod_ip), _match(L4PROTO, hp.protocol),
                                          _match(DPORT, hp.container_port), CT_DNAT, {"masquerade": None}),))
    return tx


class HostPorts:
    """The node's hostPort table: ``set`` a pod's mappings, ``remove`` them, ``clear`` the table."""

    def __init__(self, node_name: str, node_ip: str) -> None:
        self.table = table_name(node_name)
        self.node_ip = node_ip
        self.pods: dict[str, tuple[str, tuple[HostPort, ...]]] = {}
        self._lock = asyncio.Lock()

    async def set(self, uid: str, pod_ip: str, ports: list[HostPort]) -> None:
        want = (pod_ip, tuple(ports))
        if not ports:
            await self.remove(uid)
        elif self.pods.get(uid) != want:
            self.pods[uid] = want
            await self.sync()

    async def remove(self, uid: str) -> None:
        if self.pods.pop(uid, None) is not None:
            await self.sync()

    async def sync(self) -> None:
        """Write the table as ``pods`` says (deleted when empty)."""
        async with self._lock:
            if self.pods:
                await run(render(self.table, self.node_ip, self.pods).payload())
            else:
                await delete_table(self.table)

    async def clear(self) -> None:
        self.pods.clear()
        await self.sync()
