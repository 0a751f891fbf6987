"""Bytes on the wire as kube-apiserver writes them: Status field order and omitted empties, Go's JSON encoder
(escapes, trailing newline), and exec stdin in TEXT frames as the Python client sends them."""

from __future__ import annotations

from aiohttp import WSMsgType

from bus import errors
from master.gateway.podstreams import decode_frame, frame_bytes
from master.gateway.respond import encode_json


def test_not_found_is_byte_for_byte_kube_apiservers():
    assert encode_json(errors.not_found("pods", "x").status()) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"x\\" not found",'
        b'"reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}\n')


def test_invalid_lists_details_in_go_field_order_with_causes():
    err = errors.invalid("Deployment", "web", [errors.Cause("spec.replicas", "Invalid value: -1: must be >= 0")],
                         "apps")
    assert encode_json(err.status()) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Deployment.apps \\"web\\" is invalid: spec.replicas: Invalid value: -1: must be \\u003e= 0",'
        b'"reason":"Invalid","details":{"name":"web","group":"apps","kind":"Deployment","causes":[{'
        b'"reason":"FieldValueInvalid","message":"Invalid value: -1: must be \\u003e= 0","field":"spec.replicas"}]},'
        b'"code":422}\n')


def test_a_status_from_the_bus_keeps_its_list_meta_and_order():
    st = {"code": 410, "reason": "Expired", "message": "gone", "metadata": {"continue": "abc"}, "status": "Failure",
          "apiVersion": "v1", "kind": "Status"}
    assert list(errors.ApiError.from_status(st).status()) == ["kind", "apiVersion", "metadata", "status", "message",
                                                              "reason", "code"]
    assert errors.ApiError.from_status(st).status()["metadata"] == {"continue": "abc"}


def test_success_bodies_end_in_a_newline_and_escape_as_go_does():
    assert encode_json({"a": "<b>&\u2028"}) == b'{"a":"\\u003cb\\u003e\\u0026\\u2028"}\n'


def test_text_frames_carry_the_channel_as_their_first_character():
    assert decode_frame(frame_bytes(WSMsgType.TEXT, "\x00echo hi\n")) == (0, b"echo hi\n")
    assert decode_frame(frame_bytes(WSMsgType.TEXT, "\x00h\u00e9")) == (0, "h\u00e9".encode())
    assert decode_frame(frame_bytes(WSMsgType.BINARY, b"\x00\xff")) == (0, b"\xff")
    assert frame_bytes(WSMsgType.PING, b"") == b"" and frame_bytes(WSMsgType.TEXT, "") == b""
