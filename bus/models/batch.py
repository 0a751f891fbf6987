"""batch/v1: Job."""

from __future__ import annotations

from pydantic import model_validator

from bus.models.base import Bool, Condition, Dict, Int, K8sModel, O
from bus.models.core import PodTemplateSpec
from bus.models.meta import LabelSelector, TopLevel


class JobSpec(K8sModel):
    parallelism: O[Int] = None
    completions: O[Int] = None
    active_deadline_seconds: O[Int] = None
    backoff_limit: O[Int] = 6
    selector: O[LabelSelector] = None
    manual_selector: O[Bool] = None
    template: O[PodTemplateSpec] = None
    ttl_seconds_after_finished: O[Int] = None
    completion_mode: O[str] = "NonIndexed"
    suspend: O[Bool] = False
    pod_failure_policy: O[Dict] = None

    @model_validator(mode="after")
    def _default_counts(self) -> "JobSpec":
        # SetDefaults_Job: both unset -> 1 and 1; parallelism alone -> a work queue (completions stays unset).
        if self.completions is None and self.parallelism is None:
            self.completions = 1
        if self.parallelism is None:
            self.parallelism = 1
        return self


class UncountedTerminatedPods(K8sModel):
    succeeded: O[list[str]] = None
    failed: O[list[str]] = None


class JobStatus(K8sModel):
    conditions: O[list[Condition]] = None
    start_time: O[str] = None
    completion_time: O[str] = None
    active: O[Int] = None
    succeeded: O[Int] = None
    failed: O[Int] = None
    terminating: O[Int] = None
    completed_indexes: O[str] = None
    uncounted_terminated_pods: O[UncountedTerminatedPods] = None
    ready: O[Int] = None


class Job(TopLevel):
    api_version: O[str] = "batch/v1"
    kind: O[str] = "Job"
    spec: O[JobSpec] = None
    status: O[JobStatus] = None
