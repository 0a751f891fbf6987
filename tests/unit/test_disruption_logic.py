"""PodDisruptionBudgets without a bus: validation with Kubernetes' messages, the disruption controller's pure
logic (expected pods, desired and current healthy, disruptedPods, the DisruptionAllowed condition, fail-safe) and
its controller lookups with fake informers, the eviction subresource's budget decisions, and kubectl's columns."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import errors
from bus.informer import Informer
from bus.meta import format_time
from bus.resources import by_plural, resolve
from bus.tables import columns
from bus.validation import validate_object
from master.apiserver.eviction import (
    budgets_of, can_ignore_budgets, decrement, still_processing, too_many_requests, unhealthy_may_go,
)
from master.controllers.disruption import (
    DELETION_TIMEOUT, DisruptionController, SyncError, count_healthy, disrupted_map, expected_and_desired,
    fail_safe_status, needs_scale, new_status, scaled_value,
)

NOW = 1_800_000_000.0
PDBS = by_plural("poddisruptionbudgets")


def ts(t: float) -> str:
    return format_time(t)


def pod(name: str, ready: bool = True, phase: str = "Running", labels: dict | None = None, deleting: bool = False,
        owner: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default", "labels": {"app": "web"} if labels is None else labels,
                  "uid": f"uid-{name}", "resourceVersion": "5"}
    if deleting:
        meta["deletionTimestamp"] = ts(NOW)
    if owner:
        meta["ownerReferences"] = [{**owner, "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {
        "phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(spec: dict | None = None, status: dict | None = None, generation: int = 1, name: str = "web") -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default", "generation": generation, "resourceVersion": "7",
                         "uid": f"uid-{name}"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **(spec or {"minAvailable": 2})},
            "status": status if status is not None else {}}


# ---- the resource, validation and columns ------------------------------------------------------------------------

def test_the_resource_is_served_as_kubernetes_serves_it():
    assert PDBS.api_version == "policy/v1" and PDBS.namespaced and PDBS.kind == "PodDisruptionBudget"
    assert resolve("pdb") is PDBS and resolve("poddisruptionbudget") is PDBS
    assert PDBS.subresources == ("status",)


def causes(spec: dict) -> list[tuple[str, str]]:
    _, out = validate_object(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                    "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    return [(c.field, c.message) for c in out]


def test_validation_messages_are_kubernetes_ones():
    assert causes({"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}) == []
    assert causes({"maxUnavailable": "100%", "unhealthyPodEvictionPolicy": "AlwaysAllow"}) == []
    both = causes({"minAvailable": 1, "maxUnavailable": 1})
    assert len(both) == 1 and both[0][0] == "spec"
    assert both[0][1].endswith(": minAvailable and maxUnavailable cannot be both set")
    assert causes({"minAvailable": -1}) == [
        ("spec.minAvailable", "Invalid value: -1: must be greater than or equal to 0")]
    assert causes({"maxUnavailable": "101%"}) == [
        ("spec.maxUnavailable", 'Invalid value: "101%": must not be greater than 100%')]
    [(field, msg)] = causes({"minAvailable": "half"})
    assert field == "spec.minAvailable" and "a valid percent string must be a numeric string" in msg
    assert causes({"unhealthyPodEvictionPolicy": "Never"}) == [
        ("spec.unhealthyPodEvictionPolicy", 'Unsupported value: "Never": supported values: "AlwaysAllow", '
                                            '"IfHealthyBudget"')]
    assert [f for f, _ in causes({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}})] == [
        "spec.selector.matchExpressions[0].values"]


def test_kubectl_columns():
    now = datetime.fromtimestamp(NOW, timezone.utc)
    obj = pdb({"minAvailable": 2}, {"disruptionsAllowed": 1})
    obj["metadata"]["creationTimestamp"] = ts(NOW - 65)
    cols = columns("PodDisruptionBudget")
    assert [h for h, _ in cols] == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    assert [f(obj, now) for _, f in cols] == ["web", "2", "N/A", "1", "65s"]
    other = pdb({"maxUnavailable": "25%"}, {})
    assert [f(other, now) for _, f in cols][1:4] == ["N/A", "25%", "0"]


# ---- the controller's arithmetic ---------------------------------------------------------------------------------

def test_scaled_values_round_up_as_kubernetes():
    assert scaled_value(3, 10) == 3
    assert scaled_value("50%", 3) == 2 and scaled_value("50%", 3, round_up=False) == 1
    assert scaled_value("0%", 7) == 0 and scaled_value("100%", 7) == 7
    with pytest.raises(SyncError):
        scaled_value("5", 10)


def test_expected_and_desired_healthy():
    # an integer minAvailable: the pods found are the expected ones, the controllers are not needed
    assert not needs_scale({"minAvailable": 2})
    assert expected_and_desired({"minAvailable": 2}, 3, 0) == (3, 2)
    # percentages and maxUnavailable count the controllers' scale
    assert needs_scale({"minAvailable": "50%"}) and needs_scale({"maxUnavailable": 1})
    assert expected_and_desired({"minAvailable": "50%"}, 2, 5) == (5, 3)
    assert expected_and_desired({"maxUnavailable": 1}, 2, 4) == (4, 3)
    assert expected_and_desired({"maxUnavailable": "30%"}, 2, 4) == (4, 2)  # ceil(1.2) unavailable
    assert expected_and_desired({"maxUnavailable": 9}, 2, 4) == (4, 0)
    assert expected_and_desired({}, 2, 4) == (0, 0)


def test_current_healthy_leaves_out_unready_deleting_and_recently_disrupted_pods():
    pods = [pod("a"), pod("b"), pod("c", ready=False), pod("d", deleting=True), pod("e")]
    assert count_healthy(pods, {}, NOW) == 3
    assert count_healthy(pods, {"e": ts(NOW - 10)}, NOW) == 2
    assert count_healthy(pods, {"e": ts(NOW - DELETION_TIMEOUT - 1)}, NOW) == 3  # that eviction never happened


def test_disrupted_pods_are_kept_until_the_pod_is_deleting_or_the_entry_expires():
    pods = [pod("a"), pod("b", deleting=True), pod("c")]
    recorded = {"a": ts(NOW - 30), "b": ts(NOW - 10), "c": ts(NOW - DELETION_TIMEOUT - 5), "gone": ts(NOW)}
    kept, recheck = disrupted_map(pods, recorded, NOW)
    assert kept == {"a": ts(NOW - 30)}
    assert recheck == NOW - 30 + DELETION_TIMEOUT
    assert disrupted_map(pods, None, NOW) == ({}, None)


def test_status_and_condition():
    b = pdb({"minAvailable": 2})
    st = new_status(b, 2, 2, 2, {}, ts(NOW))
    assert st == {"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2,
                  "expectedPods": 2, "conditions": [{
                      "type": "DisruptionAllowed", "status": "False", "observedGeneration": 1,
                      "lastTransitionTime": ts(NOW), "reason": "InsufficientPods", "message": ""}]}
    b["status"] = st
    assert new_status(b, 2, 2, 2, {}, ts(NOW + 5)) is None  # nothing changed: nothing to write
    up = new_status(b, 3, 2, 3, {"x": ts(NOW)}, ts(NOW + 5))
    assert up["disruptionsAllowed"] == 1 and up["disruptedPods"] == {"x": ts(NOW)}
    assert up["conditions"][0] | {} == {"type": "DisruptionAllowed", "status": "True", "observedGeneration": 1,
                                        "lastTransitionTime": ts(NOW + 5), "reason": "SufficientPods", "message": ""}
    b["status"] = up
    same = new_status(b, 4, 2, 4, {}, ts(NOW + 9))
    assert same["disruptionsAllowed"] == 2 and same["conditions"][0]["lastTransitionTime"] == ts(NOW + 5)
    b["metadata"]["generation"] = 2  # a new spec: observedGeneration must follow even with equal counts
    b["status"] = same
    assert new_status(b, 4, 2, 4, {}, ts(NOW + 9))["observedGeneration"] == 2
    assert new_status(pdb(), 3, 0, 0, {}, ts(NOW))["disruptionsAllowed"] == 0  # no pod expected: none allowed


def test_fail_safe_allows_nothing():
    b = pdb({"maxUnavailable": 1}, {"observedGeneration": 1, "disruptionsAllowed": 2, "currentHealthy": 3,
                                     "desiredHealthy": 1, "expectedPods": 3})
    st = fail_safe_status(b, 'found no controllers for pod "a"', ts(NOW))
    assert st["disruptionsAllowed"] == 0 and st["currentHealthy"] == 3
    assert st["conditions"] == [{"type": "DisruptionAllowed", "status": "False", "observedGeneration": 1,
                                 "lastTransitionTime": ts(NOW), "reason": "SyncFailed",
                                 "message": 'found no controllers for pod "a"'}]


# ---- the controller with fake informers ---------------------------------------------------------------------------

class FakeClient:
    def __init__(self, scales: dict | None = None):
        self.scales = scales or {}
        self.statuses: list[dict] = []
        self.scale_calls: list[tuple[str, str]] = []

    async def get_scale(self, res, name, namespace=None):
        self.scale_calls.append((res.plural, name))
        if (res.plural, name) not in self.scales:
            raise errors.not_found(res.plural, name, res.group)
        return self.scales[(res.plural, name)]

    async def update_status(self, obj):
        self.statuses.append(obj["status"])
        return obj


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, str]] = []

    async def event(self, obj, type_, reason, message, field_path=None):
        self.events.append((reason, message))


def informer(plural: str, objs: list[dict]) -> Informer:
    inf = Informer(object(), plural)
    inf._replace(objs, 1)
    return inf


def workload(kind: str, name: str, replicas: int, owner: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{**owner, "controller": True}]
    api = "v1" if kind == "ReplicationController" else "apps/v1"
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": {"replicas": replicas}}


def ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"]}


def controller(budget: dict, pods: list[dict], rcs=(), rss=(), deployments=(), client=None):
    client, recorder = client or FakeClient(), Recorder()
    dc = DisruptionController(client, informer("poddisruptionbudgets", [budget]), informer("pods", pods),
                              informer("replicationcontrollers", list(rcs)), informer("replicasets", list(rss)),
                              informer("deployments", list(deployments)), recorder, wall=lambda: NOW)
    return dc, client, recorder


async def test_percentages_use_the_deployment_scale_through_the_replicaset_once_per_controller():
    d = workload("Deployment", "web", 4)
    rs = workload("ReplicaSet", "web-1", 2, owner=ref(d))
    rc = workload("ReplicationController", "old", 3)
    pods = [pod("a", owner=ref(rs)), pod("b", owner=ref(rs)), pod("c", owner=ref(rc), ready=False)]
    dc, client, _ = controller(pdb({"minAvailable": "50%"}), pods, rcs=[rc], rss=[rs], deployments=[d])
    await dc.reconcile("default.web")
    st = client.statuses[-1]
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (7, 4, 2, 0)
    assert client.scale_calls == []  # all from the informers


async def test_any_other_controller_is_read_through_its_scale_subresource():
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "uid": "uid-db"}}
    pods = [pod(f"db-{i}", owner=ref(sts)) for i in range(3)]
    scale = {"kind": "Scale", "metadata": {"name": "db", "uid": "uid-db"}, "spec": {"replicas": 3}}
    dc, client, _ = controller(pdb({"maxUnavailable": 1}), pods, client=FakeClient({("statefulsets", "db"): scale}))
    await dc.reconcile("default.web")
    assert client.scale_calls == [("statefulsets", "db")]
    st = client.statuses[-1]
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (3, 2, 3, 1)


async def test_a_pod_whose_controller_is_missing_fails_safe():
    rs = workload("ReplicaSet", "web-1", 2)
    b = pdb({"maxUnavailable": 1}, {"observedGeneration": 1, "disruptionsAllowed": 1})
    dc, client, recorder = controller(b, [pod("a", owner=ref(rs))])  # the ReplicaSet is not there
    await dc.reconcile("default.web")
    st = client.statuses[-1]
    assert st["disruptionsAllowed"] == 0
    assert st["conditions"][0]["reason"] == "SyncFailed"
    assert st["conditions"][0]["message"] == 'found no controllers for pod "a"'
    assert "CalculateExpectedPodCountFailed" in [r for r, _ in recorder.events]


async def test_unmanaged_pods_are_reported_and_not_counted():
    rs = workload("ReplicaSet", "web-1", 2)
    pods = [pod("a", owner=ref(rs)), pod("b", owner=ref(rs)), pod("loose")]
    dc, client, recorder = controller(pdb({"maxUnavailable": 1}), pods, rss=[rs])
    await dc.reconcile("default.web")
    st = client.statuses[-1]
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (2, 1, 3, 2)
    assert "UnmanagedPods" in [r for r, _ in recorder.events]


async def test_pending_disruptions_requeue_when_they_expire_and_nothing_unchanged_is_written():
    b = pdb({"minAvailable": 1}, {"disruptedPods": {"a": ts(NOW - 20)}})
    dc, client, _ = controller(b, [pod("a"), pod("b")])
    result = await dc.reconcile("default.web")
    assert result.requeue_after == pytest.approx(DELETION_TIMEOUT - 20)
    assert client.statuses[-1]["currentHealthy"] == 1 and client.statuses[-1]["disruptedPods"] == {"a": ts(NOW - 20)}
    dc.pdbs._replace([{**b, "metadata": {**b["metadata"], "resourceVersion": "8"}, "status": client.statuses[-1]}], 8)
    await dc.reconcile("default.web")
    assert len(client.statuses) == 1


async def test_pod_events_enqueue_the_budgets_that_select_the_pod():
    dc, _, _ = controller(pdb(), [])
    dc._pod_changed(pod("x", labels={"app": "other"}))
    assert len(dc.controller.queue) == 0
    dc._pod_changed(pod("x"))
    assert len(dc.controller.queue) == 1


# ---- the eviction subresource's decisions ------------------------------------------------------------------------

def test_pods_that_do_not_run_evict_without_a_budget():
    assert can_ignore_budgets(pod("p", phase="Pending"))
    assert can_ignore_budgets(pod("s", phase="Succeeded")) and can_ignore_budgets(pod("f", phase="Failed"))
    assert can_ignore_budgets(pod("d", deleting=True))
    assert not can_ignore_budgets(pod("r"))


def test_budgets_matching_a_pod():
    sel_all = pdb(name="all", spec={"selector": {}, "minAvailable": 1})
    no_sel = pdb(name="none", spec={"minAvailable": 1})
    no_sel["spec"].pop("selector")
    other_ns = pdb(name="elsewhere")
    other_ns["metadata"]["namespace"] = "kube-system"
    web = pdb(name="web")
    assert [b["metadata"]["name"] for b in budgets_of(pod("a"), [sel_all, no_sel, other_ns, web])] == ["all", "web"]


def test_unready_pods_under_the_unhealthy_pod_eviction_policy():
    met = {"currentHealthy": 2, "desiredHealthy": 2}
    assert unhealthy_may_go(pod("a", ready=False), pdb(status=met))
    assert not unhealthy_may_go(pod("a", ready=True), pdb(status=met))
    assert not unhealthy_may_go(pod("a", ready=False), pdb(status={"currentHealthy": 1, "desiredHealthy": 2}))
    assert not unhealthy_may_go(pod("a", ready=False), pdb(status={"currentHealthy": 0, "desiredHealthy": 0}))
    always = pdb({"minAvailable": 2, "unhealthyPodEvictionPolicy": "AlwaysAllow"},
                 {"currentHealthy": 0, "desiredHealthy": 2})
    assert unhealthy_may_go(pod("a", ready=False), always)
    explicit = pdb({"minAvailable": 2, "unhealthyPodEvictionPolicy": "IfHealthyBudget"},
                   {"currentHealthy": 1, "desiredHealthy": 2})
    assert not unhealthy_may_go(pod("a", ready=False), explicit)


def test_decrement_grants_one_disruption_and_records_the_pod():
    b = pdb(status={"observedGeneration": 1, "disruptionsAllowed": 2, "currentHealthy": 3, "desiredHealthy": 1,
                    "expectedPods": 3})
    once = decrement(b, "a", ts(NOW))
    assert once["status"]["disruptionsAllowed"] == 1 and once["status"]["disruptedPods"] == {"a": ts(NOW)}
    assert "conditions" not in once["status"] and b["status"]["disruptionsAllowed"] == 2  # the input is untouched
    twice = decrement(once, "b", ts(NOW + 1))
    assert twice["status"]["disruptedPods"] == {"a": ts(NOW), "b": ts(NOW + 1)}
    assert twice["status"]["conditions"][0]["reason"] == "InsufficientPods"
    with pytest.raises(errors.ApiError) as e:
        decrement(twice, "c", ts(NOW))
    assert e.value.code == 429 and e.value.reason == "TooManyRequests"
    assert e.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert e.value.details == {"causes": [{"reason": "DisruptionBudget",
                                           "message": "The disruption budget web needs 1 healthy pods and has 3 "
                                                      "currently"}]}
    dry = decrement(b, "a", ts(NOW), dry_run=True)
    assert dry["status"]["disruptionsAllowed"] == 1 and "disruptedPods" not in dry["status"]


def test_decrement_refuses_a_budget_the_controller_has_not_caught_up_with():
    b = pdb(status={"observedGeneration": 1, "disruptionsAllowed": 5}, generation=2)
    with pytest.raises(errors.ApiError) as e:
        decrement(b, "a", ts(NOW))
    assert e.value.status() == still_processing("web").status()
    assert e.value.details["retryAfterSeconds"] == 10
    assert e.value.causes[0]["message"] == "The disruption budget web is still being processed by the server."
    with pytest.raises(errors.ApiError) as e:
        decrement(pdb(status={"observedGeneration": 1, "disruptionsAllowed": -1}), "a", ts(NOW))
    assert e.value.code == 403 and e.value.message == (
        'poddisruptionbudget.policy "web" is forbidden: pdb disruptions allowed is negative')
    full = pdb(status={"observedGeneration": 1, "disruptionsAllowed": 1,
                       "disruptedPods": {f"p{i}": ts(NOW) for i in range(2001)}})
    with pytest.raises(errors.ApiError) as e:
        decrement(full, "a", ts(NOW))
    assert e.value.code == 403 and "DisruptedPods map too big" in e.value.message
    assert too_many_requests("x").status()["details"] == {"causes": [{"reason": "DisruptionBudget", "message": "x"}]}


def test_the_gateway_says_when_to_retry_as_kube_apiserver():
    from master.gateway.respond import error_response

    lagging = error_response(still_processing("web"))
    assert lagging.status == 429 and lagging.headers["Retry-After"] == "10"
    refused = error_response(too_many_requests("The disruption budget web needs 2 healthy pods and has 2 currently"))
    assert refused.status == 429 and "Retry-After" not in refused.headers
