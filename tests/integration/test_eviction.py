"""The pods/eviction subresource over a real nats-server and API server: what ``kubectl drain`` and the
Kubernetes clients send (a policy/v1 Eviction) and what they get back — with PodDisruptionBudgets kept by the real
disruption controller: 429 while a budget forbids, allowed once it permits, never more than it permits."""

from __future__ import annotations

import asyncio

import pytest

from bus import errors
from bus.informer import SharedInformerFactory
from bus.resources import by_plural
from master.controllers import disruption
from master.controllers.manager import Context
from tests.builders import pod
from tests.harness import make_pod, running_controllers
from tests.waiting import eventually

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


# ---- PodDisruptionBudgets ------------------------------------------------------------------------------------------

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def budget(name: str = "web", **spec) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


async def status_of(client, name: str = "web") -> dict:
    return (await client.get("poddisruptionbudgets", name)).get("status") or {}


def counts(st: dict) -> tuple:
    return (st.get("expectedPods"), st.get("desiredHealthy"), st.get("currentHealthy"), st.get("disruptionsAllowed"))


async def until_counts(client, want: tuple, name: str = "web") -> dict:
    async def seen():
        st = await status_of(client, name)
        return st if counts(st) == want else None
    return await eventually(seen, 10, f"budget {name} at (expected, desired, healthy, allowed) = {want}")


async def deleting(client, name: str) -> bool:
    return bool((await client.get("pods", name))["metadata"].get("deletionTimestamp"))


@pytest.fixture
async def controller(client):
    async with running_controllers(Context(client, SharedInformerFactory(client)), disruption):
        yield


async def test_a_budget_answers_429_until_it_allows_the_eviction(client, controller):
    for i in range(2):
        await make_pod(client, f"web-{i}", f"10.244.0.{i + 2}", True, grace=30)
    created = await client.create(budget(minAvailable=2))
    assert counts(created["status"]) == (0, 0, 0, 0)  # zero until the controller has looked
    st = await until_counts(client, (2, 2, 2, 0))
    assert st["observedGeneration"] == 1
    [cond] = st["conditions"]
    assert {k: cond[k] for k in ("type", "status", "reason", "message", "observedGeneration")} == {
        "type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": "",
        "observedGeneration": 1}

    with pytest.raises(errors.ApiError) as e:
        await evict(client, "web-0")
    assert (e.value.code, e.value.reason, e.value.message) == (429, "TooManyRequests", VIOLATION)
    assert e.value.causes == [{"reason": "DisruptionBudget",
                               "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]
    assert not await deleting(client, "web-0")

    await client.patch("poddisruptionbudgets", "web", {"spec": {"minAvailable": 1}})
    st = await until_counts(client, (2, 1, 2, 1))
    assert st["observedGeneration"] == 2 and st["conditions"][0]["reason"] == "SufficientPods"
    assert (await evict(client, "web-0"))["status"] == "Success"
    assert await deleting(client, "web-0")
    st = await until_counts(client, (2, 1, 1, 0))  # the evicted pod no longer counts
    with pytest.raises(errors.ApiError) as e:
        await evict(client, "web-1")
    assert e.value.code == 429
    assert e.value.causes[0]["message"] == "The disruption budget web needs 1 healthy pods and has 1 currently"

    await client.delete("poddisruptionbudgets", "web")
    assert (await evict(client, "web-1"))["status"] == "Success"
    assert await deleting(client, "web-1")


async def test_concurrent_evictions_never_exceed_the_budget(client, controller):
    names = [f"web-{i}" for i in range(10)]
    for i, name in enumerate(names):
        await make_pod(client, name, f"10.244.0.{i + 2}", True, grace=30)
    await client.create(budget("strict", minAvailable=4))
    await until_counts(client, (10, 4, 10, 6), "strict")

    results = await asyncio.gather(*(evict(client, n) for n in names), return_exceptions=True)
    granted = [n for n, r in zip(names, results) if isinstance(r, dict) and r.get("status") == "Success"]
    refused = [r for r in results if isinstance(r, errors.ApiError)]
    assert len(granted) == 6 and len(refused) == 4, results
    assert all(r.code == 429 and r.message == VIOLATION for r in refused)
    assert sorted([n for n in names if await deleting(client, n)]) == sorted(granted)
    await until_counts(client, (10, 4, 4, 0), "strict")


async def test_unready_pending_lagging_and_doubly_covered_pods(client):
    """Without the controller: the budget's status is what an admin wrote."""
    await client.create(budget(minAvailable=2))
    written = await client.get("poddisruptionbudgets", "web")
    written["status"] = {"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2,
                         "desiredHealthy": 2, "expectedPods": 3}
    written = await client.update_status(written)

    # a pod that is not Ready, under a budget that is met: it goes, and the budget is not charged
    await make_pod(client, "sick", "10.244.0.9", False, grace=30)
    assert (await evict(client, "sick"))["status"] == "Success"
    assert await deleting(client, "sick")
    # a Pending pod disrupts nothing either
    await client.create(pod("waiting", labels={"app": "web"}))
    assert (await evict(client, "waiting"))["status"] == "Success"
    assert (await client.get("poddisruptionbudgets", "web"))["metadata"]["resourceVersion"] == \
        written["metadata"]["resourceVersion"]
    # a Ready pod is refused
    await make_pod(client, "fine", "10.244.0.10", True, grace=30)
    with pytest.raises(errors.ApiError) as e:
        await evict(client, "fine")
    assert e.value.code == 429

    # a spec the controller has not seen yet: 429, try again in 10 s
    await client.patch("poddisruptionbudgets", "web", {"spec": {"minAvailable": 0}})
    with pytest.raises(errors.ApiError) as e:
        await evict(client, "fine")
    assert e.value.code == 429 and e.value.details["retryAfterSeconds"] == 10
    assert e.value.causes == [{"reason": "DisruptionBudget",
                               "message": "The disruption budget web is still being processed by the server."}]

    # two budgets for one pod: not supported
    await client.create(budget("second", maxUnavailable=1))
    with pytest.raises(errors.ApiError) as e:
        await evict(client, "fine")
    assert e.value.code == 500
    assert e.value.message == "This pod has more than one PodDisruptionBudget, which the eviction subresource does " \
                              "not support."
    assert not await deleting(client, "fine")


async def test_budget_validation(client):
    with pytest.raises(errors.Invalid) as e:
        await client.create(budget(minAvailable=1, maxUnavailable=1))
    assert e.value.message.startswith('PodDisruptionBudget.policy "web" is invalid: spec: Invalid value: ')
    assert e.value.message.endswith("minAvailable and maxUnavailable cannot be both set")
    with pytest.raises(errors.Invalid) as e:
        await client.create(budget(maxUnavailable="120%"))
    assert [c["field"] for c in e.value.causes] == ["spec.maxUnavailable"]
