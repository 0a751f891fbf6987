"""List chunking (``limit``/``continue``) through a real nats-server and API server: every chunk from the first
chunk's snapshot, Kubernetes' token and key order, 410 Expired once the snapshot's values are gone."""

from __future__ import annotations

import base64
import json

import pytest

from bus import errors
from tests.builders import configmap, namespace
from tests.integration.test_gateway import http  # noqa: F401  (the gateway fixture)


async def names(client, ns="default", limit=3, **kw) -> tuple[list[str], list[dict]]:
    """Every chunk of a list, followed to the end: the names in order and the chunks' metadata."""
    out, metas, token = [], [], None
    while True:
        page = await client.list_chunk("configmaps", ns, limit=limit, continue_=token, **kw)
        out += [o["metadata"]["name"] for o in page["items"]]
        metas.append(page["metadata"])
        token = page["metadata"].get("continue")
        if not token:
            return out, metas


async def test_chunks_are_read_from_the_first_chunks_snapshot(client):
    for i in range(7):
        await client.create(configmap(f"cm-{i}", data={"v": "old"}))
    first = await client.list_chunk("configmaps", "default", limit=3)
    assert [o["metadata"]["name"] for o in first["items"]] == ["cm-0", "cm-1", "cm-2"]
    rv = first["metadata"]["resourceVersion"]
    token = first["metadata"]["continue"]
    assert json.loads(base64.urlsafe_b64decode(token + "==")) == {"v": "meta.k8s.io/v1", "rv": int(rv),
                                                                  "start": "cm-2\u0000"}
    # the list changes between chunks: none of it shows
    await client.create(configmap("cm-3a"))
    cm4 = await client.get("configmaps", "cm-4")
    cm4["data"] = {"v": "new"}
    await client.update(cm4)
    await client.delete("configmaps", "cm-5")
    rest, token2 = [], token
    while token2:
        page = await client.list_chunk("configmaps", "default", limit=3, continue_=token2)
        assert page["metadata"]["resourceVersion"] == rv
        rest += page["items"]
        token2 = page["metadata"].get("continue")
    assert [o["metadata"]["name"] for o in rest] == ["cm-3", "cm-4", "cm-5", "cm-6"]
    assert next(o for o in rest if o["metadata"]["name"] == "cm-4")["data"] == {"v": "old"}
    # a new list sees the changes
    now, _ = await names(client)
    assert now == ["cm-0", "cm-1", "cm-2", "cm-3", "cm-3a", "cm-4", "cm-6"]


async def test_across_namespaces_keys_are_namespace_slash_name_and_selectors_fill_chunks(client):
    await client.create(namespace("other"))
    for ns in ("default", "other"):
        for i in range(4):
            await client.create(configmap(f"c{i}", ns, labels={"even": str(i % 2 == 0).lower()}))
    page = await client.list_chunk("configmaps", None, limit=5)
    got = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in page["items"]]
    assert [g for g in got if g[1].startswith("c")][:4] == [("default", f"c{i}") for i in range(4)]
    start = json.loads(base64.urlsafe_b64decode(page["metadata"]["continue"] + "=="))["start"]
    assert start.endswith("\u0000") and "/" in start
    evens, metas = await names(client, "other", limit=1, label_selector="even=true")
    assert evens == ["c0", "c2"]
    assert all(len(m) >= 1 for m in metas)


async def test_a_token_whose_snapshot_lost_a_value_is_410_expired(client):
    for i in range(3):
        await client.create(configmap(f"x-{i}", data={"n": "0"}))
    first = await client.list_chunk("configmaps", "default", limit=1)
    for n in range(1, 10):  # more revisions than the bucket keeps per key: x-2's value at the snapshot is gone
        cm = await client.get("configmaps", "x-2")
        cm["data"] = {"n": str(n)}
        await client.update(cm)
    with pytest.raises(errors.Gone) as e:
        await client.list_chunk("configmaps", "default", limit=5, continue_=first["metadata"]["continue"])
    assert e.value.code == 410 and e.value.reason == "Expired"
    assert e.value.message.startswith("The provided continue parameter is too old to display a consistent list "
                                      "result. You can start a new list without the continue parameter")
    inconsistent = e.value.metadata["continue"]  # the remainder at the latest revision, as Kubernetes offers
    page = await client.list_chunk("configmaps", "default", limit=5, continue_=inconsistent)
    assert [(o["metadata"]["name"], o["data"]["n"]) for o in page["items"]] == [("x-1", "0"), ("x-2", "9")]


async def test_bad_tokens_are_400(client):
    with pytest.raises(errors.BadRequest, match="continue key is not valid"):
        await client.list_chunk("configmaps", "default", continue_="not-a-token!")
    bogus = base64.urlsafe_b64encode(b'{"v":"other/v1","rv":3,"start":"a"}').decode()
    with pytest.raises(errors.BadRequest, match="server does not recognize this encoded version"):
        await client.list_chunk("configmaps", "default", continue_=bogus)


async def test_the_gateway_pages_lists_and_tables_as_kubectl_asks(http):
    from tests.integration.test_gateway import AUTH, TABLE, cm, post

    base = "/api/v1/namespaces/default/configmaps"
    for i in range(5):
        assert (await post(http, base, cm(f"g{i}"))).status == 201
    seen, token, rvs = [], None, set()
    while True:
        q = {"limit": "2", **({"continue": token} if token else {})}
        r = await http.get(base, params=q, headers={**AUTH, "Accept": TABLE})
        assert r.status == 200
        t = await r.json()
        seen += [row["cells"][0] for row in t["rows"]]
        rvs.add(t["metadata"]["resourceVersion"])
        token = t["metadata"].get("continue")
        if not token:
            break
    assert seen == [f"g{i}" for i in range(5)] and len(rvs) == 1
    r = await http.get(base, params={"limit": "500"}, headers=AUTH)  # kubectl's default: one chunk, no continue
    body = await r.json()
    assert [o["metadata"]["name"] for o in body["items"]] == [f"g{i}" for i in range(5)]
    assert "continue" not in body["metadata"]
    r = await http.get(base, params={"limit": "2", "continue": "bad"}, headers=AUTH)
    assert r.status == 400 and (await r.json())["reason"] == "BadRequest"


async def test_a_list_request_on_the_bus_with_limit_answers_chunks_too(client):
    from bus.resources import by_plural

    for i in range(3):
        await client.create(configmap(f"b-{i}"))
    cms = by_plural("configmaps")
    first = await client.request(cms, "list", "default", options={"limit": 2})
    assert [o["metadata"]["name"] for o in first["items"]] == ["b-0", "b-1"]
    rest = await client.request(cms, "list", "default", options={"limit": 2, "continue": first["metadata"]["continue"]})
    assert [o["metadata"]["name"] for o in rest["items"]] == ["b-2"] and "continue" not in rest["metadata"]
    with pytest.raises(errors.BadRequest, match="specifying resource version is not allowed when using continue"):
        await client.request(cms, "list", "default", options={"continue": first["metadata"]["continue"],
                                                             "resourceVersion": "5"})


async def test_a_reader_denied_a_bucket_cannot_read_it_in_chunks(nats_server, client):
    import asyncio

    from bus import roles
    from bus.client import ApiClient
    from bus.roles import Identity

    await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}})
    scheduler = await ApiClient.connect(nats_server.url, Identity(roles.SCHEDULER))
    try:
        assert (await scheduler.list_chunk("pods", "default", limit=5))["items"] == []  # may read pods in chunks
        with pytest.raises((asyncio.TimeoutError, errors.ApiError)):  # the bus refuses the batched get on Secrets
            await scheduler.list_chunk("secrets", "default", limit=5)
    finally:
        await scheduler.close()
