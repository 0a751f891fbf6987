"""host-gw routing: a route ``<peer podCIDR> via <peer node IP>`` per other node.

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

from .netlink import AsyncIPRoute, ignoring, listed


async def local_networks(ipr: AsyncIPRoute) -> tuple[set[str], set[str]]:
    """This host's IPv4 addresses, and the networks they make directly connected."""
    addresses, networks = set(), set()
    for a in await listed(await ipr.addr("dump", family=AF_INET)):
        ip = a.get("address")
        addresses.add(ip)
        networks.add(str(ipaddress.ip_interface(f"{ip}/{a['prefixlen']}").network))
    return addresses, networks


class HostGwRoutes:
    def __init__(self, own_cidr: str, state_file: Path) -> None:
        self.own_cidr = str(ipaddress.ip_network(own_cidr))
        self.state_file = state_file
        self.added: dict[str, str] = self._load()

    async def sync(self, ipr: AsyncIPRoute, peers: dict[str, str]) -> dict[str, str]:
        """Make the routes match ``peers`` (podCIDR → node IP); returns the routes now installed."""
        addresses, connected = await local_networks(ipr)
        wanted: dict[str, str] = {}
        for cidr, node_ip in peers.items():
            cidr = str(ipaddress.ip_network(cidr))
            if cidr == self.own_cidr or cidr in connected or node_ip in addresses:
                continue  # our own range, a bridge of another agent on this host, or a node on this host
            wanted[cidr] = node_ip
        for cidr, node_ip in list(self.added.items()):
            if wanted.get(cidr) != node_ip:
                await self._delete(ipr, cidr, node_ip)
        for cidr, node_ip in wanted.items():
            if self.added.get(cidr) != node_ip:
                await ipr.route("replace", dst=cidr, gateway=node_ip)
                self.added[cidr] = node_ip
                self._save()
        return dict(self.added)

    async def clear(self, ipr: AsyncIPRoute) -> None:
        for cidr, node_ip in list(self.added.items()):
            await self._delete(ipr, cidr, node_ip)
        self.state_file.unlink(missing_ok=True)

    async def _delete(self, ipr: AsyncIPRoute, cidr: str, node_ip: str) -> None:
        with ignoring(errno.ESRCH, errno.ENOENT):
            await ipr.route("del", dst=cidr, gateway=node_ip)
        del self.added[cidr]
        self._save()

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.tmp")
        tmp.write_text(json.dumps(self.added, sort_keys=True))
        os.replace(tmp, self.state_file)

