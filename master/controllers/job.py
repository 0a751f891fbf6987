"""Job controller: runs pods until ``completions`` succeeded (``parallelism`` at a time), or fails the
Job on ``backoffLimit`` (failed pods; with restartPolicy OnFailure, container restarts) or
``activeDeadlineSeconds``. Failed pods are replaced after an exponential delay (10 s doubling to
6 min, ``job-backoff-initial``). Finished pods are kept; a finished Job with
``ttlSecondsAfterFinished`` is deleted (Background propagation) once the TTL has passed.

A Job created without a selector gets the one Kubernetes generates (``batch.kubernetes.io/controller-uid``)
and the matching template labels: the controller patches them in before it acts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from bus import errors
from bus.controller import Controller
from bus.events import NORMAL, WARNING
from bus.expectations import Expectations
from bus.informer import Informer
from bus.meta import format_time, get_condition, set_condition, timestamp
from bus.workqueue import Result
from master.controllers._ownedpods import (PodControl, controlled_pods, creation_order, finished, observe_pods,
                                           phase, pod_from_template, pod_ready, terminating, wall_clock,
                                           write_status)

log = logging.getLogger(__name__)

KIND = "Job"
UID_LABEL, NAME_LABEL = "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name"
LEGACY_UID_LABEL, LEGACY_NAME_LABEL = "controller-uid", "job-name"
MAX_BACKOFF = 360.0  # DefaultJobPodFailureBackOff doubling stops at 6 minutes


def setup(ctx) -> list:
    jc = JobController(ctx.client, ctx.informers.informer("jobs"), ctx.informers.informer("pods"),
                       ctx.recorder("job-controller"), backoff_initial=ctx.settings.job_backoff_initial)
    return [jc.controller]


# ---- pure logic ------------------------------------------------------------------------------


def generated_selector_patch(job: dict) -> dict:
    """The merge patch that gives a selector-less Job Kubernetes' generated selector and labels."""
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    labels = {UID_LABEL: uid, NAME_LABEL: name, LEGACY_UID_LABEL: uid, LEGACY_NAME_LABEL: name}
    return {"spec": {"selector": {"matchLabels": {UID_LABEL: uid}},
                     "template": {"metadata": {"labels": labels}}}}


def restarts(pod: dict) -> int:
    st = pod.get("status") or {}
    return sum(int(c.get("restartCount") or 0)
               for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []))


def finish_time(pod: dict) -> float | None:
    """When a finished pod finished: its containers' latest finishedAt, else its Ready transition."""
    st = pod.get("status") or {}
    times = [timestamp(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for c in st.get("containerStatuses") or ()]
    times = [t for t in times if t is not None]
    if times:
        return max(times)
    return timestamp((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))


def backoff_delay(failures: int, initial: float) -> float:
    """The wait before the next pod after ``failures`` consecutive failures (0 → none)."""
    if failures <= 0:
        return 0.0
    return min(initial * 2 ** min(failures - 1, 32), MAX_BACKOFF)


def finished_condition(job: dict) -> dict | None:
    for type_ in ("Complete", "Failed"):
        c = get_condition(job, type_)
        if c and c.get("status") == "True":
            return c
    return None


@dataclass
class Plan:
    create: int = 0
    delete: list[dict] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    event: tuple[str, str, str] | None = None  # (type, reason, message)
    requeue_after: float = 0.0


def plan(job: dict, pods: list[dict], now: float, backoff_initial: float = 10.0) -> Plan:
    """What the controller does next for an unfinished Job, and its new status (pure)."""
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    out = Plan()
    status = dict(old)
    active = [p for p in pods if not finished(p) and not terminating(p)]
    succeeded_pods = [p for p in pods if phase(p) == "Succeeded"]
    failed_pods = [p for p in pods if phase(p) == "Failed"]
    succeeded = max(int(old.get("succeeded") or 0), len(succeeded_pods))
    failed = max(int(old.get("failed") or 0), len(failed_pods))
    suspended = bool(spec.get("suspend"))
    if not status.get("startTime") and not suspended:
        status["startTime"] = format_time(now)
    start = timestamp(status.get("startTime"))

    backoff_limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
    on_failure = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure"
    total_restarts = sum(restarts(p) for p in active) if on_failure else 0
    deadline = spec.get("activeDeadlineSeconds")
    failure: tuple[str, str] | None = None
    if failed > backoff_limit or (on_failure and (total_restarts > 0 if backoff_limit == 0
                                                  else total_restarts >= backoff_limit)):
        failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    elif deadline and start is not None and not suspended:
        left = start + int(deadline) - now
        if left <= 0:
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        else:
            out.requeue_after = left

    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
    conditions = list(old.get("conditions") or [])
    now_s = format_time(now)
    if failure is not None:
        out.delete = active
        failed += len(active)
        active = []
        conditions = set_condition(conditions, _condition("Failed", failure, now_s))
        out.event = (WARNING, *failure)
        out.requeue_after = 0.0
    elif (succeeded >= int(completions)) if completions is not None else (succeeded > 0 and not active):
        out.delete = active  # a work-queue Job's remaining pods are not needed any more
        active = []
        conditions = set_condition(conditions, _condition("Complete", None, now_s))
        status["completionTime"] = now_s
        out.event = (NORMAL, "Completed", "Job completed")
        out.requeue_after = 0.0
    else:
        if suspended:
            want = 0
        elif completions is None:
            want = parallelism if succeeded == 0 else len(active)
        else:
            want = min(parallelism, int(completions) - succeeded)
        if len(active) > want:  # not-ready and newest first, as Kubernetes picks pods to delete
            out.delete = sorted(sorted(active, key=creation_order, reverse=True), key=pod_ready)[: len(active) - want]
        elif len(active) < want:
            wait = _backoff_left(succeeded_pods, failed_pods, now, backoff_initial)
            if wait > 0:
                out.requeue_after = min(out.requeue_after or wait, wait)
            else:
                out.create = want - len(active)

    staying = [p for p in active if p not in out.delete]
    status.update({"active": len(staying) + out.create, "succeeded": succeeded, "failed": failed,
                   "ready": sum(1 for p in staying if pod_ready(p))})
    if conditions:
        status["conditions"] = conditions
    out.status = {k: v for k, v in status.items() if v is not None}
    return out


def _condition(type_: str, reason: tuple[str, str] | None, now_s: str) -> dict:
    c = {"type": type_, "status": "True", "lastProbeTime": now_s, "lastTransitionTime": now_s}
    if reason:
        c["reason"], c["message"] = reason
    return c


def _backoff_left(succeeded: list[dict], failed: list[dict], now: float, initial: float) -> float:
    """Seconds until the next pod may start: failures since the last success back off exponentially
    from the last failure."""
    last_success = max((t for t in map(finish_time, succeeded) if t is not None), default=0.0)
    times = sorted(t for t in map(finish_time, failed) if t is not None and t >= last_success)
    if not times:
        return 0.0
    return times[-1] + backoff_delay(len(times), initial) - now


def ttl_left(job: dict, now: float) -> float | None:
    """Seconds until a finished Job with ``ttlSecondsAfterFinished`` expires (None: it never does)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    cond = finished_condition(job)
    if ttl is None or cond is None:
        return None
    done = timestamp((job.get("status") or {}).get("completionTime") or cond.get("lastTransitionTime"))
    return (done if done is not None else now) + int(ttl) - now


def job_pod(job: dict) -> dict:
    m = job["metadata"]
    return pod_from_template(job, {UID_LABEL: m["uid"], NAME_LABEL: m["name"],
                                   LEGACY_UID_LABEL: m["uid"], LEGACY_NAME_LABEL: m["name"]})


# ---- the controller --------------------------------------------------------------------------


class JobController:
    def __init__(self, client: Any, jobs: Informer, pods: Informer, recorder: Any, backoff_initial: float = 10.0,
                 clock: Callable[[], float] = wall_clock) -> None:
        self.client = client
        self.jobs, self.pods = jobs, pods
        self.recorder = recorder
        self.backoff_initial = backoff_initial
        self.clock = clock
        self.exp = Expectations()
        self.pod_control = PodControl(client, recorder, self.exp)
        self.controller = Controller("job", self.reconcile, workers=2)
        self.controller.watches(jobs)
        self.controller.owns(pods, KIND)
        observe_pods(pods, KIND, self.exp)

    async def reconcile(self, key: str) -> Result | None:
        job = self.jobs.get_by_key(key)
        if job is None:
            self.exp.delete(key)
            return None
        if job["metadata"].get("deletionTimestamp"):
            return None
        if finished_condition(job) is not None:
            return await self._expire(job)
        if (job.get("spec") or {}).get("selector") is None:
            await self.client.patch("jobs", job["metadata"]["name"], generated_selector_patch(job),
                                    job["metadata"]["namespace"])
            return None  # the update brings the Job back with its selector
        if not self.exp.satisfied(key):
            return None  # an informer event for the pending pods requeues the Job
        p = plan(job, controlled_pods(self.pods, job), self.clock(), self.backoff_initial)
        await self.pod_control.delete(job, p.delete)
        await self.pod_control.create(job, [job_pod(job) for _ in range(p.create)])
        if await write_status(self.client, job, p.status) and p.event:
            await self.recorder.event(job, *p.event)
        if finished_condition({"status": p.status}) is not None:
            return await self._expire({**job, "status": p.status})
        return Result(requeue_after=p.requeue_after) if p.requeue_after > 0 else None

    async def _expire(self, job: dict) -> Result | None:
        left = ttl_left(job, self.clock())
        if left is None:
            return None
        if left > 0:
            return Result(requeue_after=left)
        m = job["metadata"]
        try:
            await self.client.delete("jobs", m["name"], m["namespace"], propagation_policy="Background",
                                     preconditions={"uid": m["uid"]})
        except errors.NotFound:
            pass
        log.info("job %s/%s deleted %ss after it finished", m["namespace"], m["name"],
                 job["spec"]["ttlSecondsAfterFinished"])
        return None
