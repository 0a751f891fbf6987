"""Node-pressure eviction decisions (node.eviction, node.pressure.evicted_status) and the pressure taints of the
node lifecycle controller: threshold parsing, conditions with the transition period, the kubelet's ranking and
messages."""

from __future__ import annotations

import pytest

from master.controllers.nodelifecycle import wanted_taints
from node import eviction as ev
from node.pressure import evicted_status
from tests import builders

MI = 2**20


def test_parse_the_kubelet_defaults_and_percentages():
    ts = {t.signal: t for t in ev.parse_thresholds(ev.DEFAULT_EVICTION_HARD)}
    assert ts[ev.MEMORY].quantity == 100 * MI
    assert ts[ev.NODEFS].percentage == 0.10 and ts[ev.IMAGEFS].percentage == 0.15
    assert ts[ev.NODEFS_INODES].percentage == 0.05
    assert ev.PIDS not in ts  # the kubelet sets no default pid.available
    assert ts[ev.NODEFS].value(1000) == 100 and ts[ev.MEMORY].value(10**12) == 100 * MI
    assert str(ts[ev.MEMORY]) == "memory.available<100Mi" and str(ts[ev.NODEFS]) == "nodefs.available<10%"
    assert ev.parse_thresholds("") == [] and ev.parse_thresholds(" pid.available < 1k ")[0].quantity == 1000


@pytest.mark.parametrize("bad", ["memory.available>1Gi", "cpu.available<1", "memory.available<", "nodefs.available<x%",
                                 "nodefs.available<120%", "memory.available<1Mi,memory.available<2Mi",
                                 "memory.available<lots"])
def test_parse_refuses(bad):
    with pytest.raises(ev.ThresholdError):
        ev.parse_thresholds(bad)


def test_thresholds_met_memory_first():
    ts = ev.parse_thresholds("nodefs.available<10%,memory.available<100Mi,pid.available<5%")
    observed = {ev.NODEFS: ev.Observation(5, 100), ev.MEMORY: ev.Observation(50 * MI, 1000 * MI),
                ev.PIDS: ev.Observation(1000, 1000)}
    assert [t.signal for t in ev.thresholds_met(ts, observed)] == [ev.MEMORY, ev.NODEFS]
    assert ev.thresholds_met(ts, {ev.NODEFS: ev.Observation(10, 100)}) == []  # at the threshold: not below it
    assert ev.thresholds_met(ts, {}) == []  # nothing observed: nothing met


def test_conditions_and_the_transition_period():
    pc = ev.PressureConditions(transition_period=30)
    mem = ev.parse_thresholds("memory.available<1Mi")
    disk = ev.parse_thresholds("imagefs.available<1%")
    assert pc.observe([], 0) == {}
    assert pc.observe(mem + disk, 10) == {ev.MEMORY_PRESSURE: True, ev.DISK_PRESSURE: True}
    assert pc.observe(mem, 20) == {}  # disk no longer met, but within the transition period
    assert pc.observe([], 39) == {}
    assert pc.observe([], 40) == {ev.DISK_PRESSURE: False}  # 30 s after it was last met
    assert pc.observe([], 50) == {ev.MEMORY_PRESSURE: False}
    api = {c["type"]: c for c in pc.to_api("HB", "T0")}
    assert api[ev.MEMORY_PRESSURE] == {
        "type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
        "message": "kubelet has sufficient memory available", "lastHeartbeatTime": "HB", "lastTransitionTime": "T0"}
    pc.observe(ev.parse_thresholds("pid.available<1"), 60)
    pid = {c["type"]: c for c in pc.to_api("HB", "T0")}[ev.PID_PRESSURE]
    assert (pid["status"], pid["reason"], pid["message"]) == ("True", "KubeletHasInsufficientPID",
                                                              "kubelet has insufficient PID available")


def _pod(name, *, prio=None, mem_req=None, disk_req=None, **kw):
    res = {"requests": {k: v for k, v in (("memory", mem_req), ("ephemeral-storage", disk_req)) if v}}
    spec = {"priority": prio} if prio is not None else {}
    return builders.pod(name, containers=[builders.container("c", resources=res)], **spec, **kw)


def _names(ranked):
    return [u.pod["metadata"]["name"] for u in ranked]


def test_memory_ranking_exceeding_requests_then_priority_then_usage_above_requests():
    pods = [
        ev.PodUsage(_pod("guaranteed-big", mem_req="500Mi"), memory=400 * MI),  # within its request
        ev.PodUsage(_pod("burstable-over", mem_req="100Mi", prio=0), memory=300 * MI),  # 200Mi over
        ev.PodUsage(_pod("besteffort-small", prio=0), memory=50 * MI),  # 50Mi over
        ev.PodUsage(_pod("important-hog", prio=1000), memory=900 * MI),  # over, but a higher priority
        ev.PodUsage(_pod("low-within", mem_req="1Gi", prio=-5), memory=1 * MI),
    ]
    assert _names(ev.rank(pods, ev.MEMORY)) == ["burstable-over", "besteffort-small", "important-hog", "low-within",
                                                "guaranteed-big"]
    no_stats = ev.PodUsage(_pod("no-stats"), memory=None)
    assert _names(ev.rank(pods + [no_stats], ev.MEMORY))[0] == "no-stats"  # as exceedMemoryRequests


def test_disk_and_pid_ranking():
    pods = [ev.PodUsage(_pod("writer", disk_req="10Mi"), disk=100 * MI, processes=1),
            ev.PodUsage(_pod("small"), disk=1 * MI, processes=50),
            ev.PodUsage(_pod("within", disk_req="1Gi"), disk=500 * MI, processes=3)]
    assert _names(ev.rank(pods, ev.NODEFS)) == ["writer", "small", "within"]
    assert _names(ev.rank(pods, ev.IMAGEFS)) == ["writer", "small", "within"]
    assert _names(ev.rank(pods, ev.PIDS)) == ["small", "within", "writer"]


def test_critical_pods_are_never_the_victim():
    crit = ev.PodUsage(_pod("crit", prio=2000001000), memory=900 * MI)
    mirror = ev.PodUsage(_pod("mirror", annotations={ev.MIRROR_ANNOTATION: "x"}), memory=800 * MI)
    static = ev.PodUsage(_pod("static", annotations={ev.SOURCE_ANNOTATION: "file"}), memory=700 * MI)
    normal = ev.PodUsage(_pod("normal", prio=2000001000 - 2000000000), memory=1 * MI)
    assert ev.victim([crit, mirror, static, normal], ev.MEMORY).pod["metadata"]["name"] == "normal"
    assert ev.victim([crit, mirror, static], ev.MEMORY) is None
    assert not ev.is_critical(_pod("cluster-critical-less-one", prio=1999999999))


def test_eviction_message_as_the_kubelet():
    t = ev.parse_thresholds("memory.available<100Mi")[0]
    u = ev.PodUsage(_pod("hog", mem_req="10Mi"), memory=300 * MI, containers_memory={"c": 300 * MI})
    msg = ev.eviction_message(t, ev.Observation(80 * MI, 1000 * MI), u)
    assert msg == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. "
                   "Container c was using 300Mi, request is 10Mi, has larger consumption of memory. ")
    d = ev.parse_thresholds("nodefs.available<10%")[0]
    assert ev.eviction_message(d, ev.Observation(5 * MI, 100 * MI), u) == (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10Mi, available: 5Mi. ")


def test_evicted_status():
    old = {"phase": "Running", "podIP": "10.0.0.5", "qosClass": "BestEffort",
           "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
           "containerStatuses": [{"name": "c", "ready": True, "containerID": "docker://abc",
                                  "state": {"running": {"startedAt": "S"}}}]}
    st = evicted_status(old, "The node was low on resource: memory. ", "NOW")
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "Evicted", "The node was low on resource: memory. ")
    assert "podIP" not in st and st["qosClass"] == "BestEffort"
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["PodScheduled"]["status"] == "True"
    assert conds["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert term == {"exitCode": 137, "reason": "Error", "finishedAt": "NOW", "startedAt": "S",
                    "containerID": "docker://abc"}


def _node(**conds):
    return builders.node("n", ready=True, conditions=[{"type": k, "status": v} for k, v in conds.items()])


def test_pressure_conditions_taint_the_node_noschedule():
    mem = {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}
    disk = {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}
    assert wanted_taints(_node(MemoryPressure="False", DiskPressure="False"), "T") is None
    assert wanted_taints(_node(MemoryPressure="True", DiskPressure="True"), "T") == [disk, mem]
    n = _node(MemoryPressure="False", DiskPressure="True", PIDPressure="False")
    n["spec"] = {"taints": [mem, {"key": "own", "effect": "NoSchedule"}]}
    assert wanted_taints(n, "T") == [{"key": "own", "effect": "NoSchedule"}, disk]
    n["spec"]["taints"] = [disk]
    assert wanted_taints(n, "T") is None  # unchanged
    unknown = builders.node("n", ready="Unknown", conditions=[{"type": "MemoryPressure", "status": "Unknown"}],
                            taints=[mem])  # a lost node: its pressure taints go, unreachable comes
    assert [t["key"] for t in wanted_taints(unknown, "T")] == ["node.kubernetes.io/unreachable"]


def test_allocatable_memory_is_a_memory_signal():
    ts = ev.parse_thresholds("nodefs.available<10%,allocatableMemory.available<1Gi")
    observed = {ev.NODEFS: ev.Observation(1, 100), ev.ALLOCATABLE_MEMORY: ev.Observation(512 * MI, 4096 * MI)}
    met = ev.thresholds_met(ts, observed)
    assert [t.signal for t in met] == [ev.ALLOCATABLE_MEMORY, ev.NODEFS]
    assert ev.PressureConditions().observe(met[:1], 0) == {ev.MEMORY_PRESSURE: True}
    pods = [ev.PodUsage(_pod("a", prio=5), memory=100 * MI), ev.PodUsage(_pod("b", prio=1), memory=10 * MI)]
    assert _names(ev.rank(pods, ev.ALLOCATABLE_MEMORY)) == ["b", "a"]
    assert ev.eviction_message(met[0], observed[ev.ALLOCATABLE_MEMORY], pods[0]).startswith(
        "The node was low on resource: memory. Threshold quantity: 1Gi, available: 512Mi. ")


def test_an_evicted_pod_is_not_run_again_after_an_agent_restart():
    from node.agent import _evicted

    assert _evicted(builders.pod("p", phase="Failed", status={"reason": "Evicted"}))
    assert not _evicted(builders.pod("p", phase="Failed", status={"reason": "SysctlForbidden"}))
    assert not _evicted(builders.pod("p", phase="Running"))
