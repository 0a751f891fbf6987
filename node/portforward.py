"""Port forwarding on the node (the ``portforward`` node call, ``bus.nodecalls.PortForwardRequest``): one call per
forwarded connection. The agent connects to the port on the pod's loopback from inside the pod's network namespace
(the sandbox's; the socket is created there by a thread that enters it, ``node.network.netlink.socket_in``), answers
the call, and relays the bytes both ways on the call's session subjects (``bus.relay``) until both directions have
ended or either side gives up: the pod closing its side ends the stream after a short grace for the other
direction (as containerd does), the caller's reset or silence closes the connection at once.

A port nothing listens on is refused with the message the kubelet writes on the port's error stream
(``error forwarding port 80 to pod <sandbox>, uid : failed to execute portforward in network namespace ...``)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from typing import Any, Iterable

from bus import errors
from bus.relay import CHUNK, Relay, RelayError
from node.network.netlink import socket_in

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 5.0
OTHER_DIRECTION_GRACE = 1.0  # after the pod closed its side, how long the caller's direction may still run


def _go_error(e: OSError) -> str:
    """An OSError as Go's net package words a syscall error (``connection refused``)."""
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


def find_sandbox(workers: Iterable[Any], namespace: str, pod: str) -> Any:
    """The running sandbox of the pod; NotFound when this node does not run it, BadRequest when it has none."""
    for w in workers:
        meta = (w.pod or {}).get("metadata") or {}
        if meta.get("name") == pod and meta.get("namespace") == namespace:
            if w.sandbox is None:
                raise errors.bad_request(f'unable to forward port: pod "{pod}" has no running sandbox')
            return w.sandbox
    raise errors.not_found("pods", pod)


async def _dial(netns_path: str, family: int, address: tuple) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = await loop.run_in_executor(None, socket_in, netns_path, family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, address), CONNECT_TIMEOUT)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect(sandbox: Any, port: int) -> socket.socket:
    """A TCP connection to ``localhost:port`` inside the sandbox's network namespace (IPv4, then IPv6), or an
    ApiError worded as the kubelet's."""
    try:
        return await _dial(sandbox.netns_path, socket.AF_INET, ("127.0.0.1", port))
    except (OSError, asyncio.TimeoutError) as e:
        err4 = f"dial tcp4 127.0.0.1:{port}: " + ("i/o timeout" if isinstance(e, asyncio.TimeoutError)
                                                   else f"connect: {_go_error(e)}")
    try:
        return await _dial(sandbox.netns_path, socket.AF_INET6, ("::1", port))
    except (OSError, asyncio.TimeoutError) as e:
        err6 = f"dial tcp6 [::1]:{port}: " + ("i/o timeout" if isinstance(e, asyncio.TimeoutError)
                                               else f"connect: {_go_error(e)}")
    raise errors.ApiError(500,
        f"error forwarding port {port} to pod {sandbox.id}, uid : failed to execute portforward in network namespace "
        f'"{sandbox.netns_path}": failed to connect to localhost:{port} inside namespace "{sandbox.id}", '
        f"IPv4: {err4} IPv6 {err6} ")


async def relay_connection(sock: socket.socket, relay: Relay) -> None:
    """Relay bytes between the pod's connection and the caller until both directions ended (or either side
    failed); the connection is closed at the end."""
    reader, writer = await asyncio.open_connection(sock=sock)

    async def pod_to_caller() -> None:
        while data := await reader.read(CHUNK):
            await relay.send(data)
        await relay.send_eof()

    async def caller_to_pod() -> None:
        while data := await relay.recv():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # the caller half-closed: so does the connection to the pod

    up, down = asyncio.create_task(pod_to_caller()), asyncio.create_task(caller_to_pod())
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        failed = any(t.exception() is not None for t in done)
        if not failed:
            # the caller half-closed first: the pod may still answer, for as long as it likes; the pod closed its
            # side first: a short grace for what the caller still sends
            await asyncio.wait({up, down}, timeout=None if down in done else OTHER_DIRECTION_GRACE,
                               return_when=asyncio.FIRST_EXCEPTION)
        for t in (up, down):
            if t.done() and not t.cancelled() and isinstance(t.exception(), (OSError, RelayError)):
                log.debug("port forward stream ended: %s", t.exception())
    finally:
        for t in (up, down):
            t.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        if not up.done() or up.cancelled() or up.exception() is not None:
            await _quietly(relay.reset())
        writer.close()
        await _quietly(writer.wait_closed())


async def _quietly(aw: Any) -> None:
    try:
        await aw
    except Exception as e:
        if not (isinstance(e, OSError) and e.errno in (errno.EPIPE, errno.ECONNRESET)):
            log.debug("port forward cleanup: %s", e)
