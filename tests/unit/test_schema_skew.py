"""Stored-schema encoding (bus.schema) and the version-skew policy (bus.skew)."""

from __future__ import annotations

import base64

import pytest

from bus import codec, roles, schema, skew


def secret(**data: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d"},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}, "type": "Opaque"}


def test_schema_2_stores_a_secrets_bytes_and_reads_back_the_api_form():
    body = secret(key=b"\x00\xffbinary", empty=b"")
    stored = schema.encode("secrets", body, 2)
    assert codec.unpack(stored)["data"] == {"key": b"\x00\xffbinary", "empty": b""}
    assert len(stored) < len(schema.encode("secrets", body, 1))
    assert schema.decode("secrets", stored, schema.headers_for(2)) == body


def test_schema_1_is_what_k8n_0_1_wrote_and_is_read_as_it_is():
    body = secret(key=b"abc")
    assert schema.encode("secrets", body, 1) == codec.pack(body)
    assert schema.headers_for(1) == {}
    assert schema.decode("secrets", codec.pack(body), None) == body
    assert schema.to_legacy("secrets", schema.encode("secrets", body, 2), {schema.HEADER: "2"}) == codec.pack(body)


def test_other_kinds_are_the_same_bytes_in_both_schemas():
    cm = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    assert schema.encode("configmaps", cm, 2) == schema.encode("configmaps", cm, 1)


def test_a_schema_newer_than_this_k8n_is_refused_with_what_to_do():
    with pytest.raises(schema.SchemaError, match="upgrade this component"):
        schema.decode("pods", codec.pack({}), {schema.HEADER: str(schema.CURRENT + 1)})
    with pytest.raises(schema.SchemaError):
        schema.of({schema.HEADER: "two"})


def test_readers_of_each_schema():
    assert schema.readable_by(2, "0.2.0") and schema.readable_by(2, "v0.3.1-rc1")
    assert not schema.readable_by(2, "0.1.0")
    assert schema.readable_by(1, "0.1.0")


@pytest.mark.parametrize("role,version,apiserver,ok", [
    (roles.NODE, "0.2.0", "0.2.0", True),
    (roles.NODE, "0.1.0", "0.4.0", True),  # three minors older
    (roles.NODE, "0.1.0", "0.5.0", False),  # four
    (roles.NODE, "0.3.0", "0.2.0", False),  # newer than the API server
    (roles.CONTROLLER_MANAGER, "0.1.0", "0.2.0", True),
    (roles.CONTROLLER_MANAGER, "0.1.0", "0.3.0", False),
    (roles.SCHEDULER, "0.3.0", "0.2.0", False),
    (roles.GATEWAY, "0.2.9", "0.2.0", True),  # patch versions do not count
    (roles.APISERVER, "0.1.0", "0.2.0", True),
    (roles.APISERVER, "0.3.0", "0.2.0", True),
    (roles.APISERVER, "0.1.0", "0.3.0", False),
    (roles.NODE, "1.0.0", "0.9.0", False),  # a major step
    (roles.ADMIN, "0.1.0", "0.9.0", True),  # people and programs are not held to it
])
def test_the_skew_policy(role, version, apiserver, ok):
    assert skew.check(role, version, apiserver).ok is ok


def test_a_refusal_says_what_to_upgrade():
    assert "upgrade the API servers first" in skew.check(roles.NODE, "0.3.0", "0.2.0").reason
    assert "at most 3 minor versions older; upgrade it" in skew.check(roles.NODE, "0.1.0", "0.5.0").reason
    assert "at most 1 minor version older" in skew.check(roles.SCHEDULER, "0.1.0", "0.3.0").reason


def test_versions_in_connection_names_and_kubelet_versions():
    assert skew.version_of_connection(skew.connection_name("node:w1")) == skew.bus.__version__
    assert skew.version_of_connection("controller-manager") is None  # k8n 0.1
    assert skew.version_of_kubelet("v1.32.0-k8n.0.1.0") == "0.1.0"
    assert skew.version_of_kubelet("v1.29.1") is None
    assert skew.kubelet_error("v1.29.1") is None  # not a k8n agent: nothing to compare
    assert skew.kubelet_error(skew.kubelet_version()) is None
