"""The cluster DNS resolver on fake data: what a client sees for Service, headless, SRV, pod, missing and
outside names, and for malformed bytes (parsed and rendered by dnspython, as the server does)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from node.dns import Resolver

WEB = {"metadata": {"name": "web", "namespace": "shop"},
       "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                                      {"name": "metrics", "port": 9090, "protocol": "TCP"}]}}
DB = {"metadata": {"name": "db", "namespace": "shop"},
      "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}
DB_EPS = {"metadata": {"name": "db", "namespace": "shop"}, "subsets": [{
    "addresses": [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.2.6"}],
    "notReadyAddresses": [{"ip": "10.244.1.7", "hostname": "db-2"}],
    "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]}
EXT = {"metadata": {"name": "search", "namespace": "shop"},
       "spec": {"type": "ExternalName", "externalName": "search.example.com"}}


class FakeCatalog:
    def __init__(self, services: list[dict], endpoints: list[dict]) -> None:
        key = lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])  # noqa: E731
        self.services = {key(s): s for s in services}
        self.eps = {key(e): e for e in endpoints}

    def service(self, namespace, name):
        return self.services.get((namespace, name))

    def endpoints(self, namespace, name):
        return self.eps.get((namespace, name))

    def has_namespace(self, namespace):
        return any(ns == namespace for ns, _ in self.services)


@pytest.fixture
def resolver():
    return Resolver(FakeCatalog([WEB, DB, EXT], [DB_EPS]))


def ask(resolver: Resolver, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    wire = resolver.respond(q.to_wire())
    reply = dns.message.from_wire(wire)
    assert reply.id == q.id and reply.flags & dns.flags.QR
    return reply


def records(reply: dns.message.Message, rdtype: str = "A", section: str = "answer") -> set[str]:
    return {rd.to_text() for rrset in getattr(reply, section) if rrset.rdtype == dns.rdatatype.from_text(rdtype)
            for rd in rrset}


def test_service_a_record_is_the_cluster_ip_with_ttl_5(resolver):
    reply = ask(resolver, "web.shop.svc.cluster.local")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert records(reply) == {"10.96.0.10"}
    assert reply.answer[0].ttl == 5


def test_names_are_case_insensitive(resolver):
    assert records(ask(resolver, "WEB.Shop.SVC.cluster.LOCAL")) == {"10.96.0.10"}


def test_aaaa_for_an_ipv4_service_is_an_empty_noerror_with_soa(resolver):
    reply = ask(resolver, "web.shop.svc.cluster.local", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert records(reply, "SOA", "authority")


def test_headless_service_answers_the_ready_endpoint_ips(resolver):
    assert records(ask(resolver, "db.shop.svc.cluster.local")) == {"10.244.1.5", "10.244.2.6"}  # not 10.244.1.7


def test_headless_with_publish_not_ready_addresses_includes_them():
    db = {**DB, "spec": {**DB["spec"], "publishNotReadyAddresses": True}}
    r = Resolver(FakeCatalog([db], [DB_EPS]))
    assert records(ask(r, "db.shop.svc.cluster.local")) == {"10.244.1.5", "10.244.2.6", "10.244.1.7"}


def test_headless_endpoint_hostnames_and_dashed_ips(resolver):
    assert records(ask(resolver, "db-0.db.shop.svc.cluster.local")) == {"10.244.1.5"}
    assert records(ask(resolver, "10-244-2-6.db.shop.svc.cluster.local")) == {"10.244.2.6"}
    assert ask(resolver, "db-2.db.shop.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN  # not ready
    assert ask(resolver, "db-0.web.shop.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN  # not headless


def test_srv_for_a_named_port_targets_the_service(resolver):
    reply = ask(resolver, "_http._tcp.web.shop.svc.cluster.local", "SRV")
    assert records(reply, "SRV") == {"0 100 80 web.shop.svc.cluster.local."}
    assert records(reply, "A", "additional") == {"10.96.0.10"}
    assert ask(resolver, "_nope._tcp.web.shop.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(resolver, "_http._udp.web.shop.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_srv_for_headless_targets_each_endpoint(resolver):
    reply = ask(resolver, "_pg._tcp.db.shop.svc.cluster.local", "SRV")
    assert records(reply, "SRV") == {"0 50 5432 db-0.db.shop.svc.cluster.local.",
                                     "0 50 5432 10-244-2-6.db.shop.svc.cluster.local."}
    assert records(reply, "A", "additional") == {"10.244.1.5", "10.244.2.6"}


def test_external_name_is_a_cname(resolver):
    reply = ask(resolver, "search.shop.svc.cluster.local")
    assert records(reply, "CNAME") == {"search.example.com."}


def test_pod_names_echo_the_dashed_address(resolver):
    assert records(ask(resolver, "10-244-3-4.shop.pod.cluster.local")) == {"10.244.3.4"}
    assert ask(resolver, "not-an-ip.shop.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_missing_names_in_the_domain_are_nxdomain_with_the_soa(resolver):
    for name in ("nope.shop.svc.cluster.local", "web.nons.svc.cluster.local", "nons.svc.cluster.local",
                 "a.b.c.cluster.local"):
        reply = ask(resolver, name)
        assert reply.rcode() == dns.rcode.NXDOMAIN, name
        soa = reply.authority[0]
        assert soa.name.to_text() == "cluster.local." and soa.rdtype == dns.rdatatype.SOA
    # an existing namespace (it has Services) is an empty non-terminal, not NXDOMAIN
    assert ask(resolver, "shop.svc.cluster.local").rcode() == dns.rcode.NOERROR


def test_names_outside_the_domain_get_servfail_without_recursion(resolver):
    reply = ask(resolver, "example.com")
    assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer
    assert not reply.flags & dns.flags.RA


def test_other_cluster_domain():
    r = Resolver(FakeCatalog([WEB], []), domain="k8n.test")
    assert records(ask(r, "web.shop.svc.k8n.test")) == {"10.96.0.10"}
    assert ask(r, "web.shop.svc.cluster.local").rcode() == dns.rcode.SERVFAIL


def test_malformed_bytes_never_raise(resolver):
    assert resolver.respond(b"") is None
    assert resolver.respond(b"\x12\x34\x01") is None  # no complete header: nothing to answer
    garbage = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff\xff"  # header + broken question
    reply = dns.message.from_wire(resolver.respond(garbage))
    assert reply.id == 0xABCD and reply.rcode() == dns.rcode.FORMERR
    q = dns.message.make_query("web.shop.svc.cluster.local", "A")
    q.flags |= dns.flags.QR  # a response, not a query: never answered
    assert resolver.respond(q.to_wire()) is None
    wire = dns.message.make_query("web.shop.svc.cluster.local", "A").to_wire()
    for n in range(len(wire)):  # every truncated copy of a valid query
        out = resolver.respond(wire[:n])
        assert out is None or dns.message.from_wire(out).rcode() == dns.rcode.FORMERR


def test_large_answers_are_truncated_over_udp_and_whole_over_tcp():
    eps = {"metadata": {"name": "big", "namespace": "shop"},
           "subsets": [{"addresses": [{"ip": f"10.244.{i // 250}.{i % 250 + 1}"} for i in range(100)]}]}
    big = {"metadata": {"name": "big", "namespace": "shop"}, "spec": {"clusterIP": "None"}}
    r = Resolver(FakeCatalog([big], [eps]))
    q = dns.message.make_query("big.shop.svc.cluster.local", "A")  # no EDNS: 512 bytes
    udp = dns.message.from_wire(r.respond(q.to_wire(), max_size=512))
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = dns.message.from_wire(r.respond(q.to_wire(), max_size=None))
    assert len(records(tcp)) == 100


def test_an_object_that_cannot_become_a_record_fails_only_its_query():
    bad = {"metadata": {"name": "bad", "namespace": "shop"},
           "spec": {"type": "ExternalName", "externalName": "x" * 70 + ".example.com"}}  # label > 63
    r = Resolver(FakeCatalog([WEB, bad], []))
    assert ask(r, "bad.shop.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
    assert records(ask(r, "web.shop.svc.cluster.local")) == {"10.96.0.10"}
