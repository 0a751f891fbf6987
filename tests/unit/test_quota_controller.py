"""The resourcequota controller over a fake store and a fake clock: status.hard from spec, usage recomputed from the
objects, raises written at once, releases only once confirmed at the same quota revision after the settle time."""

from __future__ import annotations

import copy

import pytest

from bus import errors
from bus.informer import Informer
from bus.client import resource_of
from master.controllers.resourcequota import ResourceQuotaController
from tests import builders
from tests.unit.fakestore import FakeStore


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeClient:
    def __init__(self, store: FakeStore) -> None:
        self.store, self.writes = store, []

    async def list(self, res, namespace=None):
        return await self.store.list(resource_of(res), namespace)

    async def update_status(self, body):
        m = body["metadata"]
        cur = self.store.objects.get(f"{m['namespace']}.{m['name']}")
        if cur is None:
            raise errors.not_found("resourcequotas", m["name"])
        if cur["metadata"]["resourceVersion"] != m["resourceVersion"]:
            raise errors.conflict("resourcequotas", m["name"])
        self.writes.append(copy.deepcopy(body["status"]))
        return self.store.put(body)


def quota(hard: dict, status: dict | None = None) -> dict:
    q = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "default"},
         "spec": {"hard": hard}}
    if status is not None:
        q["status"] = status
    return q


def pod(name: str, cpu: str = "100m", **kw) -> dict:
    return builders.pod(name, containers=[builders.container("a", resources={"requests": {"cpu": cpu}})], **kw)


@pytest.fixture
async def rig():
    store, clock = FakeStore(), Clock()
    informers: dict[str, Informer] = {}

    def informer(plural: str) -> Informer:
        return informers.setdefault(plural, Informer(store, plural))

    ctl = ResourceQuotaController(FakeClient(store), informer, period=30, settle=1.0, clock=clock)
    for inf in informers.values():
        await inf.start()
    yield store, ctl, clock
    for inf in informers.values():
        await inf.stop()


async def settle(store: FakeStore, ctl) -> None:
    """Let the informers see what the store emitted."""
    import asyncio

    for _ in range(5):
        await asyncio.sleep(0)


async def test_status_from_spec_and_raises_written_at_once(rig):
    store, ctl, _clock = rig
    store.put(quota({"pods": "5", "requests.cpu": "2"}))
    store.put(pod("a"))
    store.put(pod("b", cpu="250m"))
    store.put(pod("done", phase="Succeeded"))
    await settle(store, ctl)
    result = await ctl.reconcile("default.q")
    assert ctl.client.writes == [{"hard": {"pods": "5", "requests.cpu": "2"},
                                  "used": {"pods": "2", "requests.cpu": "350m"}}]
    assert result.requeue_after == 30


async def test_a_release_is_written_only_once_confirmed_after_the_settle_time(rig):
    store, ctl, clock = rig
    store.put(quota({"pods": "5"}, {"hard": {"pods": "5"}, "used": {"pods": "3"}}))
    store.put(pod("a"))
    await settle(store, ctl)
    first = await ctl.reconcile("default.q")
    assert ctl.client.writes == [] and first.requeue_after == 1.0  # maybe a write still in flight: wait
    clock.t += 0.5
    await ctl.reconcile("default.q")  # too early, even with the same figure
    assert ctl.client.writes == []
    clock.t += 0.6
    await ctl.reconcile("default.q")
    assert ctl.client.writes == [{"hard": {"pods": "5"}, "used": {"pods": "1"}}]


async def test_a_charge_meanwhile_restarts_the_wait_and_an_object_appearing_cancels_the_release(rig):
    store, ctl, clock = rig
    store.put(quota({"pods": "5"}, {"hard": {"pods": "5"}, "used": {"pods": "2"}}))
    store.put(pod("a"))
    await settle(store, ctl)
    await ctl.reconcile("default.q")  # sees 1 of the 2 charged
    clock.t += 2
    q = copy.deepcopy(store.objects["default.q"])
    q["status"]["used"]["pods"] = "3"  # admission charged another pod...
    store.put(q)
    await settle(store, ctl)
    await ctl.reconcile("default.q")
    assert ctl.client.writes == []  # a new revision: start again
    store.put(pod("b"))  # ...whose write lands, as does the one charged before
    store.put(pod("c"))
    await settle(store, ctl)
    clock.t += 2
    await ctl.reconcile("default.q")
    assert ctl.client.writes == []  # 3 used, 3 counted: nothing to release


async def test_deleting_a_counted_object_queues_the_quota(rig):
    store, ctl, _clock = rig
    store.put(quota({"pods": "5"}, {"hard": {"pods": "5"}, "used": {"pods": "1"}}))
    store.put(pod("a"))
    await settle(store, ctl)
    while len(ctl.controller.queue):
        key = await ctl.controller.queue.get()
        ctl.controller.queue.done(key)
    store.remove("default", "a")
    await settle(store, ctl)
    assert len(ctl.controller.queue) == 1


async def test_a_name_no_known_kind_counts_keeps_its_figure(rig):
    store, ctl, _clock = rig
    store.put(quota({"pods": "5", "count/widgets.example.com": "3"},
                    {"hard": {"pods": "5", "count/widgets.example.com": "3"},
                     "used": {"pods": "0", "count/widgets.example.com": "2"}}))
    store.put(pod("a"))
    await settle(store, ctl)
    await ctl.reconcile("default.q")
    assert ctl.client.writes == [{"hard": {"pods": "5", "count/widgets.example.com": "3"},
                                  "used": {"pods": "1", "count/widgets.example.com": "2"}}]
