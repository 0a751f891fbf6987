"""Cluster DNS answers, as CoreDNS' kubernetes plugin gives them (schema of the Kubernetes DNS spec).

A pure function of a parsed query and a :class:`Catalog` (the services and endpoints the node knows):

- ``<svc>.<ns>.svc.<domain>`` A/AAAA → the cluster IP; headless (clusterIP None) → the ready endpoint IPs
  (also the not-ready ones with ``publishNotReadyAddresses``); ExternalName → a CNAME to ``externalName``.
- ``<hostname>.<svc>.<ns>.svc.<domain>`` → that endpoint of a headless Service (``hostname``, else its
  dashed IP ``10-244-1-5``).
- ``_<port>._<proto>.<svc>.<ns>.svc.<domain>`` SRV → the named port, target the Service name (headless: one
  per endpoint, target its own name), the targets' addresses in the additional section.
- ``<a-b-c-d>.<ns>.pod.<domain>`` → ``a.b.c.d`` (CoreDNS' ``pods insecure``).
- Names in the domain that do not exist → NXDOMAIN, existing names without records of the asked type →
  NOERROR with no answer (both with the zone's SOA in the authority section, for negative caching).
- Names outside the domain → SERVFAIL: there is no upstream to forward to.

Every record has TTL 5 (CoreDNS' default for the kubernetes plugin). Parsing and rendering are dnspython's.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

log = logging.getLogger(__name__)
TTL = 5
DEFAULT_DOMAIN = "cluster.local"
_A, _AAAA, _SRV, _CNAME, _SOA, _NS, _ANY = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV,
                                            dns.rdatatype.CNAME, dns.rdatatype.SOA, dns.rdatatype.NS,
                                            dns.rdatatype.ANY)


class Catalog(Protocol):
    """What the resolver reads: cached objects (plain dicts), never mutated."""

    def service(self, namespace: str, name: str) -> dict | None: ...

    def endpoints(self, namespace: str, name: str) -> dict | None: ...

    def has_namespace(self, namespace: str) -> bool: ...


class _Answer:
    def __init__(self) -> None:
        self.exists = False
        self.answer: list[dns.rrset.RRset] = []
        self.additional: list[dns.rrset.RRset] = []

    def add(self, section: list, name: dns.name.Name, rdtype: int, *texts: str) -> None:
        if texts:
            section.append(dns.rrset.from_text(name, TTL, dns.rdataclass.IN, rdtype, *texts))


def _ip_family(ip: str) -> int | None:
    try:
        return _A if ipaddress.ip_address(ip).version == 4 else _AAAA
    except ValueError:
        return None


def _add_addresses(out: _Answer, section: list, name: dns.name.Name, qtype: int, ips: list[str]) -> None:
    for rdtype in (_A, _AAAA):
        if qtype in (rdtype, _ANY):
            out.add(section, name, rdtype, *sorted({ip for ip in ips if _ip_family(ip) == rdtype}))


def _cluster_ip(svc: dict) -> str:
    return (svc.get("spec") or {}).get("clusterIP") or ""


def _is_headless(svc: dict) -> bool:
    return _cluster_ip(svc) == "None"


def _is_external(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("type") == "ExternalName"


def _dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _endpoint_addresses(svc: dict, eps: dict | None) -> list[tuple[dict, list[dict]]]:
    """(address, ports of its subset) for the addresses DNS publishes."""
    with_not_ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    out = []
    for subset in (eps or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        addrs = list(subset.get("addresses") or [])
        if with_not_ready:
            addrs += subset.get("notReadyAddresses") or []
        out += [(a, ports) for a in addrs if a.get("ip")]
    return out


def _endpoint_label(addr: dict) -> str:
    return (addr.get("hostname") or _dashed(addr["ip"])).lower()


class Resolver:
    def __init__(self, catalog: Catalog, domain: str = DEFAULT_DOMAIN, serial: int = 1) -> None:
        self.catalog = catalog
        self.domain = dns.name.from_text(domain)
        self.soa_text = (f"ns.dns.{self.domain} hostmaster.{self.domain} {serial} 7200 1800 86400 {TTL}")

    # ---- messages -------------------------------------------------------------------------------------------

    def respond(self, wire: bytes, max_size: int | None = 512) -> bytes | None:
        """The reply to one query in wire format; ``max_size`` is the transport's limit (UDP 512 unless the
        query's EDNS advertises more; None for TCP), a larger answer is sent truncated (TC). A message too
        broken to have an id gets no reply; a malformed one with a header gets FORMERR."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except Exception:  # noqa: BLE001 - any parse failure of hostile bytes is a FORMERR
            return self._formerr(wire)
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer (no reflection loops)
        try:
            reply = self.answer(query)
        except Exception:  # noqa: BLE001 - e.g. an object whose names make no valid record: fail this query only
            log.exception("dns: answering %s failed", query.question[:1])
            reply = dns.message.make_response(query, recursion_available=False)
            reply.set_rcode(dns.rcode.SERVFAIL)
        limit = None if max_size is None else max(max_size, query.payload if query.edns >= 0 else 512)
        try:
            return reply.to_wire(max_size=limit or 65535)
        except dns.exception.TooBig:
            reply.answer, reply.authority, reply.additional = [], [], []
            reply.flags |= dns.flags.TC
            return reply.to_wire(max_size=limit or 65535)

    @staticmethod
    def _formerr(wire: bytes) -> bytes:
        msg = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
        msg.flags = dns.flags.QR
        msg.set_rcode(dns.rcode.FORMERR)
        return msg.to_wire()

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query, recursion_available=False)
        if query.opcode() != dns.opcode.QUERY:
            reply.set_rcode(dns.rcode.NOTIMP)
            return reply
        if len(query.question) != 1:
            reply.set_rcode(dns.rcode.FORMERR)
            return reply
        q = query.question[0]
        qname = q.name.canonicalize()  # lower case: DNS names compare case-insensitively
        if q.rdclass != dns.rdataclass.IN or not qname.is_subdomain(self.domain):
            reply.set_rcode(dns.rcode.SERVFAIL if q.rdclass == dns.rdataclass.IN else dns.rcode.REFUSED)
            return reply
        reply.flags |= dns.flags.AA
        out = self.lookup(q.name, [label.decode("ascii", "replace")
                                   for label in qname.relativize(self.domain).labels], q.rdtype)
        reply.answer += out.answer
        reply.additional += out.additional
        if not out.answer:
            if not out.exists:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(dns.rrset.from_text(self.domain, TTL, dns.rdataclass.IN, _SOA, self.soa_text))
        return reply

    # ---- names ----------------------------------------------------------------------------------------------

    def lookup(self, name: dns.name.Name, rel: list[str], qtype: int) -> _Answer:
        """Records for ``name`` (``rel``: its labels below the domain, lower case)."""
        out = _Answer()
        if not rel:  # the zone apex
            out.exists = True
            if qtype in (_SOA, _ANY):
                out.add(out.answer, name, _SOA, self.soa_text)
            if qtype in (_NS, _ANY):
                out.add(out.answer, name, _NS, f"ns.dns.{self.domain}")
            return out
        kind = rel[-1]
        if kind == "svc":
            self._svc_names(out, name, rel[:-1], qtype)
        elif kind == "pod":
            self._pod_names(out, name, rel[:-1], qtype)
        return out

    def _svc_names(self, out: _Answer, name: dns.name.Name, rel: list[str], qtype: int) -> None:
        if not rel:
            out.exists = True  # svc.<domain>: an empty non-terminal
            return
        ns = rel[-1]
        if len(rel) == 1:
            out.exists = self.catalog.has_namespace(ns)
            return
        svc = self.catalog.service(ns, rel[-2])
        if svc is None:
            return
        if len(rel) == 2:
            self._service(out, name, svc, qtype)
        elif len(rel) == 3 and not rel[0].startswith("_") and _is_headless(svc):
            self._endpoint(out, name, svc, rel[0], qtype)
        elif len(rel) == 3 and rel[0].startswith("_"):
            out.exists = True  # _<proto>.<svc>: an empty non-terminal of the SRV names
        elif len(rel) == 4 and rel[0].startswith("_") and rel[1].startswith("_"):
            self._srv(out, name, svc, rel[0][1:], rel[1][1:], qtype)

    def _service(self, out: _Answer, name: dns.name.Name, svc: dict, qtype: int) -> None:
        out.exists = True
        spec = svc.get("spec") or {}
        if _is_external(svc):
            target = spec.get("externalName") or ""
            if target:
                out.add(out.answer, name, _CNAME, dns.name.from_text(target).to_text())
            return
        if qtype in (_SRV, _ANY):
            self._srv(out, name, svc, None, None, _SRV)
        if _is_headless(svc):
            ips = [a["ip"] for a, _ in _endpoint_addresses(svc, self._endpoints_of(svc))]
        else:
            ips = [_cluster_ip(svc)] if _cluster_ip(svc) else []
        _add_addresses(out, out.answer, name, qtype, ips)

    def _endpoint(self, out: _Answer, name: dns.name.Name, svc: dict, label: str, qtype: int) -> None:
        ips = [a["ip"] for a, _ in _endpoint_addresses(svc, self._endpoints_of(svc)) if _endpoint_label(a) == label]
        if ips:
            out.exists = True
            _add_addresses(out, out.answer, name, qtype, ips)

    def _srv(self, out: _Answer, name: dns.name.Name, svc: dict, port_name: str | None, proto: str | None,
             qtype: int) -> None:
        """SRV records of a Service's ports (only ``port_name``/``proto`` when given)."""
        if _is_external(svc):
            return
        meta = svc.get("metadata") or {}
        svc_name = dns.name.from_text(f"{meta.get('name')}.{meta.get('namespace')}.svc", self.domain)

        def wanted(p: dict) -> bool:
            return port_name is None or ((p.get("name") or "").lower() == port_name
                                         and (p.get("protocol") or "TCP").lower() == proto)

        records: list[tuple[int, dns.name.Name, list[str]]] = []
        if _is_headless(svc):
            for addr, ports in _endpoint_addresses(svc, self._endpoints_of(svc)):
                target = dns.name.from_text(_endpoint_label(addr), svc_name)
                records += [(int(p.get("port") or 0), target, [addr["ip"]]) for p in ports if wanted(p)]
        elif _cluster_ip(svc):
            records = [(int(p.get("port") or 0), svc_name, [_cluster_ip(svc)])
                       for p in (svc.get("spec") or {}).get("ports") or [] if wanted(p)]
        if not records:
            return
        out.exists = True
        if qtype not in (_SRV, _ANY):
            return
        weight = max(1, 100 // len(records))
        out.add(out.answer, name, _SRV, *sorted({f"0 {weight} {port} {target}" for port, target, _ in records}))
        for target in sorted({t for _, t, _ in records}):
            ips = [ip for _, t, addrs in records if t == target for ip in addrs]
            _add_addresses(out, out.additional, target, _ANY, ips)

    def _endpoints_of(self, svc: dict) -> dict | None:
        meta = svc.get("metadata") or {}
        return self.catalog.endpoints(meta.get("namespace") or "default", meta.get("name") or "")

    def _pod_names(self, out: _Answer, name: dns.name.Name, rel: list[str], qtype: int) -> None:
        if len(rel) <= 1:
            out.exists = True
            return
        if len(rel) != 2:
            return
        dashed = rel[0]
        for candidate in (dashed.replace("-", "."), dashed.replace("-", ":")):
            if _ip_family(candidate):
                out.exists = True
                _add_addresses(out, out.answer, name, qtype, [str(ipaddress.ip_address(candidate))])
                return
