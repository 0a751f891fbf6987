"""A pod's veth pair: the host end on the node bridge, the peer as ``eth0`` in the pod's namespace."""

from __future__ import annotations

import errno

from .netlink import AsyncIPRoute, ignoring, link_index, short_hash

HAIRPIN = 1  # IFLA_BRPORT_MODE: send frames back out of the port they came in on
LOOPBACK_INDEX = 1  # lo has ifindex 1 in every network namespace


def host_ifname(pod_uid: str) -> str:
    """``veth`` + 8 hex characters of a hash of the pod uid (12 characters, under IFNAMSIZ)."""
    return f"veth{short_hash(pod_uid)}"


async def ensure_pair(ipr: AsyncIPRoute, ns: AsyncIPRoute, host: str, netns_path: str, ifname: str,
                      mtu: int) -> tuple[int, int]:
    """Create the pair with the peer born inside the pod namespace as ``ifname``, replacing stale
    halves (left by an earlier sandbox), setting ``mtu`` on a pair made with another (an agent restarted
    with another network backend); returns (host index, pod-side index)."""
    host_index, pod_index = await link_index(ipr, host), await link_index(ns, ifname)
    if host_index is not None and pod_index is not None:
        (host_link,) = await ipr.link("get", index=host_index)
        (pod_link,) = await ns.link("get", index=pod_index)
        if host_link.get("link") == pod_index and pod_link.get("link") == host_index:
            for side, index, link in ((ipr, host_index, host_link), (ns, pod_index, pod_link)):
                if link.get("mtu") != mtu:
                    await side.link("set", index=index, mtu=mtu)
            return host_index, pod_index
    if host_index is not None:
        await ipr.link("del", index=host_index)
    if pod_index is not None:
        await ns.link("del", index=pod_index)
    await ipr.link("add", ifname=host, kind="veth", mtu=mtu,
                   peer={"ifname": ifname, "net_ns_fd": netns_path, "mtu": mtu})
    return await link_index(ipr, host), await link_index(ns, ifname)


async def configure_pod_side(ns: AsyncIPRoute, index: int, ip: str, prefixlen: int, gateway: str) -> None:
    """Inside the pod namespace: the address, lo and the interface up, default route via the gateway."""
    with ignoring(errno.EEXIST):
        await ns.addr("add", index=index, address=ip, prefixlen=prefixlen)
    await ns.link("set", index=index, state="up")
    await ns.link("set", index=LOOPBACK_INDEX, state="up")
    await ns.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)


async def configure_host_side(ipr: AsyncIPRoute, index: int, bridge_index: int) -> None:
    """The host end: enslaved to the bridge, hairpin on, up."""
    await ipr.link("set", index=index, master=bridge_index, state="up")
    await ipr.brport("set", index=index, mode=HAIRPIN)
