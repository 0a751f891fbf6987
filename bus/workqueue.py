"""A rate-limited, delaying work queue with client-go's semantics, and the worker loop.

- A key is never handed to two workers at once: a key added while it is being processed is
  marked dirty and queued again when the worker calls :meth:`WorkQueue.done`.
- Repeated adds of a key that is already queued collapse into one.
- ``add_after`` keeps the sooner time when the key is already waiting.
- ``add_rate_limited`` waits the larger of a per-key exponential backoff (5 ms doubling, max
  1000 s) and a global token bucket (10 qps, burst 100) — client-go's default controller limiter.

Time comes from a :class:`Clock`; tests pass a :class:`FakeClock` and call ``advance()``.

Metrics (client-go's, per queue ``name``, in the registry of the component that made the queue, ``bus.telemetry``):
``workqueue_depth``, ``workqueue_adds_total``, ``workqueue_queue_duration_seconds``,
``workqueue_work_duration_seconds``, ``workqueue_retries_total``. The depth is read when metrics are collected; an
add that reaches the queue costs a counter increment and a timestamp, a collapsed add nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Hashable

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily

from bus import telemetry

log = logging.getLogger(__name__)


# ---- clocks ----------------------------------------------------------------------------------


class Clock:
    """Monotonic seconds plus a way to wait for a future with a timeout measured on this clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait(self, fut: asyncio.Future, timeout: float | None) -> None:
        """Wait until ``fut`` is done or ``timeout`` seconds have passed (None: no timeout)."""
        await asyncio.wait({fut}, timeout=timeout)


class FakeClock(Clock):
    """A clock that only moves when the test calls :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def wait(self, fut: asyncio.Future, timeout: float | None) -> None:
        if timeout is None:
            await asyncio.wait({fut})
            return
        timer = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + timeout, next(self._seq), timer))
        try:
            await asyncio.wait({fut, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not timer.done():
                timer.cancel()


# ---- rate limiters ---------------------------------------------------------------------------


class ExponentialBackoff:
    """Per-key delay ``base * 2**failures`` capped at ``max_delay``."""

    def __init__(self, base: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base = base
        self.max_delay = max_delay
        self.failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        if n > 60:  # 2**60 * anything sensible is past max_delay; avoid float overflow
            return self.max_delay
        return min(self.base * 2**n, self.max_delay)

    def forget(self, key: Hashable) -> None:
        self.failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self.failures.get(key, 0)


class TokenBucket:
    """A global bucket of ``burst`` tokens refilled at ``qps``; the delay is how long until the
    token this call reserves is available (like golang.org/x/time/rate's Reserve)."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        self.qps = qps
        self.burst = burst
        self.clock = clock or Clock()
        self.tokens = float(burst)
        self.last: float | None = None

    def when(self, key: Hashable = None) -> float:
        now = self.clock.now()
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.qps

    def forget(self, key: Hashable) -> None:
        pass

    def num_requeues(self, key: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of the limiters asks for (every limiter is charged)."""

    def __init__(self, *limiters: Any) -> None:
        self.limiters = limiters

    def when(self, key: Hashable) -> float:
        return max(lim.when(key) for lim in self.limiters)

    def forget(self, key: Hashable) -> None:
        for lim in self.limiters:
            lim.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return max(lim.num_requeues(key) for lim in self.limiters)


def default_rate_limiter(clock: Clock | None = None, base: float = 0.005, max_delay: float = 1000.0,
                         qps: float = 10.0, burst: int = 100) -> MaxOfRateLimiter:
    return MaxOfRateLimiter(ExponentialBackoff(base, max_delay), TokenBucket(qps, burst, clock))


# ---- metrics ---------------------------------------------------------------------------------

#: client-go's workqueue buckets: 1 ns to 10 s by powers of ten
DURATION_BUCKETS = tuple(1e-9 * 10**i for i in range(11))


class QueueMetrics:
    """One component's work-queue metrics (``bus.telemetry``), labelled by queue name."""

    def __init__(self, registry: Any) -> None:
        kw = {"labelnames": ("name",), "registry": registry}
        self.adds = Counter("workqueue_adds_total", "Total number of adds handled by workqueue", **kw)
        self.retries = Counter("workqueue_retries_total", "Total number of retries handled by workqueue", **kw)
        self.queue_duration = Histogram("workqueue_queue_duration_seconds", "How long in seconds an item stays in "
                                        "workqueue before being requested.", buckets=DURATION_BUCKETS, **kw)
        self.work_duration = Histogram("workqueue_work_duration_seconds", "How long in seconds processing an item "
                                       "from workqueue takes.", buckets=DURATION_BUCKETS, **kw)
        self.queues: weakref.WeakSet = weakref.WeakSet()
        registry.register(self)

    def collect(self):  # the depth of every live queue, read now
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=("name",))
        by_name: dict[str, int] = {}
        for q in list(self.queues):
            by_name[q.name] = by_name.get(q.name, 0) + len(q._queue)
        for name, n in sorted(by_name.items()):
            depth.add_metric((name,), n)
        return [depth]


class _QueueCounters:
    """One queue's children of :class:`QueueMetrics` (label lookups done once)."""

    __slots__ = ("adds", "retries", "queue_duration", "work_duration")

    def __init__(self, m: QueueMetrics, name: str) -> None:
        self.adds = m.adds.labels(name)
        self.retries = m.retries.labels(name)
        self.queue_duration = m.queue_duration.labels(name)
        self.work_duration = m.work_duration.labels(name)


# ---- the queue -------------------------------------------------------------------------------


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and empty."""


class WorkQueue:
    def __init__(self, name: str = "", clock: Clock | None = None, rate_limiter: Any = None) -> None:
        self.name = name
        self.clock = clock or Clock()
        self.rate_limiter = rate_limiter or default_rate_limiter(self.clock)
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._waiting: list[tuple[float, int, Hashable]] = []  # heap of (due, seq, key)
        self._due: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._getters: list[asyncio.Future] = []
        self._shutting_down = False
        m = telemetry.metrics(QueueMetrics)
        self._metrics: _QueueCounters | None = None
        self._added: deque[float] = deque()  # when each key of _queue got there (with metrics only)
        if m is not None:
            m.queues.add(self)
            self._metrics = _QueueCounters(m, name)

    # -- adding

    def add(self, key: Hashable) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if self._metrics is not None:
            self._metrics.adds.inc()
        if key in self._processing:
            return  # queued again by done()
        self._enqueue(key)
        self._wake()

    def add_after(self, key: Hashable, seconds: float) -> None:
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        due = self.clock.now() + seconds
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._waiting, (due, next(self._seq), key))
        self._wake()  # getters recompute how long to sleep

    def add_rate_limited(self, key: Hashable) -> None:
        if self._metrics is not None:
            self._metrics.retries.inc()
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: Hashable) -> None:
        self.rate_limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return self.rate_limiter.num_requeues(key)

    # -- taking

    async def get(self) -> Hashable:
        """The next key (marked processing until :meth:`done`); raises :class:`ShutDown`."""
        while True:
            self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                if self._metrics is not None:
                    self._metrics.queue_duration.observe(self.clock.now() - self._added.popleft())
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self._shutting_down:
                raise ShutDown(self.name)
            fut = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            timeout = max(0.0, self._waiting[0][0] - self.clock.now()) if self._waiting else None
            try:
                await self.clock.wait(fut, timeout)
            finally:
                if not fut.done():
                    fut.cancel()

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._enqueue(key)
            self._wake()

    # -- lifecycle and introspection

    def shutdown(self) -> None:
        """Stop accepting keys; getters drain what is queued, then get :class:`ShutDown`."""
        self._shutting_down = True
        self._waiting.clear()
        self._due.clear()
        self._wake()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def len(self) -> int:
        """Keys ready to be handed out now (not counting delayed or in-process ones)."""
        self._promote_due()
        return len(self._queue)

    __len__ = len

    def waiting(self) -> int:
        """Keys scheduled for later."""
        return len(self._due)

    def processing(self) -> set[Hashable]:
        return set(self._processing)

    # -- internals

    def _enqueue(self, key: Hashable) -> None:
        self._queue.append(key)
        if self._metrics is not None:
            self._added.append(self.clock.now())

    def _promote_due(self) -> None:
        now = self.clock.now()
        while self._waiting and self._waiting[0][0] <= now:
            due, _, key = heapq.heappop(self._waiting)
            if self._due.get(key) == due:  # else superseded by a sooner add_after
                del self._due[key]
                self.add(key)

    def _wake(self) -> None:
        getters, self._getters = self._getters, []
        for f in getters:
            if not f.done():
                f.set_result(None)


# ---- workers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile may return: ``requeue_after`` seconds for timed work, or ``requeue``
    to come back with rate-limited backoff."""

    requeue_after: float = 0.0
    requeue: bool = False


class TerminalError(Exception):
    """A failure retrying cannot fix: the key is forgotten, not requeued."""


Reconcile = Callable[[Any], "Awaitable[Result | None] | Result | None"]


async def process_one(queue: WorkQueue, reconcile: Reconcile, key: Hashable) -> None:
    """Run ``reconcile(key)`` and requeue/forget by its outcome (the caller calls done())."""
    m = queue._metrics
    start = queue.clock.now() if m is not None else 0.0
    try:
        res = reconcile(key)
        if inspect.isawaitable(res):
            res = await res
    except asyncio.CancelledError:
        raise
    except TerminalError as e:
        log.error("%s: reconcile %s failed permanently: %s", queue.name or "queue", key, e)
        queue.forget(key)
        return
    except Exception as e:
        log.warning("%s: reconcile %s failed (retry %d): %s", queue.name or "queue", key,
                    queue.num_requeues(key) + 1, e, exc_info=log.isEnabledFor(logging.DEBUG))
        queue.add_rate_limited(key)
        return
    finally:
        if m is not None:
            m.work_duration.observe(queue.clock.now() - start)
    if isinstance(res, Result) and res.requeue_after > 0:
        queue.forget(key)
        queue.add_after(key, res.requeue_after)
    elif isinstance(res, Result) and res.requeue:
        queue.add_rate_limited(key)
    else:
        queue.forget(key)


async def _worker(queue: WorkQueue, reconcile: Reconcile) -> None:
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await process_one(queue, reconcile, key)
        finally:
            queue.done(key)


async def run_workers(queue: WorkQueue, reconcile: Reconcile, workers: int = 1) -> None:
    """Run ``workers`` concurrent loops of get → reconcile → done until the queue is shut down
    and drained (or this task is cancelled). ``reconcile`` may be sync or async."""
    async with asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(_worker(queue, reconcile))
