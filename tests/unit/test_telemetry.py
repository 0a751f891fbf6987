"""bus.telemetry: a component's registry encoded for the bus, decoded and merged by the gateway into one Prometheus
text exposition labelled by component and node; the work queue's client-go metrics; the telemetry subjects."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bus import subjects, telemetry
from bus.telemetry import Telemetry
from bus.workqueue import FakeClock, WorkQueue, process_one
from master.gateway.promscrape import Scrapes


def component(name: str, node: str = "", requests: float = 1.0) -> Telemetry:
    t = Telemetry(name, node, seconds=1.0)
    c = Counter("things_total", "Things done", ("kind",), registry=t.registry)
    c.labels("a").inc(requests)
    h = Histogram("thing_seconds", "Time per thing", registry=t.registry, buckets=(0.1, 1.0))
    h.observe(0.5)
    return t


def parsed(text: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_a_payload_round_trips_without_created_samples():
    snap = telemetry.decode(component("scheduler").payload())
    assert snap.component == "scheduler" and snap.seconds == 1.0
    fams = {f.name: f for f in snap.families}
    assert fams["things"].type == "counter"
    assert [(s.name, s.labels, s.value) for s in fams["things"].samples] == [("things_total", {"kind": "a"}, 1.0)]
    assert {s.name for s in fams["thing_seconds"].samples} == {"thing_seconds_bucket", "thing_seconds_count",
                                                                "thing_seconds_sum"}


@pytest.mark.parametrize("data", [b"", b"\x81\xa1x\x01", b"\x93\x01\x02\x03"])
def test_garbage_is_not_a_payload(data):
    with pytest.raises(ValueError):
        telemetry.decode(data)


def test_merge_labels_every_sample_with_its_component_and_node():
    snaps = [telemetry.decode(component("apiserver", requests=3).payload()),
             telemetry.decode(component("node", "n1", requests=2).payload()),
             telemetry.decode(component("node", "n2", requests=5).payload())]
    reg = CollectorRegistry()

    class C:
        def collect(self):
            return telemetry.merge(snaps)

    reg.register(C())
    fams = parsed(generate_latest(reg))
    got = {(s.labels["component"], s.labels["node"]): s.value for s in fams["things"].samples}
    assert got == {("apiserver", ""): 3.0, ("node", "n1"): 2.0, ("node", "n2"): 5.0}
    assert fams["thing_seconds"].type == "histogram"


def test_two_replicas_of_one_component_are_told_apart():
    a, b = component("apiserver"), component("apiserver")
    b.replica = "other:1"
    fams = telemetry.merge([a.snapshot(), b.snapshot()])
    replicas = {s.labels["replica"] for f in fams if f.name == "things" for s in f.samples}
    assert replicas == {a.replica, "other:1"}


def test_a_family_whose_type_conflicts_is_left_out_of_the_later_source():
    a = Telemetry("apiserver")
    Gauge("things", "as a gauge", registry=a.registry).set(1)
    b = Telemetry("scheduler")
    Counter("things", "as a counter", registry=b.registry).inc()
    fams = telemetry.merge([a.snapshot(), b.snapshot()])
    assert [(f.name, f.type) for f in fams] == [("things", "gauge")]
    assert [(s.name, s.labels["component"]) for s in fams[0].samples] == [("things", "apiserver")]


def test_the_gateway_trusts_the_subject_not_the_payload_and_forgets_stale_replicas():
    scrapes = Scrapes(None)
    liar = component("apiserver", requests=7)  # published by node n1's agent, claiming to be the API server
    scrapes.take(subjects.telemetry("node", "n1"), liar.payload(), now=100.0)
    scrapes.take("k8n.telemetry", b"", now=100.0)  # not a telemetry subject: ignored
    fams = parsed(scrapes.exposition(now=101.0))
    assert {(s.labels["component"], s.labels["node"]) for s in fams["things"].samples} == {("node", "n1")}
    assert "things" not in parsed(scrapes.exposition(now=100.0 + telemetry_stale()))


def telemetry_stale() -> float:
    from master.gateway.promscrape import MIN_FRESH_SECONDS

    return MIN_FRESH_SECONDS + 1


def test_subjects_name_component_and_node():
    assert subjects.telemetry("apiserver") == "k8n.telemetry.apiserver"
    assert subjects.telemetry("node", "w.1") == "k8n.telemetry.node.w_1"
    assert subjects.parse_telemetry_subject("k8n.telemetry.node.w_1") == ("node", "w.1")
    assert subjects.parse_telemetry_subject("k8n.telemetry.scheduler") == ("scheduler", "")
    for bad in ("k8n.telemetry", "k8n.metrics.node.x", "k8n.telemetry.a.b.c", "k8n.telemetry..x"):
        with pytest.raises(ValueError):
            subjects.parse_telemetry_subject(bad)


def test_zero_seconds_turns_metrics_off():
    async def inside():
        assert telemetry.enter("scheduler", seconds=0) is None
        assert telemetry.metrics(telemetry.TelemetrySettings) is None

    asyncio.run(inside())


async def test_the_work_queue_counts_adds_waits_work_and_retries():
    t = telemetry.enter("controller-manager", seconds=1.0)
    clock = FakeClock()
    q = WorkQueue("rs", clock=clock)
    q.add("a")
    q.add("a")  # collapsed: not an add
    q.add("b")
    clock.advance(2.0)
    key = await q.get()

    def fail(_key):
        clock.advance(0.5)
        raise RuntimeError("boom")

    await process_one(q, fail, key)
    q.done(key)
    fams = parsed(generate_latest(t.registry))

    def value(family, sample, **labels):
        return sum(s.value for s in fams[family].samples if s.name == sample
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("workqueue_adds", "workqueue_adds_total", name="rs") == 2
    assert value("workqueue_retries", "workqueue_retries_total", name="rs") == 1
    assert value("workqueue_depth", "workqueue_depth", name="rs") == 1  # b (a waits for its backoff)
    assert value("workqueue_queue_duration_seconds", "workqueue_queue_duration_seconds_sum", name="rs") == 2.0
    assert value("workqueue_work_duration_seconds", "workqueue_work_duration_seconds_sum", name="rs") == 0.5


def test_dns_queries_are_counted_by_protocol_and_rcode():
    import dns.message
    import dns.rcode

    from node.dns.server import count
    from node.telemetry import DnsMetrics

    t = Telemetry("node", "n1")
    m = t.get(DnsMetrics)
    q = dns.message.make_query("nope.default.svc.cluster.local", "A")
    missing = dns.message.make_response(q)
    missing.set_rcode(dns.rcode.NXDOMAIN)
    count(m, "udp", missing.to_wire())
    count(m, "udp", dns.message.make_response(q).to_wire())
    count(m, "tcp", None)  # no reply (not a DNS message)
    fams = parsed(generate_latest(t.registry))
    assert {(s.labels["rcode"], s.value) for s in fams["coredns_dns_responses"].samples} == {("NXDOMAIN", 1.0),
                                                                                              ("NOERROR", 1.0)}
    assert {(s.labels["proto"], s.value) for s in fams["coredns_dns_requests"].samples} == {("udp", 2.0),
                                                                                             ("tcp", 1.0)}
