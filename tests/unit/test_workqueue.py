import asyncio

import pytest

from bus.workqueue import (
    ExponentialBackoff,
    FakeClock,
    MaxOfRateLimiter,
    Result,
    ShutDown,
    TerminalError,
    TokenBucket,
    WorkQueue,
    default_rate_limiter,
    run_workers,
)
from tests.waiting import eventually

async def settle(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def make_queue(**kw):
    clock = FakeClock()
    return WorkQueue("test", clock=clock, **kw), clock


@pytest.mark.asyncio
async def test_repeated_adds_collapse():
    q, _ = make_queue()
    for k in ["a", "b", "a", "a", "b", "c"]:
        q.add(k)
    assert q.len() == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


@pytest.mark.asyncio
async def test_key_added_while_processing_is_requeued_on_done_not_handed_out_twice():
    q, _ = make_queue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert q.len() == 0  # a second worker cannot get "a" now
    second = asyncio.create_task(q.get())
    await settle()
    assert not second.done()
    q.done(key)
    assert await asyncio.wait_for(second, 1) == "a"
    q.done("a")
    assert q.len() == 0  # the two re-adds while processing collapsed into one


@pytest.mark.asyncio
async def test_done_without_readd_does_not_requeue():
    q, _ = make_queue()
    q.add("a")
    q.done(await q.get())
    assert q.len() == 0


@pytest.mark.asyncio
async def test_add_after_orders_by_due_time():
    q, clock = make_queue()
    q.add_after("late", 3)
    q.add_after("early", 1)
    q.add_after("mid", 2)
    assert q.len() == 0 and q.waiting() == 3
    clock.advance(1.5)
    assert q.len() == 1
    assert await q.get() == "early"
    clock.advance(10)
    assert [await q.get(), await q.get()] == ["mid", "late"]


@pytest.mark.asyncio
async def test_add_after_keeps_the_sooner_time():
    q, clock = make_queue()
    q.add_after("a", 5)
    q.add_after("a", 1)   # sooner wins
    q.add_after("a", 10)  # later is ignored
    clock.advance(1)
    assert q.len() == 1
    assert await q.get() == "a"
    q.done("a")
    clock.advance(20)
    assert q.len() == 0  # the superseded entries never fire


@pytest.mark.asyncio
async def test_blocked_getter_wakes_when_delay_elapses():
    q, clock = make_queue()
    getter = asyncio.create_task(q.get())
    await settle()
    q.add_after("a", 2)
    await settle()
    clock.advance(1)
    await settle()
    assert not getter.done()
    clock.advance(1)
    assert await asyncio.wait_for(getter, 1) == "a"


@pytest.mark.asyncio
async def test_rate_limited_backoff_doubles_and_forget_resets():
    q, clock = make_queue()
    eps = 1e-6
    for delay in [0.005, 0.01, 0.02, 0.04, 0.08]:
        q.add_rate_limited("k")
        clock.advance(delay - eps)
        assert q.len() == 0, f"ready before {delay}s"
        clock.advance(2 * eps)
        assert q.len() == 1, f"not ready after {delay}s"
        q.done(await q.get())
    assert q.num_requeues("k") == 5
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.add_rate_limited("k")
    clock.advance(0.005)
    assert q.len() == 1  # back to the base delay


def test_exponential_backoff_is_capped():
    b = ExponentialBackoff(base=1, max_delay=30)
    assert [b.when("x") for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    for _ in range(200):
        assert b.when("x") == 30


def test_token_bucket_allows_burst_then_paces():
    clock = FakeClock()
    tb = TokenBucket(qps=10, burst=3, clock=clock)
    assert [tb.when() for _ in range(3)] == [0, 0, 0]
    assert tb.when() == pytest.approx(0.1)
    assert tb.when() == pytest.approx(0.2)
    clock.advance(10)  # refills, but never above burst
    assert [tb.when() for _ in range(3)] == [0, 0, 0]
    assert tb.when() == pytest.approx(0.1)


def test_default_limiter_takes_the_larger_delay():
    clock = FakeClock()
    lim = default_rate_limiter(clock, qps=10, burst=2)
    assert isinstance(lim, MaxOfRateLimiter)
    assert lim.when("a") == pytest.approx(0.005)  # backoff wins, bucket has tokens
    assert lim.when("b") == pytest.approx(0.005)
    assert lim.when("c") == pytest.approx(0.1)  # bucket empty: its delay wins


@pytest.mark.asyncio
async def test_shutdown_unblocks_getters_and_drains_queued():
    q, _ = make_queue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.shutdown()
    for g in getters:
        with pytest.raises(ShutDown):
            await asyncio.wait_for(g, 1)
    q2, _ = make_queue()
    q2.add("a")
    q2.shutdown()
    q2.add("b")  # ignored after shutdown
    assert q2.shutting_down
    assert await q2.get() == "a"
    with pytest.raises(ShutDown):
        await q2.get()


@pytest.mark.asyncio
async def test_real_clock_add_after():
    q = WorkQueue("real")
    q.add_after("a", 0.02)
    assert await asyncio.wait_for(q.get(), 1) == "a"


@pytest.mark.asyncio
async def test_run_workers_requeues_errors_with_backoff_and_forgets_on_success():
    q, clock = make_queue()
    calls = []

    async def reconcile(key):
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("flaky")

    q.add("k")
    task = asyncio.create_task(run_workers(q, reconcile, workers=2))
    await settle()
    assert calls == ["k"] and q.num_requeues("k") == 1
    clock.advance(0.005)
    await settle()
    assert calls == ["k", "k"] and q.num_requeues("k") == 2
    clock.advance(0.009)
    await settle()
    assert len(calls) == 2  # second backoff is 10 ms
    clock.advance(0.001)
    await settle()
    assert len(calls) == 3
    assert q.num_requeues("k") == 0  # success forgets
    q.shutdown()
    await asyncio.wait_for(task, 1)


@pytest.mark.asyncio
async def test_run_workers_honours_requeue_after_and_terminal_error():
    q, clock = make_queue()
    calls = []

    def reconcile(key):  # sync reconcile works too
        calls.append(key)
        if key == "timed":
            return Result(requeue_after=30)
        raise TerminalError("bad spec")

    q.add("timed")
    q.add("broken")
    task = asyncio.create_task(run_workers(q, reconcile, workers=1))
    await settle()
    assert sorted(calls) == ["broken", "timed"]
    assert q.num_requeues("broken") == 0 and q.waiting() == 1
    clock.advance(29)
    await settle()
    assert len(calls) == 2
    clock.advance(1)
    await settle()
    assert calls.count("timed") == 2 and calls.count("broken") == 1
    q.shutdown()
    await asyncio.wait_for(task, 1)


@pytest.mark.asyncio
async def test_run_workers_never_processes_one_key_concurrently():
    q = WorkQueue("real")
    active: set[str] = set()
    overlaps = []
    seen = []

    async def reconcile(key):
        if key in active:
            overlaps.append(key)
        active.add(key)
        seen.append(key)
        await asyncio.sleep(0.002)
        q.add(key if len(seen) < 20 else "other")  # re-add while processing
        active.discard(key)

    task = asyncio.create_task(run_workers(q, reconcile, workers=4))
    q.add("a")
    q.add("b")
    await eventually(lambda: len(seen) >= 25, 5, "25 keys processed")
    q.shutdown()
    await asyncio.wait_for(task, 2)
    assert overlaps == []
    assert {"a", "b"} <= set(seen)
