"""How each list field of each kind merges: the ``patchStrategy`` / ``patchMergeKey`` and ``listType`` /
``listMapKey`` tags of Kubernetes' Go types (k8s.io/api core/v1, apps/v1, batch/v1, autoscaling/v2,
meta/v1), as a small table keyed by struct type and field name.

Strategic merge patch reads the patch strategy and merge key; server-side apply reads the list type
(``map`` lists are associative, keyed by ``keys``; ``set`` lists hold unique primitives; everything else is
atomic) and whether a struct is atomic (``selector``). A field not in the table is a plain struct field
when its value is a map, and a replaced / atomic list when its value is a list — as Kubernetes does for
lists without tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    type: str | None = None  # struct type of the value (of each item, for lists)
    strategy: str = ""  # SMP patchStrategy: "merge" or "" (replace); "retainKeys" is implied by the patch
    merge_key: str = ""  # SMP patchMergeKey (lists of maps)
    list_type: str = ""  # SSA: "map" | "set" | "" (atomic)
    keys: tuple[str, ...] = ()  # SSA listMapKeys (default: the merge key)
    key_defaults: dict = field(default_factory=dict)  # schema defaults of key fields (ports: protocol TCP)
    atomic: bool = False  # SSA: a struct owned as a whole (+structType=atomic)

    @property
    def map_keys(self) -> tuple[str, ...]:
        return self.keys or ((self.merge_key,) if self.merge_key else ())


def _keyed(key: str, type: str | None = None, keys: tuple[str, ...] = (), **kw) -> Field:
    """A list of maps merged by ``key`` (patchStrategy merge, listType map)."""
    return Field(type=type, strategy="merge", merge_key=key, list_type="map", keys=keys, **kw)


_SET = Field(strategy="merge", list_type="set")  # a list of primitives merged as a set (finalizers)
_ATOMIC = Field(atomic=True)
_CONDITIONS = _keyed("type")
_TCP = {"protocol": "TCP"}

TYPES: dict[str, dict[str, Field]] = {
    "ObjectMeta": {
        "ownerReferences": _keyed("uid"),
        "finalizers": _SET,
    },
    "PodTemplateSpec": {"metadata": Field("ObjectMeta"), "spec": Field("PodSpec")},
    "PodSpec": {
        "containers": _keyed("name", "Container"),
        "initContainers": _keyed("name", "Container"),
        "ephemeralContainers": _keyed("name", "Container"),
        "volumes": _keyed("name"),  # merge,retainKeys
        "imagePullSecrets": _keyed("name"),
        "hostAliases": _keyed("ip"),
        "topologySpreadConstraints": _keyed("topologyKey", keys=("topologyKey", "whenUnsatisfiable")),
        "resourceClaims": _keyed("name"),
        "schedulingGates": _keyed("name"),
    },
    "Container": {
        "ports": _keyed("containerPort", keys=("containerPort", "protocol"), key_defaults=_TCP),
        "env": _keyed("name"),
        "volumeMounts": _keyed("mountPath"),
        "volumeDevices": _keyed("devicePath"),
        "resources": Field("ResourceRequirements"),
    },
    "ResourceRequirements": {"claims": Field(list_type="map", keys=("name",))},
    "PodStatus": {
        "conditions": _CONDITIONS,
        "podIPs": _keyed("ip"),
        "hostIPs": _keyed("ip"),
        "resourceClaimStatuses": _keyed("name"),
    },
    "ServiceSpec": {"ports": _keyed("port", keys=("port", "protocol"), key_defaults=_TCP)},
    "ServiceStatus": {"conditions": _CONDITIONS},
    "NodeSpec": {"podCIDRs": _SET},
    "NodeStatus": {"conditions": _CONDITIONS, "addresses": _keyed("type")},
    "NamespaceStatus": {"conditions": _CONDITIONS},
    "PersistentVolumeClaimStatus": {"conditions": _CONDITIONS},
    "ServiceAccount": {"secrets": _keyed("name")},
    "ReplicationControllerSpec": {"template": Field("PodTemplateSpec")},
    "WorkloadSpec": {"template": Field("PodTemplateSpec"), "selector": _ATOMIC},  # apps/v1 and batch/v1 specs
    "WorkloadStatus": {"conditions": _CONDITIONS},
    "CronJobSpec": {"jobTemplate": Field("JobTemplateSpec")},
    "JobTemplateSpec": {"metadata": Field("ObjectMeta"), "spec": Field("WorkloadSpec")},
    "HorizontalPodAutoscalerStatus": {"conditions": _CONDITIONS},
    "NetworkPolicySpec": {"podSelector": _ATOMIC},  # its lists are atomic (untagged here)
    "PodDisruptionBudgetSpec": {"selector": _ATOMIC},  # patchStrategy=replace
    "PodDisruptionBudgetStatus": {"conditions": _CONDITIONS},
    "ValidatingWebhookConfiguration": {"webhooks": _keyed("name")},  # top-level lists (admissionregistration/v1)
    "MutatingWebhookConfiguration": {"webhooks": _keyed("name")},
}

# kind -> struct type of each top-level field (metadata is ObjectMeta everywhere)
KINDS: dict[str, dict[str, str]] = {
    "Pod": {"spec": "PodSpec", "status": "PodStatus"},
    "PodTemplate": {"template": "PodTemplateSpec"},
    "Service": {"spec": "ServiceSpec", "status": "ServiceStatus"},
    "Node": {"spec": "NodeSpec", "status": "NodeStatus"},
    "Namespace": {"status": "NamespaceStatus"},
    "PersistentVolumeClaim": {"status": "PersistentVolumeClaimStatus"},
    "ReplicationController": {"spec": "ReplicationControllerSpec", "status": "WorkloadStatus"},
    "Deployment": {"spec": "WorkloadSpec", "status": "WorkloadStatus"},
    "ReplicaSet": {"spec": "WorkloadSpec", "status": "WorkloadStatus"},
    "DaemonSet": {"spec": "WorkloadSpec", "status": "WorkloadStatus"},
    "StatefulSet": {"spec": "WorkloadSpec", "status": "WorkloadStatus"},
    "Job": {"spec": "WorkloadSpec", "status": "WorkloadStatus"},
    "CronJob": {"spec": "CronJobSpec"},  # status.active is atomic (+listType=atomic)
    "HorizontalPodAutoscaler": {"status": "HorizontalPodAutoscalerStatus"},
    "NetworkPolicy": {"spec": "NetworkPolicySpec"},
    "PodDisruptionBudget": {"spec": "PodDisruptionBudgetSpec", "status": "PodDisruptionBudgetStatus"},
}

_NONE = Field()


def root_type(kind: str) -> str:
    """The (pseudo) struct type name of a whole object of ``kind``."""
    return f"kind:{kind}"


def lookup(type_name: str | None, name: str) -> Field:
    """The metadata of field ``name`` of struct ``type_name`` (an untagged field when unknown)."""
    if type_name is None:
        return _NONE
    if type_name.startswith("kind:"):
        if name == "metadata":
            return Field("ObjectMeta")
        kind = type_name[5:]
        sub = KINDS.get(kind, {}).get(name)
        if sub is None:
            return TYPES.get(kind, {}).get(name, _NONE)  # kinds whose top level has tagged lists
        return Field(sub)
    return TYPES.get(type_name, {}).get(name, _NONE)
