"""The Lease state machine (master.leaderelection) with a fake clock and a fake CAS store."""

from __future__ import annotations

import asyncio

import pytest

from bus import errors
from bus.informer import deep_copy
from bus.settings import SettingsError
from bus.workqueue import FakeClock
from master.leaderelection import ElectionConfig, LeaderElector, run_leader_elected
from tests.waiting import eventually

CFG = ElectionConfig(lease_duration=15, renew_deadline=10, retry_period=2)


class FakeLeases:
    """get/create/update of Leases with resourceVersion compare-and-set, yielding between calls."""

    def __init__(self) -> None:
        self.obj: dict | None = None
        self.rv = 0
        self.fail = False
        self.writes = 0

    async def get(self, resource, name, namespace=None):
        await asyncio.sleep(0)
        if self.fail:
            raise errors.unavailable("down")
        if self.obj is None:
            raise errors.not_found("leases", name)
        return deep_copy(self.obj)

    async def create(self, obj):
        await asyncio.sleep(0)
        if self.obj is not None:
            raise errors.AlreadyExists(409, "exists")
        return self._store(obj)

    async def update(self, obj):
        await asyncio.sleep(0)
        if self.fail:
            raise errors.unavailable("down")
        if obj["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise errors.conflict("leases", obj["metadata"]["name"])
        return self._store(obj)

    def _store(self, obj):
        self.rv += 1
        self.writes += 1
        self.obj = deep_copy(obj)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        return deep_copy(self.obj)

    @property
    def spec(self):
        return self.obj["spec"]


def elector(store, ident, clock, **kw):
    return LeaderElector(store, "kube-controller-manager", ident=ident, config=CFG, clock=clock, **kw)


async def test_first_candidate_creates_the_lease_and_a_second_waits_for_expiry():
    store, clock = FakeLeases(), FakeClock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert await a.try_acquire_or_renew()
    assert store.spec["holderIdentity"] == "a" and store.spec["leaseTransitions"] == 0
    assert store.spec["leaseDurationSeconds"] == 15
    assert not await b.try_acquire_or_renew()
    clock.advance(10)
    assert await a.try_acquire_or_renew()  # renewed: b sees the record change
    clock.advance(10)
    assert not await b.try_acquire_or_renew()  # b first sees the renewal now (t=20): expiry at t=35
    clock.advance(14.9)
    assert not await b.try_acquire_or_renew()
    clock.advance(0.2)
    assert await b.try_acquire_or_renew()
    assert store.spec["holderIdentity"] == "b" and store.spec["leaseTransitions"] == 1
    assert not await a.try_acquire_or_renew()  # a sees b's fresh record
    assert not a.leading and b.leading


async def test_concurrent_takeover_has_exactly_one_winner():
    store, clock = FakeLeases(), FakeClock()
    assert await elector(store, "old", clock).try_acquire_or_renew()
    cands = [elector(store, f"c{i}", clock) for i in range(4)]
    for c in cands:
        assert not await c.try_acquire_or_renew()
    clock.advance(16)
    won = await asyncio.gather(*(c.try_acquire_or_renew() for c in cands))
    assert sum(won) == 1
    winner = cands[won.index(True)]
    assert store.spec["holderIdentity"] == winner.identity and store.spec["leaseTransitions"] == 1


async def test_release_lets_a_standby_take_over_at_once():
    store, clock = FakeLeases(), FakeClock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert store.spec["holderIdentity"] == ""
    assert await b.try_acquire_or_renew()  # no wait for the 15 s duration
    assert store.spec["holderIdentity"] == "b"


async def test_renew_gives_up_after_the_renew_deadline():
    store, clock = FakeLeases(), FakeClock()
    a = elector(store, "a", clock)
    assert await a.try_acquire_or_renew()
    stop = asyncio.Event()
    task = asyncio.create_task(a.renew(stop))
    for _ in range(3):  # healthy renewals
        await asyncio.sleep(0.01)
        clock.advance(2)
    await asyncio.sleep(0.01)
    assert not task.done() and store.writes >= 3
    store.fail = True
    for _ in range(4):
        clock.advance(2)
        await asyncio.sleep(0.01)
    assert not task.done()  # 8 s < renew deadline
    for _ in range(3):
        clock.advance(2)
        await asyncio.sleep(0.01)
    assert task.done() and task.result() is False
    assert not a.leading


async def test_only_the_leader_leads_and_a_lost_lease_stops_it():
    store, clock = FakeLeases(), FakeClock()
    stop = asyncio.Event()
    led, lost = [], []

    async def lead(lead_stop):
        led.append("start")
        await lead_stop.wait()
        led.append("stop")

    a = elector(store, "a", clock)
    runner = asyncio.create_task(run_leader_elected(store, "x", stop, lead, config=CFG, on_lost=lambda: lost.append(1),
                                                    elector=a))
    await eventually(lambda: led == ["start"] and a.leading, 1, "a leading")
    # another candidate steals the lease behind a's back: a sees it at its next renewal and stops
    store.obj["spec"]["holderIdentity"] = "thief"
    clock.advance(2)
    await asyncio.wait_for(runner, 1)
    assert lost == [1] and led == ["start", "stop"]
    assert store.spec["holderIdentity"] == "thief"  # not released: it was not a's any more


async def test_clean_stop_releases_the_lease():
    store, clock = FakeLeases(), FakeClock()
    stop = asyncio.Event()

    async def lead(lead_stop):
        await lead_stop.wait()

    runner = asyncio.create_task(run_leader_elected(store, "x", stop, lead, config=CFG, on_lost=lambda: None,
                                                    elector=elector(store, "a", clock)))
    await eventually(lambda: store.obj and store.spec["holderIdentity"] == "a", 1, "a holding the lease")
    stop.set()
    await asyncio.wait_for(runner, 1)
    assert store.spec["holderIdentity"] == ""


def test_config_from_options_scales_with_a_short_lease():
    cfg = ElectionConfig.from_options({"leader-elect-lease-duration": 3.0}, environ={})
    assert cfg.enabled and cfg.lease_duration == 3.0
    assert cfg.renew_deadline == 2.0 and cfg.retry_period == 0.6
    off = ElectionConfig.from_options({"leader-elect": "false"}, environ={})
    assert not off.enabled
    env = ElectionConfig.from_options(environ={"K8N_LEADER_ELECT_LEASE_DURATION": "3"})
    assert env.lease_duration == 3.0 and env.renew_deadline == 2.0 and env.retry_period == 0.6


def test_config_names_a_bad_environment_variable():
    with pytest.raises(SettingsError, match=r"K8N_LEADER_ELECT_LEASE_DURATION='soon': expected a number"):
        ElectionConfig.from_options(environ={"K8N_LEADER_ELECT_LEASE_DURATION": "soon"})
    with pytest.raises(SettingsError, match=r"K8N_LEADER_ELECT='maybe': expected a boolean"):
        ElectionConfig.from_options(environ={"K8N_LEADER_ELECT": "maybe"})
