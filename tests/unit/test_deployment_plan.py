"""The Deployment controller's pure logic: the pod-template hash, surge/unavailable rounding, the
rolling/recreate/scaling decisions and the status with its conditions."""

from __future__ import annotations

import pytest

from master.controllers import deployment_plan as plan
from master.controllers import deployment_status as st
from master.controllers.deployment_util import (
    DESIRED_REPLICAS, HASH_LABEL, MAX_REPLICAS, REVISION, REVISION_HISTORY, compute_hash, equal_ignore_hash, fenceposts,
    max_unavailable, safe_encode, scaled_value, set_new_rs_annotations, template_with_hash,
)
from tests import builders

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}


def deployment(replicas=10, surge="25%", unavailable="25%", strategy="RollingUpdate", generation=1, **spec):
    s = {"type": strategy}
    if strategy == "RollingUpdate":
        s["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    d = builders.deployment("web", uid="d-uid", generation=generation, replicas=replicas, template=TEMPLATE,
                            **{"strategy": s, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, **spec})
    return {**d, "status": {}}


def rs(name, replicas, available=None, created="2024-01-01T00:00:00Z", revision=1, desired=None, max_replicas=None,
       status_replicas=None):
    ann = {REVISION: str(revision)}
    if desired is not None:
        ann[DESIRED_REPLICAS] = str(desired)
    if max_replicas is not None:
        ann[MAX_REPLICAS] = str(max_replicas)
    avail = replicas if available is None else available
    return {"metadata": {"name": name, "uid": f"{name}-uid", "creationTimestamp": created, "annotations": ann,
                         "generation": 1},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if status_replicas is None else status_replicas, "readyReplicas": avail,
                       "availableReplicas": avail, "observedGeneration": 1}}


# ---- hash --------------------------------------------------------------------------------------


def test_hash_is_stable_safe_encoded_and_moves_with_template_and_collision_count():
    h = compute_hash(TEMPLATE)
    assert h == compute_hash({"spec": TEMPLATE["spec"], "metadata": {"labels": {"app": "web"}}})  # key order
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    other = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert compute_hash(other) != h
    assert compute_hash(TEMPLATE, 0) != h and compute_hash(TEMPLATE, 1) != compute_hash(TEMPLATE, 0)
    assert compute_hash(TEMPLATE, 1) == compute_hash(TEMPLATE, 1)
    # rand.SafeEncodeString maps each decimal digit's byte into the alphabet: hashes look like "66b6c48dd5"
    assert safe_encode("0123456789") == "456789bcdf"
    assert set(h) <= set("456789bcdf")


def test_template_equality_ignores_only_the_hash_label():
    with_hash = template_with_hash(TEMPLATE, "abc")
    assert with_hash["metadata"]["labels"] == {"app": "web", HASH_LABEL: "abc"}
    assert TEMPLATE["metadata"]["labels"] == {"app": "web"}  # the original is untouched
    assert equal_ignore_hash(with_hash, TEMPLATE)
    assert not equal_ignore_hash(template_with_hash({**TEMPLATE, "metadata": {"labels": {"app": "x"}}}, "abc"),
                                 TEMPLATE)


# ---- rounding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("replicas,surge,unavailable,expect", [
    (10, "25%", "25%", (3, 2)),      # surge rounds up, unavailable down
    (3, "25%", "25%", (1, 0)),
    (1, "25%", "25%", (1, 0)),
    (4, 1, 1, (1, 1)),
    (5, "0%", "0%", (0, 1)),         # both zero: unavailable 1
    (10, "50%", 0, (5, 0)),
    (0, "25%", "25%", (0, 1)),
])
def test_fenceposts_round_like_kubernetes(replicas, surge, unavailable, expect):
    assert fenceposts(deployment(replicas, surge, unavailable)) == expect


def test_max_unavailable_is_capped_and_zero_for_recreate():
    assert max_unavailable(deployment(2, 0, "100%")) == 2
    assert max_unavailable(deployment(2, 0, 5)) == 2
    assert max_unavailable(deployment(3, strategy="Recreate")) == 0
    assert scaled_value("33%", 10, True) == 4 and scaled_value("33%", 10, False) == 3


# ---- rolling -----------------------------------------------------------------------------------


def test_rolling_first_step_surges_the_new_rs_up_to_replicas_plus_max_surge():
    d = deployment(10)  # surge 3, unavailable 2
    old, new = rs("old", 10), rs("new", 0, created="2024-01-02T00:00:00Z", revision=2)
    assert plan.rolling_scale_up(d, [old, new], new) == {"new": 3}
    # total already at 13: no more
    assert plan.rolling_scale_up(d, [rs("old", 10), rs("new", 3, available=0)], rs("new", 3, available=0)) == {}


def test_rolling_scale_down_keeps_min_available_and_counts_unavailable_new_pods():
    d = deployment(10)  # min available 8
    new = rs("new", 3, available=0, created="2024-01-02T00:00:00Z")
    old = rs("old", 10)
    # 13 pods, 3 new unavailable: 13 - 8 - 3 = 2 may go, and 10 available - 8 = 2
    assert plan.rolling_scale_down(d, [old, new], [old], new) == {"old": 8}
    # new ones became available: 8 old + 3 new available = 11 -> 3 more old can go
    new = rs("new", 3, available=3, created="2024-01-02T00:00:00Z")
    old = rs("old", 8)
    assert plan.rolling_scale_down(d, [old, new], [old], new) == {"old": 5}


def test_rolling_scale_down_with_max_unavailable_zero_waits_for_new_pods():
    d = deployment(3, 1, 0)
    new = rs("new", 1, available=0, created="2024-01-02T00:00:00Z")
    old = rs("old", 3)
    assert plan.rolling_scale_down(d, [old, new], [old], new) == {}
    new = rs("new", 1, available=1, created="2024-01-02T00:00:00Z")
    assert plan.rolling_scale_down(d, [old, new], [old], new) == {"old": 2}


def test_unhealthy_old_replicas_go_first_and_a_stale_status_is_not_trusted():
    d = deployment(4, 0, 1)  # min available 3
    new = rs("new", 0, created="2024-01-03T00:00:00Z")
    older = rs("older", 2, available=0)  # two broken pods
    old = rs("old", 4, available=4, created="2024-01-02T00:00:00Z")
    # 6 pods - 3 - 0 = 3 may go; the 2 unhealthy first, then 1 available one (4 - 3)
    assert plan.rolling_scale_down(d, [older, old, new], [older, old], new) == {"older": 0, "old": 3}
    # an RS just scaled to 2 whose status still reports 4 available counts as 2 available
    stale = rs("old", 2, available=4, created="2024-01-02T00:00:00Z")
    new = rs("new", 2, available=1, created="2024-01-03T00:00:00Z")
    assert plan.rolling_scale_down(d, [stale, new], [stale], new) == {}


def test_a_rolling_update_simulated_never_exceeds_its_bounds():
    """Step the plans with pods becoming available at once: total <= replicas + surge and
    available >= replicas - unavailable at every step, ending with only the new RS."""
    for replicas, surge, unavailable in [(10, "25%", "25%"), (3, 1, 0), (3, 0, 1), (7, "50%", "10%"), (1, 1, 0)]:
        d = deployment(replicas, surge, unavailable)
        s, u = fenceposts(d)
        old, new = rs("old", replicas), rs("new", 0, created="2024-01-02T00:00:00Z")
        for _ in range(100):
            sizes = plan.rolling_scale_up(d, [old, new], new) or plan.rolling_scale_down(d, [old, new], [old], new)
            if not sizes:
                break
            old = rs("old", sizes.get("old", old["spec"]["replicas"]))
            new = rs("new", sizes.get("new", new["spec"]["replicas"]), created="2024-01-02T00:00:00Z")
            assert old["spec"]["replicas"] + new["spec"]["replicas"] <= replicas + s
            assert old["spec"]["replicas"] + new["spec"]["replicas"] >= replicas - u
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, replicas)


def test_new_rs_replicas_for_recreate_is_the_whole_size():
    assert plan.new_rs_replicas(deployment(5, strategy="Recreate"), [], rs("new", 0)) == 5


# ---- recreate ----------------------------------------------------------------------------------


def test_recreate_scales_old_down_then_waits_for_their_pods():
    assert plan.recreate_scale_down([rs("a", 3), rs("b", 0)]) == {"a": 0}
    new = rs("new", 0)
    gone = rs("old", 0, status_replicas=0)
    assert plan.old_pods_running(new, [rs("old", 0, status_replicas=2)], {})
    running = {"old-uid": [{"status": {"phase": "Running"}}], "new-uid": [{"status": {"phase": "Running"}}]}
    assert plan.old_pods_running(new, [gone], running)
    assert not plan.old_pods_running(new, [gone], {"old-uid": [{"status": {"phase": "Succeeded"}}],
                                                   "new-uid": [{"status": {"phase": "Running"}}]})


# ---- scaling -----------------------------------------------------------------------------------


def test_scaling_event_and_single_active_rs_scaling():
    d = deployment(5)
    one = rs("a", 3, desired=3, max_replicas=4)
    assert plan.is_scaling_event(d, [one])
    assert not plan.is_scaling_event(deployment(3), [one])
    assert plan.scale(d, one, []) == {"a": 5}


def test_proportional_scaling_mid_rollout():
    # 10 replicas mid-rollout (surge 3): old 8, new 5 both made for max 13; scaled to 20 (max 25)
    d = deployment(20)
    old = rs("old", 8, desired=10, max_replicas=13)
    new = rs("new", 5, desired=10, max_replicas=13, created="2024-01-02T00:00:00Z")
    sizes = plan.scale(d, new, [old])
    assert sizes["old"] + sizes["new"] == 25
    assert sizes == {"old": 15, "new": 10}
    # scaled down to 5 (max 7): shares shrink, never below zero
    sizes = plan.scale(deployment(5), new, [old])
    assert sizes["old"] + sizes["new"] == 7 and min(sizes.values()) >= 0


def test_cleanup_deletes_oldest_revisions_past_the_limit_that_have_no_pods():
    olds = [rs("r2", 0, revision=2), rs("r1", 0, revision=1), rs("r3", 1, revision=3)]
    assert plan.cleanup(deployment(3, revisionHistoryLimit=2), olds) == ["r1"]
    assert plan.cleanup(deployment(3, revisionHistoryLimit=3), olds) == []
    assert plan.cleanup(deployment(3, revisionHistoryLimit=0), olds) == ["r1", "r2"]  # r3 still has pods


def test_rollback_moves_the_revision_up_and_keeps_history():
    d = deployment(3)
    d["metadata"]["annotations"] = {"team": "a", REVISION: "2"}
    old = rs("r1", 0, revision=1)
    assert set_new_rs_annotations(d, old, 3, exists=True)
    ann = old["metadata"]["annotations"]
    assert ann[REVISION] == "3" and ann[REVISION_HISTORY] == "1" and ann["team"] == "a"
    assert not set_new_rs_annotations(d, old, 3, exists=True)
    fresh = {"metadata": {}, "spec": {}}
    set_new_rs_annotations(d, fresh, 1, exists=False)
    assert fresh["metadata"]["annotations"][DESIRED_REPLICAS] == "3"
    assert fresh["metadata"]["annotations"][MAX_REPLICAS] == "4"


# ---- status ------------------------------------------------------------------------------------


def test_status_counts_and_available_condition():
    d = deployment(4, 1, 1, generation=3)
    new = rs("new", 2, available=1, created="2024-01-02T00:00:00Z")
    old = rs("old", 3)
    s = st.calculate_status(d, [old, new], new, 1000.0)
    assert {k: s[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                              "availableReplicas", "unavailableReplicas")} == {
        "observedGeneration": 3, "replicas": 5, "updatedReplicas": 2, "readyReplicas": 4, "availableReplicas": 4,
        "unavailableReplicas": 1}
    cond = st.get_deployment_condition(s, "Available")
    assert cond["status"] == "True" and cond["reason"] == "MinimumReplicasAvailable"
    s = st.calculate_status(d, [rs("new", 4, available=2)], None, 1000.0)
    assert st.get_deployment_condition(s, "Available")["reason"] == "MinimumReplicasUnavailable"


def test_progressing_condition_complete_progress_and_deadline():
    d = deployment(3, 1, 0, progressDeadlineSeconds=5)
    t0 = 1_700_000_000.0
    st.set_deployment_condition(d["status"], st.new_condition("Progressing", "True", st.NEW_RS_CREATED, "x", t0))
    new = rs("web-abc", 1, available=0)
    # no progress within the deadline: still progressing, requeued for the deadline
    s = st.rollout_status(d, [rs("old", 3), new], new, t0 + 2)
    assert st.get_deployment_condition(s, "Progressing")["reason"] == st.RS_UPDATED  # updatedReplicas 0 -> 1 is progress
    d["status"] = s
    s = st.rollout_status(d, [rs("old", 3), new], new, t0 + 4)
    assert s == d["status"]
    assert 3 <= st.requeue_after(d, s, t0 + 4) <= 4
    s = st.rollout_status(d, [rs("old", 3), new], new, t0 + 8)
    cond = st.get_deployment_condition(s, "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"] == 'ReplicaSet "web-abc" has timed out progressing.'
    assert st.requeue_after(d, s, t0 + 8) is None
    # complete
    d = deployment(3)
    done = rs("web-abc", 3)
    s = st.rollout_status(d, [done], done, t0)
    cond = st.get_deployment_condition(s, "Progressing")
    assert (cond["status"], cond["reason"]) == ("True", "NewReplicaSetAvailable")
    assert cond["message"] == 'ReplicaSet "web-abc" has successfully progressed.'


def test_paused_and_resumed_conditions():
    d = deployment(3, paused=True)
    assert st.paused_condition(d, d["status"], 0.0)
    assert st.get_deployment_condition(d["status"], "Progressing")["reason"] == "DeploymentPaused"
    assert not st.paused_condition(d, d["status"], 1.0)
    d["spec"]["paused"] = False
    assert st.paused_condition(d, d["status"], 2.0)
    assert st.get_deployment_condition(d["status"], "Progressing")["reason"] == "DeploymentResumed"
