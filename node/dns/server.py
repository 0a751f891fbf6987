"""The DNS transports: asyncio UDP and TCP (RFC 1035 two-byte length framing) on one address and port,
each query answered by :meth:`Resolver.respond`. A query the resolver cannot answer never reaches the loop
as an exception: the reply is FORMERR, or nothing for bytes without a DNS header."""

from __future__ import annotations

import asyncio
import logging

import dns.rcode

from bus import telemetry
from node.telemetry import DnsMetrics

from .resolver import Resolver

log = logging.getLogger(__name__)
TCP_IDLE_SECONDS = 10.0
TCP_MAX_CONNECTIONS = 256


def count(metrics: DnsMetrics | None, proto: str, reply: bytes | None) -> None:
    """One query (and its reply's rcode, read off the header) in the DNS metrics."""
    if metrics is None:
        return
    metrics.requests.labels(proto).inc()
    if reply is not None and len(reply) >= 4:
        metrics.responses.labels(dns.rcode.to_text(reply[3] & 0x0F)).inc()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, metrics: DnsMetrics | None = None) -> None:
        self.resolver = resolver
        self.metrics = metrics
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            reply = self.resolver.respond(data, max_size=512)
        except Exception:  # noqa: BLE001 - a bug answering one query must not stop the server
            log.exception("dns: answering a query from %s failed", addr[0])
            return
        count(self.metrics, "udp", reply)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: udp error: %s", exc)


class DnsServer:
    """Serves ``resolver`` on ``host:port`` over UDP and TCP (``port`` 0: a free port, the same for both)."""

    def __init__(self, resolver: Resolver, host: str, port: int = 53) -> None:
        self.resolver, self.host, self.port = resolver, host, port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: set[asyncio.Task] = set()
        self.metrics = telemetry.metrics(DnsMetrics)  # None: metrics off

    async def start(self) -> None:
        """Bind both transports; raises OSError (address not available, port taken, no permission)."""
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.resolver, self.metrics),
                                                           local_addr=(self.host, self.port))
        self.port = self._udp.get_extra_info("sockname")[1]
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, reuse_address=True)
        except BaseException:
            self._udp.close()
            self._udp = None
            raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for t in list(self._conns):
                t.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._conns) >= TCP_MAX_CONNECTIONS:
            writer.close()
            return
        if task is not None:
            self._conns.add(task)
        try:
            while True:
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS), "big")
                data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_SECONDS)
                reply = self.resolver.respond(data, max_size=None)
                count(self.metrics, "tcp", reply)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001
            log.exception("dns: tcp connection failed")
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()
