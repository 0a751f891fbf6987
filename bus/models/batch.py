"""batch/v1: Job and CronJob."""

from __future__ import annotations

from pydantic import model_validator

from bus.models.base import Bool, Condition, Dict, Int, K8sModel, O, ObjectReference
from bus.models.core import PodTemplateSpec
from bus.models.meta import LabelSelector, ObjectMeta, TopLevel


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


class JobTemplateJobSpec(JobSpec):
    """A CronJob's ``jobTemplate.spec``: Kubernetes defaults the Job made from it, not the template (only its pod
    template gets the pod defaults), so none of JobSpec's defaults apply here."""

    backoff_limit: O[Int] = None
    completion_mode: O[str] = None
    suspend: O[Bool] = None

    @model_validator(mode="after")
    def _default_counts(self) -> "JobTemplateJobSpec":
        return self


class JobTemplateSpec(K8sModel):
    metadata: O[ObjectMeta] = None
    spec: O[JobTemplateJobSpec] = None


class CronJobSpec(K8sModel):
    schedule: O[str] = None
    time_zone: O[str] = None
    starting_deadline_seconds: O[Int] = None
    concurrency_policy: O[str] = "Allow"
    suspend: O[Bool] = False
    job_template: O[JobTemplateSpec] = None
    successful_jobs_history_limit: O[Int] = 3
    failed_jobs_history_limit: O[Int] = 1


class CronJobStatus(K8sModel):
    active: O[list[ObjectReference]] = None
    last_schedule_time: O[str] = None
    last_successful_time: O[str] = None


class CronJob(TopLevel):
    api_version: O[str] = "batch/v1"
    kind: O[str] = "CronJob"
    spec: O[CronJobSpec] = None
    status: O[CronJobStatus] = None
