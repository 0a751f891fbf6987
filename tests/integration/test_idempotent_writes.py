"""Retries that never apply a write twice: a real nats-server, real API servers, replies lost for real (the first
attempt is published with a reply subject nobody listens on, so the server applies it and its answer goes nowhere),
then ``ApiClient`` retries it with the same request id and the same bytes."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import pytest

import bus.client
from bus import codec, errors, roles, subjects
from bus.client import ApiClient
from bus.resources import API_REPLIES, by_plural
from bus.roles import Identity
from bus.store import NatsStore
from master.apiserver.server import ApiServer
from master.gateway import busreq
from tests.conftest import connect_as

CMS = by_plural("configmaps")


def deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "busybox:1.36", "env": []}]}}}}


def cm(name: str | None = None, generate: str | None = None, **data: str) -> dict:
    meta = {"namespace": "default", **({"name": name} if name else {}), **({"generateName": generate} if generate else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


async def stored_reply(store: NatsStore, request_id: str, timeout: float = 10.0) -> dict:
    """The reply the API servers cached for a request id, once there is one (read with an API server's connection:
    nobody else may read the reply cache)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await store.get_key(API_REPLIES, subjects.reply_key(request_id))
        if got is not None:
            entry = codec.unpack(got[0])
            if entry.get("reply") is not None:
                return codec.unpack(entry["reply"])
        assert asyncio.get_running_loop().time() < deadline, f"no reply cached for {request_id}"
        await asyncio.sleep(0.01)


class LoseFirstReply:
    """Stands in for ``client.nc.request``: the first request goes out with a reply subject nobody listens on (the
    server applies it; its answer is lost), and once the server has answered, the call fails as a lost reply does
    (a timeout). Later calls go through. Records every API request's bytes (other subjects pass untouched: the
    KV reads this test makes use the same connection)."""

    def __init__(self, client: ApiClient, store: NatsStore) -> None:
        self.client, self.store = client, store
        self.request = client.nc.request
        self.sent: list[tuple[str, bytes]] = []
        self.lost: dict | None = None  # what the server answered the first attempt (read back from its cache)

    async def __call__(self, subject: str, payload: bytes = b"", timeout: float = 0.5, **kw):
        if not subject.startswith(subjects.API_PREFIX + "."):
            return await self.request(subject, payload, timeout=timeout, **kw)
        self.sent.append((subject, payload))
        if len(self.sent) > 1:
            return await self.request(subject, payload, timeout=timeout, **kw)
        nc = self.client.nc
        await nc.publish(subject, payload, reply=nc.new_inbox())
        self.lost = await stored_reply(self.store, codec.unpack(payload)["requestId"])
        raise nats.errors.TimeoutError


@pytest.fixture
def lose_next_reply(client, apiserver, monkeypatch):
    """Call it to lose the reply to the client's next API request."""

    def install() -> LoseFirstReply:
        lose = LoseFirstReply(client, apiserver.store)
        monkeypatch.setattr(client.nc, "request", lose)
        return lose

    return install


def assert_one_request_sent_twice(lose: LoseFirstReply) -> None:
    assert len(lose.sent) == 2
    assert lose.sent[0] == lose.sent[1], "a retry must send the same subject and the same bytes"
    assert len(codec.unpack(lose.sent[0][1])["requestId"]) == 32


async def test_json_patch_add_whose_reply_was_lost_is_applied_once(client, lose_next_reply):
    before = await client.create(deployment("web"))
    lossy = lose_next_reply()
    patch = [{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "A", "value": "1"}}]
    out = await client.patch("deployments", "web", patch, patch_type="json")
    assert_one_request_sent_twice(lossy)
    assert lossy.lost is not None and lossy.lost["code"] == 200
    assert out == lossy.lost["body"]  # answered as the first attempt was: same body, same resourceVersion
    got = await client.get("deployments", "web")
    assert got["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert got["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert got["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]


async def test_generate_name_create_whose_reply_was_lost_makes_one_object(client, lose_next_reply):
    lossy = lose_next_reply()
    out = await client.create(cm(generate="job-", n="1"))
    assert_one_request_sent_twice(lossy)
    assert lossy.lost["code"] == 201 and out == lossy.lost["body"]
    items, _ = await client.list("configmaps", "default")
    made = [o["metadata"]["name"] for o in items if o["metadata"]["name"].startswith("job-")]
    assert made == [out["metadata"]["name"]]
    assert (await client.get("configmaps", made[0]))["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]


async def test_cas_update_whose_reply_was_lost_is_not_a_conflict_on_retry(client, lose_next_reply):
    obj = await client.create(cm("counter", n="0"))
    lossy = lose_next_reply()
    obj["data"]["n"] = "1"
    out = await client.update(obj)  # carries the resourceVersion it read: a second apply would be a 409
    assert_one_request_sent_twice(lossy)
    assert lossy.lost["code"] == 200 and out == lossy.lost["body"]
    got = await client.get("configmaps", "counter")
    assert got["data"] == {"n": "1"} and got["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]
    assert int(out["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])


async def test_gateway_path_retries_the_same_way(client, lose_next_reply):
    lossy = lose_next_reply()
    code, out, _ = await busreq.call(client, CMS, "create", "default", body=cm(generate="gw-"))
    assert_one_request_sent_twice(lossy)
    assert code == 201 and out == lossy.lost["body"]
    items, _ = await client.list("configmaps", "default")
    assert [o["metadata"]["name"] for o in items if o["metadata"]["name"].startswith("gw-")] == [out["metadata"]["name"]]


async def raw(client: ApiClient, verb: str, payload: dict, resource: str = "configmaps") -> dict:
    msg = await client.nc.request(subjects.api_subject(client.identity.token, resource, verb), codec.pack(payload),
                                  timeout=10)
    return codec.unpack(msg.data)


async def test_error_replies_are_the_answer_to_a_repeat(client):
    delete = {"namespace": "default", "name": "later", "requestId": "delete-later-0001"}
    first = await raw(client, "delete", delete)
    assert first["code"] == 404
    await client.create(cm("later"))
    again = await raw(client, "delete", delete)  # the first answer stands; the object is not deleted now
    assert again == first
    await client.get("configmaps", "later")


@pytest.mark.parametrize("rid", ["short", "has space in it", "a" * 65, "dots.are.not.ok", 12345678, ""])
async def test_a_bad_request_id_is_a_400(client, rid):
    reply = await raw(client, "create", {"namespace": "default", "body": cm("bad"), "requestId": rid})
    assert reply["code"] == 400 and reply["body"]["kind"] == "Status" and "requestId" in reply["body"]["message"]
    reply = await raw(client, "get", {"namespace": "default", "name": "bad", "requestId": rid})
    assert reply["code"] == 400
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "bad")


async def test_an_id_reused_for_other_bytes_is_a_400(client):
    first = await raw(client, "create", {"namespace": "default", "body": cm("one"), "requestId": "reused-id-0001"})
    assert first["code"] == 201
    other = await raw(client, "create", {"namespace": "default", "body": cm("two"), "requestId": "reused-id-0001"})
    assert other["code"] == 400 and "different request" in other["body"]["message"]
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "two")


async def test_without_an_id_reads_and_dry_runs_nothing_is_cached(apiserver, client):
    body = {"namespace": "default", "body": cm("plain")}
    assert (await raw(client, "create", body))["code"] == 201
    assert (await raw(client, "create", body))["body"]["reason"] == "AlreadyExists"  # applied again, as before
    for verb, payload in [("get", {"namespace": "default", "name": "plain", "requestId": "read-only-0001"}),
                          ("create", {"namespace": "default", "body": cm("dry"), "requestId": "dry-run-0001",
                                      "options": {"dryRun": True}})]:
        assert (await raw(client, verb, payload))["code"] in (200, 201)
        assert await apiserver.store.get_key(API_REPLIES, payload["requestId"]) is None


async def test_a_repeat_racing_on_two_api_servers_applies_once(nats_server, apiserver, client):
    nc2 = await connect_as(nats_server, Identity(roles.APISERVER))
    second = ApiServer(nc2)
    await second.start()
    handled: list[str] = []
    claims: dict[str, set[str]] = {}
    for api in (apiserver, second):
        def spy(api=api, handle=api.handlers.handle, claim=api.replies.claim):
            async def handle_(req):
                handled.append(req.request_id)
                return await handle(req)

            async def claim_(rid, subject, data):
                claims.setdefault(rid, set()).add(api.replies.instance)
                return await claim(rid, subject, data)

            api.handlers.handle, api.replies.claim = handle_, claim_

        spy()
    try:
        n = 24
        payloads = [codec.pack({"namespace": "default", "body": cm(generate="race-"), "requestId": f"race-{i:04d}"})
                    for i in range(n)]
        subject = subjects.api_subject(client.identity.token, "configmaps", "create")
        # every request twice at once: the queue group spreads them over both servers
        replies = await asyncio.gather(*(client.nc.request(subject, p, timeout=10) for p in payloads for _ in (0, 1)))
        replies = [codec.unpack(m.data) for m in replies]
        for i in range(n):
            a, b = replies[2 * i], replies[2 * i + 1]
            assert a["code"] == 201 and a == b, f"request {i}: the two answers differ"
        items, _ = await client.list("configmaps", "default")
        made = sorted(o["metadata"]["name"] for o in items if o["metadata"]["name"].startswith("race-"))
        assert made == sorted(r["body"]["metadata"]["name"] for r in replies[::2])  # each id made one object
        assert sorted(handled) == sorted(f"race-{i:04d}" for i in range(n))
        assert any(len(s) == 2 for s in claims.values()), "no id reached both servers: the race was not run"
    finally:
        await second.stop()
        await nc2.close()


async def test_a_claim_left_by_a_dead_api_server_is_taken_over(apiserver, client):
    """An apiserver that claimed an id and died before replying (its liveness subject has no responders)."""
    from master.apiserver.replies import fingerprint

    payload = codec.pack({"namespace": "default", "body": cm(generate="orphan-"), "requestId": "dead-claim-0001"})
    subject = subjects.api_subject(client.identity.token, "configmaps", "create")
    marker = codec.pack({"fp": fingerprint(subject, payload), "by": "0" * 32})
    assert await apiserver.store.create_key(API_REPLIES, "dead-claim-0001", marker) is not None
    msg = await client.nc.request(subject, payload, timeout=10)
    reply = codec.unpack(msg.data)
    assert reply["code"] == 201
    assert (await stored_reply(apiserver.store, "dead-claim-0001")) == reply


async def test_a_claim_still_running_answers_in_progress_and_the_gateway_a_504(apiserver, client, monkeypatch):
    """A claimer that is alive but never finishes: a repeat waits, then is told to retry; the client's retries end
    in NoReply (the write may still complete), which the gateway says as 504."""
    from master.apiserver.replies import fingerprint

    apiserver.replies.wait = 0.2
    client.retries, client.timeout = 1, 5.0
    async def answer(msg) -> None:
        await msg.respond(b"")

    alive = await apiserver.nc.subscribe(subjects.apiserver_alive("1" * 32), cb=answer)
    rid = "stuck-claim-0001"
    monkeypatch.setattr(bus.client, "new_request_id", lambda: rid)  # the id the client will send
    try:
        payload = codec.pack(bus.client.request_payload(CMS, "default", body=cm("stuck"), request_id=rid))
        subject = subjects.api_subject(client.identity.token, "configmaps", "create")
        marker = codec.pack({"fp": fingerprint(subject, payload), "by": "1" * 32})
        assert await apiserver.store.create_key(API_REPLIES, rid, marker) is not None
        with pytest.raises(errors.NoReply) as e:
            await client.create(cm("stuck"))
        assert e.value.timed_out and e.value.code == 503
        with pytest.raises(errors.ApiError) as e:
            await busreq.call(client, CMS, "create", "default", body=cm("stuck"))
        assert e.value.code == 504
    finally:
        await alive.unsubscribe()
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "stuck")


async def test_reply_cache_comes_back_after_a_nats_restart(tmp_path):
    """The reply cache is kept in memory (no fsync per write): a nats-server restarted under a running API server
    has no such bucket, and the first write with a request id makes it again instead of failing."""
    from bus.natsserver import NatsServer

    srv = NatsServer(tmp_path / "js", port=0, log_file=tmp_path / "nats.log")
    srv.start()
    nc = await connect_as(srv, Identity(roles.APISERVER), reconnect_time_wait=0.2)
    api = ApiServer(nc)
    await api.start()
    client = await ApiClient.connect(srv.url, creds=srv.credentials(Identity(roles.ADMIN)))
    try:
        info = await client.nc.jetstream().stream_info(subjects.stream(API_REPLIES.plural))
        assert str(getattr(info.config.storage, "value", info.config.storage)) == "memory"
        await client.create(cm("before", a="1"))
        srv.kill()
        srv.start()
        made = None
        for _ in range(100):  # until both connections are back
            try:
                made = await client.create(cm("after", a="2"))
                break
            except errors.ApiError:
                await asyncio.sleep(0.1)
        assert made is not None and made["data"] == {"a": "2"}
        assert (await client.get("configmaps", "before", "default"))["data"] == {"a": "1"}
        info = await client.nc.jetstream().stream_info(subjects.stream(API_REPLIES.plural))
        assert info.state.messages >= 1
    finally:
        await client.close()
        await api.stop()
        await nc.close()
        srv.stop()
