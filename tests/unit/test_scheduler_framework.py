import pytest

from master.scheduler.framework import CycleState, Diagnosis, FitError, Framework, Status, Code
from master.scheduler.plugins import DEFAULT_FILTERS, DEFAULT_SCORES
from master.scheduler.podinfo import PodInfo
from master.scheduler.testing import make_node, make_pod, table


def framework():
    return Framework(DEFAULT_FILTERS, DEFAULT_SCORES, (), seed=1)


def fit_message(pod, nodes):
    with pytest.raises(FitError) as e:
        framework().select_host(CycleState(), PodInfo.of(pod), nodes)
    return e.value.message()


def test_reasons_counted_per_node_and_sorted_like_kube_scheduler():
    ssd = {"disk": "ssd"}
    t = table([make_node("a", cpu="1", labels=ssd), make_node("b", cpu="1", labels=ssd),
               make_node("c", cpu="8", labels={"disk": "hdd"})])
    # c fails node affinity before its resources are looked at; a and b fail on cpu only
    assert fit_message(make_pod("p", cpu="2", nodeSelector=ssd), t) == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.")


def test_first_failing_plugin_wins_per_node():
    t = table([make_node("a", cpu="1"), make_node("b", cpu="1"), make_node("c", cpu="1", ready=False)])
    assert fit_message(make_pod("p", cpu="2"), t) == \
        "0/3 nodes are available: 1 node(s) were not ready, 2 Insufficient cpu."


def test_several_reasons_of_one_plugin():
    t = table([make_node("a", cpu="1", memory="1Gi"), make_node("b", cpu="8", memory="1Gi")])
    assert fit_message(make_pod("p", cpu="2", memory="2Gi"), t) == \
        "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory."


def test_no_nodes():
    assert fit_message(make_pod("p"), table([])) == "no nodes available to schedule pods"
    assert FitError(2, Diagnosis(pre_filter="pod has unbound claims")).message() == \
        "0/2 nodes are available: pod has unbound claims."


def test_picks_least_allocated_node():
    t = table([make_node("a"), make_node("b"), make_node("c")],
              [make_pod("x", cpu="3", node="a"), make_pod("y", cpu="2", node="b")])
    assert framework().select_host(CycleState(), PodInfo.of(make_pod("p", cpu="1")), t) == "c"


def test_ties_spread_over_nodes():
    t = table([make_node(f"n{i}") for i in range(4)])
    fw = framework()
    picked = {fw.select_host(CycleState(), PodInfo.of(make_pod(f"p{i}")), t) for i in range(40)}
    assert len(picked) > 1


def test_status():
    assert Status().ok and not Status.unschedulable("x").ok
    assert Status.unschedulable("a", "b", unresolvable=True).code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert Status.error("boom").message == "boom"
