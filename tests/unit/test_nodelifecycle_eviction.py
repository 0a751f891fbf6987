"""Node lifecycle pure logic: disruption states, the eviction token bucket, tolerations, the
Unknown conditions and the taints that follow the Ready condition."""

from __future__ import annotations

import math

from bus.meta import format_time as rfc3339
from bus.workqueue import FakeClock
from master.controllers._lifecycle_util import UNREACHABLE, eviction_time, toleration_seconds
from master.controllers.nodelifecycle import (FULL, NORMAL_STATE, PARTIAL, EvictionLimiter, disruption_state,
                                              unknown_conditions, wanted_taints)
from tests import builders

T0 = 1_000_000.0
TAINT = {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(T0)}


def node(ready: str, taints=None) -> dict:
    return builders.node("n", taints=taints or [], conditions=[{"type": "MemoryPressure", "status": "False"}],
                         ready=ready, ready_since=T0 - 100)


def pod(*tolerations) -> dict:
    return builders.pod("p", None, bare=True, tolerations=list(tolerations))


def test_disruption_states():
    assert disruption_state(2, 0) == NORMAL_STATE
    assert disruption_state(2, 1) == NORMAL_STATE  # one of two nodes lost: evict
    assert disruption_state(10, 3) == NORMAL_STATE
    assert disruption_state(10, 4) == PARTIAL  # a large share: slow down
    assert disruption_state(10, 5) == PARTIAL
    assert disruption_state(10, 6) == FULL  # most nodes "down": the control plane is cut off
    assert disruption_state(1, 1) == FULL
    assert disruption_state(0, 0) == NORMAL_STATE


def test_limiter_rates_and_pause():
    clock = FakeClock()
    lim = EvictionLimiter(10.0, clock=clock)
    assert lim.try_accept() == 0.0
    assert math.isclose(lim.try_accept(), 0.1)  # burst 1: the next token in 100 ms
    clock.advance(0.1)
    assert lim.try_accept() == 0.0
    lim.set_rate(0.1)
    assert math.isclose(lim.try_accept(), 10.0)
    clock.advance(10)
    assert lim.try_accept() == 0.0
    lim.set_rate(0.0)
    clock.advance(100)
    assert lim.try_accept() == math.inf  # paused, however long we wait
    lim.set_rate(10.0)  # resumes at the new rate; nothing was saved up while paused
    assert math.isclose(lim.try_accept(), 0.1)


def test_eviction_ten_pods_at_ten_per_second_take_about_a_second():
    clock = FakeClock()
    lim, evicted, t = EvictionLimiter(10.0, clock=clock), 0, 0.0
    while evicted < 10:
        wait = lim.try_accept()
        if wait == 0:
            evicted += 1
        else:
            clock.advance(wait)
            t += wait
    assert math.isclose(t, 0.9)


def test_toleration_seconds():
    assert toleration_seconds(pod(), TAINT, 5.0) == 5.0  # default
    assert toleration_seconds(pod({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}), TAINT, 5) is None
    assert toleration_seconds(pod({"operator": "Exists"}), TAINT, 5) is None  # tolerates everything
    assert toleration_seconds(pod({"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 60},
                                  {"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 30}), TAINT, 5) == 30
    assert toleration_seconds(pod({"key": "other", "operator": "Exists"}), TAINT, 5) == 5.0
    custom = {"key": "example.com/x", "effect": "NoExecute"}
    assert toleration_seconds(pod(), custom, 5) == 0.0  # an untolerated NoExecute taint: at once


def test_eviction_time_from_the_taint():
    n = node("Unknown", [TAINT])
    assert eviction_time(pod(), n, 5.0) == T0 + 5
    assert eviction_time(pod({"key": UNREACHABLE, "operator": "Exists"}), n, 5.0) is None
    assert eviction_time(pod(), node("True"), 5.0) is None


def test_unknown_conditions_and_taints_follow_ready():
    n = node("True")
    conds = unknown_conditions(n, rfc3339(T0))
    assert {c["type"]: c["status"] for c in conds} == {"MemoryPressure": "Unknown", "Ready": "Unknown"}
    ready = next(c for c in conds if c["type"] == "Ready")
    assert ready["reason"] == "NodeStatusUnknown" and ready["message"] == "Kubelet stopped posting node status."
    assert ready["lastTransitionTime"] == rfc3339(T0)
    assert unknown_conditions({**n, "status": {"conditions": conds}}, rfc3339(T0 + 5)) is None

    assert wanted_taints(node("Unknown"), rfc3339(T0)) == [{"key": UNREACHABLE, "effect": "NoExecute",
                                                             "timeAdded": rfc3339(T0)}]
    assert wanted_taints(node("Unknown", [TAINT]), rfc3339(T0 + 9)) is None  # keeps the first timeAdded
    other = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
    assert wanted_taints(node("True", [other, TAINT]), rfc3339(T0)) == [other]
    assert [t["key"] for t in wanted_taints(node("False", [TAINT]), rfc3339(T0))] == ["node.kubernetes.io/not-ready"]
