"""discovery.k8s.io/v1: EndpointSlice (what kubectl 1.32's ``describe service`` reads for its Endpoints line)."""

from __future__ import annotations

from pydantic import Field

from bus.models.base import Bool, Dict, Int, K8sModel, O, ObjectReference, StrMap
from bus.models.meta import TopLevel

ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")


class EndpointConditions(K8sModel):
    ready: O[Bool] = None
    serving: O[Bool] = None
    terminating: O[Bool] = None


class Endpoint(K8sModel):
    addresses: O[list[str]] = None
    conditions: O[EndpointConditions] = Field(default_factory=EndpointConditions)
    hostname: O[str] = None
    target_ref: O[ObjectReference] = None
    deprecated_topology: O[StrMap] = None
    node_name: O[str] = None
    zone: O[str] = None
    hints: O[Dict] = None


class EndpointSlicePort(K8sModel):
    # Kubernetes defaults name to "" (kubectl's describer dereferences it) and protocol to TCP.
    name: O[str] = ""
    protocol: O[str] = "TCP"
    port: O[Int] = None
    app_protocol: O[str] = None


class EndpointSlice(TopLevel):
    api_version: O[str] = "discovery.k8s.io/v1"
    kind: O[str] = "EndpointSlice"
    address_type: O[str] = None
    endpoints: O[list[Endpoint]] = None
    ports: O[list[EndpointSlicePort]] = None
