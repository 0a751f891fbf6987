"""Object history and audit, on a real nats-server and API server with authentication and RBAC on: who changed an
object (two users through the HTTP gateway), the revisions, their diff, deleted objects, Secrets' history needing
the right to read Secrets, and an audit record for every mutating request, failed ones included."""

from __future__ import annotations

import asyncio
import os
import sys

import nats.js.errors
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bus import history, roles, subjects
from bus.client import ApiClient, resource_of
from bus.roles import Identity
from master.gateway.app import make_app
from master.gateway.auth import User
from tests.builders import secret
from tests.conftest import connect_as
from tests.waiting import eventually

NS = "hist"
ADMIN, ALICE = "admin-token", "alice-token"
CM = f"/api/v1/namespaces/{NS}/configmaps"


async def k8n(env: dict, *args: str) -> tuple[int, str, str]:
    """The CLI in a process of its own (the API server runs in this test's event loop: not blocked)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bus.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(nats_server, client):
    gateway = await ApiClient.connect(nats_server.url, Identity(roles.GATEWAY))
    app = make_app(nats_server.url, {
        ADMIN: User("root", "root", ("system:masters", "system:authenticated")),
        ALICE: User("alice", "alice", ("system:authenticated",))}, client=gateway)
    tc = TestClient(TestServer(app))
    await tc.start_server()
    yield tc
    await tc.close()
    await gateway.close()


@pytest.fixture
async def alice_may_edit_configmaps(client, http):
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                         "metadata": {"name": "cm-editor", "namespace": NS},
                         "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                                    "verbs": ["get", "list", "create", "update", "patch", "delete"]}]})
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "alice-cm", "namespace": NS},
                         "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-editor"}})

    async def granted() -> bool:
        return (await http.get(CM, headers=bearer(ALICE))).status == 200

    await eventually(granted, 10, "alice's binding to take effect")


async def _history(http, path: str, token: str = ADMIN) -> tuple[int, dict]:
    r = await http.get(path + "/history", headers=bearer(token))
    return r.status, await r.json()


async def test_history_lists_each_revision_with_who_made_it(http, client, alice_may_edit_configmaps):
    r = await http.post(CM, headers=bearer(ADMIN), data=orjson.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"color": "blue"}}))
    assert r.status == 201
    cur = await r.json()
    cur["data"]["color"] = "green"
    r = await http.put(f"{CM}/app", headers=bearer(ALICE), data=orjson.dumps(cur))
    assert r.status == 200
    r = await http.patch(f"{CM}/app?fieldManager=alice-tool", data=orjson.dumps({"data": {"size": "L"}}),
                         headers={**bearer(ALICE), "Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    last = await r.json()

    async def three() -> dict:
        code, body = await _history(http, f"{CM}/app", ALICE)
        return body if code == 200 and len(body["items"]) == 3 else None

    doc = await eventually(three, 10, "three revisions in the history")
    assert doc["kind"] == "ObjectHistory" and doc["apiVersion"] == "k8n.io/v1"
    items = doc["items"]
    assert [i["user"] for i in items] == ["root", "alice", "alice"]
    assert [i["verb"] for i in items] == ["create", "update", "patch"]
    assert [i["type"] for i in items] == ["ADDED", "MODIFIED", "MODIFIED"]
    assert items[2]["fieldManager"] == "alice-tool"
    assert [i["object"]["data"] for i in items] == [{"color": "blue"}, {"color": "green"},
                                                    {"color": "green", "size": "L"}]
    assert items[2]["revision"] == int(last["metadata"]["resourceVersion"])
    assert items[0]["revision"] < items[1]["revision"] < items[2]["revision"]
    assert all(i["time"].endswith("Z") and "T" in i["time"] for i in items)

    # the same on the bus, for any NATS client: the API server answers the history subresource
    res = resource_of("configmaps")
    same = await client.request(res, "get", NS, "app", subresource=history.HISTORY)
    assert same["items"] == items

    # the CLI: the table and a diff of two revisions
    env = {**os.environ, "K8N_SERVER": client.nc.connected_url.geturl() if client.nc.connected_url else ""}
    r1, r3 = items[0]["revision"], items[2]["revision"]
    code, out, err = await k8n(env, "history", "cm", "app", "-n", NS)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["REVISION", "TIME", "USER", "VERB", "MANAGER"]
    assert [ln.split()[2:4] for ln in lines[1:]] == [["root", "create"], ["alice", "update"], ["alice", "patch"]]
    code, out, err = await k8n(env, "history", "configmap", "app", "-n", NS, "--diff", str(r1), str(r3))
    assert code == 0, err
    assert f"--- configmap/app revision {r1}" in out and f"+++ configmap/app revision {r3}" in out
    assert "-  color: blue" in out and "+  color: green" in out and "+  size: L" in out


async def test_deleted_objects_keep_their_final_state(http, client, alice_may_edit_configmaps):
    res = resource_of("configmaps")
    for name in ("gone", "kept"):
        await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
                             "data": {"v": name}})
    r = await http.delete(f"{CM}/gone", headers=bearer(ALICE))
    assert r.status == 200

    async def deleted() -> list:
        doc = await client.request(res, "list", NS, subresource=history.HISTORY)
        return doc["items"] or None

    items = await eventually(deleted, 10, "the deleted ConfigMap in the history")
    assert [(i["object"]["metadata"]["name"], i["type"], i["user"], i["verb"]) for i in items] == [
        ("gone", "DELETED", "alice", "delete")]
    assert items[0]["object"]["data"] == {"v": "gone"}
    code, body = await _history(http, f"{CM}/gone")
    assert code == 200 and [i["type"] for i in body["items"]] == ["ADDED", "DELETED"]
    code, body = await _history(http, f"{CM}/-", ALICE)  # the same list at the gateway
    assert code == 200 and [i["object"]["metadata"]["name"] for i in body["items"]] == ["gone"]


async def test_reading_history_needs_the_right_to_read_the_object(http, client, alice_may_edit_configmaps):
    stored = await client.create(secret("db", NS, data={"password": "hunter2"}))
    path = f"/api/v1/namespaces/{NS}/secrets/db"
    code, body = await _history(http, path, ALICE)
    assert code == 403 and body["kind"] == "Status" and body["reason"] == "Forbidden"
    assert body["message"].startswith('secrets "db" is forbidden: User "alice" cannot get resource "secrets"')
    code, body = await _history(http, f"/api/v1/namespaces/{NS}/secrets/-", ALICE)  # deleted Secrets: refused too
    assert code == 403 and body["reason"] == "Forbidden"

    async def admin_sees() -> dict:
        c, b = await _history(http, path)
        return b if c == 200 else None

    assert (await eventually(admin_sees, 10, "the Secret's history"))["items"][0]["object"]["data"] == stored["data"]
    code, body = await _history(http, f"{CM}/never-was", ALICE)
    assert code == 404 and body["reason"] == "NotFound"
    code, body = await _history(http, f"{CM}/bad%20name", ALICE)
    assert code == 400 and body["kind"] == "Status"


async def test_every_mutating_request_is_audited_with_its_code(nats_server, http, client, alice_may_edit_configmaps):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "audited"}, "data": {"a": "1"}}
    assert (await http.post(CM, headers=bearer(ALICE), data=orjson.dumps(cm))).status == 201
    assert (await http.post(CM, headers=bearer(ALICE), data=orjson.dumps(cm))).status == 409
    bad = {**cm, "metadata": {"name": "Not_Valid"}}
    assert (await http.post(CM, headers=bearer(ALICE), data=orjson.dumps(bad))).status == 422
    r = await http.patch(f"{CM}/audited", data=orjson.dumps({"data": {"a": "2"}}),
                         headers={**bearer(ALICE), "Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    rv = (await r.json())["metadata"]["resourceVersion"]
    assert (await http.delete(f"{CM}/audited", headers=bearer(ALICE))).status == 200
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "refused"}, "data": {}}
    r = await http.post(f"/api/v1/namespaces/{NS}/secrets", headers=bearer(ALICE), data=orjson.dumps(secret))
    assert r.status == 403  # RBAC refuses it, and the refusal is audited too

    admin = await connect_as(nats_server, Identity(roles.ADMIN))
    try:
        async def records() -> list:
            got = [e for e in await history.read_audit(admin) if e["user"]["username"] == "alice"
                   and e["objectRef"]["resource"] in ("configmaps", "secrets")]
            return got if len(got) >= 6 else None

        got = await eventually(records, 10, "alice's six audit records")
    finally:
        await admin.close()
    # the gateway's refusal and the API server's records come from two publishers: ordered each on its own
    refused = [e for e in got if e["objectRef"]["resource"] == "secrets"]
    assert [(e["verb"], e["responseStatus"]["code"], e["responseStatus"]["reason"]) for e in refused] == [
        ("create", 403, "Forbidden")]
    got = [e for e in got if e["objectRef"]["resource"] == "configmaps"]
    assert [(e["verb"], e["responseStatus"]["code"]) for e in got] == [
        ("create", 201), ("create", 409), ("create", 422), ("patch", 200), ("delete", 200)]
    assert got[1]["responseStatus"]["reason"] == "AlreadyExists"
    assert got[3]["objectRef"] == {"resource": "configmaps", "apiGroup": "", "apiVersion": "v1", "namespace": NS,
                                   "name": "audited", "resourceVersion": rv}
    assert got[0]["apiVersion"] == "audit.k8s.io/v1" and "system:authenticated" in got[0]["user"]["groups"]

    code, out, err = await k8n(dict(os.environ, K8N_SERVER=nats_server.url), "audit", "--tail", "20")
    assert code == 0, err
    rows = [ln.split() for ln in out.splitlines()[1:] if " alice " in ln]
    rows = [(r[2], r[3], r[5], r[6]) for r in rows]
    assert [r for r in rows if r[1] == "configmaps"] == [
        ("create", "configmaps", "audited", "201"), ("create", "configmaps", "audited", "409"),
        ("create", "configmaps", "Not_Valid", "422"), ("patch", "configmaps", "audited", "200"),
        ("delete", "configmaps", "audited", "200")]
    assert [r for r in rows if r[1] == "secrets"] == [("create", "secrets", "<none>", "403")]  # no body read yet

    # the audit stream is the admins' alone: a subscriber identity may not read it
    sub = await connect_as(nats_server, Identity(roles.SUBSCRIBER, "watcher"))
    try:
        with pytest.raises(asyncio.TimeoutError):  # NATS refuses the read ("permissions violation")
            await history.read_audit(sub, timeout=1.0)
    finally:
        await sub.close()


async def test_streams_follow_the_settings_and_an_upgraded_cluster_gets_what_its_buckets_hold(apiserver, client):
    cms = resource_of("configmaps")
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "default"},
                         "data": {"v": "1"}})
    js, name = apiserver.nc.jetstream(), subjects.history_stream(cms.bus_name)
    await history.ensure_streams(js, (cms,), 1, history.HistorySettings(history_revisions=5), audit=False)
    assert (await js.stream_info(name)).config.max_msgs_per_subject == 5
    await history.ensure_streams(js, (cms,), 1, history.HistorySettings(history=False), audit=False)
    with pytest.raises(nats.js.errors.NotFoundError):
        await js.stream_info(name)
    assert await history.read_object(apiserver.nc, cms, "default", "old") == []
    # made again, as on a cluster upgraded to history: it copies what the bucket holds
    await history.ensure_streams(js, (cms,), 1, history.HistorySettings(), audit=False)

    async def copied() -> list:
        return await history.read_object(apiserver.nc, cms, "default", "old") or None

    (item,) = await eventually(copied, 10, "the bucket's revisions copied into the new history stream")
    assert item["type"] == "ADDED" and item["object"]["data"] == {"v": "1"}
