"""The HTTP gateway against a real nats-server and API server: status codes, Tables, watch semantics (events
newer than N, synthetic ADDED, timeoutSeconds, bookmarks, 410 as an ERROR event), patches, protobuf bodies,
dry runs, warnings and authentication, as an HTTP client sees them."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bus import roles
from bus.client import ApiClient
from bus.roles import Identity
from master.gateway import watch as gw_watch
from master.gateway.app import make_app
from master.gateway.auth import User
from tests.builders import configmap

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture
async def http(nats_server, client):
    """The gateway on its own bus identity, as it runs (the test's ``client`` is the admin's)."""
    gateway = await ApiClient.connect(nats_server.url, Identity(roles.GATEWAY))
    app = make_app(nats_server.url, {TOKEN: User("admin", "admin", ("system:masters",))}, client=gateway)
    tc = TestClient(TestServer(app))
    await tc.start_server()
    yield tc
    await tc.close()
    await gateway.close()


def cm(name: str, labels: dict | None = None, **data: str) -> dict:
    return configmap(name, None, data, labels=labels or {})


async def post(http, path: str, body, **kw):
    return await http.post(path, data=orjson.dumps(body), headers={**AUTH, "Content-Type": "application/json"}, **kw)


async def read_events(resp, n: int, timeout: float = 10) -> list[dict]:
    out = []
    for _ in range(n):
        line = await asyncio.wait_for(resp.content.readline(), timeout)
        assert line, f"stream ended after {out}"
        out.append(orjson.loads(line))
    return out


async def test_requests_need_a_token_but_version_and_health_do_not(http):
    r = await http.get("/api/v1/namespaces/default/configmaps")
    assert r.status == 401
    assert (await r.json())["reason"] == "Unauthorized"
    r = await http.get("/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    r = await http.get("/version")
    assert r.status == 200 and (await r.json())["minor"] == "32"
    assert (await http.get("/readyz")).status == 200


async def test_create_get_conflict_and_table(http):
    base = "/api/v1/namespaces/default/configmaps"
    r = await post(http, base, cm("a", {"app": "x"}, k="v"))
    assert r.status == 201
    created = await r.json()
    assert created["metadata"]["resourceVersion"]
    r = await http.get(f"{base}/a", headers=AUTH)  # read straight off KV: what the create answered
    assert r.status == 200 and await r.json() == created
    r = await post(http, base, cm("a"))
    assert r.status == 409 and (await r.json())["reason"] == "AlreadyExists"
    r = await http.get(f"{base}/a", headers={**AUTH, "Accept": TABLE})
    t = await r.json()
    assert t["kind"] == "Table" and t["rows"][0]["cells"][:2] == ["a", "1"]
    assert t["rows"][0]["object"]["metadata"]["labels"] == {"app": "x"}
    r = await http.get(f"{base}/missing", headers=AUTH)
    body = await r.json()
    assert r.status == 404 and body["reason"] == "NotFound" and body["message"] == 'configmaps "missing" not found'
    r = await post(http, base, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"},
                                "data": {"a": 1}})
    body = await r.json()
    assert r.status == 422 and body["details"]["causes"][0]["field"] == "data[a]"
    r = await http.post(base, data=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["kind"] == "Status"


async def test_list_selectors_and_all_namespaces(http):
    for name, tier in (("one", "a"), ("two", "b")):
        assert (await post(http, "/api/v1/namespaces/default/configmaps", cm(name, {"tier": tier}))).status == 201
    r = await http.get("/api/v1/configmaps?labelSelector=tier%3Db&limit=500", headers=AUTH)
    lst = await r.json()
    assert lst["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in lst["items"]] == ["two"]
    assert "continue" not in lst["metadata"] and int(lst["metadata"]["resourceVersion"]) > 0
    r = await http.get("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Done", headers=AUTH)
    assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["one"]
    r = await http.get("/api/v1/configmaps?labelSelector=a+in+(", headers=AUTH)
    assert r.status == 400


async def test_watch_from_a_revision_streams_only_newer_events(http):
    base = "/api/v1/namespaces/default/configmaps"
    await post(http, base, cm("old"))
    rv = (await (await http.get(base, headers=AUTH)).json())["metadata"]["resourceVersion"]
    resp = await http.get(f"{base}?watch=true&resourceVersion={rv}", headers=AUTH)
    assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
    await post(http, base, cm("new"))
    r = await http.patch(f"{base}/new", data=b'{"data":{"x":"1"}}',
                         headers={**AUTH, "Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    await http.delete(f"{base}/new", headers=AUTH)
    evs = await read_events(resp, 3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
        ("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]
    assert evs[1]["object"]["data"] == {"x": "1"}
    resp.close()


async def test_watch_without_revision_starts_with_the_current_objects_and_times_out(http):
    base = "/api/v1/namespaces/default/configmaps"
    await post(http, base, cm("here"))
    resp = await http.get(f"{base}?watch=1&timeoutSeconds=1", headers={**AUTH, "Accept": TABLE})
    evs = await read_events(resp, 1)
    assert evs[0]["type"] == "ADDED"
    table = evs[0]["object"]
    assert table["kind"] == "Table" and table["columnDefinitions"][0]["name"] == "Name"
    assert table["rows"][0]["cells"][0] == "here"
    assert await asyncio.wait_for(resp.content.readline(), 5) == b""  # the stream ends after timeoutSeconds


async def test_watch_bookmarks(http, monkeypatch):
    monkeypatch.setattr(gw_watch, "BOOKMARK_SECONDS", 0.3)
    resp = await http.get("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1&allowWatchBookmarks=true",
                          headers=AUTH)
    ev = (await read_events(resp, 1))[0]
    assert ev["type"] == "BOOKMARK" and ev["object"]["kind"] == "ConfigMap"
    assert int(ev["object"]["metadata"]["resourceVersion"]) >= 1
    resp.close()


async def test_watch_from_a_compacted_revision_is_an_expired_error_event(http, client):
    # Events keep one revision per key: three writes of one event leave revision 1 behind.
    base = "/api/v1/namespaces/default/events"
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "reason": "R", "message": "m",
          "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}}
    assert (await post(http, base, ev)).status == 201
    for i in range(2):
        r = await http.patch(f"{base}/e1", data=orjson.dumps({"message": f"m{i}"}),
                             headers={**AUTH, "Content-Type": "application/merge-patch+json"})
        assert r.status == 200
    resp = await http.get(f"{base}?watch=true&resourceVersion=1", headers=AUTH)
    assert resp.status == 200
    ev = (await read_events(resp, 1))[0]
    assert ev["type"] == "ERROR"
    assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"


async def test_patch_types_dry_run_and_warnings(http):
    base = "/api/v1/namespaces/default/configmaps"
    await post(http, base, cm("p", k="v"))
    r = await http.patch(f"{base}/p", data=b"{}", headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status == 415 and (await r.json())["reason"] == "UnsupportedMediaType"
    r = await http.patch(f"{base}/p", data=b'[{"op":"replace","path":"/data/k","value":"w"}]',
                         headers={**AUTH, "Content-Type": "application/json-patch+json"})
    assert r.status == 200 and (await r.json())["data"] == {"k": "w"}
    r = await http.patch(f"{base}/p?dryRun=All", data=b'{"data":{"k":"dry"}}',
                         headers={**AUTH, "Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and (await r.json())["data"] == {"k": "dry"}
    assert (await (await http.get(f"{base}/p", headers=AUTH)).json())["data"] == {"k": "w"}
    r = await http.patch(f"{base}/p?dryRun=Some", data=b"{}",
                         headers={**AUTH, "Content-Type": "application/merge-patch+json"})
    assert r.status == 400
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "madeUp": 1}]}}
    r = await post(http, "/api/v1/namespaces/default/pods?dryRun=All", pod)
    assert r.status == 201
    assert any("madeUp" in w and w.startswith('299 - "') for w in r.headers.getall("Warning"))
    assert (await http.get("/api/v1/namespaces/default/pods/w", headers=AUTH)).status == 404


async def test_protobuf_namespace_create(http):
    def ld(num: int, payload: bytes) -> bytes:
        return bytes([num << 3 | 2, len(payload)]) + payload

    body = b"k8s\x00" + ld(1, ld(1, b"v1") + ld(2, b"Namespace")) + ld(2, ld(1, ld(1, b"proto-ns")))
    r = await http.post("/api/v1/namespaces", data=body,
                        headers={**AUTH, "Content-Type": "application/vnd.kubernetes.protobuf",
                                 "Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert r.status == 201 and r.headers["Content-Type"] == "application/json"
    assert (await r.json())["metadata"]["name"] == "proto-ns"


async def test_delete_options_deletecollection_and_scale(http):
    base = "/api/v1/namespaces/default/configmaps"
    for n in ("d1", "d2", "d3"):
        await post(http, base, cm(n, {"sweep": "yes" if n != "d3" else "no"}))
    r = await http.delete(f"{base}/d3", data=b'{"preconditions":{"uid":"not-it"}}', headers=AUTH)
    assert r.status == 409
    r = await http.delete(f"{base}/d3", data=b'{"propagationPolicy":"Background"}', headers=AUTH)
    assert r.status == 200
    r = await http.delete(f"{base}?labelSelector=sweep%3Dyes", headers=AUTH)
    assert r.status == 200 and sorted(i["metadata"]["name"] for i in (await r.json())["items"]) == ["d1", "d2"]
    assert (await (await http.get(base, headers=AUTH)).json())["items"] == []
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                       "template": {"metadata": {"labels": {"a": "b"}},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    assert (await post(http, "/apis/apps/v1/namespaces/default/deployments", deploy)).status == 201
    r = await http.patch("/apis/apps/v1/namespaces/default/deployments/s/scale", data=b'{"spec":{"replicas":4}}',
                         headers={**AUTH, "Content-Type": "application/merge-patch+json"})
    scale = await r.json()
    assert r.status == 200 and scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 4
    r = await http.get("/apis/apps/v1/namespaces/default/deployments/s", headers=AUTH)
    assert (await r.json())["spec"]["replicas"] == 4


async def test_watch_with_a_selector_sees_objects_leave_and_join(http):
    base = "/api/v1/namespaces/default/configmaps"
    await post(http, base, cm("sel", {"tier": "a"}))
    rv = (await (await http.get(base, headers=AUTH)).json())["metadata"]["resourceVersion"]
    resp = await http.get(f"{base}?watch=true&labelSelector=tier%3Da&resourceVersion={rv}", headers=AUTH)
    for tier in ("b", "a"):
        r = await http.patch(f"{base}/sel", data=orjson.dumps({"metadata": {"labels": {"tier": tier}}}),
                             headers={**AUTH, "Content-Type": "application/merge-patch+json"})
        assert r.status == 200
    evs = await read_events(resp, 2)
    assert [(e["type"], e["object"]["metadata"]["labels"]["tier"]) for e in evs] == [("DELETED", "b"), ("ADDED", "a")]
    resp.close()


async def test_old_watch_path_for_one_object(http):
    base = "/api/v1/namespaces/default/configmaps"
    for name in ("mine", "other"):
        await post(http, base, cm(name))
    rv = (await (await http.get(base, headers=AUTH)).json())["metadata"]["resourceVersion"]
    resp = await http.get(f"/api/v1/watch/namespaces/default/configmaps/mine?resourceVersion={rv}", headers=AUTH)
    assert resp.status == 200
    for name in ("other", "mine"):
        r = await http.patch(f"{base}/{name}", data=b'{"data":{"v":"2"}}',
                             headers={**AUTH, "Content-Type": "application/merge-patch+json"})
        assert r.status == 200
    ev = (await read_events(resp, 1))[0]
    assert (ev["type"], ev["object"]["metadata"]["name"]) == ("MODIFIED", "mine")
    resp.close()


# ---- hardened edges: bodies that would expand or recurse, paths that would address every namespace ------------

BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


async def _bad_request(r) -> str:
    body = await r.json()
    assert (r.status, body["kind"], body["reason"]) == (400, "Status", "BadRequest"), body
    return body["message"]


async def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(http):
    base = "/api/v1/namespaces/default/configmaps"
    yaml_headers = {**AUTH, "Content-Type": "application/yaml"}
    loop = asyncio.get_running_loop()
    started = loop.time()
    bomb = asyncio.ensure_future(http.post(base, data=BOMB.encode(), headers=yaml_headers))
    health = await http.get("/healthz")
    r = await bomb
    assert health.status == 200
    assert await _bad_request(r) == ("the request body is not valid YAML: document contains excessive aliasing "
                                     "(more than 10000 nodes through aliases)")
    assert loop.time() - started < 2
    r = await http.post(base, data=b"a: &a [*a]", headers=yaml_headers)
    assert await _bad_request(r) == "the request body is not valid YAML: document contains a recursive alias"


async def test_deep_nesting_and_invalid_utf8_are_400s(http):
    base = "/api/v1/namespaces/default/configmaps"
    deep = b"[" * 5000 + b"]" * 5000
    for ctype in ("application/json", "application/yaml"):
        r = await http.post(base, data=deep, headers={**AUTH, "Content-Type": ctype})
        assert await _bad_request(r) == "the request body is nested deeper than 100 levels"
    r = await http.post(base, data=b"data: " + deep, headers={**AUTH, "Content-Type": "application/yaml"})
    assert await _bad_request(r) == "the request body is not valid YAML: document is nested deeper than 100 levels"
    r = await http.patch(f"{base}/x", data=b'{"data":' + b'{"a":' * 200 + b"1" + b"}" * 201,
                         headers={**AUTH, "Content-Type": "application/merge-patch+json"})
    assert await _bad_request(r) == "the request body is nested deeper than 100 levels"
    bad = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\xff"}}'
    for ctype in ("application/json", "application/yaml"):
        r = await http.post(base, data=bad, headers={**AUTH, "Content-Type": ctype})
        assert (await _bad_request(r)).startswith("the request body is not valid UTF-8: 'utf-8' codec can't decode")


async def test_a_namespace_or_name_that_cannot_exist_lists_nothing(http):
    await post(http, "/api/v1/namespaces/default/configmaps", cm("seen"))
    for path, ns in (("/api/v1/namespaces/*/configmaps", "*"), ("/api/v1/namespaces/%3E/configmaps", ">"),
                     ("/api/v1/namespaces/*/secrets", "*"), ("/api/v1/namespaces/%3E/pods", ">"),
                     ("/api/v1/watch/namespaces/*/configmaps", "*"), ("/api/v1/namespaces/*/configmaps?watch=1", "*"),
                     ("/apis/apps/v1/namespaces/%3E/deployments", ">"), ("/api/v1/namespaces/a%20b/pods/x/log", "a b")):
        r = await http.get(path, headers=AUTH)
        body = await r.json()
        assert (r.status, body["kind"], body["reason"], body["message"]) == (
            404, "Status", "NotFound", f'namespaces "{ns}" not found'), path
    for name, why in (("*", "may not contain '*'"), ("a%3Eb", "may not contain '>'"),
                      ("a%20b", "may not contain whitespace"), ("a%25b", "may not contain '%'")):
        r = await http.get(f"/api/v1/namespaces/default/configmaps/{name}", headers=AUTH)
        decoded = name.replace("%3E", ">").replace("%20", " ").replace("%25", "%")
        assert await _bad_request(r) == f'Name parameter invalid: "{decoded}": {why}'
