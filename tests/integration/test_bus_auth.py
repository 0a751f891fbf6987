"""The authenticated bus against a real nats-server in operator mode: the attacks of issue 11 replayed, each refused,
and the allowed paths working. Refusals are what the server says (a permission violation reaches the client as an
async error, recorded by ``bus.connect``; the request itself then gets no answer)."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import pytest
from nats.js import api

from bus import codec, errors, roles, subjects
from bus.client import ApiClient
from bus.connect import refusals_of
from bus.natsauth import AuthError, ClusterAuth, Credentials
from bus.roles import Identity
from bus.store import consumer_name
from tests.builders import pod, secret
from tests.conftest import connect_as
from tests.waiting import eventually

NODE_A, NODE_B = "node-a", "node-b"


async def refused(nc, fragment: str) -> bool:
    """Whether the server refused something on ``nc`` whose description contains ``fragment`` (lowercase)."""
    await nc.flush()
    await asyncio.sleep(0.05)
    return any(fragment.lower() in r.lower() for r in refusals_of(nc))


async def wait_refused(nc, fragment: str) -> None:
    await eventually(lambda: refused(nc, fragment), 5, f"the server to refuse {fragment}")


async def create_consumer(nc, stream: str, filter_subject: str) -> None:
    inbox = nc.new_inbox()
    cfg = api.ConsumerConfig(name=consumer_name(), deliver_subject=inbox, filter_subject=filter_subject,
                             ack_policy=api.AckPolicy.NONE, mem_storage=True, inactive_threshold=5.0)
    await nc.jetstream(timeout=1.0)._jsm.add_consumer(stream, config=cfg)


async def test_anonymous_and_foreign_credentials_are_refused(nats_server, tmp_path):
    with pytest.raises(Exception) as e:
        await nats.connect(nats_server.url, max_reconnect_attempts=0, connect_timeout=2, allow_reconnect=False)
    assert "authorization" in str(e.value).lower() or isinstance(e.value, nats.errors.NoServersError)
    other = ClusterAuth.load_or_create(tmp_path / "other-cluster")  # the right shape, signed by another operator
    path = other.write_creds(Identity(roles.ADMIN), tmp_path / "other-creds")
    with pytest.raises(AuthError, match="refused the credentials"):
        await ApiClient.connect(nats_server.url, creds=path, max_reconnect_attempts=0, allow_reconnect=False)


async def test_only_the_api_server_writes_the_store(apiserver, client, nats_server):
    node = await connect_as(nats_server, Identity.node(NODE_A))
    try:
        await node.publish(subjects.kv_subject("pods", "default", "evil"), codec.pack(pod("evil")))
        await wait_refused(node, '"$kv.k8n-pods.default.evil"')
        with pytest.raises(errors.NotFound):
            await client.get("pods", "evil")
        await node.publish("$JS.API.STREAM.DELETE." + subjects.stream("pods"), b"")
        await wait_refused(node, "$js.api.stream.delete")
    finally:
        await node.close()
    for role in (roles.CONTROLLER_MANAGER, roles.SCHEDULER, roles.GATEWAY, roles.ADMIN):
        nc = await connect_as(nats_server, Identity(role))
        try:
            await nc.publish(subjects.kv_subject("pods", "default", "evil"), b"x")
            await wait_refused(nc, '"$kv.k8n-pods.default.evil"')
            await nc.publish(f"$JS.API.CONSUMER.DELETE.{subjects.stream('pods')}.someone", b"")
            await wait_refused(nc, "$js.api.consumer.delete")
        finally:
            await nc.close()
    assert (await client.get("namespaces", "default"))["metadata"]["name"] == "default"  # the store is intact


async def test_an_agent_reads_only_its_own_pods(apiserver, client, nats_server):
    await client.create(pod("on-a", node=NODE_A))
    await client.create(pod("on-b", node=NODE_B))
    nodeview_task = asyncio.create_task(_run_nodeview(nats_server))
    try:
        a = await ApiClient.connect(nats_server.url, creds=nats_server.credentials(Identity.node(NODE_A)))
        try:
            async def own_pods() -> list[str]:
                items, _ = await a.store.list(NODE_PODS, subjects.node_pods_namespace(NODE_A))
                return [p["metadata"]["name"] for p in items]

            assert await eventually(lambda: _equals(own_pods(), ["on-a"]), 10, "node A's view of its pod")
            with pytest.raises(nats.errors.TimeoutError):
                await create_consumer(a.nc, subjects.stream("nodepods"), subjects.kv_subject("nodepods", NODE_B))
            assert await refused(a.nc, f"$kv.k8n-nodepods.{NODE_B}.>")
            with pytest.raises(nats.errors.TimeoutError):  # nor the whole view, nor the pods bucket
                await create_consumer(a.nc, subjects.stream("nodepods"), subjects.kv_subject("nodepods"))
            with pytest.raises(nats.errors.TimeoutError):
                await create_consumer(a.nc, subjects.stream("pods"), subjects.kv_subject("pods"))
            with pytest.raises(nats.errors.TimeoutError):  # nats.py's plain kv.watch(): an unnamed consumer
                await a.nc.jetstream(timeout=1.0)._jsm.add_consumer(
                    subjects.stream("nodepods"), config=api.ConsumerConfig(
                        deliver_subject=a.nc.new_inbox(), ack_policy=api.AckPolicy.NONE))
        finally:
            await a.close()
    finally:
        nodeview_task.cancel()
        await asyncio.gather(nodeview_task, return_exceptions=True)


async def test_an_agent_serves_and_publishes_only_for_its_node(nats_server):
    a = await connect_as(nats_server, Identity.node(NODE_A))
    try:
        await a.subscribe(subjects.node_call(NODE_A, "exec"))  # its own: fine
        await a.publish(subjects.node_metrics(NODE_A), b"{}")
        await a.flush()
        assert refusals_of(a) == []
        await a.subscribe(subjects.node_call(NODE_B, "exec"))
        await wait_refused(a, f"k8n.node.{NODE_B}.exec")
        await a.publish(subjects.node_metrics(NODE_B), b"{}")
        await wait_refused(a, f"k8n.metrics.node.{NODE_B}")
        await a.publish(subjects.node_call(NODE_B, "exec"), b"{}")  # it may not call other nodes either
        await wait_refused(a, f"k8n.node.{NODE_B}.exec")
        await a.subscribe("_INBOX.>")  # everyone's replies
        await wait_refused(a, "_inbox.>")
    finally:
        await a.close()


async def test_identity_in_the_subject_cannot_be_forged(apiserver, nats_server):
    a = await connect_as(nats_server, Identity.node(NODE_A))
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await a.request(subjects.api_subject("admin", "secrets", "list"), codec.pack({}), timeout=1)
        assert await refused(a, "k8n.api.admin.secrets.list")
        with pytest.raises(nats.errors.TimeoutError):
            await a.request(subjects.api_subject(Identity.node(NODE_B).token, "pods", "get"), b"", timeout=1)
        # its own subject, claiming to pass on a user as the gateway does: refused by the API server
        msg = await a.request(subjects.api_subject(Identity.node(NODE_A).token, "secrets", "list"),
                              codec.pack({"namespace": "kube-system", "user": {"username": "admin",
                                                                               "groups": ["system:masters"]}}),
                              timeout=5)
        reply = codec.unpack(msg.data)
        assert reply["code"] == 403 and "may not act for another user" in reply["body"]["message"]
    finally:
        await a.close()


async def test_the_subscriber_role_sees_changes_but_never_secrets(apiserver, client, nats_server):
    sub = await connect_as(nats_server, Identity(roles.SUBSCRIBER, "events"))
    try:
        seen: list[str] = []

        async def on(msg) -> None:
            seen.append(msg.subject)

        await sub.subscribe(subjects.kv_subject("configmaps"), cb=on)
        await sub.flush()
        await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "visible"}})
        await eventually(lambda: subjects.kv_subject("configmaps", "default", "visible") in seen, 5,
                         "the change on the subscriber's subscription")
        await sub.subscribe(subjects.kv_subject("secrets"))
        await wait_refused(sub, "$kv.k8n-secrets.>")
        with pytest.raises(nats.errors.TimeoutError):
            await create_consumer(sub, subjects.stream("secrets"), subjects.kv_subject("secrets"))
        with pytest.raises(nats.errors.TimeoutError):
            await sub.request(subjects.api_subject(Identity(roles.SUBSCRIBER, "events").token, "configmaps", "list"),
                              b"", timeout=1)
        assert await refused(sub, "k8n.api.subscriber:events.configmaps.list")
    finally:
        await sub.close()


async def test_nobody_but_the_api_servers_reads_the_reply_cache(apiserver, client, nats_server):
    await client.create(secret("s1", data={"password": "hunter2"}))  # its reply (the Secret) is in the cache
    for role in (roles.ADMIN, roles.GATEWAY, roles.CONTROLLER_MANAGER):
        nc = await connect_as(nats_server, Identity(role))
        try:
            with pytest.raises(nats.errors.TimeoutError):
                await create_consumer(nc, subjects.stream("replies"), subjects.kv_subject("replies"))
            await nc.subscribe(subjects.kv_subject("replies"))
            await wait_refused(nc, "$kv.k8n-replies.>")
        finally:
            await nc.close()


async def test_a_missing_permission_is_reported_with_the_identity(nats_server, caplog):
    sched = await connect_as(nats_server, Identity(roles.SCHEDULER))
    try:
        await sched.publish(subjects.kv_subject("pods", "default", "x"), b"")
        await wait_refused(sched, "$kv.k8n-pods.default.x")
        assert any("the bus refused scheduler" in r.getMessage() and "scheduler.creds" in r.getMessage()
                   for r in caplog.records)
    finally:
        await sched.close()


def test_credentials_are_private_files(nats_server):
    for role in (roles.ADMIN, roles.APISERVER):
        path = nats_server.credentials(Identity(role))
        assert path.stat().st_mode & 0o777 == 0o600
        assert Credentials.load(path).identity.role == role
    assert nats_server.creds_dir.stat().st_mode & 0o777 == 0o700
    assert (nats_server.auth.dir / "account-signing.nk").stat().st_mode & 0o777 == 0o600


# ---- helpers -------------------------------------------------------------------------------------------------

from bus.resources import NODE_PODS  # noqa: E402


async def _run_nodeview(nats_server) -> None:
    from master.nodeview import run

    await run(nats_server.url, asyncio.Event())


async def _equals(coro, want) -> bool:
    try:
        return (await coro) == want
    except Exception:
        return False



async def test_a_consumer_cannot_smuggle_another_filter_past_its_create_subject(apiserver, client, nats_server):
    """The permission pins the filter in the create subject; the server refuses a config that asks for another."""
    await client.create(pod("on-b", node=NODE_B))
    nodeview_task = asyncio.create_task(_run_nodeview(nats_server))
    a = await connect_as(nats_server, Identity.node(NODE_A))
    try:
        got: list[str] = []
        inbox = a.new_inbox()

        async def on(msg) -> None:
            got.append(msg.subject)

        await a.subscribe(inbox, cb=on)
        subject = subjects.js_consumer_create(subjects.stream("nodepods"), subjects.kv_subject("nodepods", NODE_A),
                                              "smuggler")
        other = subjects.kv_subject("nodepods", NODE_B)
        for extra in ({"filter_subjects": [other]}, {"filter_subject": other}):
            req = {"stream_name": subjects.stream("nodepods"),
                   "config": {"name": "smuggler", "deliver_subject": inbox, "ack_policy": "none", **extra}}
            reply = codec.from_json((await a.request(subject, codec.to_json(req), timeout=5)).data)
            assert reply["error"]["code"] == 400, reply
        await asyncio.sleep(0.5)
        assert got == []
    finally:
        await a.close()
        nodeview_task.cancel()
        await asyncio.gather(nodeview_task, return_exceptions=True)
