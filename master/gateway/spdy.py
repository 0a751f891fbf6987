"""The server side of SPDY/3.1 as Kubernetes clients speak it (moby/spdystream, which kubectl's port-forward uses,
tunneled through a WebSocket since kubectl 1.31): framing, header blocks compressed with zlib and SPDY's dictionary
(one compression context per direction for the whole connection), and a connection that accepts the client's
streams. Written by hand: no maintained Python SPDY library exists.

Frames (https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/): a control frame is
``1 | version(15) | type(16) | flags(8) | length(24) | payload``, a data frame ``0 | stream-id(31) | flags(8) |
length(24) | data``. spdystream does no flow control (it neither sends nor honours WINDOW_UPDATE), so neither do we:
backpressure is the transport's. SETTINGS, WINDOW_UPDATE and HEADERS from the client are ignored; PINGs the client
starts (odd ids) are echoed."""

from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
MAX_FRAME = (1 << 24) - 1
MAX_DATA = 32 * 1024  # what we put in one data frame (spdystream's readers copy 32 KiB at a time)
MAX_BUFFERED = 1 << 20  # a frame claiming more than this is a protocol error
STREAM_BUFFER = 64  # data frames a stream queues before the connection's reader waits for its consumer

DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04p'
    b'ost\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trac'
    b'e\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00'
    b'\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\ra'
    b'ccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\r'
    b'authorization\x00\x00\x00\rcache-control\x00\x00\x00\nconnection'
    b'\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding'
    b'\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-leng'
    b'th\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md'
    b'5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type\x00\x00'
    b'\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect'
    b'\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04h'
    b'ost\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since'
    b'\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00'
    b'\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00'
    b'\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00'
    b'\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization'
    b'\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretr'
    b'y-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07t'
    b'railer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra'
    b'de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03'
    b'via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00'
    b'\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06statu'
    b's\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HT'
    b'TP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-c'
    b'ookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin100101201202205'
    b'2063003023033043053063074024054064074084094104114124134144154164'
    b'17502504505203 Non-Authoritative Information204 No Content301 Mo'
    b'ved Permanently400 Bad Request401 Unauthorized403 Forbidden404 N'
    b'ot Found500 Internal Server Error501 Not Implemented503 Service '
    b'UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:0'
    b'0:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,ima'
    b'ge/png,image/jpg,image/gif,application/xml,application/xhtml+xml'
    b',text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sd'
    b'chcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.'
)

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer broke SPDY: the connection cannot go on."""


# ---- frames --------------------------------------------------------------------------------------------------------

@dataclass
class DataFrame:
    stream_id: int
    data: bytes
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class ControlFrame:
    type: int
    flags: int = 0
    stream_id: int = 0  # SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE
    headers: Headers = field(default_factory=dict)  # SYN_STREAM, SYN_REPLY, HEADERS
    associated: int = 0  # SYN_STREAM
    priority: int = 0  # SYN_STREAM
    value: int = 0  # RST_STREAM status, PING id, GOAWAY status, WINDOW_UPDATE delta
    last_good: int = 0  # GOAWAY
    settings: list[tuple[int, int, int]] = field(default_factory=list)  # SETTINGS: (flags, id, value)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block: names lowercased, several values joined by NUL."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), b"\x00".join(x.encode() for x in values)
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    try:
        (count,), pos = struct.unpack_from(">I", block), 4
        headers: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name, pos = block[pos + 4:pos + 4 + n].decode(), pos + 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            value, pos = block[pos + 4:pos + 4 + n].decode(), pos + 4 + n
            headers.setdefault(name.lower(), []).extend(value.split("\x00"))
        if pos != len(block):
            raise ProtocolError("the header block has trailing bytes")
        return headers
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"bad header block: {e}") from None


class Encoder:
    """Frames one side sends; header blocks share one zlib context for the connection (so order matters: encode
    and send under one lock)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def _compress(self, headers: Headers) -> bytes:
        return self._deflate.compress(encode_header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def control(kind: int, flags: int, payload: bytes) -> bytes:
        if len(payload) > MAX_FRAME:
            raise ValueError("control frame too large")
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_stream(self, stream_id: int, headers: Headers, fin: bool = False, priority: int = 0) -> bytes:
        payload = struct.pack(">IIBB", stream_id, 0, (priority & 7) << 5, 0) + self._compress(headers)
        return self.control(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def syn_reply(self, stream_id: int, headers: Headers | None = None, fin: bool = False) -> bytes:
        return self.control(SYN_REPLY, FLAG_FIN if fin else 0,
                            struct.pack(">I", stream_id) + self._compress(headers or {}))

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        if len(data) > MAX_FRAME:
            raise ValueError("data frame too large")
        return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data

    def rst_stream(self, stream_id: int, status: int = CANCEL) -> bytes:
        return self.control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self.control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_good: int, status: int = 0) -> bytes:
        return self.control(GOAWAY, 0, struct.pack(">II", last_good, status))


class Decoder:
    """Frames from a byte stream fed in pieces of any size (a WebSocket's messages need not align with frames)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def _headers(self, compressed: bytes) -> Headers:
        try:
            return decode_header_block(self._inflate.decompress(compressed))
        except zlib.error as e:
            raise ProtocolError(f"bad compressed header block: {e}") from None

    def feed(self, data: bytes) -> list[DataFrame | ControlFrame]:
        self._buf += data
        frames: list[DataFrame | ControlFrame] = []
        while len(self._buf) >= 8:
            first, flags_length = struct.unpack_from(">II", self._buf)
            flags, length = flags_length >> 24, flags_length & 0xFFFFFF
            if length > MAX_BUFFERED:
                raise ProtocolError(f"a frame of {length} bytes is too large")
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            if first & 0x80000000:
                frames.append(self._control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload))
            else:
                if not first & 0x7FFFFFFF:
                    raise ProtocolError("a data frame for stream 0")
                frames.append(DataFrame(first & 0x7FFFFFFF, payload, flags))
        return frames

    def _control(self, version: int, kind: int, flags: int, p: bytes) -> ControlFrame:
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        try:
            if kind == SYN_STREAM:
                sid, assoc, pri, _ = struct.unpack_from(">IIBB", p)
                return ControlFrame(kind, flags, sid & 0x7FFFFFFF, self._headers(p[10:]), assoc & 0x7FFFFFFF,
                                    pri >> 5)
            if kind in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", p)
                return ControlFrame(kind, flags, sid & 0x7FFFFFFF, self._headers(p[4:]))
            if kind in (RST_STREAM, WINDOW_UPDATE):
                sid, value = struct.unpack_from(">II", p)
                return ControlFrame(kind, flags, sid & 0x7FFFFFFF, value=value & 0x7FFFFFFF)
            if kind == PING:
                return ControlFrame(kind, flags, value=struct.unpack_from(">I", p)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", p)
                return ControlFrame(kind, flags, last_good=last & 0x7FFFFFFF, value=status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", p)
                entries = [struct.unpack_from(">II", p, 4 + 8 * i) for i in range(count)]
                return ControlFrame(kind, flags, settings=[(a >> 24, a & 0xFFFFFF, b) for a, b in entries])
        except struct.error:
            raise ProtocolError(f"control frame {kind} is too short") from None
        return ControlFrame(kind, flags)  # a type we do not know: ignored, as the spec asks


# ---- the server's connection ---------------------------------------------------------------------------------------

class StreamReset(Exception):
    """The peer reset the stream, or the connection ended."""


class Stream:
    """One stream the client opened: ``read`` its data (b"" once it half-closed), ``write`` ours, ``close`` (our
    half-close, FIN) or ``reset``."""

    def __init__(self, conn: "ServerConnection", stream_id: int, headers: Headers, remote_fin: bool) -> None:
        self.conn, self.id, self.headers = conn, stream_id, headers
        self._inbox: asyncio.Queue = asyncio.Queue(STREAM_BUFFER)
        self.remote_closed = remote_fin
        self.local_closed = self.was_reset = False
        if remote_fin:
            self._inbox.put_nowait(b"")

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]

    async def read(self) -> bytes:
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)
            raise StreamReset(f"stream {self.id} was reset")
        if not item:
            self._inbox.put_nowait(b"")
        return item

    async def write(self, data: bytes) -> None:
        if self.was_reset:
            raise StreamReset(f"stream {self.id} was reset")
        if self.local_closed:
            raise StreamReset(f"stream {self.id} is closed for writing")
        for i in range(0, len(data), MAX_DATA):
            await self.conn.send(Encoder.data(self.id, data[i:i + MAX_DATA]))

    async def close(self) -> None:
        if not (self.local_closed or self.was_reset):
            self.local_closed = True
            await self.conn.send(Encoder.data(self.id, b"", fin=True))
            self.conn._forget_if_done(self)

    def release(self) -> None:
        """We are done with the stream: whatever the client still sends on it is dropped (kubelet's
        ``RemoveStreams``)."""
        self.conn.streams.pop(self.id, None)
        self._drop()

    async def reset(self, status: int = CANCEL) -> None:
        self.conn.streams.pop(self.id, None)
        if not self.was_reset:
            self._reset()
            await self.conn.send(self.conn.encoder.rst_stream(self.id, status))

    def _reset(self) -> None:
        self.was_reset = True
        self._drop()
        self._inbox.put_nowait(None)

    def _drop(self) -> None:
        while not self._inbox.empty():
            self._inbox.get_nowait()

    async def _deliver(self, data: bytes, fin: bool) -> None:
        if self.was_reset or self.remote_closed:
            return
        if data:
            await self._inbox.put(data)
        if fin:
            self.remote_closed = True
            await self._inbox.put(b"")


class ServerConnection:
    """A SPDY/3.1 connection served over some byte transport: feed it what the client sent (:meth:`feed`); it
    writes through ``write``. ``on_stream`` is awaited for every stream the client opens (it replies with
    :meth:`accept` or refuses with ``stream.reset``)."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]],
                 on_stream: Callable[[Stream], Awaitable[None]]) -> None:
        self._write, self._on_stream = write, on_stream
        self.encoder, self.decoder = Encoder(), Decoder()
        self.streams: dict[int, Stream] = {}
        self._lock = asyncio.Lock()
        self._last_client_stream = 0
        self.gone_away = False

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self._write(frame)

    async def accept(self, stream: Stream) -> None:
        """Reply to the client's SYN_STREAM (its ``CreateStream`` waits for this)."""
        async with self._lock:  # the header compressor's state follows the order frames go out
            await self._write(self.encoder.syn_reply(stream.id))

    async def feed(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if isinstance(frame, DataFrame):
                stream = self.streams.get(frame.stream_id)
                if stream is not None:
                    await stream._deliver(frame.data, frame.fin)
                    self._forget_if_done(stream)
            else:
                await self._control(frame)

    async def _control(self, f: ControlFrame) -> None:
        if f.type == SYN_STREAM:
            if f.stream_id % 2 == 0 or f.stream_id <= self._last_client_stream or self.gone_away:
                await self.send(self.encoder.rst_stream(f.stream_id, PROTOCOL_ERROR))
                return
            self._last_client_stream = f.stream_id
            stream = Stream(self, f.stream_id, f.headers, f.fin)
            self.streams[f.stream_id] = stream
            await self._on_stream(stream)
        elif f.type == RST_STREAM:
            stream = self.streams.pop(f.stream_id, None)
            if stream is not None:
                stream._reset()
        elif f.type == PING and f.value % 2 == 1:  # the client's ping: echo it
            await self.send(self.encoder.ping(f.value))
        elif f.type == GOAWAY:
            self.gone_away = True

    def _forget_if_done(self, stream: Stream) -> None:
        if stream.remote_closed and stream.local_closed:
            self.streams.pop(stream.id, None)

    def close(self) -> None:
        """The transport ended: every stream is reset."""
        self.gone_away = True
        for stream in list(self.streams.values()):
            stream._reset()
        self.streams.clear()
