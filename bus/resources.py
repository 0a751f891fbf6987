"""The table of every resource k8n serves: kind, plural, short names, group/version, scope.

This is the one place that says which kinds exist; the apiserver, the client, the CLI and the
gateway all look resources up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    group: str
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ("status",)
    categories: tuple[str, ...] = ()
    history: int = 8  # revisions kept per key in the KV bucket
    ttl_seconds: float = 0.0  # 0 = keep forever
    in_memory: bool = False  # a cache that need not survive a NATS restart: no fsync per write
    stored: bool = True  # False: create-only and never stored (TokenReview): no bucket, no list/watch
    # A custom resource: the definition's details (``bus.crd.CustomInfo``); None for the kinds k8n is built with
    custom: Any = field(default=None, compare=False, hash=False)

    @property
    def storage_api_version(self) -> str:
        """The apiVersion objects are stored at: a custom resource's storage version, whatever version a request
        named (conversion strategy None: only apiVersion differs between versions)."""
        return self.api_version if self.custom is None else f"{self.group}/{self.custom.storage}"

    @property
    def bus_name(self) -> str:
        """The resource's token in subjects and its bucket's name: the plural for built-in kinds (unique among
        them), ``<plural>_<group with . as _>`` for a custom resource, since two groups may both define ``services``
        (the definition's name with ``.`` written as ``_``, so reversible: ``bus.subjects.decode_name``)."""
        if self.custom is None:
            return self.plural
        return f"{self.plural}.{self.group}".replace(".", "_")

    @property
    def singular(self) -> str:
        return self.custom.singular if self.custom is not None else self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` / ``pods`` as Kubernetes messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def cli_name(self) -> str:
        """What kubectl prints in ``deployment.apps/web``."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def model(self) -> Any:
        from bus.models import model_for_kind

        return model_for_kind(self.kind)


_ALL = ("all",)

RESOURCES: tuple[Resource, ...] = (
    Resource("Namespace", "namespaces", "", "v1", False, ("ns",)),
    Resource("Pod", "pods", "", "v1", True, ("po",), ("status", "binding", "log", "exec", "eviction", "portforward"), _ALL),
    Resource("Service", "services", "", "v1", True, ("svc",), ("status",), _ALL),
    Resource("Endpoints", "endpoints", "", "v1", True, ("ep",), ()),
    Resource("Node", "nodes", "", "v1", False, ("no",)),
    Resource("ServiceAccount", "serviceaccounts", "", "v1", True, ("sa",), ("token",)),
    Resource("Secret", "secrets", "", "v1", True, (), ()),
    Resource("ConfigMap", "configmaps", "", "v1", True, ("cm",), ()),
    Resource("PersistentVolume", "persistentvolumes", "", "v1", False, ("pv",)),
    Resource("PersistentVolumeClaim", "persistentvolumeclaims", "", "v1", True, ("pvc",)),
    Resource("ReplicationController", "replicationcontrollers", "", "v1", True, ("rc",), ("status", "scale"), _ALL),
    Resource("Event", "events", "", "v1", True, ("ev",), (), (), history=1, ttl_seconds=3600.0),
    Resource("ResourceQuota", "resourcequotas", "", "v1", True, ("quota",)),
    Resource("LimitRange", "limitranges", "", "v1", True, ("limits",), ()),
    Resource("Deployment", "deployments", "apps", "v1", True, ("deploy",), ("status", "scale"), _ALL),
    Resource("ReplicaSet", "replicasets", "apps", "v1", True, ("rs",), ("status", "scale"), _ALL),
    Resource("DaemonSet", "daemonsets", "apps", "v1", True, ("ds",), ("status",), _ALL),
    Resource("StatefulSet", "statefulsets", "apps", "v1", True, ("sts",), ("status", "scale"), _ALL),
    Resource("ControllerRevision", "controllerrevisions", "apps", "v1", True, (), ()),
    Resource("Job", "jobs", "batch", "v1", True, (), ("status",), _ALL),
    Resource("CronJob", "cronjobs", "batch", "v1", True, ("cj",), ("status",), _ALL),
    Resource("HorizontalPodAutoscaler", "horizontalpodautoscalers", "autoscaling", "v2", True, ("hpa",), ("status",), _ALL),
    Resource("Lease", "leases", "coordination.k8s.io", "v1", True, (), (), (), history=2),
    Resource("EndpointSlice", "endpointslices", "discovery.k8s.io", "v1", True, (), ()),
    Resource("NetworkPolicy", "networkpolicies", "networking.k8s.io", "v1", True, ("netpol",), ()),
    Resource("Ingress", "ingresses", "networking.k8s.io", "v1", True, ("ing",), ("status",)),
    Resource("IngressClass", "ingressclasses", "networking.k8s.io", "v1", False, (), ()),
    Resource("PodDisruptionBudget", "poddisruptionbudgets", "policy", "v1", True, ("pdb",), ("status",)),
    Resource("PriorityClass", "priorityclasses", "scheduling.k8s.io", "v1", False, ("pc",), ()),
    Resource("CertificateSigningRequest", "certificatesigningrequests", "certificates.k8s.io", "v1", False, ("csr",),
             ("status",)),  # no approval subresource: k8n approves only what it signs itself
    Resource("CustomResourceDefinition", "customresourcedefinitions", "apiextensions.k8s.io", "v1", False,
             ("crd", "crds"), ("status",), ("api-extensions",)),
    Resource("ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "admissionregistration.k8s.io",
             "v1", False, (), (), ("api-extensions",)),
    Resource("MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "admissionregistration.k8s.io",
             "v1", False, (), (), ("api-extensions",)),
    Resource("TokenReview", "tokenreviews", "authentication.k8s.io", "v1", False, (), (), stored=False),
    Resource("SubjectAccessReview", "subjectaccessreviews", "authorization.k8s.io", "v1", False, (), (), stored=False),
    Resource("LocalSubjectAccessReview", "localsubjectaccessreviews", "authorization.k8s.io", "v1", True, (), (),
             stored=False),
    Resource("SelfSubjectAccessReview", "selfsubjectaccessreviews", "authorization.k8s.io", "v1", False, (), (),
             stored=False),
    Resource("SelfSubjectRulesReview", "selfsubjectrulesreviews", "authorization.k8s.io", "v1", False, (), (),
             stored=False),
    Resource("Role", "roles", "rbac.authorization.k8s.io", "v1", True, (), ()),
    Resource("ClusterRole", "clusterroles", "rbac.authorization.k8s.io", "v1", False, (), ()),
    Resource("RoleBinding", "rolebindings", "rbac.authorization.k8s.io", "v1", True, (), ()),
    Resource("ClusterRoleBinding", "clusterrolebindings", "rbac.authorization.k8s.io", "v1", False, (), ()),
)

# Not served by the API: a read-only view of the pods bound to each node, keyed
# ``<node>.<namespace>.<name>`` so that an agent watches only its own node's pods
# (``master/nodeview.py`` keeps it; ``bus.subjects.node_pods_namespace`` gives the key prefix).
NODE_PODS = Resource("Pod", "nodepods", "", "v1", True, (), (), (), history=1)
# Not served either: the apiserver's claims on ClusterIPs and NodePorts, one key per IP or port
# (``bus.subjects.service_alloc_key``), created with a KV create that expects absence so that
# concurrent apiservers never hand out the same one (``master/apiserver/service_alloc.py``).
SERVICE_ALLOCATIONS = Resource("ServiceAllocation", "serviceallocations", "", "v1", False, (), (), (), history=1)
# Not served either: the apiservers' reply cache, one key per request id (``bus.subjects.reply_key``), so that a
# retried write is answered from its first attempt instead of being applied twice
# (``master/apiserver/replies.py``). Entries expire after ``ttl_seconds``, far longer than a client retries. Kept in
# memory (replicated in a NATS cluster): a cache of replies is not the record of a write, so it costs no fsync.
API_REPLIES = Resource("ApiReply", "replies", "", "v1", False, (), (), (), history=1, ttl_seconds=300.0,
                       in_memory=True)
BUCKETS: tuple[Resource, ...] = tuple(r for r in RESOURCES if r.stored) + (NODE_PODS, SERVICE_ALLOCATIONS, API_REPLIES)
# Served by the gateway, never stored: metrics.k8s.io/v1beta1 from the node agents' metrics on the bus
# (``master/gateway/metricsapi.py``), read-only (get, list). Not in RESOURCES: their plurals repeat the core group's.
NODE_METRICS = Resource("NodeMetrics", "nodes", "metrics.k8s.io", "v1beta1", False, (), (), stored=False)
POD_METRICS = Resource("PodMetrics", "pods", "metrics.k8s.io", "v1beta1", True, (), (), stored=False)
METRICS_RESOURCES: tuple[Resource, ...] = (NODE_METRICS, POD_METRICS)

_BY_PLURAL = {r.plural: r for r in RESOURCES}
_BY_KIND = {r.kind: r for r in RESOURCES}
_NAMES: dict[str, Resource] = {}
for _r in RESOURCES:
    for _n in (_r.plural, _r.singular, _r.kind.lower(), *_r.short_names, _r.qualified, f"{_r.singular}.{_r.group}"):
        _NAMES.setdefault(_n.lower(), _r)


# ---- custom resources (CustomResourceDefinitions), registered while their definitions exist ---------------

# bus name -> the custom resource at its storage version (``bus.crd`` builds them, ``bus.crd.CrdRegistry`` keeps
# this in step with the definitions in the cluster)
_CUSTOM: dict[str, Resource] = {}


def register_custom(res: Resource) -> None:
    _CUSTOM[res.bus_name] = res


def unregister_custom(bus_name: str) -> None:
    _CUSTOM.pop(bus_name, None)


def custom_resources() -> list[Resource]:
    return list(_CUSTOM.values())


def served() -> list[Resource]:
    """Every resource served now: the built-in ones, then the custom ones at each served version."""
    out = list(RESOURCES)
    for r in list(_CUSTOM.values()):
        out.extend(r.custom.at_versions(r))
    return out


def by_bus_name(token: str) -> Resource | None:
    """The resource a subject token or bucket names (``pods``, ``crontabs_stable_example_com``)."""
    return _BY_PLURAL.get(token) or _CUSTOM.get(token)


def by_plural(plural: str) -> Resource | None:
    return _BY_PLURAL.get(plural)


def by_group_plural(group: str, plural: str) -> Resource | None:
    """A resource by its group and plural (built-in or custom), at its storage version."""
    r = _BY_PLURAL.get(plural)
    if r is not None and r.group == group:
        return r
    return _CUSTOM.get(f"{plural}.{group}".replace(".", "_"))


def by_kind(kind: str, api_version: str | None = None) -> Resource | None:
    r = _BY_KIND.get(kind)
    if r is None or (api_version is not None and api_version != r.api_version):
        for c in list(_CUSTOM.values()):
            if c.kind == kind and (api_version is None or api_version in c.custom.api_versions(c)):
                return c.custom.at_version(c, api_version.rpartition("/")[2]) if api_version else c
        return None
    return r


def resolve(name: str) -> Resource | None:
    """Resolve what a user typed: kind, plural, singular, short name or ``plural.group``."""
    key = name.strip().lower()
    r = _NAMES.get(key)
    if r is not None:
        return r
    for c in list(_CUSTOM.values()):
        if key in c.custom.names(c):
            return c
    return None


def all_category() -> list[Resource]:
    return [r for r in RESOURCES if "all" in r.categories]


def bucket_stand_in(bucket: str) -> Resource:
    """A resource whose ``bus_name`` is ``bucket`` (a built-in kind's or a custom resource's), for code that walks
    buckets as such (backups, storage migration)."""
    return Resource("Bucket", bucket, "", "v1", True)
