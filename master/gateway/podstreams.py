"""Pod ``log`` and ``exec`` over HTTP, as kubectl and the Kubernetes clients use them, on top of the node calls of
``bus.nodeclient`` (the node agent streams the container's output over NATS).

- ``GET /api/v1/namespaces/{namespace}/pods/{name}/log?container=&follow=&tailLines=&previous=&limitBytes=``:
  ``200 text/plain``, chunked, one chunk written (and flushed) per piece the node sends.
- ``GET|POST .../pods/{name}/exec?command=..&command=..&container=&stdin=&stdout=&stderr=&tty=``: a WebSocket with
  the channel protocol ``v5.channel.k8s.io`` (or v4): every binary frame starts with its channel — 0 stdin,
  1 stdout, 2 stderr, 3 the final Status (JSON), 4 terminal resize (ignored) — and with v5 ``[255, ch]`` closes
  channel ``ch`` (the client closes stdin with ``[255, 0]``). The exit code travels in the Status: ``Success``, or
  ``Failure`` with reason ``NonZeroExitCode`` and a cause ``{"reason": "ExitCode", "message": "<code>"}``.

Errors found before the response starts (missing pod, bad container, bad options, a pod that has not started) are
Kubernetes ``Status`` replies with their code."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

from aiohttp import WSMsgType, web

from bus import errors, nodeclient
from bus.meta import TERMINAL_POD_PHASES
from master.gateway.context import CLIENT
from master.gateway.respond import error_response, warning_header

log = logging.getLogger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5: [255, channel] closes that channel
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
FIRST_CHUNK_WAIT = 2.0  # how long a log reply waits for the node's answer before it sends its headers
DISCONNECT_POLL = 1.0  # how often a quiet log stream checks that its client is still there
UNIMPLEMENTED_LOG_OPTIONS = ("timestamps", "sinceSeconds", "sinceTime")


# ---- pure helpers --------------------------------------------------------------------------------------------------

def encode_frame(channel: int, data: bytes = b"") -> bytes:
    """One channel-protocol frame: the channel byte, then the payload."""
    if not 0 <= channel <= 255:
        raise ValueError(f"channel {channel} is not a byte")
    return bytes((channel,)) + bytes(data)


def decode_frame(frame: bytes) -> tuple[int, bytes]:
    """``(channel, payload)`` of a frame; ValueError for an empty frame."""
    if not frame:
        raise ValueError("an empty frame has no channel")
    return frame[0], bytes(frame[1:])


def frame_bytes(kind: WSMsgType, data: Any) -> bytes:
    """The bytes of a client's data frame: BINARY as sent, TEXT as its UTF-8 (the channel is its first character, as
    the Python client's ``write_stdin(str)`` sends it; kube-apiserver reads both kinds alike); b"" for anything else."""
    if kind == WSMsgType.BINARY:
        return bytes(data or b"")
    if kind == WSMsgType.TEXT:
        return (data or "").encode()
    return b""


def closed_channel(frame: bytes) -> int | None:
    """The channel a v5 close frame ``[255, ch]`` closes, else None."""
    if len(frame) >= 2 and frame[0] == CLOSE:
        return frame[1]
    return None


def exit_status(code: int | None, command: list[str] | None = None) -> dict:
    """The Status sent on channel 3 when the command has ended with ``code``."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if code is None:
        return {"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": "the command's exit code is unknown: the exec session ended early"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command {_fmt_list(command)}, "
                       f"exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _fmt_list(items: list[str] | None) -> str:
    return "[" + " ".join(items or []) + "]"


def parse_bool(query: Mapping[str, str], key: str, default: bool = False) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it; 400 for anything else."""
    raw = query.get(key)
    if raw is None:
        return default
    if raw in ("1", "t", "T", "true", "TRUE", "True", ""):
        return True
    if raw in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise errors.bad_request(f'invalid value for {key}: strconv.ParseBool: parsing "{raw}": invalid syntax')


def _parse_int(query: Mapping[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'invalid value for {key}: strconv.ParseInt: parsing "{raw}": invalid syntax') \
            from None


def choose_container(pod: dict, requested: str | None) -> str:
    """The container a log or exec request means, as Kubernetes chooses it: the one named (it must exist), else
    the pod's only container, else the one the ``kubectl.kubernetes.io/default-container`` annotation names;
    a pod with several containers and none chosen is a 400 naming the choices."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    name = meta.get("name", "")
    containers = [c.get("name") for c in spec.get("containers") or []]
    init = [c.get("name") for c in spec.get("initContainers") or []]
    if requested:
        if requested not in containers and requested not in init:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    default = (meta.get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if default and default in containers:
        return default
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    message = f"a container name must be specified for pod {name}, choose one of: {_fmt_list(containers)}"
    if init:
        message += f" or one of the init containers: {_fmt_list(init)}"
    raise errors.bad_request(message)


@dataclass
class LogOptions:
    container: str | None = None
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    ignored: tuple[str, ...] = ()


def log_options(query: Mapping[str, str], pod: str) -> LogOptions:
    """PodLogOptions from the query; bad values are 400 (unparseable) or 422 (out of range, with the field)."""
    opts = LogOptions(container=query.get("container") or None, follow=parse_bool(query, "follow"),
                      previous=parse_bool(query, "previous"), tail_lines=_parse_int(query, "tailLines"),
                      limit_bytes=_parse_int(query, "limitBytes"))
    causes = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        causes.append(errors.Cause("tailLines",
                                   f"Invalid value: {opts.tail_lines}: must be greater than or equal to 0"))
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        causes.append(errors.Cause("limitBytes", f"Invalid value: {opts.limit_bytes}: must be greater than 0"))
    if causes:
        raise errors.invalid("PodLogOptions", pod, causes)
    opts.ignored = tuple(k for k in UNIMPLEMENTED_LOG_OPTIONS
                         if k in query and (k != "timestamps" or parse_bool(query, k)))
    return opts


# ---- HTTP plumbing -------------------------------------------------------------------------------------------------

def _target(request: web.Request) -> tuple[Any, str, str]:
    return request.app[CLIENT], request.match_info["namespace"], request.match_info["name"]


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _next(stream: AsyncIterator[bytes]) -> bytes:
    return await stream.__anext__()


# ---- log -----------------------------------------------------------------------------------------------------------

async def pod_log(request: web.Request) -> web.StreamResponse:
    client, ns, name = _target(request)
    try:
        opts = log_options(request.query, name)
        pod = await client.get("pods", name, ns)
        container = choose_container(pod, opts.container)
    except errors.ApiError as e:
        return error_response(e)
    stream = nodeclient.logs(client, ns, name, container, opts.follow, opts.tail_lines, opts.previous)
    first = asyncio.create_task(_next(stream))
    # The node answers the call (or refuses it: container waiting to start, no such container) before it sends
    # anything; wait a little for that so a refusal is still a Status reply, not a 200 with an empty body.
    await asyncio.wait({first}, timeout=FIRST_CHUNK_WAIT)
    if first.done() and not first.cancelled() and isinstance(first.exception(), errors.ApiError):
        return error_response(first.exception())  # type: ignore[arg-type]
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    for opt in opts.ignored:
        resp.headers.add("Warning", warning_header(f"k8n does not implement the log option {opt}; it is ignored"))
    resp.enable_chunked_encoding()
    pump = asyncio.create_task(_pump_log(resp, request, stream, first, opts.limit_bytes))
    try:
        while not pump.done():
            await asyncio.wait({pump}, timeout=DISCONNECT_POLL)
            if not pump.done() and _client_gone(request):
                pump.cancel()  # the client left (kubectl logs -f interrupted): stop the node's stream too
        await asyncio.gather(pump, return_exceptions=True)
    finally:
        if not pump.done():
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        if not first.done():
            first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await stream.aclose()
    return resp


async def _pump_log(resp: web.StreamResponse, request: web.Request, stream: AsyncIterator[bytes],
                    first: asyncio.Task, limit: int | None) -> None:
    await resp.prepare(request)
    sent = 0
    try:
        chunk = await first
        while True:
            if limit is not None:
                chunk = chunk[:limit - sent]
            if chunk:
                await resp.write(chunk)
                sent += len(chunk)
            if limit is not None and sent >= limit:
                break
            chunk = await _next(stream)
    except StopAsyncIteration:
        pass
    except (ConnectionError, errors.ApiError) as e:  # the client left, or the node failed mid-stream
        log.debug("log stream of %s ended: %s", request.path, e)
        return
    try:
        await resp.write_eof()
    except ConnectionError:
        pass


# ---- exec ----------------------------------------------------------------------------------------------------------

@dataclass
class ExecOptions:
    command: list[str]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def exec_options(query: Any, pod: dict) -> ExecOptions:
    """PodExecOptions from the query (``command`` repeated) checked against the pod, as Kubernetes checks them."""
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    if phase in TERMINAL_POD_PHASES:
        raise errors.bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
    opts = ExecOptions(command=list(query.getall("command", [])),
                       container=choose_container(pod, query.get("container")),
                       stdin=parse_bool(query, "stdin"), stdout=parse_bool(query, "stdout", True),
                       stderr=parse_bool(query, "stderr", True), tty=parse_bool(query, "tty"))
    if not opts.command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f'pod "{meta.get("name", "")}" is not scheduled to a node yet')
    if not _running(pod, opts.container):
        raise errors.bad_request(f"container {opts.container} is not running")
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    if opts.tty and opts.stderr and "stderr" in query:
        raise errors.invalid("PodExecOptions", meta.get("name", ""), [
            errors.Cause("stderr", "Invalid value: true: tty and stderr cannot both be true")])
    return opts


def _running(pod: dict, container: str) -> bool:
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return "running" in (cs.get("state") or {})
    return False


async def pod_exec(request: web.Request) -> web.StreamResponse:
    client, ns, name = _target(request)
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    try:
        pod = await client.get("pods", name, ns)
        opts = exec_options(request.query, pod)
        if not ws.can_prepare(request).ok:  # e.g. kubectl's SPDY retry after a failed WebSocket upgrade
            raise errors.bad_request("Upgrade request required: k8n serves exec over WebSocket "
                                     f"({', '.join(PROTOCOLS)}) only")
        session = await nodeclient.exec_(client, ns, name, opts.command, opts.container, opts.stdin, opts.tty)
    except errors.ApiError as e:
        return error_response(e)
    try:
        await ws.prepare(request)
    except BaseException:
        await _abandon(session)
        raise
    reader = asyncio.create_task(_read_client(ws, session, opts.stdin))
    writer = asyncio.create_task(_write_output(ws, session, opts))
    ended = False  # the command ended and its output went out
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        ended = writer.done() and not writer.cancelled() and writer.exception() is None
        if ended:
            status = exit_status(session.exit_code, opts.command)
            await ws.send_bytes(encode_frame(STATUS, json.dumps(status).encode()))
            await ws.close(code=1000)
    except ConnectionError:
        pass
    finally:
        for t in (reader, writer):
            t.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)
        if not ended:  # the client went away first: let a command reading stdin end, stop listening
            await _abandon(session)
        if not ws.closed:
            await ws.close(code=1000)
    return ws


async def _abandon(session: nodeclient.ExecSession) -> None:
    try:
        await session.close_stdin()
        await session.sub.unsubscribe()
    except Exception as e:  # the bus may be gone too
        log.debug("abandoning an exec session: %s", e)


async def _read_client(ws: web.WebSocketResponse, session: nodeclient.ExecSession, stdin: bool) -> None:
    """Client → container: stdin frames, the v5 close of stdin; resize and anything else ignored. On the client's
    close, stdin is closed too (so a command reading it ends)."""
    stdin_open = stdin
    async for msg in ws:
        frame = frame_bytes(msg.type, msg.data)
        if not frame:
            continue
        channel, payload = decode_frame(frame)
        if channel == STDIN and stdin_open and payload:
            await session.write(payload)
        elif closed_channel(frame) == STDIN and stdin_open:
            stdin_open = False
            await session.close_stdin()
    if stdin_open:
        await session.close_stdin()


async def _write_output(ws: web.WebSocketResponse, session: nodeclient.ExecSession, opts: ExecOptions) -> None:
    """Container → client: stdout on channel 1, stderr on channel 2, until the command exits."""
    async for stream, data in session:
        if stream == "stderr" and not opts.tty:
            if opts.stderr:
                await ws.send_bytes(encode_frame(STDERR, data))
        elif opts.stdout:
            await ws.send_bytes(encode_frame(STDOUT, data))
