"""networking.k8s.io/v1: NetworkPolicy (and its parts); the group's Ingress and IngressClass come later.

Defaults are Kubernetes' ``SetDefaults_*`` of ``pkg/apis/networking/v1``: a port's ``protocol`` defaults to TCP, and a
policy without ``policyTypes`` gets ``[Ingress]``, plus ``Egress`` when it has egress rules. ``podSelector`` is a
struct in Kubernetes, so an omitted one decodes as the empty selector (every pod of the namespace). Validation (field
paths and messages) lives in ``bus.validation``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from bus.models.base import Int, IntOrString, K8sModel, O
from bus.models.meta import LabelSelector, TopLevel

__all__ = ["IPBlock", "NetworkPolicyPeer", "NetworkPolicyPort", "NetworkPolicyIngressRule",
           "NetworkPolicyEgressRule", "NetworkPolicySpec", "NetworkPolicy"]

GROUP = "networking.k8s.io"
API_VERSION = f"{GROUP}/v1"
POLICY_TYPE_INGRESS, POLICY_TYPE_EGRESS = "Ingress", "Egress"
POLICY_TYPES = (POLICY_TYPE_INGRESS, POLICY_TYPE_EGRESS)


class IPBlock(K8sModel):
    cidr: O[str] = None
    except_: O[list[str]] = None  # ``except`` on the wire


class NetworkPolicyPeer(K8sModel):
    pod_selector: O[LabelSelector] = None
    namespace_selector: O[LabelSelector] = None
    ip_block: O[IPBlock] = None


class NetworkPolicyPort(K8sModel):
    protocol: O[str] = "TCP"  # SetDefaults_NetworkPolicyPort
    port: O[IntOrString] = None  # a number or a named container port
    end_port: O[Int] = None

    @model_validator(mode="after")
    def _default_protocol(self) -> "NetworkPolicyPort":
        if self.protocol is None:  # ``protocol: null`` too
            self.protocol = "TCP"
        return self


class NetworkPolicyIngressRule(K8sModel):
    ports: O[list[NetworkPolicyPort]] = None
    from_: O[list[NetworkPolicyPeer]] = None  # ``from`` on the wire


class NetworkPolicyEgressRule(K8sModel):
    ports: O[list[NetworkPolicyPort]] = None
    to: O[list[NetworkPolicyPeer]] = None


class NetworkPolicySpec(K8sModel):
    pod_selector: O[LabelSelector] = Field(default_factory=LabelSelector)
    ingress: O[list[NetworkPolicyIngressRule]] = None
    egress: O[list[NetworkPolicyEgressRule]] = None
    policy_types: O[list[str]] = None

    @model_validator(mode="after")
    def _default_policy_types(self) -> "NetworkPolicySpec":
        if not self.policy_types:  # SetDefaults_NetworkPolicy
            self.policy_types = [POLICY_TYPE_INGRESS] + ([POLICY_TYPE_EGRESS] if self.egress else [])
        if self.pod_selector is None:  # a struct in Kubernetes: ``podSelector: null`` is the empty selector
            self.pod_selector = LabelSelector()
        return self


class NetworkPolicy(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "NetworkPolicy"
    spec: O[NetworkPolicySpec] = Field(default_factory=NetworkPolicySpec)
