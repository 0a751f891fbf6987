"""Client side of the node-addressed calls (see ``node/services.py`` for the protocol):
pod logs, exec, port forwarding and node stats, for the CLI and other programs.

A streaming call names a fresh random session id; the agent sends the output on the session's ``out`` subject and
reads stdin and control messages (keepalive, cancel) on its ``in`` subject (``bus.subjects.node_session``), both
under the node's own subjects, which only its agent may serve."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, AsyncIterator

from bus import codec, errors, nodecalls, subjects
from bus.relay import Relay

KEEPALIVE_SECONDS = 5.0


async def _node_of(client: Any, namespace: str, pod: str) -> str:
    obj = await client.get("pods", pod, namespace)
    node = (obj.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f'pod "{pod}" is not scheduled to a node yet')
    return node


def _into(queue: asyncio.Queue):
    async def cb(msg: Any) -> None:
        queue.put_nowait(codec.unpack(msg.data))
    return cb


async def _call(client: Any, node: str, call: str, req: Any) -> dict:
    try:
        msg = await client.nc.request(subjects.node_call(node, call), req.pack(), timeout=10)
    except Exception as e:
        raise errors.unavailable(f"node {node} did not answer: {type(e).__name__}") from None
    reply = codec.unpack(msg.data)
    if int(reply.get("code", 500)) >= 400:
        raise errors.ApiError.from_status(reply.get("body") or {"code": reply.get("code")})
    return reply


def new_session() -> str:
    return secrets.token_hex(16)


async def logs(client: Any, namespace: str, pod: str, container: str | None = None, follow: bool = False,
               tail: int | None = None, previous: bool = False) -> AsyncIterator[bytes]:
    node = await _node_of(client, namespace, pod)
    session = new_session()
    control = subjects.node_session(node, session, subjects.SESSION_IN)
    queue: asyncio.Queue = asyncio.Queue()
    sub = await client.nc.subscribe(subjects.node_session(node, session, subjects.SESSION_OUT), cb=_into(queue))
    try:
        req = nodecalls.build("logs", namespace=namespace, pod=pod, container=container, follow=follow, tail=tail,
                              previous=previous, session=session)
        await _call(client, node, "logs", req)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                await client.nc.publish(control, codec.pack({"keepalive": True}))
                continue
            if item.get("eof"):
                return
            yield item.get("data") or b""
    finally:
        try:
            await client.nc.publish(control, codec.pack({"cancel": True}))
            await sub.unsubscribe()
        except Exception:
            pass


class ExecSession:
    def __init__(self, client: Any, stdin_subject: str | None, queue: asyncio.Queue, sub: Any) -> None:
        self.client, self.stdin_subject, self.queue, self.sub = client, stdin_subject, queue, sub
        self.exit_code: int | None = None

    async def write(self, data: bytes) -> None:
        if self.stdin_subject:
            await self.client.nc.publish(self.stdin_subject, codec.pack({"data": data}))

    async def close_stdin(self) -> None:
        if self.stdin_subject:
            await self.client.nc.publish(self.stdin_subject, codec.pack({"eof": True}))

    def __aiter__(self) -> "ExecSession":
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        item = await self.queue.get()
        if "exit" in item:
            self.exit_code = int(item["exit"])
            await self.sub.unsubscribe()
            raise StopAsyncIteration
        return item.get("stream", "stdout"), item.get("data") or b""


async def exec_(client: Any, namespace: str, pod: str, command: list[str], container: str | None = None,
                stdin: bool = False, tty: bool = False) -> ExecSession:
    node = await _node_of(client, namespace, pod)
    session = new_session()
    queue: asyncio.Queue = asyncio.Queue()
    sub = await client.nc.subscribe(subjects.node_session(node, session, subjects.SESSION_OUT), cb=_into(queue))
    try:
        req = nodecalls.build("exec", namespace=namespace, pod=pod, container=container, command=command,
                              stdin=stdin, tty=tty, session=session)
        await _call(client, node, "exec", req)
    except BaseException:
        await sub.unsubscribe()
        raise
    return ExecSession(client, subjects.node_session(node, session, subjects.SESSION_IN) if stdin else None,
                       queue, sub)


async def portforward(client: Any, namespace: str, pod: str, port: int, node: str | None = None) -> Relay:
    """One connection to ``port`` inside the pod, as a started :class:`bus.relay.Relay` (close it when done); the
    node's refusal (no such pod, nothing listening on the port) as an ApiError."""
    node = node or await _node_of(client, namespace, pod)
    session = new_session()
    relay = await Relay(client.nc, subjects.node_session(node, session, subjects.SESSION_IN),
                        subjects.node_session(node, session, subjects.SESSION_OUT)).start()
    try:
        req = nodecalls.build("portforward", namespace=namespace, pod=pod, port=port, session=session)
        await _call(client, node, "portforward", req)
    except BaseException:
        await relay.close()
        raise
    return relay


async def stats(client: Any, node: str) -> dict:
    return (await _call(client, node, "stats", nodecalls.build("stats"))).get("body") or {}
