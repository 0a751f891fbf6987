"""Routes to other nodes' podCIDRs. host-gw: a route ``<peer podCIDR> via <peer node IP>`` per other node
on a directly connected network (the VXLAN overlay, ``overlay``, reaches the others).

The routes this node added are remembered in a state file, so a restarted agent still removes the
routes of nodes that went away.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
from pathlib import Path
from socket import AF_INET

from .netlink import AsyncIPRoute, NetlinkError, ignoring, listed


async def local_networks(ipr: AsyncIPRoute) -> tuple[set[str], set[str]]:
    """This host's IPv4 addresses, and the networks they make directly connected."""
    addresses, networks = set(), set()
    for a in await listed(await ipr.addr("dump", family=AF_INET)):
        ip = a.get("address")
        addresses.add(ip)
        networks.add(str(ipaddress.ip_interface(f"{ip}/{a['prefixlen']}").network))
    return addresses, networks


async def remote_peers(ipr: AsyncIPRoute, own_cidr: str, peers: dict[str, str]) -> dict[str, str]:
    """``peers`` (podCIDR → node IP) less those needing no route: our own range, a bridge of another
    agent on this host (a connected network), a node on this host."""
    addresses, connected = await local_networks(ipr)
    remote = {}
    for cidr, node_ip in peers.items():
        cidr = str(ipaddress.ip_network(cidr))
        if cidr != own_cidr and cidr not in connected and node_ip not in addresses:
            remote[cidr] = node_ip
    return remote


async def directly_connected(ipr: AsyncIPRoute, ip: str) -> bool:
    """True when the kernel reaches ``ip`` with no gateway on the way (flannel's DirectRouting test)."""
    try:
        found = await ipr.route("get", dst=ip)
    except NetlinkError:  # unreachable
        return False
    return bool(found) and all(r.get("gateway") is None for r in found)


def load_state(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def save_state(path: Path, state: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, path)


class HostGwRoutes:
    def __init__(self, own_cidr: str, state_file: Path) -> None:
        self.own_cidr = str(ipaddress.ip_network(own_cidr))
        self.state_file = state_file
        self.added: dict[str, str] = load_state(state_file)

    async def sync(self, ipr: AsyncIPRoute, wanted: dict[str, str]) -> dict[str, str]:
        """Make the routes match ``wanted`` (podCIDR → node IP, see ``remote_peers``); returns the routes
        now installed."""
        for cidr, node_ip in list(self.added.items()):
            if wanted.get(cidr) != node_ip:
                await self._delete(ipr, cidr, node_ip)
        for cidr, node_ip in wanted.items():
            if self.added.get(cidr) != node_ip:
                await ipr.route("replace", dst=cidr, gateway=node_ip)
                self.added[cidr] = node_ip
                save_state(self.state_file, self.added)
        return dict(self.added)

    async def clear(self, ipr: AsyncIPRoute) -> None:
        for cidr, node_ip in list(self.added.items()):
            await self._delete(ipr, cidr, node_ip)
        self.state_file.unlink(missing_ok=True)

    async def _delete(self, ipr: AsyncIPRoute, cidr: str, node_ip: str) -> None:
        with ignoring(errno.ESRCH, errno.ENOENT):
            await ipr.route("del", dst=cidr, gateway=node_ip)
        del self.added[cidr]
        save_state(self.state_file, self.added)
