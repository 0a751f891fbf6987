"""The client's attempts at one request: an attempt that will be retried waits 2 s, then 4, 8, … up to the timeout,
the last attempt the whole timeout — so a request that reached an API server killed before it answered is sent
again (same bytes, same request id) within seconds, not after the full timeout."""

from __future__ import annotations

import nats.errors

from bus import codec, errors
from bus.client import ApiClient
from bus.resources import by_plural
from bus.roles import ADMIN, Identity


class Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data


class LosesFirst:
    """A NATS connection whose first ``lost`` requests are never answered (the API server died holding them)."""

    def __init__(self, lost: int) -> None:
        self.lost = lost
        self.sent: list[tuple[bytes, float]] = []

    async def request(self, subject: str, data: bytes, timeout: float) -> Msg:
        self.sent.append((data, timeout))
        if len(self.sent) <= self.lost:
            raise nats.errors.TimeoutError
        return Msg(codec.pack({"code": 201, "body": {"kind": "ConfigMap"}}))


def client(nc: LosesFirst, timeout: float = 10.0, retries: int = 3) -> ApiClient:
    c = ApiClient.__new__(ApiClient)  # no connection: only call() is exercised
    c.nc, c.timeout, c.retries, c.identity = nc, timeout, retries, Identity(ADMIN)
    return c


async def test_a_lost_request_is_sent_again_after_2_s_with_the_same_request_id():
    nc = LosesFirst(lost=1)
    code, body, _ = await client(nc).call(by_plural("configmaps"), "create", "default", body={"kind": "ConfigMap"})
    assert code == 201
    (first, t1), (second, t2) = nc.sent
    assert (t1, t2) == (2.0, 4.0)
    assert first == second and codec.unpack(first)["requestId"], "the retry is the same request"


async def test_waits_double_up_to_the_timeout_and_the_last_attempt_waits_all_of_it():
    nc = LosesFirst(lost=4)
    try:
        await client(nc, timeout=5.0).call(by_plural("configmaps"), "create", "default", body={})
    except errors.NoReply as e:
        assert e.timed_out
    else:
        raise AssertionError("four lost attempts with 3 retries: NoReply")
    assert [t for _, t in nc.sent] == [2.0, 4.0, 5.0, 5.0]


async def test_without_retries_the_one_attempt_waits_the_whole_timeout():
    nc = LosesFirst(lost=0)
    await client(nc, timeout=7.0, retries=0).call(by_plural("configmaps"), "get", "default", "x")
    assert [t for _, t in nc.sent] == [7.0]
