"""Pod networking for one node, with pyroute2: a bridge holding the podCIDR gateway, a veth per pod
whose peer is ``eth0`` in the pod's namespace, host-local IPAM, host-gw routes to other nodes, and the
iptables rules a Docker host needs (see ``firewall``).

All methods are coroutines on pyroute2's asyncio netlink API (sockets into a pod namespace are made by
a short-lived thread that enters it, see ``netlink.netns_iproute``); iptables runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from pathlib import Path

from . import bridge as br
from . import firewall, veth
from .hostports import HostPort, HostPorts
from .ipam import Ipam, IpamError, RangeExhausted
from .netlink import AsyncIPRoute, delete_link, link_index, netns_iproute
from .routes import HostGwRoutes

CLUSTER_CIDR = "10.244.0.0/16"

__all__ = ["PodNetwork", "Ipam", "IpamError", "RangeExhausted", "CLUSTER_CIDR", "HostPort", "HostPorts"]


class PodNetwork:
    def __init__(self, node_name: str, pod_cidr: str, state_dir: Path, bridge: str | None = None,
                 mtu: int = 1500, cluster_cidr: str = CLUSTER_CIDR, node_ip: str | None = None) -> None:
        self.node_name = node_name
        self.pod_cidr = str(ipaddress.ip_network(pod_cidr))
        self.cluster_cidr = str(ipaddress.ip_network(cluster_cidr))
        self.state_dir = Path(state_dir)
        self.bridge = bridge or br.bridge_name(node_name)
        if len(self.bridge) > 15:
            raise ValueError(f"bridge name {self.bridge!r} is longer than 15 characters")
        self.mtu = mtu
        self.ipam = Ipam(self.pod_cidr, self.state_dir / "ipam.json")
        self.gateway = self.ipam.gateway
        self._routes = HostGwRoutes(self.pod_cidr, self.state_dir / "routes.json")
        self._rules = firewall.bridge_rules(self.bridge, self.pod_cidr, self.cluster_cidr)
        self.hostports = HostPorts(node_name, node_ip or self.gateway)  # hostPort DNAT on the node's address

    def __repr__(self) -> str:
        return f"PodNetwork({self.node_name!r}, {self.pod_cidr!r}, bridge={self.bridge!r})"

    async def ensure_node(self) -> None:
        """Bridge with the gateway address, IP forwarding, DOCKER-USER accepts, masquerade. Idempotent."""
        async with AsyncIPRoute() as ipr:
            await self._ensure_bridge(ipr)
        br.enable_ip_forward()
        await firewall.ensure_rules(self._rules)

    async def attach(self, pod_uid: str, netns_path: str, ifname: str = "eth0") -> str:
        """Wire the pod's namespace to the bridge; returns its IP. Idempotent (repairs what is missing)."""
        ip = self.ipam.allocate(pod_uid)
        host = veth.host_ifname(pod_uid)
        async with AsyncIPRoute() as ipr:
            bridge_index = await link_index(ipr, self.bridge)
            if bridge_index is None:  # repaired here; the rules are ensure_node's job
                bridge_index = await self._ensure_bridge(ipr)
            async with netns_iproute(netns_path) as ns:
                host_index, pod_index = await veth.ensure_pair(ipr, ns, host, netns_path, ifname, self.mtu)
                await asyncio.gather(
                    veth.configure_pod_side(ns, pod_index, ip, self.ipam.prefixlen, self.gateway),
                    veth.configure_host_side(ipr, host_index, bridge_index))
        return ip

    async def map_host_ports(self, pod_uid: str, pod_ip: str, ports: list[HostPort]) -> None:
        """DNAT the node's ``hostPort``s to the pod (see ``hostports``); ``detach`` removes them."""
        await self.hostports.set(pod_uid, pod_ip, ports)

    async def detach(self, pod_uid: str) -> None:
        """Delete the pod's veth (its peer goes with it), its hostPort mappings, and release its IP. Idempotent."""
        await self.hostports.remove(pod_uid)
        async with AsyncIPRoute() as ipr:
            await delete_link(ipr, veth.host_ifname(pod_uid))
        self.ipam.release(pod_uid)

    async def gc(self, live_pod_uids: set[str]) -> list[str]:
        """Detach every pod not in ``live_pod_uids`` (IPs and bridge ports); returns the uids released."""
        dead = [uid for uid in self.ipam.allocated() if uid not in live_pod_uids]
        for uid in dead:
            await self.detach(uid)
        for uid in [uid for uid in self.hostports.pods if uid not in live_pod_uids]:
            self.hostports.pods.pop(uid, None)
        await self.hostports.sync()  # also drops what an earlier run left for pods gone since
        live_ports = {veth.host_ifname(uid) for uid in live_pod_uids}
        async with AsyncIPRoute() as ipr:
            index = await link_index(ipr, self.bridge)
            if index is not None:
                for name in (await br.bridge_ports(ipr, index)).keys() - live_ports:
                    await delete_link(ipr, name)
        return dead

    async def sync_routes(self, peers: dict[str, str]) -> dict[str, str]:
        """host-gw routes for ``peers`` (other nodes' podCIDR → InternalIP); returns the routes installed."""
        async with AsyncIPRoute() as ipr:
            return await self._routes.sync(ipr, peers)

    async def teardown(self) -> None:
        """Remove the bridge, its pods' veths, the rules and routes added, and the state."""
        async with AsyncIPRoute() as ipr:
            await self._routes.clear(ipr)
            index = await link_index(ipr, self.bridge)
            if index is not None:
                for name in await br.bridge_ports(ipr, index):
                    await delete_link(ipr, name)
            await delete_link(ipr, self.bridge)
        await firewall.delete_rules(self._rules)
        await self.hostports.clear()
        self.ipam.clear()
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()  # only if nothing else lives there

    async def _ensure_bridge(self, ipr: AsyncIPRoute) -> int:
        return await br.ensure_bridge(ipr, self.bridge, self.gateway, self.ipam.prefixlen, self.mtu)

    def allocated(self) -> dict[str, str]:
        return self.ipam.allocated()
