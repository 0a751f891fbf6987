"""The EndpointSlice controller's pure part: a Service and its pods → slices; the
kind's validation and printer columns."""

from __future__ import annotations

from datetime import datetime, timezone

from bus.cli import printers
from bus.resources import by_kind, resolve
from bus.validation import validate_object, validate_update
from master.controllers.endpoints import compute_subsets
from master.controllers.endpointslice import MAX_ENDPOINTS_PER_SLICE, compute_slices, owns_slice, slice_content
from tests.unit.servicepods import pod, service, target_ref

SLICES = by_kind("EndpointSlice")


def endpoint(p: dict, ready=True, serving=None, terminating=False, **extra) -> dict:
    return {"addresses": [p["status"]["podIP"]],
            "conditions": {"ready": ready, "serving": ready if serving is None else serving,
                           "terminating": terminating},
            **extra, "nodeName": p["spec"]["nodeName"], "targetRef": target_ref(p)}


P8080 = [{"name": "", "port": 8080, "protocol": "TCP"}]


def test_one_slice_with_conditions_ports_labels_and_owner():
    a, b = pod("a", "10.244.0.2"), pod("b", "10.244.0.1", ready=False)
    going = pod("going", "10.244.0.3", deleting=True)
    (es,) = compute_slices(service(), [a, b, going, pod("no-ip", None), pod("done", "10.244.0.9", phase="Failed")])
    assert es["apiVersion"] == "discovery.k8s.io/v1" and es["kind"] == "EndpointSlice"
    assert es["addressType"] == "IPv4" and es["ports"] == P8080
    # sorted by address; the not-ready pod is listed not ready, the terminating one terminating
    assert es["endpoints"] == [endpoint(b, ready=False), endpoint(a),
                               endpoint(going, ready=False, serving=True, terminating=True)]
    meta = es["metadata"]
    assert meta["namespace"] == "default" and meta["name"].startswith("web-") and len(meta["name"]) == 9
    assert meta["labels"] == {"tier": "front", "kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
                                        "controller": True, "blockOwnerDeletion": True}]
    assert owns_slice(es, "web") and not owns_slice(es, "db")
    # the Endpoints list the same ready / not-ready pods (terminating ones left out there)
    (subset,) = compute_subsets(service(), [a, b, going])
    assert [x["ip"] for x in subset["addresses"]] == ["10.244.0.2"]
    assert [x["ip"] for x in subset["notReadyAddresses"]] == ["10.244.0.1"]


def test_names_are_stable_and_depend_on_the_service_uid():
    a = pod("a")
    first = compute_slices(service(), [a])
    assert compute_slices(service(), [a, pod("b", "10.244.0.7")])[0]["metadata"]["name"] == \
        first[0]["metadata"]["name"]
    assert compute_slices(service(uid="other"), [a])[0]["metadata"]["name"] != first[0]["metadata"]["name"]


def test_publish_not_ready_makes_every_endpoint_ready():
    b = pod("b", "10.244.0.1", ready=False)
    going = pod("going", "10.244.0.3", deleting=True)
    (es,) = compute_slices(service(publishNotReadyAddresses=True), [b, going])
    assert es["endpoints"] == [endpoint(b, ready=True, serving=False),
                               endpoint(going, ready=True, serving=True, terminating=True)]


def test_slices_split_by_port_set_like_the_subsets():
    svc = service([{"name": "http", "port": 80, "targetPort": "http"},
                   {"name": "metrics", "port": 9100, "appProtocol": "http"}])
    a = pod("a", "10.244.0.1", ports=[{"name": "http", "containerPort": 8080}])
    b = pod("b", "10.244.0.2", ports=[{"name": "web", "containerPort": 9000}])
    slices = compute_slices(svc, [a, b])
    by_ports = {tuple(p["port"] for p in es["ports"]): es for es in slices}
    assert set(by_ports) == {(8080, 9100), (9100,)}
    assert by_ports[(8080, 9100)]["ports"] == [
        {"name": "http", "port": 8080, "protocol": "TCP"},
        {"name": "metrics", "port": 9100, "protocol": "TCP", "appProtocol": "http"}]
    assert by_ports[(8080, 9100)]["endpoints"] == [endpoint(a)]
    assert by_ports[(9100,)]["endpoints"] == [endpoint(b)]
    assert len({es["metadata"]["name"] for es in slices}) == 2
    assert len(compute_subsets(svc, [a, b])) == len(slices)


def test_placeholder_when_nothing_is_selected_and_headless_hostnames():
    (empty,) = compute_slices(service(), [pod("no-ip", None)])
    assert empty["endpoints"] == [] and empty["ports"] == [] and empty["addressType"] == "IPv4"
    a = pod("a", "10.244.0.1", hostname="a", subdomain="web")
    (es,) = compute_slices(service([], clusterIP="None"), [a])
    assert es["endpoints"] == [endpoint(a, hostname="a")] and es["ports"] == []
    assert es["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_large_services_are_chunked():
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(MAX_ENDPOINTS_PER_SLICE + 5)]
    slices = compute_slices(service(), pods)
    assert sorted(len(es["endpoints"]) for es in slices) == [5, MAX_ENDPOINTS_PER_SLICE]
    assert len({es["metadata"]["name"] for es in slices}) == 2


def test_content_compares_what_the_api_stores():
    (es,) = compute_slices(service(), [pod("b", "10.244.0.2"), pod("a", "10.244.0.1")])
    model, causes = validate_object(SLICES, es)
    assert causes == []
    stored = model.model_dump(by_alias=True, exclude_none=True)
    stored["metadata"].update(resourceVersion="7", uid="x", creationTimestamp="2026-01-01T00:00:00Z")
    stored["endpoints"].reverse()
    assert slice_content(stored) == slice_content(es)
    stored["endpoints"][0]["conditions"]["ready"] = False
    assert slice_content(stored) != slice_content(es)


def test_resource_validation_and_printer():
    assert SLICES.api_version == "discovery.k8s.io/v1" and SLICES.plural == "endpointslices"
    assert SLICES.namespaced and SLICES.short_names == () and resolve("endpointslice") is SLICES
    base = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"}}
    _, causes = validate_object(SLICES, base)
    assert [c.field for c in causes] == ["addressType"]
    bad = {**base, "addressType": "IPv4",
           "endpoints": [{"addresses": []}, {"addresses": ["2001:db8::1"]}, {"addresses": ["x" * 3] * 101}],
           "ports": [{"name": "a", "port": 70000, "protocol": "ICMP"}, {"name": "a", "port": 1}]}
    _, causes = validate_object(SLICES, bad)
    assert {c.field for c in causes} == {"endpoints[0].addresses", "endpoints[1].addresses[0]",
                                         "endpoints[2].addresses", "ports[0].port", "ports[0].protocol",
                                         "ports[1].name"} | {f"endpoints[2].addresses[{i}]" for i in range(101)}
    _, causes = validate_object(SLICES, {**base, "addressType": "Unix"})
    assert causes[0].message.startswith('Unsupported value: "Unix"')
    fqdn, causes = validate_object(SLICES, {**base, "addressType": "FQDN", "endpoints": [{"addresses": ["db.example"]}],
                                            "ports": [{"port": 5432}]})
    assert causes == []
    assert fqdn.ports[0].name == "" and fqdn.ports[0].protocol == "TCP"  # Kubernetes' defaults
    assert [c.field for c in validate_update(SLICES, {**base, "addressType": "IPv4"}, fqdn)] == ["addressType"]

    now = datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)
    pods = [pod(f"p{i}", f"10.244.0.{i}") for i in range(1, 6)]
    (es,) = compute_slices(service([{"port": 80, "targetPort": 8080}, {"name": "m", "port": 9100},
                                    {"name": "x", "port": 1}, {"name": "y", "port": 2}]), pods)
    es["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    headers, rows = printers.table(SLICES, [es], now=now)
    assert headers == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert rows == [[es["metadata"]["name"], "IPv4", "8080,9100,1 + 1 more...",
                     "10.244.0.1,10.244.0.2,10.244.0.3 + 2 more...", "5m"]]
    (empty,) = compute_slices(service(), [])
    assert printers.table(SLICES, [empty], now=now)[1][0][2:4] == ["<unset>", "<unset>"]
