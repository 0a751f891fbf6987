"""CronJob: the schedule parser (robfig/cron's ParseStandard, its messages), the controller's pure logic at chosen
instants of a fake clock (every concurrency policy, suspend, the starting deadline, too many missed times, history
limits, status.active), the API validation, and the reconciler against fakes (Replace, a Job that already exists)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import cron, errors
from bus.meta import format_time
from bus.resources import by_kind
from bus.validation import validate_object
from master.controllers.cronjob import (
    SCHEDULED_ANNOTATION, CronJobController, decide, history_to_delete, job_from_template, job_name,
    most_recent_schedule_time, next_schedule_delay, observe_jobs,
)
from tests.unit.test_job_controller import Recorder, informer

UTC = timezone.utc
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 UTC: the CronJobs' creation time
MIN = 60.0


def cronjob(schedule: str = "*/1 * * * *", status: dict | None = None, **spec) -> dict:
    tmpl = {"metadata": {"labels": {"app": "tick"}, "annotations": {"note": "n"}},
            "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                                           "containers": [{"name": "c", "image": "busybox"}]}}}}
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid", "resourceVersion": "7",
                         "creationTimestamp": format_time(T0)},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False, "jobTemplate": tmpl,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1, **spec},
            "status": status or {}}


def job(name: str, uid: str, finished: str | None = None, start: float = T0, done: float | None = None) -> dict:
    status: dict = {"startTime": format_time(start)}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
        if finished == "Complete":
            status["completionTime"] = format_time(done if done is not None else start + 5)
    return {"apiVersion": "batch/v1", "kind": "Job", "status": status,
            "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "3",
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                                              "uid": "cj-uid", "controller": True}]}}


def ref(name: str, uid: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "namespace": "default", "name": name, "uid": uid}


def reasons(d) -> list[str]:
    return [e[1] for e in d.events]


# ---- the schedule ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,message", [
    ("error", "expected exactly 5 fields, found 1: [error]"),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
    ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("0 0 L * *", 'failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax'),
    ("@reboot", "unrecognized descriptor: @reboot"),
    ("@every 5x", 'failed to parse duration @every 5x: time: unknown unit "x" in duration "5x"'),
    ("TZ=Mars/Olympus 0 * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
])
def test_schedules_robfig_refuses_are_refused_with_its_message(spec, message):
    assert cron.validate(spec) == message


def at(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


@pytest.mark.parametrize("spec,after,want", [
    ("*/15 * * * *", at(2026, 1, 5, 10, 7), at(2026, 1, 5, 10, 15)),
    ("*/15 * * * *", at(2026, 1, 5, 10, 15), at(2026, 1, 5, 10, 30)),  # strictly after
    ("@hourly", at(2026, 1, 5, 10, 0, 1), at(2026, 1, 5, 11, 0)),
    ("@daily", at(2026, 1, 5, 10), at(2026, 1, 6)),
    ("@weekly", at(2026, 1, 5, 10), at(2026, 1, 11)),  # Sunday
    ("@monthly", at(2026, 1, 5, 10), at(2026, 2, 1)),
    ("@yearly", at(2026, 1, 5, 10), at(2027, 1, 1)),
    ("0 9 ? * MON-FRI", at(2026, 1, 9, 10), at(2026, 1, 12, 9)),  # Friday after 9 -> Monday
    ("0 0 13 * fri", at(2026, 1, 5), at(2026, 1, 9)),  # day of month and week both set: either (a Friday first)
    ("0 0 13 * *", at(2026, 1, 5), at(2026, 1, 13)),
    ("@every 90s", at(2026, 1, 5, 10, 0, 0) + 0.7, at(2026, 1, 5, 10, 1, 30)),
])
def test_next_activation(spec, after, want):
    assert cron.parse(spec).next(after) == want


def test_time_zones_and_daylight_saving():
    paris = cron.load_zone("Europe/Paris")
    assert cron.parse("0 9 * * *", paris).next(at(2026, 1, 5, 10)) == at(2026, 1, 6, 8)  # 09:00 CET
    assert cron.parse("0 9 * * *", paris).next(at(2026, 7, 5, 10)) == at(2026, 7, 6, 7)  # 09:00 CEST
    assert cron.parse("TZ=Asia/Tokyo 0 9 * * *").next(at(2026, 1, 5, 10)) == at(2026, 1, 6, 0)
    with pytest.raises(ValueError, match="unknown time zone Mars/Olympus"):
        cron.load_zone("Mars/Olympus")


# ---- when to start -----------------------------------------------------------------------------------------


def test_nothing_is_due_before_the_first_time_and_the_requeue_is_that_time():
    d = decide(cronjob(), T0 + 20, UTC)
    assert d.start is None and d.events == []
    assert d.requeue_after == pytest.approx(40.1)


def test_a_due_time_starts_a_job_and_requeues_for_the_next():
    d = decide(cronjob(), T0 + MIN + 2, UTC)
    assert d.start == T0 + MIN and not d.replace
    assert d.requeue_after == pytest.approx(58.1)


def test_only_the_most_recent_missed_time_is_started():
    d = decide(cronjob(status={"lastScheduleTime": format_time(T0 + MIN)}), T0 + 5 * MIN + 30, UTC)
    assert d.start == T0 + 5 * MIN and reasons(d) == []


def test_a_time_already_started_is_not_started_again():
    cj = cronjob(status={"lastScheduleTime": format_time(T0 + MIN)})
    assert decide(cj, T0 + MIN + 10, UTC).start is None
    listed = cronjob(status={"active": [ref(job_name(cronjob(), T0 + MIN), "j1")]})
    assert decide(listed, T0 + MIN + 10, UTC).start is None


def test_allow_starts_beside_an_active_job():
    cj = cronjob(status={"active": [ref("tick-1", "j1")], "lastScheduleTime": format_time(T0 + MIN)})
    d = decide(cj, T0 + 2 * MIN, UTC)
    assert d.start == T0 + 2 * MIN and not d.replace


def test_forbid_skips_while_a_job_is_active():
    cj = cronjob(status={"active": [ref("tick-1", "j1")], "lastScheduleTime": format_time(T0 + MIN)},
                 concurrencyPolicy="Forbid")
    d = decide(cj, T0 + 2 * MIN, UTC)
    assert d.start is None and reasons(d) == ["JobAlreadyActive"]
    assert d.requeue_after == pytest.approx(60.1)
    idle = cronjob(status={"lastScheduleTime": format_time(T0 + MIN)}, concurrencyPolicy="Forbid")
    assert decide(idle, T0 + 2 * MIN, UTC).start == T0 + 2 * MIN


def test_replace_deletes_the_active_jobs_before_it_starts():
    cj = cronjob(status={"active": [ref("tick-1", "j1")], "lastScheduleTime": format_time(T0 + MIN)},
                 concurrencyPolicy="Replace")
    d = decide(cj, T0 + 2 * MIN, UTC)
    assert d.start == T0 + 2 * MIN and d.replace
    alone = cronjob(status={"lastScheduleTime": format_time(T0 + MIN)}, concurrencyPolicy="Replace")
    assert not decide(alone, T0 + 2 * MIN, UTC).replace


def test_suspend_starts_nothing_and_waits_for_a_change():
    d = decide(cronjob(suspend=True), T0 + 10 * MIN, UTC)
    assert d.start is None and d.requeue_after is None and d.events == []


def test_a_deleting_cronjob_starts_nothing():
    cj = cronjob()
    cj["metadata"]["deletionTimestamp"] = format_time(T0 + MIN)
    assert decide(cj, T0 + 10 * MIN, UTC).start is None


def test_starting_deadline_skips_times_it_is_too_late_for():
    late = cronjob("*/5 * * * *", startingDeadlineSeconds=30)
    d = decide(late, T0 + 5 * MIN + 40, UTC)  # 40 s after 10:05: too late, wait for 10:10
    assert d.start is None
    assert d.requeue_after == pytest.approx(5 * MIN - 40 + 0.1)
    d = decide(late, T0 + 5 * MIN + 20, UTC)  # 20 s after: within the deadline
    assert d.start == T0 + 5 * MIN


def test_too_many_missed_times_warns_and_starts_the_most_recent():
    d = decide(cronjob(), T0 + 200 * MIN + 5, UTC)
    assert reasons(d) == ["TooManyMissedTimes"] and d.start == T0 + 200 * MIN
    _, recent, missed = most_recent_schedule_time(cronjob(), T0 + 100 * MIN + 5, cron.parse("*/1 * * * *"), True)
    assert (recent, missed) == (T0 + 100 * MIN, "few")
    # a deadline bounds how far back it looks: no warning
    d = decide(cronjob(startingDeadlineSeconds=120), T0 + 200 * MIN + 5, UTC)
    assert reasons(d) == [] and d.start == T0 + 200 * MIN


def test_irregular_schedules_find_the_right_recent_time():
    cj = cronjob("30 6-16/4 * * 1-5")  # 06:30 10:30 14:30 on weekdays
    now = at(2026, 1, 7, 12)  # Wednesday noon: two days of times since Monday 10:00
    assert decide(cj, now, UTC).start == at(2026, 1, 7, 10, 30)


def test_schedules_the_controller_cannot_use_are_events_not_crashes():
    stored = cronjob(timeZone="Mars/Olympus")
    d = decide(stored, T0 + MIN, UTC)
    assert reasons(d) == ["UnknownTimeZone"] and d.requeue_after is None
    assert d.events[0][2] == 'invalid timeZone: "Mars/Olympus": unknown time zone Mars/Olympus'
    assert reasons(decide(cronjob("bad"), T0 + MIN, UTC)) == ["UnparseableSchedule"]
    never = decide(cronjob("0 0 31 2 *"), T0 + 400 * 86400, UTC)  # February 31st
    assert reasons(never) == ["InvalidSchedule"] and never.start is None
    assert "time difference between two schedules is less than 1 second" in never.events[0][2]


def test_time_zone_moves_the_times():
    cj = cronjob("0 11 * * *", timeZone="Europe/Paris")  # 11:00 in Paris is 10:00 UTC in January
    assert decide(cj, T0 + 24 * 3600 + 1, UTC).start == T0 + 24 * 3600
    assert next_schedule_delay(cj, T0 + 1, cron.parse("0 11 * * *", cron.load_zone("Europe/Paris"))) \
        == pytest.approx(24 * 3600 - 1 + 0.1)


# ---- the Jobs ----------------------------------------------------------------------------------------------


def test_the_job_made_for_a_time():
    cj = cronjob(timeZone="America/New_York")
    j = job_from_template(cj, T0 + MIN)
    assert j["metadata"]["name"] == f"tick-{int(T0 + MIN) // 60}" and j["metadata"]["namespace"] == "default"
    assert j["metadata"]["labels"] == {"app": "tick"}
    assert j["metadata"]["annotations"] == {"note": "n", SCHEDULED_ANNOTATION: "2026-01-05T05:01:00-05:00"}
    owner, = j["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": "cj-uid",
                     "controller": True, "blockOwnerDeletion": True}
    assert j["spec"] == cj["spec"]["jobTemplate"]["spec"] and j["spec"] is not cj["spec"]["jobTemplate"]["spec"]
    utc = job_from_template(cronjob(), T0)
    assert utc["metadata"]["annotations"][SCHEDULED_ANNOTATION] == "2026-01-05T10:00:00Z"


def test_finished_jobs_leave_active_and_set_the_last_success():
    cj = cronjob(status={"active": [ref("a", "ua"), ref("b", "ub"), ref("gone", "ug")]})
    jobs = [job("a", "ua", "Complete", done=T0 + 30), job("b", "ub"), job("c", "uc", "Complete", done=T0 + 90),
            job("d", "ud", "Failed"), job("stray", "us")]
    view = observe_jobs(cj, jobs)
    assert [r["name"] for r in view.status["active"]] == ["b", "gone"]
    assert view.status["lastSuccessfulTime"] == format_time(T0 + 90)
    assert [e[1:] for e in view.events] == [("SawCompletedJob", "Saw completed job: a, condition: Complete")]
    assert [j["metadata"]["name"] for j in view.unexpected] == ["stray"]
    assert [r["name"] for r in view.unseen] == ["gone"]
    assert cj["status"]["active"][0]["name"] == "a", "the cached object is not changed"


def test_history_limits_delete_the_oldest_finished_jobs():
    done = [job(f"ok{i}", f"o{i}", "Complete", start=T0 + i * MIN) for i in (4, 1, 3, 0, 2)]
    failed = [job(f"bad{i}", f"b{i}", "Failed", start=T0 + i * MIN) for i in (1, 0)]
    running = [job("run", "r")]
    gone = history_to_delete(cronjob(), done + failed + running)
    assert [j["metadata"]["name"] for j in gone] == ["ok0", "ok1", "bad0"]
    none_kept = history_to_delete(cronjob(successfulJobsHistoryLimit=0, failedJobsHistoryLimit=0), done + failed)
    assert len(none_kept) == 7
    unlimited = cronjob()
    del unlimited["spec"]["successfulJobsHistoryLimit"], unlimited["spec"]["failedJobsHistoryLimit"]
    assert history_to_delete(unlimited, done + failed) == []


# ---- validation --------------------------------------------------------------------------------------------


def causes(obj: dict) -> list[str]:
    _, found = validate_object(by_kind("CronJob"), obj)
    return [f"{c.field}: {c.message}" for c in found]


def test_validation_messages_and_paths():
    assert causes(cronjob()) == []
    assert causes(cronjob("error")) == [
        'spec.schedule: Invalid value: "error": expected exactly 5 fields, found 1: [error]']
    assert causes(cronjob("TZ=UTC 0 * * * *")) == [
        'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field '
        'instead']
    assert causes(cronjob(timeZone="Mars/Olympus")) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']
    assert causes(cronjob(timeZone="")) == ['spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string']
    assert causes(cronjob(concurrencyPolicy="Sometimes")) == [
        'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"']
    assert causes(cronjob(startingDeadlineSeconds=-1, successfulJobsHistoryLimit=-1)) == [
        "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"]
    long = cronjob()
    long["metadata"]["name"] = "x" * 53
    assert causes(long) == [f'metadata.name: Invalid value: "{"x" * 53}": must be no more than 52 characters']
    selector = cronjob()
    selector["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    selector["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert causes(selector) == [
        'spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
        '"OnFailure", "Never"',
        'spec.jobTemplate.spec.selector: Invalid value: {"matchLabels": {"a": "b"}}: `selector` will be '
        'auto-generated']


def test_defaults():
    model, _ = validate_object(by_kind("CronJob"), {"apiVersion": "batch/v1", "kind": "CronJob",
                                                    "metadata": {"name": "d"},
                                                    "spec": {"schedule": "@hourly", "jobTemplate": {}}})
    s = model.spec
    assert (s.concurrency_policy, s.suspend, s.successful_jobs_history_limit, s.failed_jobs_history_limit) == \
        ("Allow", False, 3, 1)


# ---- the reconciler against fakes ---------------------------------------------------------------------------


class FakeClient:
    def __init__(self, existing: dict | None = None):
        self.created, self.deleted, self.statuses = [], [], []
        self.existing = existing or {}

    async def create(self, obj, namespace=None):
        name = obj["metadata"]["name"]
        if name in self.existing:
            raise errors.AlreadyExists(409, f'jobs.batch "{name}" already exists')
        made = {**obj, "metadata": {**obj["metadata"], "uid": f"uid-{name}", "resourceVersion": "9"}}
        self.created.append(made)
        return made

    async def get(self, plural, name, namespace=None):
        if plural == "jobs" and name in self.existing:
            return self.existing[name]
        raise errors.NotFound(404, f'{plural} "{name}" not found')

    async def delete(self, plural, name, namespace=None, propagation_policy=None, **kw):
        self.deleted.append((plural, name, propagation_policy))

    async def update_status(self, obj):
        self.statuses.append(obj["status"])
        return obj


async def controller(client, cj, jobs, now):
    cjs, js = await informer("cronjobs", [cj]), await informer("jobs", jobs)
    rec = Recorder()
    return CronJobController(client, cjs, js, rec, clock=lambda: now), rec, (cjs, js)


async def stop(infs):
    for inf in infs:
        await inf.stop()


async def test_replace_deletes_the_running_job_creates_the_next_and_lists_it():
    running = job("tick-1", "j1")
    cj = cronjob(status={"active": [ref("tick-1", "j1")], "lastScheduleTime": format_time(T0 + MIN)},
                 concurrencyPolicy="Replace")
    client = FakeClient()
    cc, rec, infs = await controller(client, cj, [running], T0 + 2 * MIN + 1)
    result = await cc.reconcile("default.tick")
    assert client.deleted == [("jobs", "tick-1", "Background")]
    made, = client.created
    assert made["metadata"]["name"] == job_name(cj, T0 + 2 * MIN)
    status = client.statuses[-1]
    assert [r["name"] for r in status["active"]] == [made["metadata"]["name"]]
    assert status["lastScheduleTime"] == format_time(T0 + 2 * MIN)
    assert rec.events == ["SuccessfulDelete", "SuccessfulCreate"]
    assert result.requeue_after == pytest.approx(59.1)
    await stop(infs)


async def test_a_job_created_before_a_lost_status_write_is_listed_not_made_again():
    name = job_name(cronjob(), T0 + MIN)
    mine = job(name, "j-mine")
    client = FakeClient(existing={name: mine})
    cc, rec, infs = await controller(client, cronjob(), [], T0 + MIN + 1)
    await cc.reconcile("default.tick")
    assert client.created == []
    assert [r["uid"] for r in client.statuses[-1]["active"]] == ["j-mine"]
    await stop(infs)


async def test_history_cleanup_and_finished_jobs_in_one_pass():
    jobs = [job(f"tick-{i}", f"u{i}", "Complete", start=T0 + i, done=T0 + i + 1) for i in range(5)]
    cj = cronjob(status={"active": [ref("tick-4", "u4")], "lastScheduleTime": format_time(T0)})
    client = FakeClient()
    cc, rec, infs = await controller(client, cj, jobs, T0 + 30)
    await cc.reconcile("default.tick")
    assert [d[1] for d in client.deleted] == ["tick-0", "tick-1"]
    status = client.statuses[-1]
    assert "active" not in status and status["lastSuccessfulTime"] == format_time(T0 + 5)
    assert rec.events == ["SuccessfulDelete", "SuccessfulDelete", "SawCompletedJob"]
    await stop(infs)
