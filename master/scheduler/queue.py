"""The scheduling queue (kube-scheduler's PriorityQueue):

- active: what to try next, highest ``spec.priority`` first, then FIFO;
- backoff: pods that failed, each waiting ``initial * 2**(attempts-1)`` capped at ``max_backoff``;
- unschedulable: pods no node fits; a cluster change (node added or updated, pod deleted or
  terminated) moves them all back (``move_all_to_active``: to backoff while their backoff lasts),
  and any left there longer than ``max_unschedulable`` seconds are retried anyway.

A move request that happens while a pod is being scheduled sends that pod to backoff rather than
unschedulable when it fails (the scheduling-cycle check), so no cluster change is missed.
Time comes from a :class:`bus.workqueue.Clock` (tests use ``FakeClock``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from dataclasses import dataclass

from bus.workqueue import Clock
from master.scheduler.podinfo import PodInfo

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


@dataclass(slots=True)
class QueuedPod:
    pod: PodInfo
    timestamp: float
    attempts: int = 0
    cycle: int = 0
    where: str = ACTIVE
    seq: int = 0
    since: float = 0.0  # when it entered the unschedulable set
    backoff_until: float = 0.0

    @property
    def key(self) -> str:
        return self.pod.key


class SchedulingQueue:
    def __init__(self, clock: Clock | None = None, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable: float = 60.0) -> None:
        self.clock = clock or Clock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        # in the order they were parked (``since`` ascending): the oldest is first, found and removed in O(1)
        self._unschedulable: OrderedDict[str, QueuedPod] = OrderedDict()
        self._seq = itertools.count()
        self._waiters: list[asyncio.Future] = []
        self._closed = False

    # ---- adding and updating -------------------------------------------------------------------

    def add(self, pod: PodInfo) -> None:
        """A new pending pod, or a newer version of one already queued."""
        q = self._pods.get(pod.key)
        if q is None:
            q = self._pods[pod.key] = QueuedPod(pod, self.clock.now())
            self._push_active(q)
        elif q.pod.uid != pod.uid:  # same name, new pod
            self.delete(pod.key)
            self.add(pod)
        else:
            self.update(pod, spec_changed=False)

    def update(self, pod: PodInfo, spec_changed: bool) -> None:
        q = self._pods.get(pod.key)
        if q is None:
            self.add(pod)
            return
        q.pod = pod
        if spec_changed and q.where == UNSCHEDULABLE:
            self._requeue(q)

    def delete(self, key: str) -> None:
        self._pods.pop(key, None)  # heap entries die lazily
        self._unschedulable.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._pods

    def where(self, key: str) -> str | None:
        q = self._pods.get(key)
        return q.where if q else None

    # ---- taking --------------------------------------------------------------------------------

    async def pop(self) -> QueuedPod | None:
        """The next pod to schedule (marked in flight until ``done``); None once closed."""
        while not self._closed:
            self.flush()
            q = self._pop_active()
            if q is not None:
                self.scheduling_cycle += 1
                q.cycle = self.scheduling_cycle
                q.attempts += 1
                q.where = IN_FLIGHT
                return q
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await self.clock.wait(fut, self._next_timer())
            finally:
                if not fut.done():
                    fut.cancel()
        return None

    def done(self, key: str) -> None:
        """Scheduled (or given up): forget the pod unless it was requeued."""
        q = self._pods.get(key)
        if q is not None and q.where == IN_FLIGHT:
            del self._pods[key]

    def add_unschedulable(self, q: QueuedPod) -> None:
        """No node fits ``q`` in its cycle: park it until the cluster changes."""
        if self._pods.get(q.key) is not q:
            return  # deleted (or replaced) meanwhile
        q.timestamp = self.clock.now()
        if self.move_request_cycle >= q.cycle:
            self._push_backoff(q)
        else:
            q.where, q.since = UNSCHEDULABLE, q.timestamp
            self._unschedulable[q.key] = q
            self._unschedulable.move_to_end(q.key)

    def add_backoff(self, q: QueuedPod) -> None:
        """An error (bind failed, …): retry after the pod's backoff."""
        if self._pods.get(q.key) is q:
            q.timestamp = self.clock.now()
            self._push_backoff(q)

    def move_all_to_active(self) -> None:
        """The cluster changed: every unschedulable pod gets another try."""
        self.move_request_cycle = self.scheduling_cycle
        for q in list(self._unschedulable.values()):
            self._requeue(q)

    def flush(self) -> None:
        now = self.clock.now()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            q = self._pods.get(key)
            if q is not None and q.where == BACKOFF and q.seq == seq:
                self._push_active(q)
        parked = self._unschedulable
        while parked:
            q = parked[next(iter(parked))]
            if now - q.since < self.max_unschedulable:
                break
            self._requeue(q)

    def close(self) -> None:
        self._closed = True
        self._wake()

    def counts(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for q in self._pods.values():
            out[q.where] += 1
        return out

    def backoff_duration(self, q: QueuedPod) -> float:
        return min(self.max_backoff, self.initial_backoff * 2 ** max(0, min(q.attempts - 1, 30)))

    # ---- internals -----------------------------------------------------------------------------

    def _requeue(self, q: QueuedPod) -> None:
        self._unschedulable.pop(q.key, None)
        if q.attempts and self.clock.now() < q.timestamp + self.backoff_duration(q):
            self._push_backoff(q)
        else:
            self._push_active(q)

    def _push_active(self, q: QueuedPod) -> None:
        q.where, q.seq = ACTIVE, next(self._seq)
        heapq.heappush(self._active, (-q.pod.priority, q.timestamp, q.seq, q.key))
        self._wake()

    def _push_backoff(self, q: QueuedPod) -> None:
        q.where, q.seq = BACKOFF, next(self._seq)
        q.backoff_until = q.timestamp + self.backoff_duration(q)
        heapq.heappush(self._backoff, (q.backoff_until, q.seq, q.key))
        self._wake()

    def _pop_active(self) -> QueuedPod | None:
        while self._active:
            _, _, seq, key = heapq.heappop(self._active)
            q = self._pods.get(key)
            if q is not None and q.where == ACTIVE and q.seq == seq:
                return q
        return None

    def _next_timer(self) -> float | None:
        now = self.clock.now()
        t = [self._backoff[0][0] - now] if self._backoff else []
        if self._unschedulable:
            t.append(self._unschedulable[next(iter(self._unschedulable))].since + self.max_unschedulable - now)
        return max(0.0, min(t)) if t else None

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)
