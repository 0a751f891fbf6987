"""The node bridge: one Linux bridge per node holding the podCIDR gateway address."""

from __future__ import annotations

import errno
from pathlib import Path

from .netlink import AsyncIPRoute, ignoring, link_index, listed, short_hash

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def bridge_name(node_name: str) -> str:
    """``k8nbr-`` + 8 hex characters of a hash of the node name (14 characters, under IFNAMSIZ)."""
    return f"k8nbr-{short_hash(node_name)}"


async def ensure_bridge(ipr: AsyncIPRoute, name: str, gateway: str, prefixlen: int, mtu: int) -> int:
    """Create the bridge if missing, give it the gateway address and ``mtu`` (also when an earlier run
    made it with another), bring it up; returns its index."""
    index = await link_index(ipr, name)
    if index is None:
        with ignoring(errno.EEXIST):  # another task won the race: fine
            await ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        index = await link_index(ipr, name)
    (link,) = await ipr.link("get", index=index)
    if link.get("mtu") != mtu:
        await ipr.link("set", index=index, mtu=mtu)
    addresses = {(a.get("address"), a["prefixlen"]) for a in await listed(await ipr.addr("dump", index=index))}
    if (gateway, prefixlen) not in addresses:
        with ignoring(errno.EEXIST):
            await ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
    await ipr.link("set", index=index, state="up")
    return index


async def bridge_ports(ipr: AsyncIPRoute, bridge_index: int) -> dict[str, int]:
    """Name → index of the links enslaved to the bridge."""
    links = await listed(await ipr.link("dump"))
    return {link.get("ifname"): link["index"] for link in links if link.get("master") == bridge_index}


def enable_ip_forward() -> None:
    if IP_FORWARD.read_text().strip() != "1":
        IP_FORWARD.write_text("1\n")
