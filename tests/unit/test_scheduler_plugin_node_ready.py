from master.scheduler.plugins.node_ready import REASON, NodeReady
from master.scheduler.testing import failing, make_node, make_pod, table


def test_not_ready_and_unknown_nodes_are_filtered():
    t = table([make_node("a"), make_node("b", ready=False), make_node("c", ready=None)])
    assert failing(NodeReady(), make_pod("p"), t) == {REASON: ["b", "c"]}
