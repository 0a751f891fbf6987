"""Small helpers over pyroute2's asyncio API shared by the network modules."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["AsyncIPRoute", "NetlinkError", "short_hash", "ignoring", "listed", "link_index", "delete_link",
           "netns_iproute", "socket_in"]

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def short_hash(text: str) -> str:
    """Eight hex characters derived from ``text``, for interface names (at most 15 characters)."""
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@contextmanager
def ignoring(*codes: int) -> Iterator[None]:
    """Swallow netlink errors with one of the given errno codes (EEXIST on add, ENODEV on delete, …)."""
    try:
        yield
    except NetlinkError as e:
        if e.code not in codes:
            raise


async def listed(result) -> list:
    """pyroute2's async dumps answer an async generator, single requests a list: always give a list."""
    if hasattr(result, "__aiter__"):
        return [msg async for msg in result]
    return list(result)


async def link_index(ipr: AsyncIPRoute, ifname: str) -> int | None:
    found = await ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


async def delete_link(ipr: AsyncIPRoute, ifname: str) -> bool:
    """Delete a link by name; False if it was not there."""
    try:
        await ipr.link("del", ifname=ifname)
        return True
    except NetlinkError as e:
        if e.code in (errno.ENODEV, errno.ENOENT):
            return False
        raise


def socket_in(netns_path: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created inside the network namespace at ``netns_path`` (it stays there whichever thread uses it).

    A socket belongs to the namespace it was created in, so a throw-away thread enters the namespace (setns
    affects only the calling thread), creates the socket and exits. For netlink this is what
    ``AsyncIPRoute(netns=...)`` does in a forked child, at a fifth of the cost (~2 ms instead of ~13 ms).
    """
    result: dict[str, object] = {}

    def enter_and_create() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns: {os.strerror(code)}", netns_path)
            finally:
                os.close(fd)
            result["sock"] = socket.socket(family, kind, proto)
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    thread = threading.Thread(target=enter_and_create, name="k8n-netns-enter")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["sock"]  # type: ignore[return-value]


def _netlink_fd_in(netns_path: str) -> int:
    """A NETLINK_ROUTE socket created inside the namespace at ``netns_path``, as a raw fd."""
    return socket_in(netns_path, socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE).detach()


def netns_iproute(netns_path: str) -> AsyncIPRoute:
    """An AsyncIPRoute speaking to the namespace at ``netns_path`` (never creates one)."""
    return AsyncIPRoute(fileno=_netlink_fd_in(netns_path))
