"""The Job controller's pure logic: how many pods to run, when a Job completes or fails, the retry
delay, the TTL after it finished and the selector it generates."""

from __future__ import annotations

from bus.client import resource_of
from bus.meta import format_time
from bus.validation import validate_object, validate_update
from master.apiserver.patch import merge_patch
from tests import builders
from master.controllers.job import (MAX_BACKOFF, backoff_delay, generated_selector_patch, job_pod, plan, restarts,
                                    ttl_left)

NOW = 1_700_000_000.0


def ts(t: float) -> str:
    return format_time(t)


def job(restart: str = "Never", status: dict | None = None, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "default", "uid": "job-uid"},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "job-uid"}},
                     "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "job-uid"}},
                                  "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "i"}]}},
                     **spec},
            "status": {"startTime": ts(NOW - 5), **(status or {})}}


def pod(name: str, phase: str = "Running", ready: bool = False, finished_at: float | None = None,
        restart_count: int = 0, created: float = NOW - 10, deleting: bool = False) -> dict:
    """A pod of the Job; its container ``c`` restarted ``restart_count`` times (and terminated at ``finished_at``)."""
    state = {} if finished_at is None else {
        "terminated": {"exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": ts(finished_at)}}
    return builders.pod(name, None, uid=f"uid-{name}", created=created, deleting=NOW if deleting else None,
                        phase=phase, ready=ready,
                        statuses=[{"name": "c", "restartCount": restart_count, "state": state}])


def cond(status: dict) -> tuple | None:
    return next(((c["type"], c.get("reason")) for c in status.get("conditions") or () if c["status"] == "True"), None)


# ---- running pods ----------------------------------------------------------------------------


def test_starts_parallelism_pods_but_no_more_than_remaining_completions():
    p = plan(job(completions=5, parallelism=2, status={"startTime": None}), [], NOW)
    assert p.create == 2 and p.delete == []
    assert p.status["active"] == 2 and p.status["startTime"] == ts(NOW)
    done = [pod(f"s{i}", "Succeeded", finished_at=NOW - 1) for i in range(4)]
    p = plan(job(completions=5, parallelism=2), done, NOW)
    assert p.create == 1 and p.status["succeeded"] == 4


def test_scales_down_surplus_not_ready_and_newest_first():
    pods = [pod("old-ready", ready=True, created=NOW - 30), pod("new-ready", ready=True, created=NOW - 20),
            pod("not-ready", created=NOW - 40)]
    p = plan(job(completions=10, parallelism=1), pods, NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["not-ready", "new-ready"]
    assert p.status["active"] == 1 and p.status["ready"] == 1


def test_terminating_pods_are_not_active():
    p = plan(job(), [pod("going", deleting=True)], NOW)
    assert p.create == 1 and p.status["active"] == 1


def test_work_queue_job_completes_when_one_succeeded_and_none_are_active():
    spec = {"completions": None, "parallelism": 3}
    p = plan(job(**spec), [pod("a", "Succeeded", finished_at=NOW - 1), pod("b")], NOW)
    assert p.create == 0 and cond(p.status) is None, "no new pods once one succeeded"
    p = plan(job(**spec), [pod("a", "Succeeded", finished_at=NOW - 1), pod("b", "Succeeded", finished_at=NOW)], NOW)
    assert cond(p.status) == ("Complete", None)


def test_suspended_job_runs_nothing():
    p = plan(job(suspend=True), [pod("a")], NOW)
    assert p.create == 0 and len(p.delete) == 1


# ---- completion ------------------------------------------------------------------------------


def test_complete_when_completions_succeeded_and_finished_pods_are_kept():
    pods = [pod("a", "Succeeded", finished_at=NOW - 2), pod("f", "Failed", finished_at=NOW - 3),
            pod("b", "Succeeded", finished_at=NOW - 1)]
    p = plan(job(completions=2, parallelism=2), pods, NOW)
    assert cond(p.status) == ("Complete", None)
    assert p.status["succeeded"] == 2 and p.status["failed"] == 1 and p.status["active"] == 0
    assert p.status["completionTime"] == ts(NOW) and p.delete == [] and p.create == 0
    assert p.event[1] == "Completed"


# ---- failure ---------------------------------------------------------------------------------


def test_never_fails_the_job_after_more_than_backoff_limit_failed_pods():
    failed = [pod(f"f{i}", "Failed", finished_at=NOW - 10 + i) for i in range(3)]
    p = plan(job(backoffLimit=3), failed, NOW, backoff_initial=1)
    assert cond(p.status) is None and p.create == 1, "3 failures, limit 3: one more try"
    p = plan(job(backoffLimit=2), failed + [pod("running")], NOW)
    assert cond(p.status) == ("Failed", "BackoffLimitExceeded")
    assert [x["metadata"]["name"] for x in p.delete] == ["running"], "active pods are killed, failed ones kept"
    assert p.status["failed"] == 4 and p.status["active"] == 0
    assert p.event[:2] == ("Warning", "BackoffLimitExceeded")


def test_on_failure_counts_container_restarts_toward_the_limit():
    assert restarts(pod("a", restart_count=2)) == 2
    assert cond(plan(job("OnFailure", backoffLimit=3), [pod("a", restart_count=2)], NOW).status) is None
    p = plan(job("OnFailure", backoffLimit=3), [pod("a", restart_count=3)], NOW)
    assert cond(p.status) == ("Failed", "BackoffLimitExceeded")
    p = plan(job("OnFailure", backoffLimit=0), [pod("a", restart_count=1)], NOW)
    assert cond(p.status) == ("Failed", "BackoffLimitExceeded")
    assert cond(plan(job("OnFailure", backoffLimit=0), [pod("a")], NOW).status) is None


def test_active_deadline_kills_pods_and_fails_the_job():
    p = plan(job(activeDeadlineSeconds=10), [pod("a")], NOW)
    assert cond(p.status) is None and 4 < p.requeue_after <= 5, "woken when the deadline passes"
    p = plan(job(activeDeadlineSeconds=5), [pod("a")], NOW)
    assert cond(p.status) == ("Failed", "DeadlineExceeded")
    assert len(p.delete) == 1 and p.status["failed"] == 1 and "completionTime" not in p.status


def test_counts_never_go_down_when_finished_pods_disappear():
    p = plan(job(completions=5, status={"succeeded": 3, "failed": 2}), [], NOW)
    assert p.status["succeeded"] == 3 and p.status["failed"] == 2 and p.create == 1


# ---- retry delay -----------------------------------------------------------------------------


def test_backoff_doubles_from_the_initial_delay_up_to_six_minutes():
    assert [backoff_delay(n, 10) for n in range(5)] == [0, 10, 20, 40, 80]
    assert backoff_delay(10, 10) == MAX_BACKOFF == 360


def test_replacement_waits_for_the_backoff_after_the_last_failure():
    failed = [pod("f1", "Failed", finished_at=NOW - 30), pod("f2", "Failed", finished_at=NOW - 5)]
    p = plan(job(), failed, NOW, backoff_initial=10)
    assert p.create == 0 and p.requeue_after == 15, "2 failures: 20 s after the last one"
    p = plan(job(), failed, NOW + 15, backoff_initial=10)
    assert p.create == 1


def test_a_success_resets_the_backoff():
    pods = [pod("f1", "Failed", finished_at=NOW - 30), pod("s", "Succeeded", finished_at=NOW - 20)]
    assert plan(job(completions=3), pods, NOW, backoff_initial=10).create == 1


# ---- TTL -------------------------------------------------------------------------------------


def test_ttl_counts_from_completion():
    done = job(ttlSecondsAfterFinished=30, status={"completionTime": ts(NOW - 10), "conditions": [
        {"type": "Complete", "status": "True", "lastTransitionTime": ts(NOW - 10)}]})
    assert ttl_left(done, NOW) == 20
    assert ttl_left(done, NOW + 25) == -5
    failed = job(ttlSecondsAfterFinished=0, status={"conditions": [
        {"type": "Failed", "status": "True", "lastTransitionTime": ts(NOW - 1)}]})
    assert ttl_left(failed, NOW) == -1
    assert ttl_left(job(ttlSecondsAfterFinished=5), NOW) is None, "not finished"
    assert ttl_left({**done, "spec": {}}, NOW) is None, "no TTL"


# ---- selector and pods -----------------------------------------------------------------------


def test_generated_selector_is_accepted_on_a_job_that_had_none():
    res = resource_of("jobs")
    old = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "pi", "namespace": "default", "uid": "u-1", "resourceVersion": "3"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}
    new = merge_patch(old, generated_selector_patch(old))
    assert new["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert new["spec"]["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u-1", "job-name": "pi"}
    model, causes = validate_object(res, new)
    assert causes == []
    assert validate_update(res, old, model) == []
    # the template stays immutable otherwise
    changed = merge_patch(new, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "other"}]}}}})
    model, _ = validate_object(res, changed)
    assert [c.field for c in validate_update(res, new, model)] == ["spec.template"]
    relabel = merge_patch(new, {"spec": {"template": {"metadata": {"labels": {"extra": "x"}}}}})
    model, _ = validate_object(res, relabel)
    assert validate_update(res, new, model), "adding labels once the selector is set is refused"


def test_job_pod_carries_the_job_labels_and_owner():
    p = job_pod(job())
    assert p["metadata"]["labels"]["job-name"] == "j" and p["metadata"]["labels"]["controller-uid"] == "job-uid"
    assert p["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert p["spec"]["restartPolicy"] == "Never"
