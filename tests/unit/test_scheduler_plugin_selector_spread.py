from master.scheduler.plugins.selector_spread import SelectorSpread
from master.scheduler.testing import make_node, make_pod, scores, table


def test_pods_of_one_owner_spread():
    t = table([make_node("a"), make_node("b"), make_node("c")],
              [make_pod("x1", node="a", owner="rs1"), make_pod("x2", node="a", owner="rs1"),
               make_pod("x3", node="b", owner="rs1"), make_pod("y", node="c", owner="other")])
    s = scores(SelectorSpread(), make_pod("p", owner="rs1"), t)
    assert s == {"a": 0.0, "b": 50.0, "c": 100.0}
    assert scores(SelectorSpread(), make_pod("q"), t) == {}  # no owner: no opinion
