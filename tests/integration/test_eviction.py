"""The pods/eviction subresource over a real nats-server and API server: what ``kubectl drain`` and the
Kubernetes clients send (a policy/v1 Eviction) and what they get back."""

from __future__ import annotations

import pytest

from bus import errors
from bus.resources import by_plural
from tests.builders import pod

PODS = by_plural("pods")


def eviction(name: str, **delete_options) -> dict:
    body: dict = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


async def evict(client, name: str, body: dict | None = None, **options):
    return await client.request(PODS, "create", "default", name, body=body or eviction(name),
                                subresource="eviction", options=options or None)


async def test_evicting_a_running_pod_deletes_it_gracefully(client):
    await client.create(pod("web", node="n1", grace=20))
    out = await evict(client, "web")
    assert out == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    got = await client.get("pods", "web")
    assert got["metadata"]["deletionTimestamp"]
    assert got["metadata"]["deletionGracePeriodSeconds"] == 20
    conds = {c["type"]: c for c in got["status"]["conditions"]}
    assert conds["DisruptionTarget"]["status"] == "True"
    assert conds["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"


async def test_delete_options_grace_period_is_honoured(client):
    await client.create(pod("short", node="n1", grace=30))
    await evict(client, "short", eviction("short", gracePeriodSeconds=3))
    assert (await client.get("pods", "short"))["metadata"]["deletionGracePeriodSeconds"] == 3
    await client.create(pod("now", node="n1", grace=30))
    await evict(client, "now", eviction("now", gracePeriodSeconds=0))
    with pytest.raises(errors.NotFound):
        await client.get("pods", "now")


async def test_an_unscheduled_pod_is_removed_at_once(client):
    await client.create(pod("pending", grace=30))
    await evict(client, "pending")
    with pytest.raises(errors.NotFound):
        await client.get("pods", "pending")


async def test_missing_pod_is_404(client):
    with pytest.raises(errors.NotFound) as e:
        await evict(client, "ghost")
    assert e.value.code == 404 and e.value.message == 'pods "ghost" not found'


@pytest.mark.parametrize("where", ["query", "deleteOptions"])
async def test_dry_run_changes_nothing(client, where):
    before = await client.create(pod("dry", node="n1", grace=30))
    if where == "query":
        out = await evict(client, "dry", dryRun=["All"])
    else:
        out = await evict(client, "dry", eviction("dry", dryRun=["All"]))
    assert out["status"] == "Success"
    after = await client.get("pods", "dry")
    assert after == before
    with pytest.raises(errors.NotFound):
        await evict(client, "ghost", dryRun=["All"])


async def test_preconditions(client):
    stale = (await client.create(pod("pre", node="n1", grace=30)))["metadata"]["resourceVersion"]
    created = await client.patch("pods", "pre", {"metadata": {"labels": {"v": "2"}}})
    with pytest.raises(errors.Conflict) as e:
        await evict(client, "pre", eviction("pre", preconditions={"uid": "not-the-uid"}))
    assert "Precondition failed: UID in precondition: not-the-uid" in e.value.message
    with pytest.raises(errors.Conflict) as e:
        await evict(client, "pre", eviction("pre", preconditions={"resourceVersion": stale}))
    assert f"Precondition failed: ResourceVersion in precondition: {stale}" in e.value.message
    assert await client.get("pods", "pre") == created  # untouched by the failed evictions
    meta = created["metadata"]
    await evict(client, "pre", eviction("pre", preconditions={"uid": meta["uid"],
                                                               "resourceVersion": meta["resourceVersion"]}))
    assert (await client.get("pods", "pre"))["metadata"]["deletionTimestamp"]


async def test_bad_evictions_are_status_errors(client):
    await client.create(pod("bad", node="n1", grace=30))
    with pytest.raises(errors.BadRequest) as e:
        await evict(client, "bad", eviction("other"))
    assert e.value.message == "name in URL does not match name in Eviction object"
    with pytest.raises(errors.BadRequest):
        await evict(client, "bad", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}})
    with pytest.raises(errors.BadRequest):
        await evict(client, "bad", ["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(errors.Invalid) as e:
        await evict(client, "bad", eviction("bad", gracePeriodSeconds="soon"))
    assert [c["field"] for c in e.value.causes] == ["deleteOptions.gracePeriodSeconds"]
    with pytest.raises(errors.Invalid) as e:
        await evict(client, "bad", eviction("bad", propagationPolicy="Sideways"))
    assert [c["field"] for c in e.value.causes] == ["propagationPolicy"]
    got = await client.get("pods", "bad")
    assert not got["metadata"].get("deletionTimestamp")
