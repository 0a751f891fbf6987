from master.scheduler.plugins.node_name import REASON, NodeName
from master.scheduler.testing import failing, make_node, make_pod, table


def test_only_the_named_node_fits():
    t = table([make_node("a"), make_node("b")])
    assert failing(NodeName(), make_pod("p", node="b"), t) == {REASON: ["a"]}
    assert failing(NodeName(), make_pod("p", node="zzz"), t) == {REASON: ["a", "b"]}
    assert failing(NodeName(), make_pod("p"), t) == {}
