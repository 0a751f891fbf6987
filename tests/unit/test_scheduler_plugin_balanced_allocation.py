from master.scheduler.plugins.balanced_allocation import BalancedAllocation
from master.scheduler.testing import make_node, make_pod, scores, table


def test_balanced_node_scores_higher():
    t = table([make_node("cpu-heavy", cpu="4", memory="4Gi"), make_node("even", cpu="4", memory="4Gi")],
              [make_pod("x", cpu="3", memory="100Mi", node="cpu-heavy"), make_pod("y", cpu="1", memory="1Gi", node="even")])
    s = scores(BalancedAllocation(), make_pod("p", cpu="500m", memory="512Mi"), t)
    assert s["even"] > s["cpu-heavy"]
    assert 0 <= s["cpu-heavy"] <= 100
