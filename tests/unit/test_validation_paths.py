"""Paths inside volumes and the addresses of Endpoints, validated as Kubernetes validates them (issue 12's escapes:
a subPath or an items path that steps out of its volume, an Endpoints address that points the proxy at the node)."""

from __future__ import annotations

import pytest

from bus.resources import by_plural
from bus.validation import validate_object
from tests.builders import pod

PODS, ENDPOINTS = by_plural("pods"), by_plural("endpoints")


def causes(res, obj) -> dict[str, str]:
    _, found = validate_object(res, obj)
    return {c.field: c.message for c in found}


def with_volume(volume: dict, **mount) -> dict:
    p = pod("p")
    p["spec"]["volumes"] = [{"name": "v", **volume}]
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/data", **mount}]
    return p


@pytest.mark.parametrize("sub, message", [
    ("/tmp/x", 'Invalid value: "/tmp/x": must be a relative path'),
    ("../../etc", "Invalid value: \"../../etc\": must not contain '..'"),
    ("a/../../b", "Invalid value: \"a/../../b\": must not contain '..'"),
])
def test_a_subpath_may_not_leave_its_volume(sub, message):
    found = causes(PODS, with_volume({"emptyDir": {}}, subPath=sub))
    assert found["spec.containers[0].volumeMounts[0].subPath"] == message


def test_a_relative_descending_subpath_is_fine_and_subpathexpr_excludes_subpath():
    assert causes(PODS, with_volume({"emptyDir": {}}, subPath="logs/app..1")) == {}
    found = causes(PODS, with_volume({"emptyDir": {}}, subPath="a", subPathExpr="$(POD)"))
    assert found["spec.containers[0].volumeMounts[0].subPathExpr"].endswith(
        "subPathExpr and subPath are mutually exclusive")


def test_items_paths_of_secrets_config_maps_and_projections_stay_inside():
    found = causes(PODS, with_volume({"secret": {"secretName": "s", "items": [
        {"key": "k", "path": "../../../tmp/x/f"}, {"key": "k2", "path": "/etc/passwd"}, {"key": "k3", "path": "..x"},
        {"key": "k4"}, {"path": "ok", "key": "k5", "mode": 0o1777}]}}))
    v = "spec.volumes[0].secret.items"
    assert found[f"{v}[0].path"] == "Invalid value: \"../../../tmp/x/f\": must not start with '..'"
    assert found[f"{v}[1].path"] == 'Invalid value: "/etc/passwd": must be a relative path'
    assert found[f"{v}[2].path"] == "Invalid value: \"..x\": must not start with '..'"
    assert found[f"{v}[3].path"] == "Required value"
    assert found[f"{v}[4].mode"] == "Invalid value: 1023: must be a number between 0 and 0777 (octal), both inclusive"
    found = causes(PODS, with_volume({"projected": {"sources": [
        {"configMap": {"name": "c", "items": [{"key": "a", "path": "x/../../y"}]}},
        {"serviceAccountToken": {"path": "/token"}},
        {"downwardAPI": {"items": [{"path": "../labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}))
    sp = "spec.volumes[0].projected.sources"
    assert found[f"{sp}[0].configMap.items[0].path"] == "Invalid value: \"x/../../y\": must not contain '..'"
    assert found[f"{sp}[1].serviceAccountToken.path"] == 'Invalid value: "/token": must be a relative path'
    assert f"{sp}[2].downwardAPI.items[0].path" in found
    assert causes(PODS, with_volume({"configMap": {"name": "c", "items": [{"key": "a", "path": "conf/a.yaml"}]}})) == {}


def endpoints(ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": 4222}]}]}


@pytest.mark.parametrize("ip, message", [
    ("127.0.0.1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
    ("::1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
    ("0.0.0.0", "may not be unspecified (0.0.0.0, ::)"),
    ("169.254.169.254", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    ("fe80::1", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    ("224.0.0.5", "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
])
def test_endpoints_may_not_point_at_special_addresses(ip, message):
    assert causes(ENDPOINTS, endpoints(ip)) == {"subsets[0].addresses[0].ip": f'Invalid value: "{ip}": {message}'}


def test_ordinary_endpoint_addresses_are_fine():
    for ip in ("10.244.1.5", "192.0.2.10", "2001:db8::5"):
        assert causes(ENDPOINTS, endpoints(ip)) == {}
