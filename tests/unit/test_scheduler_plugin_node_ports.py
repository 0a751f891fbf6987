from master.scheduler.plugins.node_ports import REASON, NodePorts, conflicts
from master.scheduler.testing import failing, make_node, make_pod, table


def test_host_port_in_use_is_a_conflict():
    t = table([make_node("a"), make_node("b")], [make_pod("x", node="a", host_port=8080)])
    assert failing(NodePorts(), make_pod("p", host_port=8080), t) == {REASON: ["a"]}
    assert failing(NodePorts(), make_pod("p", host_port=8081), t) == {}
    assert failing(NodePorts(), make_pod("p"), t) == {}


def test_conflict_rules():
    used = {("TCP", "10.0.0.1", 80): 1}
    assert conflicts(("TCP", "0.0.0.0", 80), used)
    assert conflicts(("TCP", "10.0.0.1", 80), used)
    assert not conflicts(("TCP", "10.0.0.2", 80), used)
    assert not conflicts(("UDP", "10.0.0.1", 80), used)


def test_port_freed_when_pod_leaves():
    from master.scheduler.podinfo import PodInfo

    x = make_pod("x", node="a", host_port=8080)
    t = table([make_node("a")], [x])
    t.account(t.slot("a"), PodInfo.of(x), -1)
    assert failing(NodePorts(), make_pod("p", host_port=8080), t) == {}
