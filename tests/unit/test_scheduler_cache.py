from master.scheduler.cache import SchedulerCache
from master.scheduler.framework import CycleState, FitError, Framework
from master.scheduler.plugins import DEFAULT_FILTERS, DEFAULT_SCORES
from master.scheduler.podinfo import PodInfo
from master.scheduler.testing import make_node, make_pod

import pytest


def cache_with(*nodes):
    c = SchedulerCache(ttl=30)
    for n in nodes:
        c.set_node(n)
    return c


def place(cache, name):
    return Framework(DEFAULT_FILTERS, DEFAULT_SCORES, ()).select_host(CycleState(), PodInfo.of(make_pod(name)),
                                                                     cache.nodes)


def test_assumed_pod_takes_the_last_slot_at_once():
    c = cache_with(make_node("a", pods=1))
    p = PodInfo.of(make_pod("p1"))
    assert place(c, "p1") == "a"
    c.assume(p, "a")
    with pytest.raises(FitError, match="1 Too many pods"):
        place(c, "p2")
    c.forget(p.key)  # bind failed
    assert place(c, "p2") == "a"


def test_confirmed_by_the_informer_then_removed():
    c = cache_with(make_node("a", cpu="1"))
    p = make_pod("p1", cpu="800m")
    c.assume(PodInfo.of(p), "a")
    bound = {**p, "spec": {**p["spec"], "nodeName": "a"}}
    c.add_pod(bound)
    assert not c.is_assumed("default.p1")
    assert c.nodes.req_cpu[c.nodes.slot("a")] == 800
    c.forget("default.p1")  # not assumed any more: no effect
    assert c.nodes.req_cpu[c.nodes.slot("a")] == 800
    c.remove_pod("default.p1")
    assert c.nodes.req_cpu[c.nodes.slot("a")] == 0 and c.nodes.pod_count[c.nodes.slot("a")] == 0


def test_assumed_pod_expires_only_after_binding_finished():
    c = cache_with(make_node("a"))
    c.assume(PodInfo.of(make_pod("p1", cpu="1")), "a")
    assert c.cleanup_expired(now=1000.0) == []  # still binding
    c.finish_binding("default.p1", now=10.0)
    assert c.cleanup_expired(now=39.0) == []
    assert c.cleanup_expired(now=40.0) == ["default.p1"]
    assert c.nodes.req_cpu[c.nodes.slot("a")] == 0


def test_node_updates_only_count_when_scheduling_cares():
    c = cache_with(make_node("a"))
    v = c.nodes.version
    n = make_node("a")
    n["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    assert not c.set_node(n) and c.nodes.version == v
    assert c.set_node(make_node("a", cpu="8")) and c.nodes.version == v + 1
    c.remove_node("a")
    assert c.nodes.num_nodes == 0


def test_newer_versions_of_a_counted_pod_are_not_counted_twice():
    c = cache_with(make_node("a"), make_node("b"))
    p = make_pod("p1", cpu="1", node="a")
    c.add_pod(p)
    c.add_pod({**p, "status": {"phase": "Running"}})
    assert c.nodes.req_cpu[c.nodes.slot("a")] == 1000 and c.nodes.pod_count[c.nodes.slot("a")] == 1
    c.add_pod({**p, "metadata": {**p["metadata"], "uid": "other"}})  # same name, a new pod
    assert c.nodes.pod_count[c.nodes.slot("a")] == 1
    c.add_pod({**p, "spec": {**p["spec"], "nodeName": "b"}})
    assert c.nodes.pod_count[c.nodes.slot("a")] == 0 and c.nodes.pod_count[c.nodes.slot("b")] == 1
