"""The shared object-metadata vocabulary (bus/meta.py): API times, conditions, generated names, copies and
accessors — what the API server, controllers, scheduler, agents and CLI rely on."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from bus import meta

T = 1_700_000_000  # 2023-11-14T22:13:20Z


# ---- time ----------------------------------------------------------------------------------------


def test_format_time_writes_kubernetes_utc_seconds_and_micro_time():
    assert meta.format_time(T) == "2023-11-14T22:13:20Z"
    assert meta.format_time(T + 0.75) == "2023-11-14T22:13:20Z"  # truncated, never rounded up
    assert meta.format_time(T + 0.5, micro=True) == "2023-11-14T22:13:20.500000Z"
    aware = datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone(timedelta(hours=1)))
    assert meta.format_time(aware) == "2023-11-14T22:13:20Z"  # converted to UTC
    assert meta.format_time(datetime(2023, 11, 14, 22, 13, 20)) == "2023-11-14T22:13:20Z"  # naive is UTC


def test_now_and_micro_now_are_the_current_time_in_api_form():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    n, micro, plain = meta.now(), meta.micro_now(), meta.format_time()  # format_time() with no time is now
    after = datetime.now(timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", n)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", micro)
    for t in (n, micro, plain):
        assert before <= meta.parse_time(t) <= after


def test_parse_and_format_round_trip():
    assert meta.timestamp(meta.format_time(T)) == T
    assert meta.timestamp(meta.format_time(T + 0.25, micro=True)) == T + 0.25
    assert meta.parse_time(meta.format_time(T)) == datetime.fromtimestamp(T, timezone.utc)


def test_parse_time_reads_what_kubernetes_and_docker_write():
    assert meta.timestamp("2023-11-14T22:13:20Z") == T
    assert meta.timestamp("2023-11-14T23:13:20+01:00") == T
    assert meta.timestamp("2023-11-14T22:13:20.123456789Z") == T + 0.123456  # Docker's nanoseconds
    assert meta.timestamp("2023-11-14T22:13:20") == T  # no offset: UTC
    assert meta.parse_time("2023-11-14T22:13:20Z").tzinfo is not None


def test_absent_or_unreadable_times_are_none_or_the_callers_default():
    for bad in (None, "", "yesterday", "2023-13-45T00:00:00Z", 17, {"t": 1}):
        assert meta.parse_time(bad) is None
        assert meta.timestamp(bad) is None
        assert meta.timestamp(bad, 0.0) == 0.0


# ---- conditions ----------------------------------------------------------------------------------


def test_set_condition_keeps_the_transition_time_while_the_status_is_unchanged():
    old = [{"type": "Ready", "status": "True", "reason": "A", "lastTransitionTime": "t0"},
           {"type": "Other", "status": "False"}]
    out = meta.set_condition(old, {"type": "Ready", "status": "True", "reason": "B", "lastTransitionTime": "t1"})
    assert out == [{"type": "Ready", "status": "True", "reason": "B", "lastTransitionTime": "t0"},
                   {"type": "Other", "status": "False"}]  # replaced in place, the other kept
    assert old[0]["reason"] == "A"  # the input is not mutated


def test_set_condition_takes_the_new_time_when_the_status_changes_or_the_type_is_new():
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]
    flipped = meta.set_condition(old, {"type": "Ready", "status": "False", "lastTransitionTime": "t1"})
    assert flipped == [{"type": "Ready", "status": "False", "lastTransitionTime": "t1"}]
    added = meta.set_condition(old, {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t2"})
    assert added == old + [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t2"}]


def test_set_condition_with_now_stamps_changes_and_keeps_unchanged():
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}, {"type": "Disk", "status": "False"}]
    out = meta.set_condition(old, {"type": "Ready", "status": "True", "reason": "x"}, "t9")
    assert out[0]["lastTransitionTime"] == "t0"
    out = meta.set_condition(old, {"type": "Ready", "status": "Unknown", "lastTransitionTime": "ignored"}, "t9")
    assert out[0] == {"type": "Ready", "status": "Unknown", "lastTransitionTime": "t9"}
    out = meta.set_condition(old, {"type": "Disk", "status": "False"}, "t9")  # same status, never stamped
    assert out[1] == {"type": "Disk", "status": "False", "lastTransitionTime": "t9"}
    out = meta.set_condition([], {"type": "Mem", "status": "False"}, "t9")
    assert out == [{"type": "Mem", "status": "False", "lastTransitionTime": "t9"}]


def test_get_condition():
    pod = {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}}
    assert meta.get_condition(pod, "Ready") == {"type": "Ready", "status": "False"}
    assert meta.get_condition(pod, "Initialized") is None
    assert meta.get_condition({}, "Ready") is None
    assert meta.get_condition({"status": None}, "Ready") is None


# ---- names ---------------------------------------------------------------------------------------


def test_generate_name_appends_five_characters_of_the_kubernetes_alphabet():
    names = {meta.generate_name("web-") for _ in range(50)}
    assert len(names) > 45  # random
    for n in names:
        assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", n)


def test_safe_encode_is_kubernetes_safe_encode_string():
    assert meta.safe_encode("0123456789") == "456789bcdf"  # rand.SafeEncodeString of the digits
    assert meta.safe_encode(b"\x00\x1a\x1b") == "b9b"  # bytes modulo the 27 letters
    assert set(meta.safe_encode(bytes(range(256)))) == set(meta.NAME_ALPHABET)


# ---- objects -------------------------------------------------------------------------------------


def test_terminal_pod_phases():
    assert "Succeeded" in meta.TERMINAL_POD_PHASES and "Failed" in meta.TERMINAL_POD_PHASES
    assert not {"Pending", "Running", "Unknown", None} & meta.TERMINAL_POD_PHASES


def test_deep_copy_shares_nothing():
    obj = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c", "ports": [80]}]}}
    cp = meta.deep_copy(obj)
    assert cp == obj
    cp["metadata"]["labels"]["a"] = "2"
    cp["spec"]["containers"][0]["ports"].append(81)
    assert obj == {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c", "ports": [80]}]}}


def test_accessors_read_metadata_and_tolerate_its_absence():
    pod = {"metadata": {"name": "a.b", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}}}
    assert (meta.name_of(pod), meta.namespace_of(pod), meta.uid_of(pod)) == ("a.b", "ns", "u1")
    assert meta.labels_of(pod) == {"app": "x"} and meta.meta(pod) is pod["metadata"]
    assert meta.key_of(pod) == "ns.a_b"  # the store key: '.' in a name encoded
    assert meta.key_of({"metadata": {"name": "node-1"}}) == "node-1"  # cluster-scoped
    for empty in ({}, {"metadata": None}):
        assert meta.meta(empty) == {} and meta.labels_of(empty) == {}
        assert meta.name_of(empty) is None and meta.namespace_of(empty) is None and meta.uid_of(empty) is None
