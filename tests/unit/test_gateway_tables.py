"""The gateway's pure parts: server-side Tables, discovery documents, OpenAPI, REST paths, protobuf bodies."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bus import errors
from bus.meta import format_time
from bus.resources import RESOURCES, by_kind
from master.gateway import discovery, openapi, protobuf, tables
from master.gateway.paths import parse_path

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(seconds_ago: int) -> str:
    return format_time(NOW - timedelta(seconds=seconds_ago))


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "demo", "creationTimestamp": ts(300), "labels": {"app": "web"},
                    "resourceVersion": "7"},
       "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
       "status": {"phase": "Running", "podIP": "10.244.1.5",
                  "conditions": [{"type": "Ready", "status": "False"}],
                  "containerStatuses": [
                      {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                      {"name": "b", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}


# ---- tables -------------------------------------------------------------------------------------------

def test_pod_table_has_kubectl_columns_with_wide_ones_at_priority_1():
    t = tables.table(by_kind("Pod"), [POD], "42", now=NOW)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "42"}
    cols = [(c["name"], c["priority"]) for c in t["columnDefinitions"]]
    assert cols == [("Name", 0), ("READY", 0), ("STATUS", 0), ("RESTARTS", 0), ("Age", 0),
                    ("IP", 1), ("NODE", 1), ("NOMINATED NODE", 1), ("READINESS GATES", 1)]
    assert t["columnDefinitions"][0]["format"] == "name"
    row = t["rows"][0]
    assert row["cells"] == ["web-1", "1/2", "CrashLoopBackOff", "2", "5m", "10.244.1.5", "n1", "<none>", "<none>"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": POD["metadata"]}


def test_include_object_none_metadata_object():
    pod = by_kind("Pod")
    assert "object" not in tables.table(pod, [POD], include="None", now=NOW)["rows"][0]
    assert tables.table(pod, [POD], include="Object", now=NOW)["rows"][0]["object"] is POD


def test_deployment_columns_and_wide():
    d = {"metadata": {"name": "web", "creationTimestamp": ts(7200)},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}},
         "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    t = tables.table(by_kind("Deployment"), [d], now=NOW)
    names = [c["name"] for c in t["columnDefinitions"]]
    assert names == ["Name", "READY", "UP-TO-DATE", "AVAILABLE", "Age", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert t["rows"][0]["cells"] == ["web", "2/3", "3", "2", "120m", "web", "busybox", "app=web"]


def test_watch_event_tables_can_leave_out_the_columns():
    t = tables.table(by_kind("ConfigMap"), [{"metadata": {"name": "c"}, "data": {"a": "1"}}], with_columns=False,
                     now=NOW)
    assert t["columnDefinitions"] is None and t["rows"][0]["cells"] == ["c", "1", "<unknown>"]


def test_every_kind_has_a_name_or_event_table():
    for r in RESOURCES:
        cols = tables.column_definitions(r.kind)
        assert cols, r.kind
        if r.kind != "Event":
            assert cols[0] == {"name": "Name", "type": "string", "format": "name",
                               "description": cols[0]["description"], "priority": 0}


# ---- discovery ----------------------------------------------------------------------------------------

def _aggregated_resources(core: bool, group: str, version: str) -> dict[str, dict]:
    doc = discovery.aggregated(core)
    item = next(i for i in doc["items"] if i["metadata"]["name"] == group)
    v = next(v for v in item["versions"] if v["version"] == version)
    return {r["resource"]: r for r in v["resources"]}


def test_aggregated_core_discovery_shape():
    doc = discovery.aggregated(True)
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert [i["metadata"]["name"] for i in doc["items"]] == [""]
    pods = _aggregated_resources(True, "", "v1")["pods"]
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced" and pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert pods["singularResource"] == "pod" and "watch" in pods["verbs"]
    subs = {s["subresource"]: s for s in pods["subresources"]}
    assert subs["eviction"]["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert set(subs) == {"status", "binding", "log", "exec", "eviction", "portforward"}
    nodes = _aggregated_resources(True, "", "v1")["nodes"]
    assert nodes["scope"] == "Cluster" and "categories" not in nodes


def test_aggregated_groups_include_apps_scale_policy_and_autoscaling():
    doc = discovery.aggregated(False, "v2beta1")
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    names = [i["metadata"]["name"] for i in doc["items"]]
    assert {"apps", "batch", "autoscaling", "coordination.k8s.io", "policy"} <= set(names)
    deploy = _aggregated_resources(False, "apps", "v1")["deployments"]
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert _aggregated_resources(False, "autoscaling", "v2")["horizontalpodautoscalers"]["shortNames"] == ["hpa"]


def test_accept_header_picks_the_aggregated_version():
    kubectl = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
               "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
    assert discovery.wanted_aggregated(kubectl) == "v2"
    assert discovery.wanted_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") \
        == "v2beta1"
    assert discovery.wanted_aggregated("application/json, */*") is None


def test_classic_discovery_lists_eviction_with_its_group():
    core = discovery.api_resource_list("", "v1")
    rs = {r["name"]: r for r in core["resources"]}
    assert rs["pods/eviction"]["kind"] == "Eviction"
    assert (rs["pods/eviction"]["group"], rs["pods/eviction"]["version"]) == ("policy", "v1")
    assert rs["namespaces"]["namespaced"] is False and rs["pods"]["shortNames"] == ["po"]
    assert discovery.api_resource_list("apps", "v2") is None
    groups = {g["name"]: g for g in discovery.api_group_list()["groups"]}
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert discovery.api_versions()["versions"] == ["v1"]


# ---- openapi ------------------------------------------------------------------------------------------

def test_openapi_patch_operations_name_their_kind_and_take_field_validation():
    doc = openapi.gv_document("apps", "v1")
    op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in op["parameters"] if p["in"] == "query"]
    # kubectl computes strategic merge patches from its built-in types when this is not offered
    assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
    idx = openapi.index()["paths"]
    assert idx["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")
    assert "apis/policy/v1" in idx and openapi.gv_document("nope", "v1") is None


# ---- paths --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path,want", [
    ("/api/v1/namespaces/demo/pods/web/status", ("pods", "demo", "web", "status", False)),
    ("/api/v1/namespaces/demo", ("namespaces", None, "demo", None, False)),
    ("/api/v1/namespaces/demo/status", ("namespaces", None, "demo", "status", False)),
    ("/api/v1/pods", ("pods", None, None, None, False)),
    ("/apis/apps/v1/namespaces/demo/deployments/web/scale", ("deployments", "demo", "web", "scale", False)),
    ("/api/v1/watch/namespaces/demo/configmaps", ("configmaps", "demo", None, None, True)),
    ("/api/v1/nodes/n1", ("nodes", None, "n1", None, False)),
])
def test_parse_path(path, want):
    t = parse_path(path)
    assert (t.res.plural, t.namespace, t.name, t.subresource, t.watch) == want


@pytest.mark.parametrize("path", ["/api/v1/widgets", "/apis/apps/v2/deployments", "/api/v1/pods/web",
                                  "/api/v1/namespaces/demo/nodes/n1", "/api/v1/namespaces/d/pods/a/b/c"])
def test_unknown_paths_are_404_statuses(path):
    with pytest.raises(errors.NotFound) as e:
        parse_path(path)
    assert e.value.status()["code"] == 404


# ---- protobuf -----------------------------------------------------------------------------------------

def _ld(num: int, payload: bytes) -> bytes:
    return bytes([num << 3 | 2, len(payload)]) + payload


def _envelope(api_version: bytes, kind: bytes, raw: bytes) -> bytes:
    return protobuf.MAGIC + _ld(1, _ld(1, api_version) + _ld(2, kind)) + _ld(2, raw)


def test_protobuf_namespace_as_kubectl_create_namespace_sends_it():
    body = _envelope(b"v1", b"Namespace", _ld(1, _ld(1, b"demo")))
    assert protobuf.decode(body) == {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "demo"}}


def test_protobuf_eviction_with_delete_options():
    opts = bytes([1 << 3, 5]) + _ld(4, b"Foreground")  # gracePeriodSeconds=5
    meta = _ld(1, b"web") + _ld(3, b"demo")
    body = _envelope(b"policy/v1", b"Eviction", _ld(1, meta) + _ld(2, opts))
    assert protobuf.decode(body) == {"kind": "Eviction", "apiVersion": "policy/v1",
                                     "metadata": {"name": "web", "namespace": "demo"},
                                     "deleteOptions": {"gracePeriodSeconds": 5, "propagationPolicy": "Foreground"}}


def test_protobuf_secret_bytes_are_base64():
    raw = _ld(1, _ld(1, b"s")) + _ld(2, _ld(1, b"k") + _ld(2, b"\x00\xff")) + _ld(3, b"Opaque")
    assert protobuf.decode(_envelope(b"v1", b"Secret", raw))["data"] == {"k": "AP8="}


def _varint_field(num: int, value: int) -> bytes:
    assert value < 128
    return bytes([num << 3, value])


def test_protobuf_deployment_as_kubectl_create_deployment_sends_it():
    container = _ld(1, b"nginx") + _ld(2, b"nginx:1.25") + _ld(6, _varint_field(3, 80) + _ld(4, b"TCP")) \
        + _ld(8, b"") + _ld(5, b"")  # empty resources and workingDir, as Go writes them
    labels = _ld(11, _ld(1, b"app") + _ld(2, b"nginx"))
    template = _ld(1, labels) + _ld(2, _ld(2, container) + _ld(3, b""))
    spec = _varint_field(1, 2) + _ld(2, _ld(1, _ld(1, b"app") + _ld(2, b"nginx"))) + _ld(3, template) \
        + _ld(4, b"") + _varint_field(7, 0)
    meta = _ld(1, b"nginx") + labels + _ld(8, b"")
    d = protobuf.decode(_envelope(b"apps/v1", b"Deployment", _ld(1, meta) + _ld(2, spec) + _ld(3, b"\x08\x00")))
    assert d == {"kind": "Deployment", "apiVersion": "apps/v1",
                 "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
                 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
                          "template": {"metadata": {"labels": {"app": "nginx"}},
                                       "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [
                                           {"containerPort": 80, "protocol": "TCP"}]}]}}}}


def test_protobuf_other_kinds_unknown_fields_and_garbage_are_refused_with_a_status():
    with pytest.raises(errors.ApiError) as e:
        protobuf.decode(_envelope(b"apps/v1", b"StatefulSet", b""))
    assert e.value.code == 415 and "application/json" in e.value.message
    with pytest.raises(errors.ApiError) as e:  # a set field k8n would otherwise drop: refused, not lost
        protobuf.decode(_envelope(b"v1", b"ConfigMap", _ld(1, _ld(1, b"c")) + _ld(9, b"x")))
    assert e.value.code == 415 and "field 9 of ConfigMap" in e.value.message
    with pytest.raises(errors.BadRequest):
        protobuf.decode(protobuf.MAGIC + b"\x0a\x7f")  # a length past the end


def test_protobuf_service_ports_with_int_or_string_targets():
    int_target = _ld(4, _varint_field(2, 80))  # IntOrString{intVal: 80}
    str_target = _ld(4, _varint_field(1, 1) + _ld(3, b"http"))  # IntOrString{type: String, strVal: "http"}
    spec = _ld(1, _varint_field(3, 80) + int_target) + _ld(1, _ld(1, b"named") + _varint_field(3, 81) + str_target) \
        + _ld(4, b"ClusterIP")
    svc = protobuf.decode(_envelope(b"v1", b"Service", _ld(1, _ld(1, b"s")) + _ld(2, spec)))
    assert svc["spec"] == {"ports": [{"port": 80, "targetPort": 80}, {"name": "named", "port": 81, "targetPort": "http"}],
                           "type": "ClusterIP"}
