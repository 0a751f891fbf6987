"""core/v1 ResourceQuota and LimitRange; scheduling.k8s.io/v1 PriorityClass.

Defaults are Kubernetes' ``SetDefaults_LimitRangeItem`` (a Container item's ``default`` falls back to its ``max``,
its ``defaultRequest`` to its ``default``, then to its ``min``) and ``SetDefaults_PriorityClass``
(``preemptionPolicy: PreemptLowerPriority``). Validation (field paths and messages) lives in ``bus.validation``;
admission (what the API server does with them) in ``master/apiserver/{quota,limitranger,priority}.py``.
"""

from __future__ import annotations

from pydantic import model_validator

from bus.models.base import Bool, Int, K8sModel, O, ResourceList
from bus.models.meta import TopLevel

__all__ = ["ScopedResourceSelectorRequirement", "ScopeSelector", "ResourceQuotaSpec", "ResourceQuotaStatus",
           "ResourceQuota", "LimitRangeItem", "LimitRangeSpec", "LimitRange", "PriorityClass",
           "LIMIT_TYPES", "QUOTA_SCOPES", "PREEMPTION_POLICIES"]

LIMIT_TYPE_POD, LIMIT_TYPE_CONTAINER, LIMIT_TYPE_PVC = "Pod", "Container", "PersistentVolumeClaim"
LIMIT_TYPES = (LIMIT_TYPE_POD, LIMIT_TYPE_CONTAINER, LIMIT_TYPE_PVC)
QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity")
PREEMPT_LOWER = "PreemptLowerPriority"
PREEMPTION_POLICIES = (PREEMPT_LOWER, "Never")


class ScopedResourceSelectorRequirement(K8sModel):
    scope_name: O[str] = None
    operator: O[str] = None
    values: O[list[str]] = None


class ScopeSelector(K8sModel):
    match_expressions: O[list[ScopedResourceSelectorRequirement]] = None


class ResourceQuotaSpec(K8sModel):
    hard: O[ResourceList] = None
    scopes: O[list[str]] = None
    scope_selector: O[ScopeSelector] = None


class ResourceQuotaStatus(K8sModel):
    hard: O[ResourceList] = None
    used: O[ResourceList] = None


class ResourceQuota(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "ResourceQuota"
    spec: O[ResourceQuotaSpec] = None
    status: O[ResourceQuotaStatus] = None


class LimitRangeItem(K8sModel):
    type: O[str] = None
    max: O[ResourceList] = None
    min: O[ResourceList] = None
    default: O[ResourceList] = None
    default_request: O[ResourceList] = None
    max_limit_request_ratio: O[ResourceList] = None

    @model_validator(mode="after")
    def _container_defaults(self) -> "LimitRangeItem":
        if self.type == LIMIT_TYPE_CONTAINER:
            self.default = {**(self.max or {}), **(self.default or {})} or None
            self.default_request = {**(self.min or {}), **(self.default or {}), **(self.default_request or {})} or None
        return self


class LimitRangeSpec(K8sModel):
    limits: O[list[LimitRangeItem]] = None


class LimitRange(TopLevel):
    api_version: O[str] = "v1"
    kind: O[str] = "LimitRange"
    spec: O[LimitRangeSpec] = None


class PriorityClass(TopLevel):
    api_version: O[str] = "scheduling.k8s.io/v1"
    kind: O[str] = "PriorityClass"
    value: O[Int] = 0  # int32, no omitempty: a class stating none has value 0
    global_default: O[Bool] = None
    description: O[str] = None
    preemption_policy: O[str] = PREEMPT_LOWER
