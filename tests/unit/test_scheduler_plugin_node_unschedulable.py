from master.scheduler.plugins.node_unschedulable import REASON, NodeUnschedulable
from master.scheduler.testing import failing, make_node, make_pod, table


def test_cordoned_node_is_filtered_unless_tolerated():
    t = table([make_node("a"), make_node("b", unschedulable=True)])
    assert failing(NodeUnschedulable(), make_pod("p"), t) == {REASON: ["b"]}
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert failing(NodeUnschedulable(), make_pod("p", tolerations=tol), t) == {}
    assert failing(NodeUnschedulable(), make_pod("p", tolerations=[{"operator": "Exists"}]), t) == {}
