"""metrics.k8s.io/v1beta1 in the gateway, the pure parts: what the cache believes of the bus, freshness, the shapes
and Tables metrics-server serves, discovery, paths, authorization attributes and the bootstrap roles."""

from __future__ import annotations

from bus import codec, subjects
from bus.authn import UserInfo
from bus.meta import format_duration
from bus.rbac import Attributes, covers
from bus.resources import METRICS_RESOURCES, NODE_METRICS, POD_METRICS
from master.apiserver import rbac_policy
from master.gateway import discovery
from bus.metrics import MetricsCache
from master.gateway.metricsapi import metrics_list, node_metrics, pod_metrics, table
from master.gateway.paths import parse_path
from tests.builders import node, pod

TS = "2026-12-03T10:00:00Z"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def node_doc(name: str = "n1.example", cpu: str = "123456n", mem: str = "2048Ki", window: str = "10s") -> dict:
    return {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {"name": name},
            "timestamp": TS, "window": window, "usage": {"cpu": cpu, "memory": mem}}


def pod_doc(name: str = "web", ns: str = "default", containers: dict | None = None) -> dict:
    cs = {"app": ("100000n", "1024Ki"), "side": ("50000n", "1024Ki")} if containers is None else containers
    return {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {"name": name, "namespace": ns},
            "timestamp": TS, "window": "10s",
            "containers": [{"name": c, "usage": {"cpu": cpu, "memory": mem}} for c, (cpu, mem) in cs.items()]}


def cache_with(*published: tuple[str, dict]) -> tuple[MetricsCache, Clock]:
    clock = Clock()
    cache = MetricsCache(clock)
    for subject, doc in published:
        assert cache.receive(subject, codec.pack(doc))
    return cache, clock


def test_metrics_subjects_parse_back_with_dotted_names():
    assert subjects.parse_metrics_subject(subjects.node_metrics("n1.example")) == ("n1.example", "", "")
    assert subjects.parse_metrics_subject(subjects.pod_metrics("n1.x", "ns", "web.v2")) == ("n1.x", "ns", "web.v2")
    for bad in ("k8n.metrics.node", "k8n.metrics.pod.n1.ns", "k8n.api.admin.pods.get"):
        try:
            subjects.parse_metrics_subject(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} parsed")


def test_the_cache_keeps_only_what_a_subject_vouches_for():
    cache, _ = cache_with((subjects.node_metrics("n1.example"), node_doc()))
    assert cache.node("n1.example").doc["usage"]["cpu"] == "123456n"
    # a node's sample naming another node, a pod's naming another pod, garbage: all ignored
    assert not cache.receive(subjects.node_metrics("n2"), codec.pack(node_doc("n1.example", cpu="1n")))
    assert not cache.receive(subjects.pod_metrics("n2", "default", "other"), codec.pack(pod_doc("web")))
    assert not cache.receive(subjects.node_metrics("n3"), b"\xc1not msgpack")
    assert not cache.receive(subjects.node_metrics("n3"), codec.pack(node_doc("n3", cpu="lots")))
    assert not cache.receive(subjects.node_metrics("n3"), codec.pack(node_doc("n3", window="a while")))
    assert not cache.receive(subjects.pod_metrics("n1", "default", "web"), codec.pack(pod_doc(containers={})))
    assert cache.node("n1.example").doc["usage"]["cpu"] == "123456n" and cache.node("n2") is None
    assert cache.pods == {}


def test_a_pod_sample_counts_only_from_the_node_the_pod_is_bound_to():
    cache, _ = cache_with((subjects.pod_metrics("n1", "default", "web"), pod_doc()),
                          (subjects.pod_metrics("n2", "default", "web"), pod_doc(containers={"x": ("9n", "1Ki")})))
    assert cache.pod("default", "web", "n1").doc["containers"][0]["name"] == "app"  # n2's claim hid nothing
    assert cache.pod("default", "web", "n3") is None
    assert cache.pod("default", "web", None) is None


def test_samples_go_stale_after_three_windows_and_at_least_thirty_seconds():
    cache, clock = cache_with((subjects.node_metrics("fast"), node_doc("fast", window="1s")),
                              (subjects.node_metrics("slow"), node_doc("slow", window="20s")))
    clock.t += 30
    assert cache.node("fast") is not None and cache.node("slow") is not None
    clock.t += 0.5
    assert cache.node("fast") is None and cache.node("slow") is not None
    clock.t += 30
    cache.prune()
    assert cache.nodes == {}


def test_node_metrics_shape_as_metrics_server_serves_it():
    cache, _ = cache_with((subjects.node_metrics("n1.example"), node_doc()))
    n = node("n1.example", labels={"zone": "a"})
    got = node_metrics(n, cache.node("n1.example"), "2026-12-03T10:00:05Z")
    assert got == {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "n1.example", "creationTimestamp": "2026-12-03T10:00:05Z",
                                "labels": {"zone": "a"}},
                   "timestamp": TS, "window": "10s", "usage": {"cpu": "123456n", "memory": "2048Ki"}}
    lst = metrics_list(NODE_METRICS, [node_metrics(n, cache.node("n1.example"), TS, item=True)])
    assert lst["kind"] == "NodeMetricsList" and lst["metadata"] == {}
    assert "kind" not in lst["items"][0] and lst["items"][0]["usage"]["cpu"] == "123456n"


def test_pod_metrics_shape_and_table_sum_containers():
    cache, _ = cache_with((subjects.pod_metrics("n1", "default", "web"), pod_doc()))
    p = pod("web", node="n1", labels={"app": "web"})
    got = pod_metrics(p, cache.pod("default", "web", "n1"), TS)
    assert got["metadata"] == {"name": "web", "namespace": "default", "creationTimestamp": TS,
                               "labels": {"app": "web"}}
    assert got["containers"] == [{"name": "app", "usage": {"cpu": "100000n", "memory": "1024Ki"}},
                                 {"name": "side", "usage": {"cpu": "50000n", "memory": "1024Ki"}}]
    t = table([got])
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert t["rows"][0]["cells"] == ["web", "150u", "2Mi", "10s"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table([], "None")["rows"] == []


def test_go_durations():
    assert [format_duration(s) for s in (10, 90, 3600, 10.006, 0.25, 0)] == [
        "10s", "1m30s", "1h0m0s", "10.006s", "250ms", "0s"]


def test_discovery_serves_the_group_read_only():
    assert discovery.groups()["metrics.k8s.io"] == ["v1beta1"]
    assert "metrics.k8s.io" in [g["name"] for g in discovery.api_group_list()["groups"]]
    rl = discovery.api_resource_list("metrics.k8s.io", "v1beta1")
    assert [(r["name"], r["kind"], r["namespaced"], r["verbs"]) for r in rl["resources"]] == [
        ("nodes", "NodeMetrics", False, ["get", "list"]), ("pods", "PodMetrics", True, ["get", "list"])]
    agg = {g["metadata"]["name"]: g for g in discovery.aggregated(False)["items"]}
    assert [r["resource"] for r in agg["metrics.k8s.io"]["versions"][0]["resources"]] == ["nodes", "pods"]
    # the core kinds of the same plurals are untouched
    core = discovery.api_resource_list("", "v1")["resources"]
    assert next(r for r in core if r["name"] == "pods")["kind"] == "Pod"


def test_paths_and_what_is_authorized():
    t = parse_path("/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods/web")
    assert (t.res, t.namespace, t.name) == (POD_METRICS, "demo", "web")
    assert parse_path("/apis/metrics.k8s.io/v1beta1/nodes").res is NODE_METRICS
    assert parse_path("/api/v1/nodes").res.kind == "Node"
    a = Attributes.for_resource(UserInfo("u"), "list", t.res, t.namespace)
    assert (a.api_group, a.resource, a.namespace) == ("metrics.k8s.io", "pods", "demo")
    assert len(METRICS_RESOURCES) == 2


def test_view_edit_admin_read_the_metrics_and_nothing_more():
    roles = {r["metadata"]["name"]: r for r in rbac_policy.aggregated(rbac_policy.cluster_roles())}
    want = [{"verbs": ["get", "list"], "apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"]}]
    for name in ("view", "edit", "admin", "system:aggregated-metrics-reader"):
        assert covers(roles[name]["rules"], want)[0], name
    reader = roles["system:aggregated-metrics-reader"]["rules"]
    assert not covers(reader, [{"verbs": ["create"], "apiGroups": ["metrics.k8s.io"], "resources": ["pods"]}])[0]
    assert not covers(reader, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])[0]


class FakeRuntime:
    def __init__(self) -> None:
        self.cpu_ns = 0

    async def stats(self, _container_id: str) -> dict:
        self.cpu_ns += 50_000_000
        return {"cpu_usage_ns": self.cpu_ns, "memory_working_set_bytes": 4 * 1024 * 1024}


class FakeHost:
    """What ``node.services.NodeServices`` reads of its agent: one running pod of one container."""

    def __init__(self) -> None:
        from types import SimpleNamespace as NS

        self.name = "n1"
        self.client = NS(nc=None)
        self.config = NS(metrics_seconds=1.0)
        self.runtime = FakeRuntime()
        self.workers = {"uid-1": NS(pod=pod("web"), current={"main": NS(state="running", id="c1")})}


async def test_the_agent_publishes_a_pod_from_its_second_sample_on():
    from node.services import NodeServices

    services = NodeServices(FakeHost())
    first = await services.collect()
    assert first["pods"] == [] and first["node"]["window"] == "1s"  # no CPU rate from one sample
    second = await services.collect()
    (pm,) = second["pods"]
    assert pm["metadata"] == {"name": "web", "namespace": "default"} and pm["window"] == "1s"
    assert pm["containers"][0]["name"] == "main" and pm["containers"][0]["usage"]["memory"] == "4096Ki"
    assert int(pm["containers"][0]["usage"]["cpu"].rstrip("n")) > 0
