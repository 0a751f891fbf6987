"""``pods/portforward`` over HTTP, in both forms Kubernetes clients use, on top of the ``portforward`` node call
(``bus.nodeclient.portforward``: every forwarded connection is its own session on the node's subjects, relayed with
flow control by ``bus.relay``, so it works for agents behind NAT like logs and exec).

- kubectl (1.31+): a WebSocket with the subprotocol ``SPDY/3.1+portforward.k8s.io`` whose binary messages carry a
  SPDY/3.1 byte stream (``master/gateway/spdy.py``). For every connection it accepts locally kubectl opens two
  streams with the headers ``streamType`` (``error`` or ``data``), ``port`` and ``requestID``; the pair is forwarded
  once both are there (as the kubelet's ``httpstream.go`` does). A failure is written on the error stream (kubectl
  prints it); both streams are closed when the connection ends.
- the official Python client (and other WebSocket clients): ``?ports=80&ports=8080`` with ``v4.channel.k8s.io``:
  per port ``i`` the data channel ``2i`` and the error channel ``2i+1``, whose first frames from the server carry
  the port, two bytes little-endian; every port is connected at once; the WebSocket closes when all are done.

Authorization (``master/gateway/authz.py``) is ``create`` on ``pods/portforward``, whatever the method (a WebSocket
upgrade is a GET), as Kubernetes does with ``AuthorizePodWebsocketUpgradeCreatePermission``."""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping

from aiohttp import WSMsgType, web

from bus import errors, nodeclient
from bus.meta import TERMINAL_POD_PHASES
from bus.relay import Relay, RelayError
from master.gateway import spdy
from master.gateway.context import CLIENT
from master.gateway.podstreams import decode_frame, encode_frame, frame_bytes
from master.gateway.respond import error_response

log = logging.getLogger(__name__)

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"  # kubectl: SPDY tunneled through the WebSocket
CHANNEL_PROTOCOL = "v4.channel.k8s.io"
PROTOCOLS = (TUNNEL_PROTOCOL, CHANNEL_PROTOCOL)
STREAM_TYPE, PORT, REQUEST_ID = "streamtype", "port", "requestid"  # SPDY stream headers (lowercased on the wire)
STREAM_CREATION_TIMEOUT = 30.0  # the kubelet's default: both streams of a pair must arrive within it
OTHER_DIRECTION_GRACE = 1.0


# ---- pure helpers --------------------------------------------------------------------------------------------------

def parse_port(raw: str) -> int:
    """A port as the kubelet parses it (``strconv.ParseUint(raw, 10, 16)``, then > 0); ValueError with its words."""
    if not raw.isdigit() or not raw.isascii():
        raise ValueError(f'unable to parse "{raw}" as a port: strconv.ParseUint: parsing "{raw}": invalid syntax')
    if int(raw) > 65535:
        raise ValueError(f'unable to parse "{raw}" as a port: strconv.ParseUint: parsing "{raw}": value out of range')
    if int(raw) < 1:
        raise ValueError(f'port "{raw}" must be > 0')
    return int(raw)


def query_ports(query: Any) -> list[int]:
    """The ports of a WebSocket request: ``ports`` repeated or comma-separated (``port`` too, as the kubelet takes
    them); 400 for a bad one or none."""
    raw = [p.strip() for key in ("ports", "port") for value in query.getall(key, []) for p in value.split(",")]
    try:
        ports = [parse_port(p) for p in raw]
    except ValueError as e:
        raise errors.bad_request(str(e)) from None
    if not ports:
        raise errors.bad_request("at least one port must be specified (ports=<port>)")
    return ports


def port_prefix(port: int) -> bytes:
    """The first frame's payload on a port's channels: the port, two bytes little-endian."""
    return struct.pack("<H", port)


def check_stream_headers(headers: Mapping[str, list[str]]) -> tuple[str, int]:
    """``(streamType, port)`` of a SPDY stream kubectl opened; ValueError (the kubelet's words) otherwise."""
    raw = (headers.get(PORT) or [""])[0]
    if not raw:
        raise ValueError('"port" header is required')
    port = parse_port(raw)
    kind = (headers.get(STREAM_TYPE) or [""])[0]
    if not kind:
        raise ValueError('"streamType" header is required')
    if kind not in ("error", "data"):
        raise ValueError(f'invalid stream type "{kind}"')
    return kind, port


# ---- the request ---------------------------------------------------------------------------------------------------

async def _target(request: web.Request) -> tuple[Any, str, str, str]:
    """``(client, namespace, pod, node)``: 404 for a missing pod, 400 for one that cannot be forwarded to."""
    client, ns, name = request.app[CLIENT], request.match_info["namespace"], request.match_info["name"]
    pod = await client.get("pods", name, ns)
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f'pod "{name}" is not scheduled to a node yet')
    phase = (pod.get("status") or {}).get("phase")
    if phase in TERMINAL_POD_PHASES:
        raise errors.bad_request(f"cannot port-forward to a completed pod; current phase is {phase}")
    return client, ns, name, node


async def pod_portforward(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    try:
        target = await _target(request)
        if not ws.can_prepare(request).ok:  # e.g. kubectl's plain SPDY fallback after a failed WebSocket upgrade
            raise errors.bad_request("Upgrade request required: k8n serves port forwarding over WebSocket "
                                     f"({', '.join(PROTOCOLS)}) only")
        tunnel = ws.can_prepare(request).protocol == TUNNEL_PROTOCOL
        ports = [] if tunnel else query_ports(request.query)
    except errors.ApiError as e:
        return error_response(e)
    await ws.prepare(request)
    try:
        if tunnel:
            await _serve_tunnel(ws, *target)
        else:
            await _serve_channels(ws, *target, ports)
    except ConnectionError:
        pass
    finally:
        if not ws.closed:
            await ws.close(code=1000)
    return ws


# ---- one forwarded connection --------------------------------------------------------------------------------------

async def _pump(relay: Relay, read: Any, write: Any, close_write: Any) -> bool:
    """Bytes both ways between a client-side stream (``read`` → b"" at its end, ``write``, ``close_write``) and the
    node's relay, until the node's side ended (plus a short grace for the client's) or either side failed. True when
    the node's side ended cleanly; RelayError (the node failed or went away) propagates."""

    async def up() -> None:  # client → node
        while data := await read():
            await relay.send(data)
        await relay.send_eof()

    async def down() -> None:  # node → client
        while data := await relay.recv():
            await write(data)
        await close_write()

    to_node, to_client = asyncio.create_task(up()), asyncio.create_task(down())
    try:
        done, _ = await asyncio.wait({to_node, to_client}, return_when=asyncio.FIRST_COMPLETED)
        if not any(t.exception() for t in done):
            await asyncio.wait({to_node, to_client}, timeout=None if to_node in done else OTHER_DIRECTION_GRACE,
                               return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in (to_node, to_client):
            t.cancel()
        await asyncio.gather(to_node, to_client, return_exceptions=True)
    error = None if to_client.cancelled() else to_client.exception()
    if isinstance(error, RelayError):
        raise error
    return not to_client.cancelled() and error is None


async def _forward(client: Any, ns: str, name: str, node: str, port: int, read: Any, write: Any,
                   close_write: Any) -> str | None:
    """One connection to ``port``; the error message for the client's error stream, if any. Whenever the client's
    side ends first (reset, gone), the node is told to close the pod's connection at once."""
    try:
        relay = await nodeclient.portforward(client, ns, name, port, node)
    except errors.ApiError as e:
        return e.message
    try:
        if not await _pump(relay, read, write, close_write):
            await _quietly(relay.reset())
    except RelayError as e:
        return f"error forwarding port {port} to pod {name}: {e}"
    except (spdy.StreamReset, ConnectionError, asyncio.CancelledError) as e:
        await _quietly(relay.reset())
        if isinstance(e, asyncio.CancelledError):
            raise
    finally:
        await relay.close()
    return None


async def _quietly(aw: Any) -> None:
    try:
        await aw
    except Exception as e:
        log.debug("port forward cleanup: %s", e)


# ---- kubectl: SPDY tunneled through the WebSocket ------------------------------------------------------------------

@dataclass
class _Pair:
    request_id: str
    data: spdy.Stream | None = None
    error: spdy.Stream | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)


async def _serve_tunnel(ws: web.WebSocketResponse, client: Any, ns: str, name: str, node: str) -> None:
    pairs: dict[str, _Pair] = {}
    tasks: set[asyncio.Task] = set()

    def spawn(coro: Any) -> None:
        t = asyncio.create_task(coro)
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    async def forward(pair: _Pair, port: int) -> None:
        data, error = pair.data, pair.error
        assert data is not None and error is not None
        try:
            message = await _forward(client, ns, name, node, port, data.read, data.write, data.close)
            if message:
                await error.write(message.encode())
            await data.close()
            await error.close()
        except (spdy.StreamReset, ConnectionError) as e:
            log.debug("port forward %s of %s/%s ended: %s", pair.request_id, ns, name, e)
        finally:
            data.release()
            error.release()

    async def expire(pair: _Pair) -> None:
        try:
            await asyncio.wait_for(pair.complete.wait(), STREAM_CREATION_TIMEOUT)
        except asyncio.TimeoutError:
            if pair.error is not None:
                await _quietly(pair.error.write(f"(request={pair.request_id}) timed out waiting for streams"
                                                .encode()))
                await _quietly(pair.error.close())
        finally:
            pairs.pop(pair.request_id, None)

    async def on_stream(stream: spdy.Stream) -> None:
        try:
            kind, port = check_stream_headers(stream.headers)
        except ValueError as e:
            log.debug("refused port forward stream %d: %s", stream.id, e)
            await stream.reset(spdy.REFUSED_STREAM)
            return
        await conn.accept(stream)
        request_id = stream.header(REQUEST_ID) or str(stream.id if kind == "error" else stream.id - 2)
        pair = pairs.get(request_id)
        if pair is None:
            pair = pairs[request_id] = _Pair(request_id)
            spawn(expire(pair))
        if getattr(pair, kind) is not None:
            if pair.error is not None:
                await pair.error.write(f"error processing stream for request {request_id}: "
                                       f"{kind} stream already assigned".encode())
            return
        setattr(pair, kind, stream)
        if pair.data is not None and pair.error is not None:
            pair.complete.set()
            spawn(forward(pair, port))

    conn = spdy.ServerConnection(ws.send_bytes, on_stream)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await conn.feed(msg.data)
            elif msg.type == WSMsgType.TEXT:
                raise spdy.ProtocolError("a text message in a SPDY tunnel")
            if conn.gone_away:
                break
    except spdy.ProtocolError as e:
        log.info("port forward to %s/%s: %s", ns, name, e)
    finally:
        conn.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---- the channel protocol (v4.channel.k8s.io) ----------------------------------------------------------------------

async def _serve_channels(ws: web.WebSocketResponse, client: Any, ns: str, name: str, node: str,
                          ports: list[int]) -> None:
    inboxes: list[asyncio.Queue] = [asyncio.Queue(64) for _ in ports]
    for i, port in enumerate(ports):
        await ws.send_bytes(encode_frame(2 * i, port_prefix(port)))
        await ws.send_bytes(encode_frame(2 * i + 1, port_prefix(port)))

    async def one(i: int, port: int) -> None:
        async def write(data: bytes) -> None:
            await ws.send_bytes(encode_frame(2 * i, data))

        async def nothing() -> None:
            return None

        message = await _forward(client, ns, name, node, port, inboxes[i].get, write, nothing)
        if message:
            await ws.send_bytes(encode_frame(2 * i + 1, message.encode()))

    async def read_client() -> None:
        async for msg in ws:
            frame = frame_bytes(msg.type, msg.data)
            if not frame:
                continue
            channel, payload = decode_frame(frame)
            if channel % 2 == 0 and channel // 2 < len(ports) and payload:
                await inboxes[channel // 2].put(payload)
        for q in inboxes:  # the client closed: every port's connection ends
            q.put_nowait(b"")

    reader = asyncio.create_task(read_client())
    forwards = asyncio.gather(*(one(i, port) for i, port in enumerate(ports)))
    try:
        await asyncio.wait({reader, forwards}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        forwards.cancel()
        await asyncio.gather(reader, forwards, return_exceptions=True)
