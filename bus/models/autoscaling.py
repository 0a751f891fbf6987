"""autoscaling/v2 HorizontalPodAutoscaler and autoscaling/v1 Scale."""

from __future__ import annotations

from pydantic import Field, model_validator

from bus.models.base import Condition, Dict, Int, K8sModel, O, Quantity
from bus.models.meta import TopLevel


class CrossVersionObjectReference(K8sModel):
    api_version: O[str] = None
    kind: O[str] = None
    name: O[str] = None


class MetricTarget(K8sModel):
    type: O[str] = None  # Utilization | AverageValue | Value
    average_utilization: O[Int] = None
    average_value: O[Quantity] = None
    value: O[Quantity] = None


class ResourceMetricSource(K8sModel):
    name: O[str] = None
    target: O[MetricTarget] = None


class ContainerResourceMetricSource(ResourceMetricSource):
    container: O[str] = None


class MetricSpec(K8sModel):
    type: O[str] = None  # Resource | Pods | Object | External | ContainerResource
    resource: O[ResourceMetricSource] = None
    container_resource: O[ContainerResourceMetricSource] = None
    pods: O[Dict] = None
    object: O[Dict] = None
    external: O[Dict] = None


class HPAScalingPolicy(K8sModel):
    type: O[str] = None  # Pods | Percent
    value: O[Int] = None
    period_seconds: O[Int] = None


class HPAScalingRules(K8sModel):
    stabilization_window_seconds: O[Int] = None
    select_policy: O[str] = None  # Max | Min | Disabled
    policies: O[list[HPAScalingPolicy]] = None
    tolerance: O[Quantity] = None


def _policy(type_: str, value: int) -> HPAScalingPolicy:
    return HPAScalingPolicy(type=type_, value=value, period_seconds=15)


def _fill_rules(rules: HPAScalingRules | None, window: int, policies: list[HPAScalingPolicy]) -> HPAScalingRules:
    rules = rules or HPAScalingRules()
    if rules.stabilization_window_seconds is None:
        rules.stabilization_window_seconds = window
    if rules.select_policy is None:
        rules.select_policy = "Max"
    if rules.policies is None:
        rules.policies = policies
    return rules


class HorizontalPodAutoscalerBehavior(K8sModel):
    scale_up: O[HPAScalingRules] = None
    scale_down: O[HPAScalingRules] = None

    @model_validator(mode="after")
    def _defaults(self) -> "HorizontalPodAutoscalerBehavior":
        # The documented defaults, applied (as Kubernetes does) only when behavior is given at all.
        self.scale_up = _fill_rules(self.scale_up, 0, [_policy("Pods", 4), _policy("Percent", 100)])
        self.scale_down = _fill_rules(self.scale_down, 300, [_policy("Percent", 100)])
        return self


def _default_metrics() -> list[MetricSpec]:
    target = MetricTarget(type="Utilization", average_utilization=80)
    return [MetricSpec(type="Resource", resource=ResourceMetricSource(name="cpu", target=target))]


class HorizontalPodAutoscalerSpec(K8sModel):
    scale_target_ref: O[CrossVersionObjectReference] = None
    min_replicas: O[Int] = 1
    max_replicas: O[Int] = None
    metrics: O[list[MetricSpec]] = None
    behavior: O[HorizontalPodAutoscalerBehavior] = None

    @model_validator(mode="after")
    def _default_metrics(self) -> "HorizontalPodAutoscalerSpec":
        if not self.metrics:  # no metrics: 80% average CPU utilisation, as Kubernetes defaults
            self.metrics = _default_metrics()
        return self


class HorizontalPodAutoscalerStatus(K8sModel):
    observed_generation: O[Int] = None
    last_scale_time: O[str] = None
    current_replicas: O[Int] = None
    desired_replicas: O[Int] = None
    current_metrics: O[list[Dict]] = None
    conditions: O[list[Condition]] = None


class HorizontalPodAutoscaler(TopLevel):
    api_version: O[str] = "autoscaling/v2"
    kind: O[str] = "HorizontalPodAutoscaler"
    spec: O[HorizontalPodAutoscalerSpec] = None
    status: O[HorizontalPodAutoscalerStatus] = None


class ScaleSpec(K8sModel):
    replicas: O[Int] = None


class ScaleStatus(K8sModel):
    replicas: O[Int] = None
    selector: O[str] = None


class Scale(TopLevel):
    api_version: O[str] = "autoscaling/v1"
    kind: O[str] = "Scale"
    spec: O[ScaleSpec] = Field(default_factory=ScaleSpec)
    status: O[ScaleStatus] = None
