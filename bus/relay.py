"""A byte stream over a pair of NATS subjects, with credit-based flow control: what a forwarded port's connection
travels on between the gateway and the node agent (``bus.subjects.node_session``: the agent sends on ``out`` and
reads ``in``), so it works for an agent behind NAT just as logs and exec do.

Messages (msgpack maps), in both directions:

- ``{data: bytes}``: the next bytes of the stream; the sender may have at most :data:`WINDOW` bytes unacknowledged;
- ``{ack: n}``: the receiver's application took ``n`` more bytes (credit back to the sender);
- ``{eof: true}``: the sender sends no more data (a TCP half-close);
- ``{error: text}``: the sender failed; no more data from it (the message goes to the user);
- ``{reset: true}``: the sender abandoned the stream (both directions);
- ``{keepalive: true}``: sent when nothing else was for :data:`KEEPALIVE_SECONDS`; a peer silent for
  :data:`PEER_TIMEOUT` is taken as gone.

Core NATS keeps one publisher's messages on one subject in order; the window bounds what either side buffers, so a
slow reader slows the writer instead of growing a queue (or turning the subscriber into a slow consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bus import codec

WINDOW = 1 << 20  # bytes a sender may have in flight
CHUNK = 64 * 1024  # largest data message
KEEPALIVE_SECONDS = 5.0
PEER_TIMEOUT = 30.0


class RelayError(Exception):
    """The peer failed (``error``), abandoned the stream (``reset``) or went silent."""


class Relay:
    def __init__(self, nc: Any, send_subject: str, recv_subject: str, window: int = WINDOW,
                 peer_timeout: float = PEER_TIMEOUT) -> None:
        self.nc, self.send_subject, self.recv_subject = nc, send_subject, recv_subject
        self.window, self.peer_timeout = window, peer_timeout
        self._credit = window
        self._credit_changed = asyncio.Event()
        self._items: asyncio.Queue = asyncio.Queue()  # bytes, b"" (eof) or a RelayError
        self._unacked = 0
        self._sent_at = self._heard_at = time.monotonic()
        self._failure: RelayError | None = None
        self._sent_eof = self._ended = False
        self._sub: Any = None
        self._keeper: asyncio.Task | None = None

    async def start(self) -> "Relay":
        """Subscribe (before the peer may send anything) and start the keepalives."""
        self._sub = await self.nc.subscribe(self.recv_subject, cb=self._on_message)
        self._keeper = asyncio.create_task(self._keepalive())
        return self

    # ---- receiving -------------------------------------------------------------------------------------------

    async def _on_message(self, msg: Any) -> None:
        self._heard_at = time.monotonic()
        try:
            item = codec.unpack(msg.data)
        except Exception:
            return
        if not isinstance(item, dict):
            return
        if isinstance(item.get("ack"), int) and item["ack"] > 0:
            self._credit += item["ack"]
            self._credit_changed.set()
        data = item.get("data")
        if isinstance(data, bytes) and data and not self._ended:
            self._items.put_nowait(data)
        if item.get("eof") and not self._ended:
            self._ended = True
            self._items.put_nowait(b"")
        if item.get("error") is not None or item.get("reset"):
            self._fail(RelayError(str(item.get("error") or "the stream was reset by its peer")))

    def _fail(self, error: RelayError) -> None:
        if self._failure is None:
            self._failure = error
            self._items.put_nowait(error)
            self._credit_changed.set()

    async def recv(self) -> bytes:
        """The next bytes from the peer; ``b""`` once it sent eof; RelayError if it failed or went away."""
        item = await self._items.get()
        if isinstance(item, RelayError):
            self._items.put_nowait(item)  # every later call fails the same way
            raise item
        if item:
            self._unacked += len(item)
            if self._unacked >= self.window // 4 or self._items.empty():
                n, self._unacked = self._unacked, 0
                await self._publish({"ack": n})
        else:
            self._items.put_nowait(b"")
        return item

    # ---- sending ---------------------------------------------------------------------------------------------

    async def _publish(self, message: dict) -> None:
        self._sent_at = time.monotonic()
        await self.nc.publish(self.send_subject, codec.pack(message))

    async def send(self, data: bytes) -> None:
        """Send ``data``, waiting for the peer's credit; RelayError once the peer failed or reset."""
        view = memoryview(data)
        while view:
            while self._credit <= 0:
                if self._failure is not None:
                    raise self._failure
                self._credit_changed.clear()
                await self._credit_changed.wait()
            if self._failure is not None:
                raise self._failure
            n = min(len(view), CHUNK, self._credit)
            self._credit -= n
            await self._publish({"data": bytes(view[:n])})
            view = view[n:]

    async def send_eof(self) -> None:
        if not self._sent_eof:
            self._sent_eof = True
            await self._publish({"eof": True})

    async def send_error(self, message: str) -> None:
        self._sent_eof = True
        await self._publish({"error": message})

    async def reset(self) -> None:
        """Abandon the stream: the peer stops both directions."""
        self._sent_eof = True
        await self._publish({"reset": True})

    # ---- lifetime --------------------------------------------------------------------------------------------

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS / 2)
            now = time.monotonic()
            if now - self._heard_at > self.peer_timeout:
                self._fail(RelayError(f"no word from the peer for {self.peer_timeout:.0f}s"))
            if now - self._sent_at >= KEEPALIVE_SECONDS:
                with contextlib.suppress(Exception):
                    await self._publish({"keepalive": True})

    async def close(self) -> None:
        """Stop listening (the stream ends here; call ``reset`` first to tell the peer)."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        self._fail(RelayError("the stream is closed"))
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self._sub.unsubscribe()
            self._sub = None
