"""The Endpoints controller's pure part: a Service and its pods → Endpoints subsets."""

from __future__ import annotations

from master.controllers._servicepods import find_port, selector_of
from master.controllers.endpoints import canonical, compute_subsets, desired_labels
from tests.unit.servicepods import pod, service, target_ref


def addr(p: dict, **extra) -> dict:
    return {"ip": p["status"]["podIP"], **extra, "nodeName": p["spec"]["nodeName"], "targetRef": target_ref(p)}


P80 = [{"port": 8080, "protocol": "TCP"}]


def test_ready_pods_under_addresses_others_under_not_ready():
    a, b, c = pod("a", "10.244.0.3"), pod("b", "10.244.0.1", ready=False), pod("c", "10.244.0.2")
    assert compute_subsets(service(), [a, b, c]) == [
        {"addresses": [addr(c), addr(a)], "notReadyAddresses": [addr(b)], "ports": P80}]
    # publishNotReadyAddresses: everyone is an address
    assert compute_subsets(service(publishNotReadyAddresses=True), [a, b]) == [
        {"addresses": [addr(b), addr(a)], "ports": P80}]


def test_pods_left_out():
    keep = pod("keep", "10.244.0.9")
    left_out = [pod("no-ip", None), pod("done", "10.244.0.2", phase="Succeeded"),
                pod("failed", "10.244.0.3", phase="Failed"), pod("going", "10.244.0.4", deleting=True)]
    assert compute_subsets(service(), [keep, *left_out]) == [{"addresses": [addr(keep)], "ports": P80}]
    assert compute_subsets(service(), left_out) == []
    # a terminating pod is still published when not-ready addresses are
    going = left_out[-1]
    assert compute_subsets(service(publishNotReadyAddresses=True), [going]) == [
        {"addresses": [addr(going)], "ports": P80}]


def test_named_target_ports_resolve_per_pod_and_group_subsets_by_port_set():
    svc = service([{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9100}])
    a = pod("a", "10.244.0.1", ports=[{"name": "http", "containerPort": 8080}])
    b = pod("b", "10.244.0.2", ports=[{"name": "http", "containerPort": 9090}])
    c = pod("c", "10.244.0.3", ports=[{"name": "web", "containerPort": 8080}])
    udp = pod("d", "10.244.0.4", ports=[{"name": "http", "containerPort": 8080, "protocol": "UDP"}])
    metrics = {"name": "metrics", "port": 9100, "protocol": "TCP"}
    assert compute_subsets(svc, [a, b, c, udp]) == canonical([
        {"addresses": [addr(a)], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, metrics]},
        {"addresses": [addr(b)], "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}, metrics]},
        {"addresses": [addr(c), addr(udp)], "ports": [metrics]},
    ])
    assert find_port(c, {"port": 80, "targetPort": "http"}) is None
    assert find_port(c, {"port": 80, "targetPort": 8443}) == 8443
    assert find_port(c, {"port": 80}) == 80


def test_headless_service_without_ports_and_hostnames():
    svc = {"metadata": {"name": "db", "namespace": "default"},
           "spec": {"clusterIP": "None", "selector": {"app": "web"}}}
    a = pod("a", "10.244.0.1", hostname="db-0", subdomain="db")
    b = pod("b", "10.244.0.2", hostname="other", subdomain="elsewhere")
    assert compute_subsets(svc, [a, b]) == [{"addresses": [addr(a, hostname="db-0"), addr(b)]}]
    assert desired_labels(svc) == {"service.kubernetes.io/headless": "",
                                   "endpoints.kubernetes.io/managed-by": "endpoint-controller"}
    # a non-headless Service with no matching port publishes nothing
    assert compute_subsets(service(ports=[]), [a]) == []


def test_canonical_form_ignores_order_and_stored_defaults():
    a, b = pod("a", "10.244.0.1"), pod("b", "10.244.0.2")
    computed = compute_subsets(service(), [b, a])
    stored = [{"ports": [{"port": 8080}], "addresses": [
        {**addr(b), "targetRef": {**addr(b)["targetRef"], "resourceVersion": "7"}}, addr(a)], "notReadyAddresses": []}]
    assert canonical(stored) == computed
    assert canonical(None) == canonical([]) == []


def test_only_services_with_a_selector_are_managed():
    assert selector_of(service()) == {"app": "web"}
    assert selector_of(service(selector=None)) is None
    assert selector_of(service(selector={})) is None
    assert selector_of(service(type="ExternalName", externalName="x.example.com")) is None
