"""The node-addressed calls' requests: what the agent accepts before it does any work."""

from __future__ import annotations

import pytest

from bus import codec, errors, nodecalls

SESSION = "a" * 32


def _refusal(call, body):
    with pytest.raises(errors.ApiError) as e:
        nodecalls.parse(call, codec.pack(body))
    assert e.value.code == 400
    return e.value.status()["message"]


def test_well_formed_requests_parse_with_kubernetes_defaults():
    req = nodecalls.parse("logs", codec.pack({"namespace": "default", "pod": "web-1.x", "session": SESSION}))
    assert (req.container, req.follow, req.tail, req.previous) == (None, False, None, False)
    req = nodecalls.parse("exec", codec.pack({"namespace": "team-a", "pod": "p", "container": "c", "command": ["ls", "-l"],
                                              "stdin": True, "session": SESSION}))
    assert req.command == ["ls", "-l"] and req.stdin and not req.tty
    assert nodecalls.parse("stats", codec.pack({})) == nodecalls.StatsRequest()
    # what the client builds is what the agent parses
    built = nodecalls.build("logs", namespace="default", pod="p", container=None, follow=True, tail=5, previous=False,
                            session=SESSION)
    assert nodecalls.parse("logs", built.pack()) == built


@pytest.mark.parametrize("body, message", [
    ({"namespace": "default", "pod": "p", "session": "short"}, "invalid logs request: session: Value error, must be"),
    ({"namespace": "default", "pod": "p"}, "invalid logs request: session: Field required"),
    ({"namespace": "Default", "pod": "p", "session": SESSION}, "invalid logs request: namespace: Value error, a lowercase RFC 1123 label"),
    ({"namespace": "default", "pod": "../p", "session": SESSION}, "invalid logs request: pod: Value error, a lowercase RFC 1123 subdomain"),
    ({"namespace": "default", "pod": "p", "tail": -1, "session": SESSION}, "invalid logs request: tail: Input should be greater than or equal to 0"),
    ({"namespace": "default", "pod": "p", "follow": "yes", "session": SESSION}, "invalid logs request: follow: Input should be a valid boolean"),
    ({"namespace": "default", "pod": "p", "session": SESSION, "since": 1}, "invalid logs request: since: Extra inputs are not permitted"),
])
def test_bad_logs_requests_name_the_field(body, message):
    assert _refusal("logs", body).startswith(message)


@pytest.mark.parametrize("command, where", [
    ("sh -c id", "command"), ([], "command"), (["sh", 1], "command[1]"), (["a\x00b"], "command[0]"),
])
def test_an_exec_command_is_a_non_empty_list_of_strings(command, where):
    body = {"namespace": "default", "pod": "p", "command": command, "session": SESSION}
    assert _refusal("exec", body).startswith(f"invalid exec request: {where}: ")


@pytest.mark.parametrize("data", [b"\xc1", codec.pack([1, 2]), codec.pack("x"), b""])
def test_a_body_that_is_not_a_map_is_refused(data):
    with pytest.raises(errors.ApiError) as e:
        nodecalls.parse("exec", data)
    assert e.value.status()["message"] == "the exec request is not a msgpack map"


def test_the_client_refuses_what_the_agent_would():
    with pytest.raises(errors.ApiError) as e:
        nodecalls.build("logs", namespace="default", pod="p", container="Bad_Name", session=SESSION)
    assert e.value.code == 400 and "container" in e.value.status()["message"]
