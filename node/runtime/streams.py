"""Docker's streaming endpoints made async: followed logs (a blocking SDK stream read by a thread of its own)
and exec sessions (the raw hijacked socket, read and written without threads)."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

_END = object()


def _no_read_timeout(stream: Any) -> None:
    """The SDK reads streams with the client's timeout: a quiet ``logs -f`` would end after it. Lift it."""
    try:
        stream._response.raw._fp.fp.raw._sock.settimeout(None)
    except AttributeError:
        pass


async def thread_stream(open_stream: Callable[[], Iterator[bytes]],
                        translate: Callable[[BaseException], BaseException]) -> AsyncIterator[bytes]:
    """Open a blocking SDK stream in a dedicated thread (so a long follow never holds a pool worker) and return
    an async iterator over its chunks. Opening errors are raised here; closing or cancelling the iterator closes
    the stream, which unblocks the thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    opened: asyncio.Future = loop.create_future()
    closed = threading.Event()
    holder: list[Any] = []

    def hand(fn: Callable, *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is gone
            closed.set()

    def settle(fut: asyncio.Future, exc: BaseException | None) -> None:
        if not fut.done():
            fut.set_exception(exc) if exc else fut.set_result(None)

    def pump() -> None:
        try:
            stream = open_stream()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            return hand(settle, opened, e)
        holder.append(stream)
        _no_read_timeout(stream)
        hand(settle, opened, None)
        try:
            for chunk in stream:
                if closed.is_set():
                    break
                hand(queue.put_nowait, chunk)
        except BaseException as e:  # noqa: BLE001
            if not closed.is_set():
                hand(queue.put_nowait, e)
        finally:
            hand(queue.put_nowait, _END)
            if closed.is_set():
                _close(stream)

    def _close(stream: Any) -> None:
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - closing a broken stream
            pass

    threading.Thread(target=pump, name="docker-stream", daemon=True).start()
    try:
        await opened
    except BaseException as e:
        closed.set()
        raise translate(e) if isinstance(e, Exception) else e

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise translate(item)
                yield item
        finally:
            closed.set()
            for stream in holder:
                _close(stream)
    return chunks()


class ExecSession:
    """A running ``docker exec``: ``async for stream, data in session`` yields ("stdout"|"stderr", bytes);
    ``write_stdin``/``close_stdin`` feed the process; ``exit_code()`` waits for it to end."""

    def __init__(self, sock: Any, tty: bool, inspect: Callable[[], Awaitable[dict]]) -> None:
        raw = getattr(sock, "_sock", sock)  # the SDK hands over a SocketIO on unix sockets
        self._keep = sock
        self._sock: socket.socket = raw
        self._sock.setblocking(False)
        self._tty = tty
        self._inspect = inspect
        self._buf = bytearray()
        self._loop = asyncio.get_running_loop()

    async def write_stdin(self, data: bytes) -> None:
        await self._loop.sock_sendall(self._sock, data)

    async def close_stdin(self) -> None:
        """Half-close: the process sees end of file on stdin; its output still arrives."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    async def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            data = await self._loop.sock_recv(self._sock, 65536)
            if not data:
                return False
            self._buf += data
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        try:
            while True:
                if self._tty:  # a TTY stream is raw: one stream, no headers
                    if not await self._fill(1):
                        return
                    yield "stdout", self._take(len(self._buf))
                    continue
                if not await self._fill(8):  # header: stream type, 3 zero bytes, big-endian payload size
                    return
                kind, size = struct.unpack(">BxxxL", self._take(8))
                if not await self._fill(size):
                    return
                data = self._take(size)
                if data:
                    yield ("stderr" if kind == 2 else "stdout"), data
        finally:
            self.close()

    async def exit_code(self, timeout: float | None = None) -> int:
        """The process's exit code, once it has ended (Docker reports it shortly after the stream closes)."""
        async with asyncio.timeout(timeout):
            while True:
                info = await self._inspect()
                if not info.get("Running") and info.get("ExitCode") is not None:
                    return int(info["ExitCode"])
                await asyncio.sleep(0.02)

    def close(self) -> None:
        for close in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._keep.close, self._sock.close):
            try:
                close()
            except OSError:
                pass
