import asyncio

from bus.workqueue import FakeClock
from master.scheduler.podinfo import PodInfo
from master.scheduler.queue import ACTIVE, BACKOFF, UNSCHEDULABLE, SchedulingQueue
from tests import builders
from tests.waiting import stays


def pod(name, priority=0):
    return PodInfo.of(builders.pod(name, uid=f"uid-{name}", priority=priority))


async def pop_now(q):
    return await asyncio.wait_for(q.pop(), 0.5)


async def test_priority_then_fifo():
    q = SchedulingQueue(FakeClock())
    for name, prio in (("a", 0), ("b", 10), ("c", 0), ("d", 10)):
        q.add(pod(name, prio))
        q.clock.advance(0.001)
    assert [(await pop_now(q)).pod.name for _ in range(4)] == ["b", "d", "a", "c"]


async def test_backoff_doubles_to_the_cap():
    clock = FakeClock()
    q = SchedulingQueue(clock, initial_backoff=1.0, max_backoff=10.0)
    q.add(pod("a"))
    waits = []
    for _ in range(6):
        item = await pop_now(q)
        q.add_backoff(item)
        assert q.where("default.a") == BACKOFF
        waited = 0.0
        while q.where("default.a") != ACTIVE:
            clock.advance(0.5)
            waited += 0.5
            q.flush()
        waits.append(waited)
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


async def test_pop_waits_for_backoff_with_the_clock():
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(pod("a"))
    q.add_backoff(await pop_now(q))
    task = asyncio.create_task(q.pop())
    await stays(lambda: not task.done(), 0.01, "pop waiting while the clock stands still")
    clock.advance(1.0)
    assert (await asyncio.wait_for(task, 0.5)).pod.name == "a"


async def test_unschedulable_waits_for_a_cluster_change():
    clock = FakeClock()
    q = SchedulingQueue(clock, max_unschedulable=60)
    q.add(pod("a"))
    q.add_unschedulable(await pop_now(q))
    assert q.where("default.a") == UNSCHEDULABLE
    clock.advance(30)
    q.flush()
    assert q.where("default.a") == UNSCHEDULABLE
    q.move_all_to_active()
    assert q.where("default.a") == ACTIVE  # its 1 s backoff is over


async def test_move_during_backoff_goes_to_backoff():
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(pod("a"))
    q.add_unschedulable(await pop_now(q))
    clock.advance(0.2)
    q.move_all_to_active()
    assert q.where("default.a") == BACKOFF


async def test_change_while_in_flight_is_not_missed():
    q = SchedulingQueue(FakeClock())
    q.add(pod("a"))
    item = await pop_now(q)
    q.move_all_to_active()  # e.g. a node was added while "a" was being scheduled
    q.add_unschedulable(item)
    assert q.where("default.a") == BACKOFF


async def test_long_unschedulable_pods_are_retried():
    clock = FakeClock()
    q = SchedulingQueue(clock, max_unschedulable=60)
    q.add(pod("a"))
    q.add_unschedulable(await pop_now(q))
    clock.advance(61)
    q.flush()
    assert q.where("default.a") == ACTIVE


async def test_deleted_while_in_flight_is_dropped():
    q = SchedulingQueue(FakeClock())
    q.add(pod("a"))
    item = await pop_now(q)
    q.delete("default.a")
    q.add_unschedulable(item)
    q.add_backoff(item)
    assert "default.a" not in q


async def test_spec_update_moves_unschedulable_pod():
    q = SchedulingQueue(FakeClock())
    q.add(pod("a"))
    q.clock.advance(5)
    q.add_unschedulable(await pop_now(q))
    q.clock.advance(5)
    q.update(pod("a"), spec_changed=False)
    assert q.where("default.a") == UNSCHEDULABLE
    q.update(pod("a"), spec_changed=True)
    assert q.where("default.a") == ACTIVE


async def test_done_forgets_and_close_ends_pop():
    q = SchedulingQueue(FakeClock())
    q.add(pod("a"))
    item = await pop_now(q)
    q.done(item.key)
    assert "default.a" not in q
    task = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    q.close()
    assert await asyncio.wait_for(task, 0.5) is None


async def test_flush_retries_only_the_long_unschedulable_oldest_first_and_keeps_the_rest_in_order():
    clock = FakeClock()
    q = SchedulingQueue(clock, max_unschedulable=60)
    for name in ("a", "b", "c", "d"):
        q.add(pod(name))
    for _ in range(4):
        q.add_unschedulable(await pop_now(q))  # parked 10 s apart: a, b, c, d
        clock.advance(10)
    q.add(pod("b", priority=0))  # a newer version of a parked pod keeps its place
    clock.advance(30)  # parked for 70 s (a), 60 s (b), 50 s (c), 40 s (d)
    q.flush()
    assert [q.where(f"default.{n}") for n in "abcd"] == [ACTIVE, ACTIVE, UNSCHEDULABLE, UNSCHEDULABLE]
    assert [(await pop_now(q)).pod.name for _ in range(2)] == ["a", "b"]
    q.delete("default.c")
    clock.advance(20)
    q.flush()
    assert q.where("default.d") == ACTIVE and "default.c" not in q
