"""VXLAN overlay between nodes that share no link, as flannel's ``vxlan`` backend does.

One VXLAN device per node (``k8n.vx``, VNI 1, UDP port 8472, no learning) whose address is the node's
own podCIDR network address (/32), so the node itself talks to remote pods from an address they can
answer. Per peer node: ``<peer podCIDR> via <peer podCIDR network address> dev k8n.vx onlink``, a
permanent neighbour entry giving that gateway the peer's VTEP MAC, and an fdb entry sending that MAC
to the peer's node IP. A VTEP MAC is derived from its node IP (:func:`vtep_mac`), so nodes need to
exchange nothing beyond what the Node objects already say (podCIDR and InternalIP).

The device exists only while a peer needs it; the peers this node added are remembered in a state file,
so a restarted agent still removes the entries of nodes that went away.

With ``auto`` (flannel's vxlan backend with DirectRouting) a peer whose node IP is on a directly
connected network of ours gets a host-gw route instead (``routes.HostGwRoutes``); pods get the MTU of
the underlay minus the 50 bytes of VXLAN encapsulation whenever a peer may need the overlay.
"""

from __future__ import annotations

import errno
import ipaddress
from pathlib import Path

from . import firewall
from .netlink import AsyncIPRoute, delete_link, ignoring, link_index, listed
from .routes import load_state, save_state

DEVICE = "k8n.vx"
VNI = 1
PORT = 8472  # flannel's (and the Linux kernel's historical default), not IANA's 4789
OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 bytes
DEFAULT_UNDERLAY_MTU = 1500
BACKENDS = ("auto", "host-gw", "vxlan")
RTNH_F_ONLINK = 4
NTF_SELF = 0x02
NUD_PERMANENT = 0x80


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"network backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return backend


def vtep_mac(node_ip: str) -> str:
    """The VTEP MAC of the node at ``node_ip``: ``0a:58:`` + its four bytes (0x0a: locally administered,
    unicast), the same on every node that computes it."""
    return ":".join(f"{b:02x}" for b in (0x0A, 0x58, *ipaddress.IPv4Address(node_ip).packed))


def backend_for(backend: str, direct: bool) -> str:
    """The backend a peer gets: the forced one, or with ``auto`` host-gw when its node IP is directly
    connected (no gateway on the way), VXLAN otherwise."""
    if backend == "auto":
        return "host-gw" if direct else "vxlan"
    return check_backend(backend)


def split_peers(peers: dict[str, str], backend: str, direct_ips: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``peers`` (podCIDR → node IP) as (host-gw peers, VXLAN peers)."""
    host_gw, vxlan = {}, {}
    for cidr, node_ip in peers.items():
        (host_gw if backend_for(backend, node_ip in direct_ips) == "host-gw" else vxlan)[cidr] = node_ip
    return host_gw, vxlan


def pod_mtu(backend: str, underlay_mtu: int = DEFAULT_UNDERLAY_MTU) -> int:
    """The pods' MTU: the underlay's, less the encapsulation when a peer may be reached over VXLAN
    (``auto`` cannot know whether a future peer will need it)."""
    return underlay_mtu if check_backend(backend) == "host-gw" else underlay_mtu - OVERHEAD


async def underlay_link(ipr: AsyncIPRoute, node_ip: str | None) -> tuple[int | None, int]:
    """(index, MTU) of the link holding ``node_ip``; (None, 1500) when no local link does."""
    if node_ip:
        for a in await listed(await ipr.addr("dump", family=2)):
            if a.get("address") == node_ip:
                (link,) = await ipr.link("get", index=a["index"])
                return a["index"], link.get("mtu") or DEFAULT_UNDERLAY_MTU
    return None, DEFAULT_UNDERLAY_MTU


def gateway_of(cidr: str) -> str:
    """A podCIDR's network address: the address its node puts on its VXLAN device (flannel's layout)."""
    return str(ipaddress.ip_network(cidr).network_address)


class VxlanOverlay:
    def __init__(self, own_cidr: str, node_ip: str | None, state_file: Path, device: str = DEVICE) -> None:
        self.own_cidr = str(ipaddress.ip_network(own_cidr))
        self.node_ip = node_ip
        self.state_file = state_file
        self.device = device
        self.added: dict[str, str] = load_state(state_file)
        self.rules = firewall.forward_rules(device)

    async def sync(self, ipr: AsyncIPRoute, peers: dict[str, str]) -> dict[str, str]:
        """Make the device and the per-peer entries match ``peers`` (podCIDR → node IP, all to be reached
        over VXLAN); returns the peers now reached through it. No peers: no device."""
        if not peers:
            await self.clear(ipr)
            return {}
        index = await self._ensure_device(ipr, next(iter(peers.values())))
        await firewall.ensure_rules(self.rules)
        for cidr, node_ip in list(self.added.items()):
            if peers.get(cidr) != node_ip:
                await self._delete(ipr, index, cidr, node_ip)
        for cidr, node_ip in peers.items():
            if self.added.get(cidr) != node_ip:
                await self._add(ipr, index, cidr, node_ip)
        return dict(self.added)

    async def clear(self, ipr: AsyncIPRoute) -> None:
        """Remove the device (its routes, neighbours and fdb entries go with it), the rules and the state, if
        this node set them up (its state file says so: written before the device is made)."""
        if not self.state_file.exists():
            return
        await delete_link(ipr, self.device)
        await firewall.delete_rules(self.rules)
        self.added = {}
        self.state_file.unlink(missing_ok=True)

    async def _ensure_device(self, ipr: AsyncIPRoute, some_peer: str) -> int:
        local = self.node_ip or await _source_address(ipr, some_peer)
        index = await link_index(ipr, self.device)
        if index is not None:
            (link,) = await ipr.link("get", index=index)
            made = (link.get(("linkinfo", "data", "vxlan_id")), link.get(("linkinfo", "data", "vxlan_local")),
                    link.get(("linkinfo", "data", "vxlan_port")), link.get("address"))
            if made != (VNI, local, PORT, vtep_mac(local)):  # e.g. the node's IP changed
                await delete_link(ipr, self.device)
                index = None
        if index is None:
            self.added = {}  # whatever an earlier run added went with the device
            save_state(self.state_file, self.added)
            lower, mtu = await underlay_link(ipr, local)
            spec = {"vxlan_link": lower} if lower is not None else {}
            with ignoring(errno.EEXIST):
                await ipr.link("add", ifname=self.device, kind="vxlan", vxlan_id=VNI, vxlan_local=local,
                               vxlan_port=PORT, vxlan_learning=0, address=vtep_mac(local), mtu=mtu - OVERHEAD,
                               **spec)
            index = await link_index(ipr, self.device)
        address = gateway_of(self.own_cidr)
        if address not in {a.get("address") for a in await listed(await ipr.addr("dump", index=index))}:
            with ignoring(errno.EEXIST):
                await ipr.addr("add", index=index, address=address, prefixlen=32)
        await ipr.link("set", index=index, state="up")
        return index

    async def _add(self, ipr: AsyncIPRoute, index: int, cidr: str, node_ip: str) -> None:
        gateway, mac = gateway_of(cidr), vtep_mac(node_ip)
        await ipr.neigh("replace", dst=gateway, lladdr=mac, ifindex=index, state=NUD_PERMANENT)
        await ipr.fdb("replace", ifindex=index, lladdr=mac, dst=node_ip, state=NUD_PERMANENT, flags=NTF_SELF)
        await ipr.route("replace", dst=cidr, gateway=gateway, oif=index, flags=RTNH_F_ONLINK)
        self.added[cidr] = node_ip
        save_state(self.state_file, self.added)

    async def _delete(self, ipr: AsyncIPRoute, index: int, cidr: str, node_ip: str) -> None:
        gateway, mac = gateway_of(cidr), vtep_mac(node_ip)
        with ignoring(errno.ESRCH, errno.ENOENT):
            await ipr.route("del", dst=cidr, gateway=gateway, oif=index)
        with ignoring(errno.ESRCH, errno.ENOENT):
            await ipr.neigh("del", dst=gateway, lladdr=mac, ifindex=index)
        if node_ip not in {ip for c, ip in self.added.items() if c != cidr}:  # a node with two ranges
            with ignoring(errno.ESRCH, errno.ENOENT):
                await ipr.fdb("del", ifindex=index, lladdr=mac, dst=node_ip, flags=NTF_SELF)
        del self.added[cidr]
        save_state(self.state_file, self.added)


async def _source_address(ipr: AsyncIPRoute, peer_ip: str) -> str:
    """The address this host would send from to ``peer_ip`` (when the node IP was not given)."""
    (route,) = await ipr.route("get", dst=peer_ip)
    return route.get("prefsrc")
