"""networking.k8s.io/v1: NetworkPolicy, Ingress and IngressClass (and their parts).

Defaults are Kubernetes' ``SetDefaults_*`` of ``pkg/apis/networking/v1``: a port's ``protocol`` defaults to TCP, and a
policy without ``policyTypes`` gets ``[Ingress]``, plus ``Egress`` when it has egress rules. ``podSelector`` is a
struct in Kubernetes, so an omitted one decodes as the empty selector (every pod of the namespace). An IngressClass's
``parameters`` without ``scope`` get ``Cluster``. Validation (field paths and messages) lives in ``bus.validation``
(NetworkPolicy) and ``bus.ingress_validation`` (Ingress, IngressClass); the annotations k8n reads on an Ingress in
``bus.ingress``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from bus.models.base import Int, IntOrString, K8sModel, O
from bus.models.meta import LabelSelector, TopLevel

__all__ = ["IPBlock", "NetworkPolicyPeer", "NetworkPolicyPort", "NetworkPolicyIngressRule",
           "NetworkPolicyEgressRule", "NetworkPolicySpec", "NetworkPolicy", "ServiceBackendPort",
           "IngressServiceBackend", "TypedLocalObjectReference", "IngressBackend", "HTTPIngressPath",
           "HTTPIngressRuleValue", "IngressRule", "IngressTLS", "IngressSpec", "IngressPortStatus",
           "IngressLoadBalancerIngress", "IngressLoadBalancerStatus", "IngressStatus", "Ingress",
           "IngressClassParametersReference", "IngressClassSpec", "IngressClass"]

GROUP = "networking.k8s.io"
API_VERSION = f"{GROUP}/v1"
POLICY_TYPE_INGRESS, POLICY_TYPE_EGRESS = "Ingress", "Egress"
POLICY_TYPES = (POLICY_TYPE_INGRESS, POLICY_TYPE_EGRESS)
PATH_TYPE_EXACT, PATH_TYPE_PREFIX, PATH_TYPE_IMPL = "Exact", "Prefix", "ImplementationSpecific"
PATH_TYPES = (PATH_TYPE_EXACT, PATH_TYPE_IMPL, PATH_TYPE_PREFIX)  # as Kubernetes lists them (sorted)
SCOPE_CLUSTER, SCOPE_NAMESPACE = "Cluster", "Namespace"
PARAMETER_SCOPES = (SCOPE_CLUSTER, SCOPE_NAMESPACE)


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


# ---- Ingress -----------------------------------------------------------------------------------------------------


class ServiceBackendPort(K8sModel):
    name: O[str] = None
    number: O[Int] = None


class IngressServiceBackend(K8sModel):
    name: O[str] = None
    port: O[ServiceBackendPort] = None


class TypedLocalObjectReference(K8sModel):
    api_group: O[str] = None
    kind: O[str] = None
    name: O[str] = None


class IngressBackend(K8sModel):
    service: O[IngressServiceBackend] = None
    resource: O[TypedLocalObjectReference] = None


class HTTPIngressPath(K8sModel):
    path: O[str] = None
    path_type: O[str] = None  # required (validation): Exact, Prefix or ImplementationSpecific
    backend: O[IngressBackend] = Field(default_factory=IngressBackend)  # a struct in Kubernetes


class HTTPIngressRuleValue(K8sModel):
    paths: O[list[HTTPIngressPath]] = None


class IngressRule(K8sModel):
    host: O[str] = None
    http: O[HTTPIngressRuleValue] = None


class IngressTLS(K8sModel):
    hosts: O[list[str]] = None
    secret_name: O[str] = None


class IngressSpec(K8sModel):
    ingress_class_name: O[str] = None
    default_backend: O[IngressBackend] = None
    tls: O[list[IngressTLS]] = None
    rules: O[list[IngressRule]] = None


class IngressPortStatus(K8sModel):
    port: O[Int] = None
    protocol: O[str] = None
    error: O[str] = None


class IngressLoadBalancerIngress(K8sModel):
    ip: O[str] = None
    hostname: O[str] = None
    ports: O[list[IngressPortStatus]] = None


class IngressLoadBalancerStatus(K8sModel):
    ingress: O[list[IngressLoadBalancerIngress]] = None


class IngressStatus(K8sModel):
    load_balancer: O[IngressLoadBalancerStatus] = Field(default_factory=IngressLoadBalancerStatus)


class Ingress(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "Ingress"
    spec: O[IngressSpec] = Field(default_factory=IngressSpec)
    status: O[IngressStatus] = None


# ---- IngressClass (cluster-scoped) -------------------------------------------------------------------------------


class IngressClassParametersReference(K8sModel):
    api_group: O[str] = None
    kind: O[str] = None
    name: O[str] = None
    scope: O[str] = None
    namespace: O[str] = None


class IngressClassSpec(K8sModel):
    controller: O[str] = None
    parameters: O[IngressClassParametersReference] = None

    @model_validator(mode="after")
    def _default_scope(self) -> "IngressClassSpec":
        if self.parameters is not None and self.parameters.scope is None:  # SetDefaults_IngressClass
            self.parameters.scope = SCOPE_CLUSTER
        return self


class IngressClass(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "IngressClass"
    spec: O[IngressClassSpec] = Field(default_factory=IngressClassSpec)
