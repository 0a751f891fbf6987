"""The node's cluster DNS server against a real nats-server and API server: Services and Endpoints written
through the API become answers (UDP and TCP, queried with dnspython's client), deletions become NXDOMAIN,
and bad input or a busy address never takes it down."""

from __future__ import annotations

import asyncio
import socket

import dns.asyncquery
import dns.asyncresolver
import dns.message
import dns.rcode
import dns.resolver
import pytest

from node.dns import NodeDns
from tests import builders
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio
ADDR = "127.0.0.53"


def service(name: str, ip: str = "10.96.77.7", ports=None) -> dict:
    return builders.service(name, cluster_ip=ip, ports=ports or [{"name": "http", "port": 80, "targetPort": 8080}])


@pytest.fixture
async def node_dns(client):
    d = NodeDns(client, ADDR, port=0)
    assert await d.start()
    yield d
    await d.stop()


def resolver_for(d: NodeDns) -> dns.asyncresolver.Resolver:
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers, r.port, r.lifetime, r.cache = [ADDR], d.server.port, 3.0, None
    return r


async def a_records(d: NodeDns, name: str, tcp: bool = False) -> set[str] | str:
    """The A answers, or the exception's class name (NXDOMAIN, NoAnswer...)."""
    try:
        ans = await resolver_for(d).resolve(name, "A", tcp=tcp)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers) as e:
        return type(e).__name__
    return {rd.address for rd in ans}


async def test_service_created_resolves_and_deleted_is_nxdomain(client, node_dns):
    name = "web.default.svc.cluster.local"
    assert await a_records(node_dns, name) == "NXDOMAIN"
    await client.create(service("web"))
    await eventually(lambda: _eq(a_records(node_dns, name), {"10.96.77.7"}), 10, "the service's A record")
    assert await a_records(node_dns, name, tcp=True) == {"10.96.77.7"}
    srv = await resolver_for(node_dns).resolve("_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [(r.port, r.target.to_text()) for r in srv] == [(80, "web.default.svc.cluster.local.")]
    await client.delete("services", "web", "default")
    await eventually(lambda: _eq(a_records(node_dns, name), "NXDOMAIN"), 10, "NXDOMAIN after the delete")


async def test_headless_service_follows_its_endpoints(client, node_dns):
    await client.create(service("db", "None", [{"name": "pg", "port": 5432}]))
    await client.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db", "namespace": "default"},
                         "subsets": [{"addresses": [{"ip": "10.244.9.5", "hostname": "db-0"}],
                                      "notReadyAddresses": [{"ip": "10.244.9.6"}],
                                      "ports": [{"name": "pg", "port": 5432}]}]})
    name = "db.default.svc.cluster.local"
    await eventually(lambda: _eq(a_records(node_dns, name), {"10.244.9.5"}), 10, "the ready endpoint")
    assert await a_records(node_dns, "db-0.db.default.svc.cluster.local") == {"10.244.9.5"}
    eps = await client.get("endpoints", "db", "default")
    eps["subsets"][0]["addresses"].append(eps["subsets"][0].pop("notReadyAddresses")[0])  # 10.244.9.6 ready
    await client.update(eps)
    await eventually(lambda: _eq(a_records(node_dns, name), {"10.244.9.5", "10.244.9.6"}), 10, "both endpoints")


async def test_outside_names_servfail_and_malformed_queries_do_not_stop_it(client, node_dns):
    reply = await dns.asyncquery.udp(dns.message.make_query("example.com", "A"), ADDR, timeout=3,
                                     port=node_dns.server.port)
    assert reply.rcode() == dns.rcode.SERVFAIL
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x00", b"\xff" * 40, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c"):
            s.sendto(junk, (ADDR, node_dns.server.port))
    reader, writer = await asyncio.open_connection(ADDR, node_dns.server.port)
    writer.write(b"\x00\x05junk")  # a framed message that is not DNS, then hang up
    await writer.drain()
    writer.close()
    await client.create(service("after"))
    await eventually(lambda: _eq(a_records(node_dns, "after.default.svc.cluster.local"), {"10.96.77.7"}), 10,
                     "answers after the junk")


async def test_a_busy_address_is_reported_not_raised(client, node_dns):
    second = NodeDns(client, ADDR, port=node_dns.server.port)  # the first one holds it
    try:
        assert await second.start() is False
        assert second.nameserver is None
    finally:
        await second.stop()
    assert node_dns.nameserver == ADDR


async def _eq(coro, want) -> bool:
    return await coro == want
