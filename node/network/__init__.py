"""Pod networking for one node, with pyroute2: a bridge holding the podCIDR gateway, a veth per pod
whose peer is ``eth0`` in the pod's namespace, host-local IPAM, routes to other nodes' pods (host-gw to a
node on a directly connected network, a VXLAN overlay to the others, see ``overlay``), and the iptables
rules a Docker host needs (see ``firewall``).

All methods are coroutines on pyroute2's asyncio netlink API (sockets into a pod namespace are made by
a short-lived thread that enters it, see ``netlink.netns_iproute``); iptables runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path

from . import bridge as br
from . import firewall, overlay, veth
from .hostports import HostPort, HostPorts
from .ipam import Ipam, IpamError, RangeExhausted
from .netlink import AsyncIPRoute, delete_link, link_index, netns_iproute
from .routes import HostGwRoutes, directly_connected, remote_peers

CLUSTER_CIDR = "10.244.0.0/16"
log = logging.getLogger(__name__)

__all__ = ["PodNetwork", "Ipam", "IpamError", "RangeExhausted", "CLUSTER_CIDR", "HostPort", "HostPorts"]


class PodNetwork:
    """``backend``: how other nodes' pods are reached, ``auto`` (host-gw to a node on a directly connected
    network, VXLAN to the others), ``host-gw`` or ``vxlan``. ``mtu``: the pods' (veths and bridge); default
    the MTU of the link holding ``node_ip`` (1500 when none does), less 50 unless the backend is host-gw."""

    def __init__(self, node_name: str, pod_cidr: str, state_dir: Path, bridge: str | None = None,
                 mtu: int | None = None, cluster_cidr: str = CLUSTER_CIDR, node_ip: str | None = None,
                 backend: str = "auto") -> None:
        self.node_name = node_name
        self.pod_cidr = str(ipaddress.ip_network(pod_cidr))
        self.cluster_cidr = str(ipaddress.ip_network(cluster_cidr))
        self.state_dir = Path(state_dir)
        self.bridge = bridge or br.bridge_name(node_name)
        if len(self.bridge) > 15:
            raise ValueError(f"bridge name {self.bridge!r} is longer than 15 characters")
        self.backend = overlay.check_backend(backend)
        self.mtu = mtu
        self.node_ip = node_ip
        self.ipam = Ipam(self.pod_cidr, self.state_dir / "ipam.json")
        self.gateway = self.ipam.gateway
        self._routes = HostGwRoutes(self.pod_cidr, self.state_dir / "routes.json")
        self._overlay = overlay.VxlanOverlay(self.pod_cidr, node_ip, self.state_dir / "overlay.json")
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
            await self._resolve_mtu(ipr)
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
        """Routes to ``peers`` (other nodes' podCIDR → InternalIP), host-gw or VXLAN as the backend says;
        returns the peers now routed (podCIDR → node IP)."""
        async with AsyncIPRoute() as ipr:
            remote = await remote_peers(ipr, self.pod_cidr, peers)
            direct = set()
            if self.backend == "auto":
                direct = {ip for ip in set(remote.values()) if await directly_connected(ipr, ip)}
            host_gw, vxlan = overlay.split_peers(remote, self.backend, direct)
            before = (dict(self._routes.added), dict(self._overlay.added))
            routed = await self._routes.sync(ipr, host_gw) | await self._overlay.sync(ipr, vxlan)
            if (self._routes.added, self._overlay.added) != before:
                log.info("routes to other nodes' pods: host-gw %s; VXLAN %s", self._routes.added or "none",
                         self._overlay.added or "none")
            return routed

    async def teardown(self) -> None:
        """Remove the bridge, its pods' veths, the rules and routes added, and the state."""
        async with AsyncIPRoute() as ipr:
            await self._routes.clear(ipr)
            await self._overlay.clear(ipr)
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
        return await br.ensure_bridge(ipr, self.bridge, self.gateway, self.ipam.prefixlen,
                                      await self._resolve_mtu(ipr))

    async def _resolve_mtu(self, ipr: AsyncIPRoute) -> int:
        if self.mtu is None:
            _, underlay = await overlay.underlay_link(ipr, self.node_ip)
            self.mtu = overlay.pod_mtu(self.backend, underlay)
        return self.mtu

    def allocated(self) -> dict[str, str]:
        return self.ipam.allocated()
