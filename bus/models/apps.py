"""apps/v1: Deployment, ReplicaSet, DaemonSet, StatefulSet, ControllerRevision."""

from __future__ import annotations

from pydantic import Field, model_validator

from bus.models.base import Condition, Dict, Int, IntOrString, K8sModel, O, Bool
from bus.models.core import PersistentVolumeClaim, PodTemplateSpec
from bus.models.meta import LabelSelector, TopLevel


class RollingUpdateDeployment(K8sModel):
    max_unavailable: O[IntOrString] = "25%"
    max_surge: O[IntOrString] = "25%"


class DeploymentStrategy(K8sModel):
    type: O[str] = "RollingUpdate"  # or Recreate
    rolling_update: O[RollingUpdateDeployment] = None

    @model_validator(mode="after")
    def _default_rolling(self) -> "DeploymentStrategy":
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateDeployment()
        return self


class DeploymentSpec(K8sModel):
    replicas: O[Int] = 1
    selector: O[LabelSelector] = None
    template: O[PodTemplateSpec] = None
    strategy: O[DeploymentStrategy] = Field(default_factory=DeploymentStrategy)
    min_ready_seconds: O[Int] = 0
    revision_history_limit: O[Int] = 10
    paused: O[Bool] = None
    progress_deadline_seconds: O[Int] = 600


class DeploymentStatus(K8sModel):
    observed_generation: O[Int] = None
    replicas: O[Int] = None
    updated_replicas: O[Int] = None
    ready_replicas: O[Int] = None
    available_replicas: O[Int] = None
    unavailable_replicas: O[Int] = None
    terminating_replicas: O[Int] = None
    conditions: O[list[Condition]] = None
    collision_count: O[Int] = None


class Deployment(TopLevel):
    api_version: O[str] = "apps/v1"
    kind: O[str] = "Deployment"
    spec: O[DeploymentSpec] = None
    status: O[DeploymentStatus] = None


class ReplicaSetSpec(K8sModel):
    replicas: O[Int] = 1
    min_ready_seconds: O[Int] = None
    selector: O[LabelSelector] = None
    template: O[PodTemplateSpec] = None


class ReplicaSetStatus(K8sModel):
    replicas: O[Int] = None
    fully_labeled_replicas: O[Int] = None
    ready_replicas: O[Int] = None
    available_replicas: O[Int] = None
    terminating_replicas: O[Int] = None
    observed_generation: O[Int] = None
    conditions: O[list[Condition]] = None


class ReplicaSet(TopLevel):
    api_version: O[str] = "apps/v1"
    kind: O[str] = "ReplicaSet"
    spec: O[ReplicaSetSpec] = None
    status: O[ReplicaSetStatus] = None


class RollingUpdateDaemonSet(K8sModel):
    max_unavailable: O[IntOrString] = 1
    max_surge: O[IntOrString] = 0


class DaemonSetUpdateStrategy(K8sModel):
    type: O[str] = "RollingUpdate"  # or OnDelete
    rolling_update: O[RollingUpdateDaemonSet] = None

    @model_validator(mode="after")
    def _default_rolling(self) -> "DaemonSetUpdateStrategy":
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateDaemonSet()
        return self


class DaemonSetSpec(K8sModel):
    selector: O[LabelSelector] = None
    template: O[PodTemplateSpec] = None
    update_strategy: O[DaemonSetUpdateStrategy] = Field(default_factory=DaemonSetUpdateStrategy)
    min_ready_seconds: O[Int] = None
    revision_history_limit: O[Int] = 10


class DaemonSetStatus(K8sModel):
    current_number_scheduled: O[Int] = None
    number_misscheduled: O[Int] = None
    desired_number_scheduled: O[Int] = None
    number_ready: O[Int] = None
    observed_generation: O[Int] = None
    updated_number_scheduled: O[Int] = None
    number_available: O[Int] = None
    number_unavailable: O[Int] = None
    collision_count: O[Int] = None
    conditions: O[list[Condition]] = None


class DaemonSet(TopLevel):
    api_version: O[str] = "apps/v1"
    kind: O[str] = "DaemonSet"
    spec: O[DaemonSetSpec] = None
    status: O[DaemonSetStatus] = None


class RollingUpdateStatefulSetStrategy(K8sModel):
    partition: O[Int] = 0
    max_unavailable: O[IntOrString] = None


class StatefulSetUpdateStrategy(K8sModel):
    type: O[str] = "RollingUpdate"  # or OnDelete
    rolling_update: O[RollingUpdateStatefulSetStrategy] = None

    @model_validator(mode="after")
    def _default_rolling(self) -> "StatefulSetUpdateStrategy":
        if self.type == "RollingUpdate" and self.rolling_update is None:
            self.rolling_update = RollingUpdateStatefulSetStrategy()
        return self


class StatefulSetPersistentVolumeClaimRetentionPolicy(K8sModel):
    when_deleted: O[str] = "Retain"  # or Delete
    when_scaled: O[str] = "Retain"


class StatefulSetOrdinals(K8sModel):
    start: O[Int] = 0


class StatefulSetSpec(K8sModel):
    replicas: O[Int] = 1
    selector: O[LabelSelector] = None
    template: O[PodTemplateSpec] = None
    volume_claim_templates: O[list[PersistentVolumeClaim]] = None
    service_name: O[str] = None
    pod_management_policy: O[str] = "OrderedReady"  # or Parallel
    update_strategy: O[StatefulSetUpdateStrategy] = Field(default_factory=StatefulSetUpdateStrategy)
    revision_history_limit: O[Int] = 10
    min_ready_seconds: O[Int] = None
    persistent_volume_claim_retention_policy: O[StatefulSetPersistentVolumeClaimRetentionPolicy] = Field(
        default_factory=StatefulSetPersistentVolumeClaimRetentionPolicy)
    ordinals: O[StatefulSetOrdinals] = None


class StatefulSetStatus(K8sModel):
    observed_generation: O[Int] = None
    replicas: O[Int] = None
    ready_replicas: O[Int] = None
    current_replicas: O[Int] = None
    updated_replicas: O[Int] = None
    current_revision: O[str] = None
    update_revision: O[str] = None
    collision_count: O[Int] = None
    conditions: O[list[Condition]] = None
    available_replicas: O[Int] = None


class StatefulSet(TopLevel):
    api_version: O[str] = "apps/v1"
    kind: O[str] = "StatefulSet"
    spec: O[StatefulSetSpec] = None
    status: O[StatefulSetStatus] = None


class ControllerRevision(TopLevel):
    """A snapshot of a StatefulSet's or DaemonSet's template (``data``: the patch that restores it)."""

    api_version: O[str] = "apps/v1"
    kind: O[str] = "ControllerRevision"
    data: O[Dict] = None
    revision: O[Int] = None
