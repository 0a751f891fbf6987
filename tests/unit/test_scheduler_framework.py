import pytest

from master.scheduler.framework import (CycleState, Diagnosis, FitError, Framework, Status, Code,
                                        num_feasible_nodes_to_find)
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


@pytest.mark.parametrize("nodes, percentage, want", [
    (50, 0, 50), (99, 0, 99), (100, 0, 100), (500, 0, 230), (1000, 0, 420), (5000, 0, 500), (6000, 0, 300),
    (10000, 0, 500), (1000, 10, 100), (1000, 100, 1000), (300, 10, 100),
])
def test_num_feasible_nodes_to_find_as_kube_scheduler(nodes, percentage, want):
    assert num_feasible_nodes_to_find(nodes, percentage) == want


def test_large_clusters_score_a_window_of_feasible_nodes_that_moves_round():
    t = table([make_node(f"n{i:03d}", cpu="1" if i % 2 else "4") for i in range(300)])  # odd nodes are too small
    fw = Framework(DEFAULT_FILTERS, DEFAULT_SCORES, (), seed=1, percentage_of_nodes_to_score=10)
    pod = PodInfo.of(make_pod("p", cpu="2"))
    windows = [fw.find_feasible(CycleState(), pod, t) for _ in range(3)]
    assert [len(w) for w in windows] == [100, 100, 100]  # 10 % of 300 nodes is under the minimum of 100
    assert all(int(s) % 2 == 0 for w in windows for s in w)
    seen = [int(s) for w in windows for s in w]
    assert seen == list(range(0, 300, 2)) * 2  # round robin over the 150 feasible nodes, wrapping
    small = table([make_node(f"n{i}") for i in range(99)])
    assert len(fw.find_feasible(CycleState(), pod, small)) == 99
