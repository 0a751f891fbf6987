"""The pure parts of ResourceQuota, LimitRange and PriorityClass: usage evaluation, scopes, admission decisions and
their exact Kubernetes wording, LimitRange defaults and bounds, priority resolution, and kubectl's columns."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from bus import errors
from bus.models import to_dict
from bus.quota import pod_constraints, quota_matches, tracked_resources, usage
from bus.resources import by_plural, resolve
from bus.tables import columns
from bus.validation import validate_object, validate_update
from master.apiserver import limitranger, priority
from master.apiserver.quota import charge, delta_of, relevant, release
from tests import builders

PODS, SERVICES, PVCS = by_plural("pods"), by_plural("services"), by_plural("persistentvolumeclaims")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def pod(name="p", requests=None, limits=None, init=None, **kw) -> dict:
    res = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    spec_kw = {"initContainers": init} if init else {}
    return builders.pod(name, containers=[builders.container("app", resources=res)], **spec_kw, **kw)


def quota(hard: dict, used: dict | None = None, name="q", **spec) -> dict:
    q = {"metadata": {"name": name, "namespace": "default", "resourceVersion": "3"}, "spec": {"hard": hard, **spec}}
    if used is not None:
        q["status"] = {"hard": dict(hard), "used": used}
    return q


# ---- usage ------------------------------------------------------------------------------------------------------


def test_pod_usage_sums_containers_takes_the_largest_init_container_and_adds_overhead():
    p = builders.pod("p", containers=[
        builders.container("a", resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}),
        builders.container("b", resources={"requests": {"cpu": "0.2"}})],
        initContainers=[builders.container("i", resources={"requests": {"cpu": "500m"}})], overhead={"cpu": "10m"})
    u = usage(PODS, p)
    assert u["pods"] == u["count/pods"] == 1
    assert u["requests.cpu"] == u["cpu"] == Decimal("0.51")  # max(0.3, 0.5) + overhead
    assert u["requests.memory"] == 64 * 2**20
    assert u["limits.cpu"] == Decimal("1.01")
    assert "limits.memory" not in u


@pytest.mark.parametrize("status,meta,counted", [
    ({"phase": "Succeeded"}, {}, False),
    ({"phase": "Failed"}, {}, False),
    ({"phase": "Running"}, {}, True),
    ({"phase": "Running"}, {"deletionTimestamp": "2025-12-31T23:59:00Z", "deletionGracePeriodSeconds": 30}, False),
    ({"phase": "Running"}, {"deletionTimestamp": "2025-12-31T23:59:50Z", "deletionGracePeriodSeconds": 30}, True),
])
def test_terminal_and_long_terminating_pods_use_only_their_count(status, meta, counted):
    p = pod(requests={"cpu": "1"})
    p["status"], p["metadata"] = status, {**p["metadata"], **meta}
    u = usage(PODS, p, NOW)
    assert u["count/pods"] == 1
    assert ("pods" in u and u["requests.cpu"] == 1) == counted


def test_service_and_claim_usage():
    np = builders.service("s", ports=[{"port": 80}, {"port": 81}], type="NodePort")
    assert usage(SERVICES, np) == {"count/services": 1, "services": 1, "services.nodeports": 2,
                                   "services.loadbalancers": 0}
    lb = builders.service("s", ports=[{"port": 80, "nodePort": 30001}, {"port": 81}], type="LoadBalancer",
                          allocateLoadBalancerNodePorts=False)
    assert usage(SERVICES, lb)["services.nodeports"] == 1 and usage(SERVICES, lb)["services.loadbalancers"] == 1
    pvc = {"metadata": {"name": "c"}, "spec": {"storageClassName": "fast",
                                               "resources": {"requests": {"storage": "1Gi"}}}}
    assert usage(PVCS, pvc) == {"count/persistentvolumeclaims": 1, "persistentvolumeclaims": 1,
                                "requests.storage": 2**30,
                                "fast.storageclass.storage.k8s.io/requests.storage": 2**30,
                                "fast.storageclass.storage.k8s.io/persistentvolumeclaims": 1}
    assert usage(by_plural("configmaps"), {}) == {"count/configmaps": 1, "configmaps": 1}
    assert usage(by_plural("deployments"), {}) == {"count/deployments.apps": 1}


def test_tracked_resources_follow_the_hard_names():
    got = tracked_resources(["requests.cpu", "services.nodeports", "count/deployments.apps", "secrets",
                             "gold.storageclass.storage.k8s.io/requests.storage", "count/nothing"], resolve)
    assert {r.plural for r in got} == {"pods", "services", "deployments", "secrets", "persistentvolumeclaims"}


# ---- scopes ------------------------------------------------------------------------------------------------------


def test_scopes_select_pods_and_never_other_objects():
    be, burst = pod(), pod(requests={"cpu": "1"})
    terminating = pod(activeDeadlineSeconds=30)
    q = quota({"pods": "1"}, {"pods": "0"}, scopes=["BestEffort"])
    assert quota_matches(q, PODS, be) and not quota_matches(q, PODS, burst)
    q = quota({"pods": "1"}, {"pods": "0"}, scopes=["Terminating"])
    assert quota_matches(q, PODS, terminating) and not quota_matches(q, PODS, be)
    q = quota({"pods": "1", "services": "1"}, {"pods": "0", "services": "0"},
              scopeSelector={"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In",
                                                   "values": ["high"]}]})
    assert quota_matches(q, PODS, pod(priorityClassName="high"))
    assert not quota_matches(q, PODS, pod(priorityClassName="low"))
    assert not quota_matches(q, SERVICES, builders.service("s", ports=[{"port": 80}]))
    assert not quota_matches(quota({"pods": "1"}), PODS, be)  # no status yet: Kubernetes matches on status.hard


# ---- admission decisions ------------------------------------------------------------------------------------------


def test_constraints_name_every_missing_resource_and_container():
    p = builders.pod("p", containers=[builders.container("a", resources={"requests": {"cpu": "1"}}),
                                      builders.container("b")])
    assert pod_constraints(["requests.cpu", "limits.memory", "pods"], p) == (
        "must specify limits.memory for: a,b; requests.cpu for: b")
    assert pod_constraints(["pods", "count/pods"], p) is None


def test_relevant_refuses_a_quota_without_usage_and_unspecified_requests():
    p = pod()
    with pytest.raises(errors.ApiError) as exc:
        relevant(PODS, p, [{**quota({"pods": "2"}), "status": {"hard": {"pods": "2", "requests.cpu": "1"},
                                                              "used": {"pods": "0"}}}])
    assert exc.value.message == 'pods "p" is forbidden: failed quota: q: must specify requests.cpu for: app'
    with pytest.raises(errors.ApiError) as exc:
        relevant(PODS, p, [{**quota({"pods": "2"}), "status": {"hard": {"pods": "2", "count/pods": "3"},
                                                              "used": {"pods": "0"}}}])
    assert exc.value.message == 'pods "p" is forbidden: status unknown for quota: q, resources: count/pods,pods'


def test_charge_adds_to_used_and_words_the_refusal_as_kubernetes():
    q = quota({"pods": "3", "requests.memory": "1Gi"}, {"pods": "1", "requests.memory": "512Mi"})
    p = pod(requests={"memory": "256Mi"})
    new, added = charge(PODS, p, q, delta_of(PODS, p, None))
    assert new["status"]["used"] == {"pods": "2", "requests.memory": "768Mi"}
    assert added == {"pods": 1, "requests.memory": 256 * 2**20}
    assert release(new, added)["status"]["used"] == {"pods": "1", "requests.memory": "512Mi"}
    big = pod("big", requests={"memory": "768Mi"})
    with pytest.raises(errors.ApiError) as exc:
        charge(PODS, big, q, delta_of(PODS, big, None))
    assert exc.value.code == 403
    assert exc.value.message == ('pods "big" is forbidden: exceeded quota: q, requested: requests.memory=768Mi, '
                                 'used: requests.memory=512Mi, limited: requests.memory=1Gi')
    assert charge(PODS, p, quota({"services": "1"}, {"services": "0"}), delta_of(PODS, p, None)) == (None, {})


def test_an_update_is_charged_only_what_it_adds():
    old = builders.service("s", ports=[{"port": 80}])
    new = builders.service("s", ports=[{"port": 80}, {"port": 81}], type="NodePort")
    assert delta_of(SERVICES, new, old) == {"services.nodeports": 2}
    assert delta_of(SERVICES, old, new) == {}


# ---- LimitRange ------------------------------------------------------------------------------------------------------


def limit_range(*items: dict) -> dict:
    model, causes = validate_object(by_plural("limitranges"), {"metadata": {"name": "lr"}, "spec": {"limits": items}})
    assert not causes, causes
    return to_dict(model)


def test_limit_range_item_defaults_follow_max_and_min():
    lr = limit_range({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}})
    item = lr["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}


def test_defaults_fill_only_what_containers_lack_and_are_annotated():
    lr = limit_range({"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "200m"}})
    p = builders.pod("p", containers=[builders.container("a"),
                                      builders.container("b", resources={"limits": {"cpu": "500m"}})])
    limitranger.requests_from_limits(p)
    limitranger.apply_defaults([lr], p)
    a, b = (c["resources"] for c in p["spec"]["containers"])
    assert a == {"limits": {"cpu": "1"}, "requests": {"cpu": "200m"}}
    assert b == {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}}  # its request defaulted to its limit
    assert p["metadata"]["annotations"][limitranger.ANNOTATION] == (
        "LimitRanger plugin set: cpu request for container a; cpu limit for container a")


@pytest.mark.parametrize("item,resources,message", [
    ({"type": "Container", "min": {"cpu": "100m"}}, {},
     "minimum cpu usage per Container is 100m.  No request is specified"),
    ({"type": "Container", "min": {"memory": "64Mi"}}, {"requests": {"memory": "32Mi"}},
     "minimum memory usage per Container is 64Mi, but request is 32Mi"),
    ({"type": "Container", "max": {"cpu": "1"}}, {"requests": {"cpu": "1"}},
     "maximum cpu usage per Container is 1.  No limit is specified"),
    ({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
     {"requests": {"cpu": "100m"}, "limits": {"cpu": "500m"}},
     "cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"),
    ({"type": "Pod", "max": {"memory": "1Gi"}}, {"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}},
     "maximum memory usage per Pod is 1Gi, but limit is 2Gi"),
])
def test_bounds_are_refused_with_kubernetes_messages(item, resources, message):
    lr = {"spec": {"limits": [item]}}
    p = builders.pod("p", containers=[builders.container("a", resources=resources)])
    assert limitranger.pod_violations([lr], p) == [message]


def test_claim_bounds():
    lr = {"spec": {"limits": [{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]}}
    claim = {"spec": {"resources": {"requests": {"storage": "5Gi"}}}}
    assert limitranger.pvc_violations([lr], claim) == ["maximum storage usage per PersistentVolumeClaim is 2Gi, but "
                                                       "request is 5Gi"]
    assert limitranger.aggregate(["a", "b", "a"]) == "[a, b]" and limitranger.aggregate(["a"]) == "a"


# ---- PriorityClass -----------------------------------------------------------------------------------------------


def test_priority_resolution():
    high = {"metadata": {"name": "high"}, "value": 100, "preemptionPolicy": "Never"}
    p = pod(priorityClassName="high")
    priority.resolve(p, high, "high", None)
    assert (p["spec"]["priority"], p["spec"]["preemptionPolicy"]) == (100, "Never")
    p = pod()
    priority.resolve(p, None, "", {"metadata": {"name": "dflt"}, "value": 5})
    assert (p["spec"]["priorityClassName"], p["spec"]["priority"], p["spec"]["preemptionPolicy"]) == (
        "dflt", 5, "PreemptLowerPriority")
    with pytest.raises(errors.ApiError) as exc:
        priority.resolve(pod(priorityClassName="high", preemptionPolicy="PreemptLowerPriority"), high, "high", None)
    assert exc.value.message == (
        'pods "p" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in '
        'pod spec; priority admission controller computed Never from the given PriorityClass name')
    old, new = {"spec": {"priority": 100, "preemptionPolicy": "Never"}}, {"spec": {}}
    priority.keep_on_update(old, new)
    assert new["spec"] == old["spec"]
    assert priority.default_class([{"metadata": {"name": "a"}, "value": 9, "globalDefault": True},
                                   {"metadata": {"name": "b"}, "value": 3, "globalDefault": True},
                                   {"metadata": {"name": "c"}, "value": 1}])["metadata"]["name"] == "b"


def test_priority_class_validation():
    res = by_plural("priorityclasses")
    _, causes = validate_object(res, {"metadata": {"name": "system-node-critical"}, "value": 5})
    assert [c.message for c in causes] == [
        "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of "
        "system-node-critical PriorityClass must be 2000001000"]
    assert validate_object(res, priority.system_class("system-node-critical"))[1] == []
    causes = validate_update(res, {"metadata": {"name": "x"}, "value": 1, "preemptionPolicy": "Never"},
                             {"metadata": {"name": "x"}, "value": 2})
    assert [(c.field, c.message) for c in causes] == [
        ("value", "Forbidden: may not be changed in an update."),
        ("preemptionPolicy", 'Invalid value: "PreemptLowerPriority": field is immutable')]


# ---- kubectl's columns -------------------------------------------------------------------------------------------


def test_quota_and_priority_class_columns():
    q = quota({"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi"},
              {"pods": "1", "requests.cpu": "0.5", "limits.memory": "0"})
    q["metadata"]["creationTimestamp"] = "2025-12-31T23:00:00Z"
    cells = {h: fn(q, NOW) for h, fn in columns("ResourceQuota")}
    assert cells == {"NAME": "q", "AGE": "60m", "REQUEST": "pods: 1/2, requests.cpu: 500m/1",
                     "LIMIT": "limits.memory: 0/1Gi"}
    created = (NOW - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pc = {"metadata": {"name": "high", "creationTimestamp": created},
          "value": 1000, "preemptionPolicy": "Never"}
    assert [fn(pc, NOW) for _h, fn in columns("PriorityClass")] == ["high", "1000", "false", "5s", "Never"]
    assert [h for h, _ in columns("PriorityClass")] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
