"""CronJob controller, as Kubernetes' cronjob_controllerv2: at each time the schedule names (``spec.schedule`` in
``spec.timeZone``, else in this process's zone) it creates a Job from ``spec.jobTemplate`` named
``<cronjob>-<scheduled time in minutes since the epoch>`` (the name is the lock against creating it twice),
annotated with ``batch.kubernetes.io/cronjob-scheduled-timestamp`` and controlled by the CronJob.

- Only the most recent missed time is started; a start later than ``startingDeadlineSeconds`` after its time is
  skipped (``MissSchedule``); more than 100 missed times since the last one is a ``TooManyMissedTimes`` warning.
- ``concurrencyPolicy``: Allow runs Jobs side by side, Forbid skips a time while one is active, Replace deletes the
  active ones (background propagation) before it starts the new one. ``suspend`` starts nothing.
- ``status.active`` lists the unfinished Jobs it started; a finished one leaves it (``SawCompletedJob``),
  ``status.lastSuccessfulTime`` is the latest completion; the oldest finished Jobs beyond
  ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` are deleted (``SuccessfulDelete``).
- The CronJob is requeued for its next time (plus 100 ms, as Kubernetes does against clock skew).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable

from bus import cron, errors
from bus.controller import Controller
from bus.events import NORMAL, WARNING
from bus.informer import Informer
from bus.meta import format_time, timestamp
from bus.workqueue import Result
from master.controllers._ownedpods import controlled_pods, wall_clock, write_status
from master.controllers._ownership import owner_ref_to

log = logging.getLogger(__name__)

KIND = "CronJob"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100
NEXT_SCHEDULE_DELTA = 0.1  # seconds added to every requeue, against clock skew


def setup(ctx) -> list:
    cc = CronJobController(ctx.client, ctx.informers.informer("cronjobs"), ctx.informers.informer("jobs"),
                           ctx.recorder("cronjob-controller"))
    return [cc.controller]


# ---- pure logic ------------------------------------------------------------------------------


def schedule_of(cj: dict, local: tzinfo | None = None) -> cron.Schedule:
    """formatSchedule + ParseStandard: the schedule in ``spec.timeZone`` (else ``local``, the controller's zone; a
    ``TZ=`` in the schedule itself wins). ``ValueError`` when it does not parse."""
    spec = cj.get("spec") or {}
    sched = spec.get("schedule") or ""
    zone = local if local is not None else cron.local_zone()
    if "TZ" not in sched and spec.get("timeZone") is not None:
        zone = cron.load_zone(spec["timeZone"])
    return cron.parse(sched, zone)


def most_recent_schedule_time(cj: dict, now: float, sched: cron.Schedule,
                              include_deadline: bool) -> tuple[float, float | None, str]:
    """mostRecentScheduleTime: (the earliest time considered — last schedule time, else creation time, moved up to
    the starting deadline when ``include_deadline`` —, the most recent scheduled time not after ``now`` or None,
    how many were missed: ``none``, ``few`` or ``many`` (over 100)). ``ValueError`` for a schedule whose
    consecutive times are less than a second apart (a date that never comes, such as February 31st)."""
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    earliest = timestamp(status.get("lastScheduleTime")) or timestamp(cj["metadata"].get("creationTimestamp"), now)
    deadline = spec.get("startingDeadlineSeconds")
    if include_deadline and deadline is not None:
        earliest = max(earliest, now - int(deadline))
    try:
        t1 = sched.next(earliest)
        t2 = sched.next(t1)
    except ValueError:  # croniter finds no such date at all: robfig's zero time, zero seconds apart
        raise ValueError("time difference between two schedules is less than 1 second") from None
    if now < t1:
        return earliest, None, "none"
    if now < t2:
        return earliest, t1, "none"
    between = round(t2 - t1)
    if between < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    missed = int(now - t1) // between + 1
    recent = None
    t = sched.next(t1 + (missed - 2) * between)  # the last times only: their spacing may vary (30 6-16/4 * * 1-5)
    while t <= now:
        recent = t
        t = sched.next(t)
    return earliest, recent, ("many" if missed > TOO_MANY_MISSED else "few")


def next_schedule_delay(cj: dict, now: float, sched: cron.Schedule) -> float:
    """nextScheduleTimeDuration: seconds until the next scheduled time (plus 100 ms)."""
    try:
        earliest, recent, missed = most_recent_schedule_time(cj, now, sched, False)
    except ValueError:
        recent, missed, earliest = now, "none", now
    if recent is None:
        recent = earliest if missed == "none" else now
    return sched.next(recent) + NEXT_SCHEDULE_DELTA - now


def job_name(cj: dict, scheduled: float) -> str:
    return f"{cj['metadata']['name']}-{int(scheduled) // 60}"


def rfc3339_in(t: float, zone_name: str) -> str:
    """Go's RFC 3339 of ``t`` in the named zone (``""``: UTC), as the scheduled-timestamp annotation holds it."""
    dt = datetime.fromtimestamp(int(t), cron.load_zone(zone_name))
    text = dt.isoformat()
    return text[:-6] + "Z" if dt.utcoffset() is not None and not dt.utcoffset() else text


def job_from_template(cj: dict, scheduled: float) -> dict:
    """getJobFromTemplate2: the Job for ``scheduled``: the template's labels, annotations (plus the scheduled
    time) and spec, the CronJob as its controller."""
    m = cj["metadata"]
    tmpl = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = tmpl.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_ANNOTATION] = rfc3339_in(scheduled, (cj.get("spec") or {}).get("timeZone") or "")
    meta: dict[str, Any] = {"name": job_name(cj, scheduled), "namespace": m["namespace"], "annotations": annotations,
                            "ownerReferences": [owner_ref_to({**cj, "apiVersion": "batch/v1", "kind": KIND})]}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": copy.deepcopy(tmpl.get("spec") or {})}


def job_ref(job: dict) -> dict:
    m = job["metadata"]
    ref = {"apiVersion": "batch/v1", "kind": "Job", "namespace": m["namespace"], "name": m["name"], "uid": m["uid"]}
    if m.get("resourceVersion"):
        ref["resourceVersion"] = m["resourceVersion"]
    return ref


def finished_type(job: dict) -> str | None:
    """``Complete`` or ``Failed`` when the Job has finished."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


def _start_order(job: dict) -> tuple:
    """byJobStartTime: by status.startTime (Jobs without one last), then by name."""
    start = timestamp((job.get("status") or {}).get("startTime"))
    return (start is None, start or 0.0, job["metadata"]["name"])


def history_to_delete(cj: dict, jobs: list[dict]) -> list[dict]:
    """cleanupFinishedJobs: the oldest finished Jobs beyond the successful and failed history limits."""
    spec = cj.get("spec") or {}
    out: list[dict] = []
    for type_, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                         ("Failed", spec.get("failedJobsHistoryLimit"))):
        if limit is None:
            continue
        done = sorted((j for j in jobs if finished_type(j) == type_), key=_start_order)
        out.extend(done[:max(len(done) - int(limit), 0)])
    return out


@dataclass
class ActiveView:
    """What the owned Jobs say about ``status.active`` and ``status.lastSuccessfulTime``."""

    status: dict
    events: list[tuple[str, str, str]] = field(default_factory=list)
    unexpected: list[dict] = field(default_factory=list)  # unfinished Jobs it controls but did not list
    unseen: list[dict] = field(default_factory=list)  # listed references with no Job in the cache


def observe_jobs(cj: dict, jobs: list[dict]) -> ActiveView:
    """The first half of syncCronJob: finished Jobs leave ``status.active`` (``SawCompletedJob``), the latest
    completion of a successful one is ``lastSuccessfulTime``."""
    status = copy.deepcopy(cj.get("status") or {})
    active = list(status.get("active") or [])
    listed = {r.get("uid") for r in active}
    view = ActiveView(status)
    for j in jobs:
        uid, done = j["metadata"]["uid"], finished_type(j)
        if done is None:
            if uid not in listed:
                view.unexpected.append(j)
            continue
        if uid in listed:
            active = [r for r in active if r.get("uid") != uid]
            view.events.append((NORMAL, "SawCompletedJob", f"Saw completed job: {j['metadata']['name']}, "
                                                           f"condition: {done}"))
        completed = (j.get("status") or {}).get("completionTime")
        if done == "Complete" and completed:
            last = timestamp(status.get("lastSuccessfulTime"))
            if last is None or (timestamp(completed) or 0.0) > last:
                status["lastSuccessfulTime"] = completed
    uids = {j["metadata"]["uid"] for j in jobs}
    view.unseen = [r for r in active if r.get("uid") not in uids]
    _set_active(status, active)
    return view


def _set_active(status: dict, active: list[dict]) -> None:
    if active:
        status["active"] = active
    else:
        status.pop("active", None)


def without_active(status: dict, uids: set[str]) -> dict:
    out = dict(status)
    _set_active(out, [r for r in status.get("active") or [] if r.get("uid") not in uids])
    return out


@dataclass
class Decision:
    """The second half of syncCronJob: whether to start a Job now, and when to look again."""

    start: float | None = None  # the scheduled time to start a Job for
    replace: bool = False  # delete the active Jobs first (concurrencyPolicy Replace)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None  # None: not until the CronJob changes


def decide(cj: dict, now: float, local: tzinfo | None = None) -> Decision:
    """What to do at ``now`` for a CronJob whose ``status.active`` is up to date (pure)."""
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    out = Decision()
    if cj["metadata"].get("deletionTimestamp"):
        return out
    tz = spec.get("timeZone")
    if tz is not None:
        try:
            cron.load_zone(tz)
        except ValueError as exc:
            out.events.append((WARNING, "UnknownTimeZone", f'invalid timeZone: "{tz}": {exc}'))
            return out
    if spec.get("suspend"):
        return out
    schedule = spec.get("schedule") or ""
    try:
        sched = schedule_of(cj, local)
    except ValueError as exc:
        out.events.append((WARNING, "UnparseableSchedule", f'unparseable schedule: "{schedule}" : {exc}'))
        return out
    try:
        _, scheduled, missed = most_recent_schedule_time(cj, now, sched, True)
    except ValueError as exc:
        out.events.append((WARNING, "InvalidSchedule", f"invalid schedule: {schedule} : {exc}"))
        return out
    out.requeue_after = next_schedule_delay(cj, now, sched)
    if scheduled is None:
        return out
    if missed == "many":
        out.events.append((WARNING, "TooManyMissedTimes", "too many missed start times. Set or decrease "
                                                          ".spec.startingDeadlineSeconds or check clock skew"))
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and scheduled + int(deadline) < now:
        when = datetime.fromtimestamp(scheduled, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
        out.events.append((WARNING, "MissSchedule", f"Missed scheduled time to start a job: {when}"))
        return out
    active = status.get("active") or []
    name = job_name(cj, scheduled)
    if any(r.get("name") == name for r in active) or timestamp(status.get("lastScheduleTime")) == scheduled:
        return out
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        out.events.append((NORMAL, "JobAlreadyActive",
                           "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return out
    out.start, out.replace = scheduled, policy == "Replace" and bool(active)
    return out


# ---- the controller --------------------------------------------------------------------------


class CronJobController:
    def __init__(self, client: Any, cronjobs: Informer, jobs: Informer, recorder: Any,
                 clock: Callable[[], float] = wall_clock) -> None:
        self.client = client
        self.cronjobs, self.jobs = cronjobs, jobs
        self.recorder = recorder
        self.clock = clock
        self.controller = Controller("cronjob", self.reconcile, workers=2)
        self.controller.watches(cronjobs)
        self.controller.owns(jobs, KIND)

    async def reconcile(self, key: str) -> Result | None:
        cj = self.cronjobs.get_by_key(key)
        if cj is None:
            return None
        jobs = controlled_pods(self.jobs, cj)
        status = dict(cj.get("status") or {})
        for job in history_to_delete(cj, jobs):
            if await self._delete_job(cj, job):
                status = without_active(status, {job["metadata"]["uid"]})
                jobs = [j for j in jobs if j is not job]
        view = observe_jobs({**cj, "status": status}, jobs)
        if view.unexpected:
            fresh = await self._fresh(cj)
            listed = {r.get("uid") for r in ((fresh or {}).get("status") or {}).get("active") or []}
            if fresh is not None and all(j["metadata"]["uid"] in listed for j in view.unexpected):
                cj = fresh  # our cache had not seen the status write that listed them yet
                view = observe_jobs(cj, jobs)
            for j in view.unexpected:
                if j["metadata"]["uid"] not in listed:
                    view.events.append((WARNING, "UnexpectedJob", "Saw a job that the controller did not create "
                                                                  f"or forgot: {j['metadata']['name']}"))
        status = view.status
        for ref in view.unseen:  # ask the API server: a slow watch must not make a running Job look gone
            try:
                await self.client.get("jobs", ref["name"], ref.get("namespace") or cj["metadata"]["namespace"])
            except errors.NotFound:
                view.events.append((NORMAL, "MissingJob", f"Active job went missing: {ref['name']}"))
                status = without_active(status, {ref.get("uid")})
        for ev in view.events:
            await self.recorder.event(cj, *ev)
        now = self.clock()
        d = decide({**cj, "status": status}, now)
        for ev in d.events:
            await self.recorder.event(cj, *ev)
        if d.start is not None:
            status = await self._start(cj, status, d)
        await write_status(self.client, cj, status)
        return Result(requeue_after=d.requeue_after) if d.requeue_after is not None else None

    async def _start(self, cj: dict, status: dict, d: Decision) -> dict:
        """Replace the active Jobs if asked, create the Job for ``d.start``, list it in ``status.active``."""
        ns = cj["metadata"]["namespace"]
        if d.replace:
            for ref in list(status.get("active") or []):
                job = self.jobs.get(ns, ref["name"]) or {"metadata": {"namespace": ns, **ref}}
                if not await self._delete_job(cj, job):
                    raise RuntimeError(f"could not replace job {ns}/{ref['name']}")
                status = without_active(status, {ref.get("uid")})
        want = job_from_template(cj, d.start)  # type: ignore[arg-type]
        try:
            job = await self.client.create(want, ns)
            await self.recorder.event(cj, NORMAL, "SuccessfulCreate", f"Created job {job['metadata']['name']}")
        except errors.AlreadyExists:
            job = await self.client.get("jobs", want["metadata"]["name"], ns)
            refs = job["metadata"].get("ownerReferences") or []
            if not any(r.get("controller") and r.get("uid") == cj["metadata"]["uid"] for r in refs):
                return status  # someone else's Job of that name
            if any(r.get("uid") == job["metadata"]["uid"] for r in status.get("active") or []):
                return status
        except errors.ApiError as exc:
            await self.recorder.event(cj, WARNING, "FailedCreate", f"Error creating job: {exc}")
            raise
        status = dict(status)
        status["active"] = [*(status.get("active") or []), job_ref(job)]
        status["lastScheduleTime"] = format_time(d.start)
        return status

    async def _delete_job(self, cj: dict, job: dict) -> bool:
        m = job["metadata"]
        try:
            await self.client.delete("jobs", m["name"], m["namespace"], propagation_policy="Background")
        except errors.NotFound:
            return True  # already gone (our cache had not seen it go yet): nothing new to tell
        except errors.ApiError as exc:
            await self.recorder.event(cj, WARNING, "FailedDelete", f"Deleted job: {exc}")
            return False
        await self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {m['name']}")
        return True

    async def _fresh(self, cj: dict) -> dict | None:
        m = cj["metadata"]
        try:
            return await self.client.get("cronjobs", m["name"], m["namespace"])
        except errors.NotFound:
            return None
