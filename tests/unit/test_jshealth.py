"""The API server's view of JetStream's health (master/apiserver/jshealth.py): what a probe's answer means and when
writes are refused."""

from __future__ import annotations

import orjson

from bus.workqueue import FakeClock
from master.apiserver.jshealth import JetStreamHealth, interpret, unanswered

NO_META_LEADER = orjson.dumps({"type": "io.nats.jetstream.api.v1.account_info_response", "error": {
    "code": 503, "err_code": 10008, "description": "JetStream system temporarily unavailable"}})
ACCOUNT_INFO = orjson.dumps({"type": "io.nats.jetstream.api.v1.account_info_response", "memory": 0, "storage": 10,
                             "streams": 3, "consumers": 0})



def test_account_info_is_healthy_and_a_missing_meta_leader_is_a_lost_quorum():
    assert interpret(ACCOUNT_INFO).ok
    p = interpret(NO_META_LEADER)
    assert not p.ok and not p.unanswered
    assert "lost its quorum" in p.why and "JetStream system temporarily unavailable" in p.why
    disabled = interpret(orjson.dumps({"error": {"code": 503, "err_code": 10076,
                                                 "description": "JetStream not enabled"}}))
    assert not disabled.ok and "disk is full" in disabled.why
    assert not interpret(b"not json").ok


def test_writes_are_refused_at_once_when_jetstream_says_so_and_after_two_silent_probes():
    clock = FakeClock(100.0)
    h = JetStreamHealth(clock.now)
    assert h.refusal() is None
    assert h.record(interpret(NO_META_LEADER))  # an explicit answer: down at once
    clock.advance(3)
    err = h.refusal()
    assert err is not None and err.code == 503 and err.reason == "ServiceUnavailable"
    assert "lost its quorum" in err.message and "(for 3s)" in err.message
    assert h.record(interpret(ACCOUNT_INFO)) and h.refusal() is None  # the first good probe lets writes through

    assert not h.record(unanswered(1.0))  # one silent probe may be a busy server
    assert h.refusal() is None
    assert h.record(unanswered(1.0))
    assert "did not answer a health probe within 1s" in h.refusal().message
    assert not h.record(unanswered(1.0))  # still down; the outage is counted from its start
    assert h.record(interpret(ACCOUNT_INFO))
    assert not h.record(unanswered(1.0)) and h.up  # the count starts again after a good probe
