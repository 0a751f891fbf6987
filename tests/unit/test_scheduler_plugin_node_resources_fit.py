from master.scheduler.plugins.node_resources_fit import (INSUFFICIENT_CPU, INSUFFICIENT_MEMORY, TOO_MANY_PODS,
                                                         NodeResourcesFit)
from master.scheduler.podinfo import PodInfo, pod_requests
from master.scheduler.testing import failing, make_node, make_pod, scores, table


def test_requests_against_allocatable_minus_requested():
    t = table([make_node("a", cpu="2", memory="4Gi"), make_node("b", cpu="1", memory="1Gi")],
              [make_pod("x", cpu="1500m", node="a")])
    assert failing(NodeResourcesFit(), make_pod("p", cpu="600m"), t) == {INSUFFICIENT_CPU: ["a"]}
    assert failing(NodeResourcesFit(), make_pod("p", cpu="500m"), t) == {}
    assert failing(NodeResourcesFit(), make_pod("p", cpu="3", memory="2Gi"), t) == {
        INSUFFICIENT_CPU: ["a", "b"], INSUFFICIENT_MEMORY: ["b"]}


def test_too_many_pods():
    t = table([make_node("a", pods=1), make_node("b", pods=2)], [make_pod("x", node="a")])
    assert failing(NodeResourcesFit(), make_pod("p"), t) == {TOO_MANY_PODS: ["a"]}


def test_init_containers_max_rule():
    spec = {"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
                           {"resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "500m"}}},
                               {"resources": {"requests": {"memory": "512Ki"}}}]}
    assert pod_requests(spec)[:2] == (500, 1024 * 1024)
    info = PodInfo.of({"metadata": {"name": "p"}, "spec": spec})
    assert (info.cpu, info.memory) == (500, 1024 * 1024)


def test_least_allocated_prefers_emptier_node():
    t = table([make_node("busy", cpu="4"), make_node("idle", cpu="4")], [make_pod("x", cpu="3", node="busy")])
    s = scores(NodeResourcesFit(), make_pod("p", cpu="500m", memory="1Gi"), t)
    assert s["idle"] > s["busy"]
