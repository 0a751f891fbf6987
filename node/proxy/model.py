"""Services + Endpoints → the desired service datapath of one node, as pure data.

One :class:`ServicePort` per (Service, port): its ClusterIP, NodePort, session affinity and the ready
endpoints (``subsets[].addresses``, never ``notReadyAddresses``) whose port has the Service port's
name (an unnamed single port matches the unnamed Endpoints port), with the same protocol, as
kube-proxy resolves them. Headless and ExternalName Services have no datapath."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable

DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
NODEPORT_TYPES = {"NodePort", "LoadBalancer"}


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # nft name: tcp, udp, sctp
    cluster_ip: str
    port: int
    node_port: int = 0  # 0: none
    affinity_seconds: int = 0  # 0: sessionAffinity None
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def id(self) -> str:
        """kube-proxy's service port name: ``ns/name/proto/portname``."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}"


@dataclass(frozen=True)
class Desired:
    node_ip: str
    cluster_cidr: str
    ports: dict[str, ServicePort] = field(default_factory=dict)  # by ServicePort.id


def _valid_ip(ip: object) -> bool:
    try:
        return isinstance(ip, str) and ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def _affinity_seconds(spec: dict) -> int:
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    t = cfg.get("timeoutSeconds")
    return int(t) if isinstance(t, int) and 0 < t <= 86400 else DEFAULT_AFFINITY_SECONDS


def ready_endpoints(endpoints: dict | None, port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """Ready addresses × the Endpoints port named ``port_name`` with ``protocol`` (sorted, unique)."""
    found: set[Endpoint] = set()
    for subset in (endpoints or {}).get("subsets") or []:
        ports = [p for p in subset.get("ports") or []
                 if (p.get("name") or "") == port_name and PROTOCOLS.get(p.get("protocol") or "TCP") == protocol
                 and isinstance(p.get("port"), int) and 0 < p["port"] < 65536]
        for addr in subset.get("addresses") or []:
            if _valid_ip(addr.get("ip")):
                found.update(Endpoint(addr["ip"], p["port"]) for p in ports)
    return tuple(sorted(found))


def service_ports(service: dict, endpoints: dict | None) -> list[ServicePort]:
    """The datapath entries of one Service (none for headless/ExternalName or a bad clusterIP)."""
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    cluster_ip = spec.get("clusterIP")
    if spec.get("type") == "ExternalName" or not _valid_ip(cluster_ip):
        return []
    affinity = _affinity_seconds(spec)
    out = []
    for p in spec.get("ports") or []:
        proto = PROTOCOLS.get(p.get("protocol") or "TCP")
        port = p.get("port")
        if proto is None or not isinstance(port, int) or not 0 < port < 65536:
            continue
        node_port = p.get("nodePort") if spec.get("type") in NODEPORT_TYPES else 0
        name = p.get("name") or ""
        out.append(ServicePort(meta.get("namespace") or "default", meta.get("name") or "", name, proto, cluster_ip,
                               port, node_port if isinstance(node_port, int) and 0 < node_port < 65536 else 0,
                               affinity, ready_endpoints(endpoints, name, proto)))
    return out


def desired(services: Iterable[dict], endpoints_of, node_ip: str, cluster_cidr: str,
            cache: dict | None = None) -> Desired:
    """``endpoints_of(namespace, name)`` returns the Service's Endpoints object or None. With
    ``cache`` (kept by the caller between calls) a Service whose object and Endpoints carry the same
    resourceVersions as last time is not recomputed."""
    ports: dict[str, ServicePort] = {}
    seen = set()
    for svc in services:
        meta = svc.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        ns, name = meta.get("namespace"), meta.get("name")
        ep = endpoints_of(ns, name)
        found = None
        if cache is not None:
            version = (meta.get("resourceVersion"), ((ep or {}).get("metadata") or {}).get("resourceVersion"))
            if version[0] is not None and (ep is None or version[1] is not None):
                seen.add((ns, name))
                hit = cache.get((ns, name))
                if hit is not None and hit[0] == version:
                    found = hit[1]
                else:
                    found = cache[(ns, name)] = (version, service_ports(svc, ep))
                    found = found[1]
        if found is None:
            found = service_ports(svc, ep)
        for sp in found:
            ports[sp.id] = sp
    if cache is not None:
        for key in [k for k in cache if k not in seen]:
            del cache[key]
    return Desired(node_ip, cluster_cidr, ports)
