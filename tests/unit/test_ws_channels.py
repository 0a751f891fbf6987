"""The pure parts of pod log/exec over HTTP: the WebSocket channel frames kubectl speaks (v5.channel.k8s.io), the
exit Status, the container choice and the option parsing with Kubernetes' error messages."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from bus import errors
from master.gateway.podstreams import (choose_container, closed_channel, decode_frame, encode_frame, exec_options,
                                       exit_status, log_options, parse_bool)
from tests import builders
from tests.builders import container


def pod(*containers: str, init: tuple[str, ...] = (), annotations: dict | None = None, phase: str = "Running",
        node: str | None = "n1", state: str = "running") -> dict:
    """A pod of these containers (and init containers), each in ``state``."""
    return builders.pod("p", containers=list(containers), initContainers=[container(c) for c in init],
                        annotations=annotations or {}, node=node, phase=phase,
                        statuses=[{"name": c, "state": {state: {}}} for c in containers])


def test_frames_carry_the_channel_in_the_first_byte():
    assert encode_frame(1, b"hi\n") == b"\x01hi\n"
    assert encode_frame(3) == b"\x03"
    assert decode_frame(b"\x00input") == (0, b"input")
    assert decode_frame(b"\x04{}") == (4, b"{}")
    assert decode_frame(encode_frame(2, b"\xff\x00")) == (2, b"\xff\x00")
    with pytest.raises(ValueError):
        decode_frame(b"")
    with pytest.raises(ValueError):
        encode_frame(256, b"")


def test_v5_close_frame_names_the_closed_channel():
    assert closed_channel(b"\xff\x00") == 0
    assert closed_channel(b"\xff\x01") == 1
    assert closed_channel(b"\x00\x00") is None  # a stdin frame holding a NUL byte
    assert closed_channel(b"\xff") is None


def test_exit_status_is_what_kubectl_reads_on_channel_3():
    assert exit_status(0) == {"metadata": {}, "status": "Success"}
    failed = exit_status(3, ["sh", "-c", "exit 3"])
    assert failed["status"] == "Failure" and failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert "exit code 3" in failed["message"]
    unknown = exit_status(None)
    assert unknown["status"] == "Failure" and unknown["reason"] != "NonZeroExitCode"


def test_container_choice_follows_kubernetes():
    assert choose_container(pod("only"), None) == "only"
    assert choose_container(pod("a", "b"), "b") == "b"
    assert choose_container(pod("a", init=("setup",)), "setup") == "setup"
    assert choose_container(pod("a", "b", annotations={"kubectl.kubernetes.io/default-container": "b"}), None) == "b"
    with pytest.raises(errors.BadRequest) as e:
        choose_container(pod("a", "b", init=("setup",)), None)
    assert e.value.code == 400
    assert e.value.message == ("a container name must be specified for pod p, choose one of: [a b] "
                               "or one of the init containers: [setup]")
    with pytest.raises(errors.BadRequest) as e:
        choose_container(pod("a"), "nope")
    assert e.value.message == "container nope is not valid for pod p"


def test_log_options():
    o = log_options({"container": "c", "follow": "true", "tailLines": "10", "limitBytes": "5"}, "p")
    assert (o.container, o.follow, o.previous, o.tail_lines, o.limit_bytes) == ("c", True, False, 10, 5)
    assert log_options({}, "p").ignored == ()
    assert log_options({"timestamps": "true", "sinceSeconds": "5"}, "p").ignored == ("timestamps", "sinceSeconds")
    assert log_options({"timestamps": "false"}, "p").ignored == ()
    with pytest.raises(errors.Invalid) as e:
        log_options({"tailLines": "-1", "limitBytes": "0"}, "p")
    assert [c["field"] for c in e.value.causes] == ["tailLines", "limitBytes"]
    assert e.value.code == 422 and e.value.message.startswith('PodLogOptions "p" is invalid')
    with pytest.raises(errors.BadRequest):
        log_options({"tailLines": "ten"}, "p")
    with pytest.raises(errors.BadRequest):
        log_options({"follow": "maybe"}, "p")


def test_parse_bool_reads_like_go():
    assert [parse_bool({"x": v}, "x") for v in ("1", "t", "true", "True", "TRUE")] == [True] * 5
    assert [parse_bool({"x": v}, "x") for v in ("0", "f", "false", "False")] == [False] * 4
    assert parse_bool({}, "x", default=True) is True


def test_exec_options():
    q = MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo hi"), ("stdin", "true"),
                   ("stdout", "true"), ("stderr", "true")])
    o = exec_options(q, pod("c"))
    assert o.command == ["sh", "-c", "echo hi"] and o.container == "c" and o.stdin and not o.tty
    with pytest.raises(errors.BadRequest) as e:
        exec_options(MultiDict(), pod("c"))
    assert e.value.message == "you must specify at least one command for the container"
    with pytest.raises(errors.BadRequest) as e:
        exec_options(MultiDict([("command", "true")]), pod("c", phase="Succeeded"))
    assert e.value.message == "cannot exec into a container in a completed pod; current phase is Succeeded"
    with pytest.raises(errors.BadRequest):
        exec_options(MultiDict([("command", "true"), ("stdout", "false"), ("stderr", "false")]), pod("c"))
    with pytest.raises(errors.BadRequest):
        exec_options(MultiDict([("command", "true"), ("container", "x")]), pod("c"))
    with pytest.raises(errors.BadRequest) as e:
        exec_options(MultiDict([("command", "true")]), pod("c", node=None, phase="Pending"))
    assert e.value.message == 'pod "p" is not scheduled to a node yet'
    with pytest.raises(errors.BadRequest) as e:
        exec_options(MultiDict([("command", "true")]), pod("c", state="waiting", phase="Pending"))
    assert e.value.message == "container c is not running"
