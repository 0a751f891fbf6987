"""Port forwarding's protocols without a network: SPDY/3.1 framing and the server connection kubectl's port-forward
talks to (``master/gateway/spdy.py``), the kubelet's checks of stream headers and ports and the v4 channel
protocol's port frames (``master/gateway/portforward.py``), and the flow-controlled relay the bytes cross the bus
on (``bus/relay.py``, over an in-memory stand-in for NATS)."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest
from multidict import MultiDict

from bus import codec, errors, nodecalls
from bus.relay import Relay, RelayError
from master.gateway import spdy
from master.gateway.portforward import check_stream_headers, parse_port, port_prefix, query_ports

HEADERS = {"streamType": ["data"], "port": ["8080"], "requestID": ["0"]}


# ---- framing -------------------------------------------------------------------------------------------------------

def test_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options") and spdy.DICTIONARY.endswith(b"enq=0.")


def test_header_blocks_are_zlib_with_the_spdy_dictionary_and_names_lowercased():
    frame = spdy.Encoder().syn_stream(1, HEADERS)
    version, kind, flags_length = struct.unpack_from(">HHI", frame)
    assert (version, kind, flags_length >> 24, flags_length & 0xFFFFFF) == (0x8003, spdy.SYN_STREAM, 0,
                                                                            len(frame) - 8)
    assert struct.unpack_from(">II", frame, 8) == (1, 0)
    compressed = frame[18:]
    assert struct.unpack(">I", compressed[2:6])[0] == zlib.adler32(spdy.DICTIONARY)  # FDICT names the dictionary
    block = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(compressed)
    assert spdy.decode_header_block(block) == {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}
    assert spdy.encode_header_block({"A": ["1", "2"]}) == b"\0\0\0\1" b"\0\0\0\1a" b"\0\0\0\x031\x002"


def test_frames_decode_from_pieces_of_any_size_sharing_one_compression_context():
    enc = spdy.Encoder()
    wire = (enc.syn_stream(1, {"streamType": ["error"], "port": ["80"], "requestID": ["0"]}, fin=True)
            + enc.syn_stream(3, HEADERS) + enc.data(3, b"GET / HTTP/1.0\r\n\r\n") + enc.data(3, b"", fin=True)
            + enc.ping(7) + enc.rst_stream(3, spdy.CANCEL) + enc.goaway(3))
    dec, frames = spdy.Decoder(), []
    for i in range(0, len(wire), 5):
        frames += dec.feed(wire[i:i + 5])
    first, second, data, fin, ping, rst, goaway = frames
    assert (first.type, first.stream_id, first.fin, first.headers["streamtype"]) == (spdy.SYN_STREAM, 1, True,
                                                                                     ["error"])
    assert (second.stream_id, second.fin, second.headers["port"]) == (3, False, ["8080"])
    assert (data.stream_id, data.data, data.fin) == (3, b"GET / HTTP/1.0\r\n\r\n", False)
    assert (fin.data, fin.fin) == (b"", True)
    assert (ping.type, ping.value) == (spdy.PING, 7)
    assert (rst.type, rst.stream_id, rst.value) == (spdy.RST_STREAM, 3, spdy.CANCEL)
    assert (goaway.type, goaway.last_good) == (spdy.GOAWAY, 3)


def test_broken_input_is_a_protocol_error():
    with pytest.raises(spdy.ProtocolError, match="unsupported SPDY version 2"):
        spdy.Decoder().feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1")
    with pytest.raises(spdy.ProtocolError, match="bad compressed header block"):
        spdy.Decoder().feed(spdy.Encoder.control(spdy.SYN_STREAM, 0, struct.pack(">IIBB", 1, 0, 0, 0) + b"junk"))
    with pytest.raises(spdy.ProtocolError, match="too large"):
        spdy.Decoder().feed(struct.pack(">II", 1, 1 << 23))
    assert spdy.Decoder().feed(spdy.Encoder.data(1, b"partial")[:-1]) == []  # incomplete: waits for the rest


# ---- the server connection -----------------------------------------------------------------------------------------

class Client:
    """The client's end of a ServerConnection: what it sends, and the frames the server wrote back."""

    def __init__(self) -> None:
        self.enc, self.dec, self.got = spdy.Encoder(), spdy.Decoder(), []
        self.streams: list[spdy.Stream] = []

        async def write(data: bytes) -> None:
            self.got += self.dec.feed(data)

        async def on_stream(stream: spdy.Stream) -> None:
            self.streams.append(stream)
            if stream.header("port") == "0":
                await stream.reset(spdy.REFUSED_STREAM)
            else:
                await self.conn.accept(stream)

        self.conn = spdy.ServerConnection(write, on_stream)


async def test_server_replies_to_streams_echoes_pings_and_carries_data_both_ways():
    c = Client()
    await c.conn.feed(c.enc.syn_stream(1, HEADERS) + c.enc.ping(5) + c.enc.data(1, b"hello"))
    reply, pong = c.got
    assert (reply.type, reply.stream_id, reply.headers) == (spdy.SYN_REPLY, 1, {})
    assert (pong.type, pong.value) == (spdy.PING, 5)
    stream = c.streams[0]
    assert stream.header("streamType") == "data" and await stream.read() == b"hello"
    await stream.write(b"x" * (spdy.MAX_DATA + 10))
    assert [len(f.data) for f in c.got[2:]] == [spdy.MAX_DATA, 10]
    await c.conn.feed(c.enc.data(1, b"", fin=True))
    assert await stream.read() == b"" and await stream.read() == b""  # the client's half-close, for good
    await stream.close()
    assert c.got[-1].fin and c.got[-1].data == b"" and 1 not in c.conn.streams
    with pytest.raises(spdy.StreamReset):
        await stream.write(b"late")


async def test_resets_and_refusals():
    c = Client()
    await c.conn.feed(c.enc.syn_stream(1, HEADERS) + c.enc.syn_stream(3, {"port": ["0"]}))
    refused = c.got[-1]
    assert (refused.type, refused.stream_id, refused.value) == (spdy.RST_STREAM, 3, spdy.REFUSED_STREAM)
    await c.conn.feed(c.enc.rst_stream(1, spdy.CANCEL))
    with pytest.raises(spdy.StreamReset):
        await c.streams[0].read()
    await c.conn.feed(c.enc.syn_stream(1, HEADERS))  # a stream id must grow
    assert (c.got[-1].type, c.got[-1].value) == (spdy.RST_STREAM, spdy.PROTOCOL_ERROR)
    await c.conn.feed(c.enc.syn_stream(5, HEADERS))
    c.conn.close()  # the WebSocket went away
    with pytest.raises(spdy.StreamReset):
        await c.streams[-1].read()


# ---- what the kubelet checks ---------------------------------------------------------------------------------------

def test_stream_headers_as_the_kubelet_checks_them():
    assert check_stream_headers({"streamtype": ["error"], "port": ["80"]}) == ("error", 80)
    for headers, words in (({"streamtype": ["data"]}, '"port" header is required'),
                           ({"port": ["80"]}, '"streamType" header is required'),
                           ({"port": ["80"], "streamtype": ["both"]}, 'invalid stream type "both"'),
                           ({"port": ["0"], "streamtype": ["data"]}, 'port "0" must be > 0'),
                           ({"port": ["http"], "streamtype": ["data"]}, 'unable to parse "http" as a port')):
        with pytest.raises(ValueError, match=words):
            check_stream_headers(headers)


def test_ports_of_a_websocket_request():
    assert query_ports(MultiDict([("ports", "80,8080"), ("ports", "9000")])) == [80, 8080, 9000]
    assert parse_port("65535") == 65535
    for bad, words in (("65536", "value out of range"), ("-1", "invalid syntax"), ("0", "must be > 0")):
        with pytest.raises(errors.ApiError) as e:
            query_ports(MultiDict(ports=bad))
        assert e.value.code == 400 and words in e.value.message
    with pytest.raises(errors.ApiError, match="at least one port"):
        query_ports(MultiDict())
    assert port_prefix(8080) == b"\x90\x1f"  # two bytes, little-endian, first on both of a port's channels


# ---- the relay over the bus ----------------------------------------------------------------------------------------

class FakeNats:
    """Core NATS in memory: publish delivers to the subject's subscribers in order."""

    def __init__(self) -> None:
        self.subs: dict[str, list] = {}
        self.published: list[tuple[str, dict]] = []

    async def subscribe(self, subject: str, cb):
        self.subs.setdefault(subject, []).append(cb)
        nc = self

        class Sub:
            async def unsubscribe(self) -> None:
                nc.subs[subject].remove(cb)
        return Sub()

    async def publish(self, subject: str, data: bytes) -> None:
        self.published.append((subject, codec.unpack(data)))
        for cb in list(self.subs.get(subject, [])):
            await cb(type("Msg", (), {"data": data, "subject": subject})())


async def test_relay_carries_bytes_half_closes_and_holds_the_sender_to_the_window():
    nc = FakeNats()
    a = await Relay(nc, "in", "out", window=1000).start()
    b = await Relay(nc, "out", "in", window=1000).start()
    try:
        await a.send(b"x" * 1000)  # the whole window
        blocked = asyncio.create_task(a.send(b"y" * 10))
        await asyncio.sleep(0.01)
        assert not blocked.done()  # no credit until b's reader takes bytes
        assert await b.recv() == b"x" * 1000
        await asyncio.wait_for(blocked, 1)
        assert await b.recv() == b"y" * 10
        await a.send_eof()
        assert await b.recv() == b"" and await b.recv() == b""
        await b.send(b"answer")  # the other direction still works after a's half-close
        assert await a.recv() == b"answer"
        assert max(len(m.get("data", b"")) for _, m in nc.published) <= 1000
    finally:
        await a.close()
        await b.close()


async def test_relay_errors_and_resets_reach_the_peer():
    nc = FakeNats()
    a = await Relay(nc, "in", "out").start()
    b = await Relay(nc, "out", "in").start()
    try:
        await a.send_error("failed to connect")
        with pytest.raises(RelayError, match="failed to connect"):
            await b.recv()
        await b.reset()
        with pytest.raises(RelayError, match="reset"):
            await a.send(b"anything")
    finally:
        await a.close()
        await b.close()


def test_the_node_call_names_a_bad_port():
    ok = nodecalls.build("portforward", namespace="default", pod="web", port=80, session="a" * 32)
    assert nodecalls.parse("portforward", ok.pack()) == ok
    for port in (0, 65536, "80"):
        with pytest.raises(errors.ApiError) as e:
            nodecalls.build("portforward", namespace="default", pod="web", port=port, session="a" * 32)
        assert e.value.code == 400 and e.value.message.startswith("invalid portforward request: port: ")
