"""core/v1 kinds: Pod (and the PodSpec every workload embeds), Service, Endpoints, Node, Namespace, ServiceAccount,
Secret, ConfigMap, PersistentVolume(Claim), ReplicationController, Event, Binding; plus policy/v1 Eviction."""

from __future__ import annotations

from pydantic import Field, model_validator

from bus.models.base import (
    Bool, Condition, Dict, Int, IntOrString, K8sModel, LocalObjectReference, O, ObjectReference, Quantity,
    ResourceList, StrMap,
)
from bus.models.meta import DeleteOptions, LabelSelector, ObjectMeta, TopLevel

# --- containers -------------------------------------------------------------------------------------------------


class ObjectFieldSelector(K8sModel):
    api_version: O[str] = "v1"
    field_path: O[str] = None


class KeySelector(K8sModel):
    """secretKeyRef / configMapKeyRef."""

    name: O[str] = None
    key: O[str] = None
    optional: O[Bool] = None


class ResourceFieldSelector(K8sModel):
    container_name: O[str] = None
    resource: O[str] = None
    divisor: O[Quantity] = None


class EnvVarSource(K8sModel):
    field_ref: O[ObjectFieldSelector] = None
    resource_field_ref: O[ResourceFieldSelector] = None
    config_map_key_ref: O[KeySelector] = None
    secret_key_ref: O[KeySelector] = None


class EnvVar(K8sModel):
    name: O[str] = None
    value: O[str] = None
    value_from: O[EnvVarSource] = None


class EnvFromSource(K8sModel):
    prefix: O[str] = None
    config_map_ref: O[KeySelector] = None
    secret_ref: O[KeySelector] = None


class ContainerPort(K8sModel):
    name: O[str] = None
    container_port: O[Int] = None
    host_port: O[Int] = None
    protocol: O[str] = "TCP"
    host_ip: O[str] = None


class ResourceRequirements(K8sModel):
    limits: O[ResourceList] = None
    requests: O[ResourceList] = None
    claims: O[list[Dict]] = None


class VolumeMount(K8sModel):
    name: O[str] = None
    mount_path: O[str] = None
    read_only: O[Bool] = None
    sub_path: O[str] = None
    sub_path_expr: O[str] = None
    mount_propagation: O[str] = None


class ExecAction(K8sModel):
    command: O[list[str]] = None


class HTTPHeader(K8sModel):
    name: O[str] = None
    value: O[str] = None


class HTTPGetAction(K8sModel):
    path: O[str] = None
    port: O[IntOrString] = None
    host: O[str] = None
    scheme: O[str] = "HTTP"
    http_headers: O[list[HTTPHeader]] = None


class TCPSocketAction(K8sModel):
    port: O[IntOrString] = None
    host: O[str] = None


class GRPCAction(K8sModel):
    port: O[Int] = None
    service: O[str] = None


PROBE_HANDLERS = ("exec", "http_get", "tcp_socket", "grpc")


class Probe(K8sModel):
    exec: O[ExecAction] = None
    http_get: O[HTTPGetAction] = None
    tcp_socket: O[TCPSocketAction] = None
    grpc: O[GRPCAction] = None
    initial_delay_seconds: O[Int] = None
    timeout_seconds: O[Int] = 1
    period_seconds: O[Int] = 10
    success_threshold: O[Int] = 1
    failure_threshold: O[Int] = 3
    termination_grace_period_seconds: O[Int] = None


# --- security contexts ------------------------------------------------------------------------------------------


class Capabilities(K8sModel):
    add: O[list[str]] = None
    drop: O[list[str]] = None


class SeccompProfile(K8sModel):
    type: O[str] = None  # RuntimeDefault Unconfined Localhost
    localhost_profile: O[str] = None


class AppArmorProfile(K8sModel):
    type: O[str] = None  # RuntimeDefault Unconfined Localhost
    localhost_profile: O[str] = None


class SELinuxOptions(K8sModel):
    user: O[str] = None
    role: O[str] = None
    type: O[str] = None
    level: O[str] = None


class WindowsSecurityContextOptions(K8sModel):
    gmsa_credential_spec_name: O[str] = None
    gmsa_credential_spec: O[str] = None
    run_as_user_name: O[str] = None
    host_process: O[Bool] = None


class Sysctl(K8sModel):
    name: O[str] = None
    value: O[str] = None


class SecurityContext(K8sModel):
    """A container's ``securityContext`` (its fields win over the pod's)."""

    capabilities: O[Capabilities] = None
    privileged: O[Bool] = None
    se_linux_options: O[SELinuxOptions] = None
    windows_options: O[WindowsSecurityContextOptions] = None
    run_as_user: O[Int] = None
    run_as_group: O[Int] = None
    run_as_non_root: O[Bool] = None
    read_only_root_filesystem: O[Bool] = None
    allow_privilege_escalation: O[Bool] = None
    proc_mount: O[str] = None  # Default Unmasked
    seccomp_profile: O[SeccompProfile] = None
    app_armor_profile: O[AppArmorProfile] = None


class PodSecurityContext(K8sModel):
    """``spec.securityContext``: pod-wide settings, and defaults for every container's ``securityContext``."""

    se_linux_options: O[SELinuxOptions] = None
    windows_options: O[WindowsSecurityContextOptions] = None
    run_as_user: O[Int] = None
    run_as_group: O[Int] = None
    run_as_non_root: O[Bool] = None
    supplemental_groups: O[list[Int]] = None
    supplemental_groups_policy: O[str] = None  # Merge Strict
    fs_group: O[Int] = None
    sysctls: O[list[Sysctl]] = None
    fs_group_change_policy: O[str] = None  # OnRootMismatch Always
    seccomp_profile: O[SeccompProfile] = None
    app_armor_profile: O[AppArmorProfile] = None
    se_linux_change_policy: O[str] = None  # MountOption Recursive


def default_pull_policy(image: str) -> str:
    """Always for ``:latest`` or untagged images, IfNotPresent for other tags and digests (as Kubernetes)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


class Container(K8sModel):
    name: O[str] = None
    image: O[str] = None
    command: O[list[str]] = None
    args: O[list[str]] = None
    working_dir: O[str] = None
    ports: O[list[ContainerPort]] = None
    env_from: O[list[EnvFromSource]] = None
    env: O[list[EnvVar]] = None
    resources: O[ResourceRequirements] = Field(default_factory=ResourceRequirements)
    volume_mounts: O[list[VolumeMount]] = None
    liveness_probe: O[Probe] = None
    readiness_probe: O[Probe] = None
    startup_probe: O[Probe] = None
    lifecycle: O[Dict] = None
    termination_message_path: O[str] = "/dev/termination-log"
    termination_message_policy: O[str] = "File"
    image_pull_policy: O[str] = None
    security_context: O[SecurityContext] = None
    restart_policy: O[str] = None  # sidecar init containers
    stdin: O[Bool] = None
    stdin_once: O[Bool] = None
    tty: O[Bool] = None

    @model_validator(mode="after")
    def _default_pull_policy(self) -> "Container":
        if self.image_pull_policy is None and isinstance(self.image, str):
            self.image_pull_policy = default_pull_policy(self.image)
        return self


# --- scheduling ---------------------------------------------------------------------------------------------------


class NodeSelectorRequirement(K8sModel):
    key: O[str] = None
    operator: O[str] = None  # In NotIn Exists DoesNotExist Gt Lt
    values: O[list[str]] = None


class NodeSelectorTerm(K8sModel):
    match_expressions: O[list[NodeSelectorRequirement]] = None
    match_fields: O[list[NodeSelectorRequirement]] = None


class NodeSelector(K8sModel):
    node_selector_terms: O[list[NodeSelectorTerm]] = None


class PreferredSchedulingTerm(K8sModel):
    weight: O[Int] = None
    preference: O[NodeSelectorTerm] = None


class NodeAffinity(K8sModel):
    required_during_scheduling_ignored_during_execution: O[NodeSelector] = None
    preferred_during_scheduling_ignored_during_execution: O[list[PreferredSchedulingTerm]] = None


class Affinity(K8sModel):
    node_affinity: O[NodeAffinity] = None
    pod_affinity: O[Dict] = None
    pod_anti_affinity: O[Dict] = None


class Toleration(K8sModel):
    key: O[str] = None
    operator: O[str] = "Equal"
    value: O[str] = None
    effect: O[str] = None
    toleration_seconds: O[Int] = None


# --- volumes --------------------------------------------------------------------------------------------------------


class KeyToPath(K8sModel):
    key: O[str] = None
    path: O[str] = None
    mode: O[Int] = None


class EmptyDirVolumeSource(K8sModel):
    medium: O[str] = None
    size_limit: O[Quantity] = None


class HostPathVolumeSource(K8sModel):
    path: O[str] = None
    type: O[str] = None


class SecretVolumeSource(K8sModel):
    secret_name: O[str] = None
    items: O[list[KeyToPath]] = None
    default_mode: O[Int] = 420
    optional: O[Bool] = None


class ConfigMapVolumeSource(K8sModel):
    name: O[str] = None
    items: O[list[KeyToPath]] = None
    default_mode: O[Int] = 420
    optional: O[Bool] = None


class PersistentVolumeClaimVolumeSource(K8sModel):
    claim_name: O[str] = None
    read_only: O[Bool] = None


class Volume(K8sModel):
    """``name`` plus exactly one source; sources k8n does not model (nfs, csi, …) are kept as extra fields."""

    name: O[str] = None
    empty_dir: O[EmptyDirVolumeSource] = None
    host_path: O[HostPathVolumeSource] = None
    secret: O[SecretVolumeSource] = None
    config_map: O[ConfigMapVolumeSource] = None
    persistent_volume_claim: O[PersistentVolumeClaimVolumeSource] = None
    downward_api: O[Dict] = Field(None, alias="downwardAPI")
    projected: O[Dict] = None

    def sources(self) -> list[str]:
        """Alias names of every source this volume sets (modelled or kept as an extra field)."""
        out = [
            k8s for k8s, f in _VOLUME_SOURCES if getattr(self, f) is not None
        ]
        if self.__pydantic_extra__:
            out.extend(self.__pydantic_extra__)
        return out


_VOLUME_SOURCES = [
    (Volume.model_fields[f].alias or f, f) for f in Volume.model_fields if f != "name"
]

# --- pods -----------------------------------------------------------------------------------------------------------


class PodSpec(K8sModel):
    volumes: O[list[Volume]] = None
    init_containers: O[list[Container]] = None
    containers: O[list[Container]] = None
    ephemeral_containers: O[list[Dict]] = None
    restart_policy: O[str] = "Always"
    termination_grace_period_seconds: O[Int] = 30
    active_deadline_seconds: O[Int] = None
    dns_policy: O[str] = "ClusterFirst"
    dns_config: O[Dict] = None
    node_selector: O[StrMap] = None
    service_account_name: O[str] = None
    service_account: O[str] = None  # deprecated alias of serviceAccountName
    automount_service_account_token: O[Bool] = None
    node_name: O[str] = None
    host_network: O[Bool] = None
    host_pid: O[Bool] = Field(None, alias="hostPID")
    host_ipc: O[Bool] = Field(None, alias="hostIPC")
    host_users: O[Bool] = None
    share_process_namespace: O[Bool] = None
    security_context: O[PodSecurityContext] = Field(default_factory=PodSecurityContext)
    image_pull_secrets: O[list[LocalObjectReference]] = None
    hostname: O[str] = None
    subdomain: O[str] = None
    affinity: O[Affinity] = None
    scheduler_name: O[str] = "default-scheduler"
    tolerations: O[list[Toleration]] = None
    host_aliases: O[list[Dict]] = None
    priority_class_name: O[str] = None
    priority: O[Int] = None
    readiness_gates: O[list[Dict]] = None
    runtime_class_name: O[str] = None
    enable_service_links: O[Bool] = True
    preemption_policy: O[str] = None
    overhead: O[ResourceList] = None
    topology_spread_constraints: O[list[Dict]] = None

    @model_validator(mode="after")
    def _service_account(self) -> "PodSpec":
        # Kubernetes keeps the deprecated field in step with the new one.
        if self.service_account_name is None and self.service_account is not None:
            self.service_account_name = self.service_account
        elif self.service_account is None and self.service_account_name is not None:
            self.service_account = self.service_account_name
        return self

    @model_validator(mode="after")
    def _host_network_ports(self) -> "PodSpec":
        # SetDefaults_PodSpec: with hostNetwork a port's hostPort defaults to its containerPort.
        if self.host_network:
            for c in self.all_containers():
                for p in c.ports or ():
                    if not p.host_port and p.container_port is not None:
                        p.host_port = p.container_port
        return self

    def all_containers(self) -> list[Container]:
        return [*(self.init_containers or ()), *(self.containers or ())]


class ContainerStateWaiting(K8sModel):
    reason: O[str] = None
    message: O[str] = None


class ContainerStateRunning(K8sModel):
    started_at: O[str] = None


class ContainerStateTerminated(K8sModel):
    exit_code: O[Int] = None
    signal: O[Int] = None
    reason: O[str] = None
    message: O[str] = None
    started_at: O[str] = None
    finished_at: O[str] = None
    container_id: O[str] = None


class ContainerState(K8sModel):
    waiting: O[ContainerStateWaiting] = None
    running: O[ContainerStateRunning] = None
    terminated: O[ContainerStateTerminated] = None


class ContainerStatus(K8sModel):
    name: O[str] = None
    state: O[ContainerState] = None
    last_state: O[ContainerState] = None
    ready: O[Bool] = None
    restart_count: O[Int] = None
    image: O[str] = None
    image_id: O[str] = None
    container_id: O[str] = None
    started: O[Bool] = None


class PodIP(K8sModel):
    ip: O[str] = None


class PodStatus(K8sModel):
    phase: O[str] = None
    conditions: O[list[Condition]] = None
    message: O[str] = None
    reason: O[str] = None
    nominated_node_name: O[str] = None
    host_ip: O[str] = None
    host_ips: O[list[PodIP]] = None
    pod_ip: O[str] = None
    pod_ips: O[list[PodIP]] = None
    start_time: O[str] = None
    init_container_statuses: O[list[ContainerStatus]] = None
    container_statuses: O[list[ContainerStatus]] = None
    qos_class: O[str] = None


class Pod(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Pod"
    spec: O[PodSpec] = None
    status: O[PodStatus] = None

    @model_validator(mode="after")
    def _requests_from_limits(self) -> "Pod":
        # SetDefaults_Pod: a limit without a request sets the request (templates are not defaulted this way).
        for c in self.spec.all_containers() if self.spec else ():
            r = c.resources
            if r is not None and r.limits:
                reqs = r.requests if r.requests is not None else {}
                for k, v in r.limits.items():
                    reqs.setdefault(k, v)
                r.requests = reqs
        return self


class PodTemplateSpec(K8sModel):
    metadata: O[ObjectMeta] = None
    spec: O[PodSpec] = None


class Binding(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Binding"
    target: O[ObjectReference] = None


class Eviction(TopLevel):
    api_version: O[str] = "policy/v1"
    kind: O[str] = "Eviction"
    delete_options: O[DeleteOptions] = None


# --- services -------------------------------------------------------------------------------------------------------


class ServicePort(K8sModel):
    name: O[str] = None
    protocol: O[str] = "TCP"
    app_protocol: O[str] = None
    port: O[Int] = None
    target_port: O[IntOrString] = None
    node_port: O[Int] = None

    @model_validator(mode="after")
    def _default_target(self) -> "ServicePort":
        if self.target_port is None and self.port is not None:
            self.target_port = self.port
        return self


class ServiceSpec(K8sModel):
    type: O[str] = "ClusterIP"
    selector: O[StrMap] = None
    ports: O[list[ServicePort]] = None
    cluster_ip: O[str] = None
    cluster_ips: O[list[str]] = None
    external_ips: O[list[str]] = None
    external_name: O[str] = None
    session_affinity: O[str] = "None"
    session_affinity_config: O[Dict] = None
    external_traffic_policy: O[str] = None
    internal_traffic_policy: O[str] = None
    health_check_node_port: O[Int] = None
    ip_families: O[list[str]] = None
    ip_family_policy: O[str] = None
    load_balancer_ip: O[str] = None
    load_balancer_source_ranges: O[list[str]] = None
    load_balancer_class: O[str] = None
    allocate_load_balancer_node_ports: O[Bool] = None
    publish_not_ready_addresses: O[Bool] = None

    @model_validator(mode="after")
    def _defaults(self) -> "ServiceSpec":
        if self.type != "ExternalName" and self.internal_traffic_policy is None:
            self.internal_traffic_policy = "Cluster"
        if self.type in ("NodePort", "LoadBalancer") and self.external_traffic_policy is None:
            self.external_traffic_policy = "Cluster"
        return self


class LoadBalancerIngress(K8sModel):
    ip: O[str] = None
    hostname: O[str] = None
    ports: O[list[Dict]] = None


class LoadBalancerStatus(K8sModel):
    ingress: O[list[LoadBalancerIngress]] = None


class ServiceStatus(K8sModel):
    load_balancer: O[LoadBalancerStatus] = Field(default_factory=LoadBalancerStatus)
    conditions: O[list[Condition]] = None


class Service(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Service"
    spec: O[ServiceSpec] = Field(default_factory=ServiceSpec)
    status: O[ServiceStatus] = Field(default_factory=ServiceStatus)


class EndpointAddress(K8sModel):
    ip: O[str] = None
    hostname: O[str] = None
    node_name: O[str] = None
    target_ref: O[ObjectReference] = None


class EndpointPort(K8sModel):
    name: O[str] = None
    port: O[Int] = None
    protocol: O[str] = "TCP"
    app_protocol: O[str] = None


class EndpointSubset(K8sModel):
    addresses: O[list[EndpointAddress]] = None
    not_ready_addresses: O[list[EndpointAddress]] = None
    ports: O[list[EndpointPort]] = None


class Endpoints(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Endpoints"
    subsets: O[list[EndpointSubset]] = None


# --- nodes & namespaces ----------------------------------------------------------------------------------------------


class Taint(K8sModel):
    key: O[str] = None
    value: O[str] = None
    effect: O[str] = None
    time_added: O[str] = None


class NodeSpec(K8sModel):
    pod_cidr: O[str] = None
    pod_cidrs: O[list[str]] = None
    provider_id: O[str] = None
    unschedulable: O[Bool] = None
    taints: O[list[Taint]] = None


class NodeAddress(K8sModel):
    type: O[str] = None
    address: O[str] = None


class NodeSystemInfo(K8sModel):
    machine_id: O[str] = None
    system_uuid: O[str] = None
    boot_id: O[str] = None
    kernel_version: O[str] = None
    os_image: O[str] = None
    container_runtime_version: O[str] = None
    kubelet_version: O[str] = None
    kube_proxy_version: O[str] = None
    operating_system: O[str] = None
    architecture: O[str] = None


class NodeStatus(K8sModel):
    capacity: O[ResourceList] = None
    allocatable: O[ResourceList] = None
    phase: O[str] = None
    conditions: O[list[Condition]] = None
    addresses: O[list[NodeAddress]] = None
    daemon_endpoints: O[Dict] = None  # {kubeletEndpoint: {Port: 10250}}
    node_info: O[NodeSystemInfo] = None
    images: O[list[Dict]] = None


class Node(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Node"
    spec: O[NodeSpec] = Field(default_factory=NodeSpec)
    status: O[NodeStatus] = None


class NamespaceSpec(K8sModel):
    finalizers: O[list[str]] = None


class NamespaceStatus(K8sModel):
    phase: O[str] = "Active"
    conditions: O[list[Condition]] = None


class Namespace(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Namespace"
    spec: O[NamespaceSpec] = None
    status: O[NamespaceStatus] = Field(default_factory=NamespaceStatus)


# --- config ---------------------------------------------------------------------------------------------------------


class ServiceAccount(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "ServiceAccount"
    secrets: O[list[ObjectReference]] = None
    image_pull_secrets: O[list[LocalObjectReference]] = None
    automount_service_account_token: O[Bool] = None


class Secret(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Secret"
    type: O[str] = "Opaque"
    data: O[StrMap] = None  # base64 values
    string_data: O[StrMap] = None
    immutable: O[Bool] = None


class ConfigMap(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "ConfigMap"
    data: O[StrMap] = None
    binary_data: O[StrMap] = None
    immutable: O[Bool] = None


# --- storage --------------------------------------------------------------------------------------------------------


class PersistentVolumeSpec(K8sModel):
    capacity: O[ResourceList] = None
    access_modes: O[list[str]] = None
    persistent_volume_reclaim_policy: O[str] = "Retain"
    storage_class_name: O[str] = None
    host_path: O[HostPathVolumeSource] = None
    local: O[Dict] = None
    nfs: O[Dict] = None
    csi: O[Dict] = None
    claim_ref: O[ObjectReference] = None
    volume_mode: O[str] = "Filesystem"
    node_affinity: O[Dict] = None
    mount_options: O[list[str]] = None

    def sources(self) -> list[str]:
        out = [a for a, f in (("hostPath", "host_path"), ("local", "local"), ("nfs", "nfs"), ("csi", "csi"))
               if getattr(self, f) is not None]
        if self.__pydantic_extra__:
            out.extend(self.__pydantic_extra__)  # every other PV field is a volume source (gcePersistentDisk, …)
        return out


class PersistentVolumeStatus(K8sModel):
    phase: O[str] = None
    message: O[str] = None
    reason: O[str] = None
    last_phase_transition_time: O[str] = None


class PersistentVolume(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "PersistentVolume"
    spec: O[PersistentVolumeSpec] = None
    status: O[PersistentVolumeStatus] = None


class VolumeResourceRequirements(K8sModel):
    limits: O[ResourceList] = None
    requests: O[ResourceList] = None


class PersistentVolumeClaimSpec(K8sModel):
    access_modes: O[list[str]] = None
    selector: O[LabelSelector] = None
    resources: O[VolumeResourceRequirements] = None
    volume_name: O[str] = None
    storage_class_name: O[str] = None
    volume_mode: O[str] = "Filesystem"
    data_source: O[Dict] = None
    data_source_ref: O[Dict] = None


class PersistentVolumeClaimStatus(K8sModel):
    phase: O[str] = None
    access_modes: O[list[str]] = None
    capacity: O[ResourceList] = None
    conditions: O[list[Condition]] = None


class PersistentVolumeClaim(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "PersistentVolumeClaim"
    spec: O[PersistentVolumeClaimSpec] = None
    status: O[PersistentVolumeClaimStatus] = None


# --- replication controller & events --------------------------------------------------------------------------------


class ReplicationControllerSpec(K8sModel):
    replicas: O[Int] = 1
    min_ready_seconds: O[Int] = None
    selector: O[StrMap] = None
    template: O[PodTemplateSpec] = None


class ReplicationControllerStatus(K8sModel):
    replicas: O[Int] = None
    fully_labeled_replicas: O[Int] = None
    ready_replicas: O[Int] = None
    available_replicas: O[Int] = None
    observed_generation: O[Int] = None
    conditions: O[list[Condition]] = None


class ReplicationController(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "ReplicationController"
    spec: O[ReplicationControllerSpec] = None
    status: O[ReplicationControllerStatus] = None

    @model_validator(mode="after")
    def _default_selector(self) -> "ReplicationController":
        # SetDefaults_ReplicationController: selector and labels default to the template's labels.
        spec = self.spec
        tlabels = spec.template.metadata.labels if spec and spec.template and spec.template.metadata else None
        if tlabels:
            if not spec.selector:  # type: ignore[union-attr]
                spec.selector = dict(tlabels)  # type: ignore[union-attr]
            if self.metadata is not None and not self.metadata.labels:
                self.metadata.labels = dict(tlabels)
        return self


class EventSource(K8sModel):
    component: O[str] = None
    host: O[str] = None


class EventSeries(K8sModel):
    count: O[Int] = None
    last_observed_time: O[str] = None


class Event(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "Event"
    involved_object: O[ObjectReference] = None
    reason: O[str] = None
    message: O[str] = None
    source: O[EventSource] = None
    first_timestamp: O[str] = None
    last_timestamp: O[str] = None
    count: O[Int] = None
    type: O[str] = None
    event_time: O[str] = None
    series: O[EventSeries] = None
    action: O[str] = None
    related: O[ObjectReference] = None
    reporting_component: O[str] = None
    reporting_instance: O[str] = None

