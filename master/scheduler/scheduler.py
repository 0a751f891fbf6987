"""The scheduler: informers on nodes and pods feed the cache and the queue; one loop takes a pod,
runs the framework (filter, score, reserve), assumes the pod on the chosen node and hands binding to
a bounded set of concurrent tasks, then takes the next pod (kube-scheduler binds asynchronously)."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from bus import roles, telemetry
from bus.roles import Identity
from bus import errors, subjects
from bus.events import NORMAL, WARNING, EventRecorder
from bus.informer import SharedInformerFactory
from bus.meta import TERMINAL_POD_PHASES, get_condition, now
from bus.workqueue import Clock
from master.scheduler.cache import SchedulerCache
from master.scheduler.metrics import ERROR, SCHEDULED, UNSCHEDULABLE, SchedulerMetrics
from master.scheduler.framework import CycleState, FitError, Framework, SchedulingError
from master.scheduler.plugins import DEFAULT_BINDERS, DEFAULT_FILTERS, DEFAULT_SCORES
from master.scheduler.podinfo import PodInfo
from master.scheduler.queue import QueuedPod, SchedulingQueue

if TYPE_CHECKING:
    from master.leaderelection import ElectionConfig

log = logging.getLogger(__name__)

DEFAULT_NAME = "default-scheduler"
PODS_PER_YIELD = 16  # pods scheduled back to back before the loop lets other tasks run (assumed pods keep the
# cache right meanwhile; informer events wait at most that long: ~1 ms)


def scheduler_name(pod: dict) -> str:
    return (pod.get("spec") or {}).get("schedulerName") or DEFAULT_NAME


def is_assigned(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_POD_PHASES


def unschedulable_status(pod: dict, message: str) -> dict | None:
    """A copy of ``pod`` with PodScheduled=False/Unschedulable/``message``, or None if it says so already."""
    status = pod.get("status") or {}
    conds = status.get("conditions") or []
    old = get_condition(pod, "PodScheduled")
    if old and old.get("status") == "False" and old.get("reason") == "Unschedulable" and old.get("message") == message:
        return None
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": old.get("lastTransitionTime") if old and old.get("status") == "False" else now()}
    new_conds = [c for c in conds if c.get("type") != "PodScheduled"] + [cond]
    return {**pod, "status": {**status, "phase": status.get("phase") or "Pending", "conditions": new_conds}}


class _SideEffects:
    """Best-effort writes (events, status) off the hot path: a bounded queue drained by a few
    workers; when full, new work is dropped (client-go's event broadcaster does the same)."""

    def __init__(self, workers: int = 4, size: int = 1000) -> None:
        self._queue: asyncio.Queue[Callable[[], Awaitable[Any]]] = asyncio.Queue(size)
        self._workers = [asyncio.create_task(self._work()) for _ in range(workers)]
        self.dropped = 0

    def submit(self, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            self._queue.put_nowait(fn)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _work(self) -> None:
        while True:
            fn = await self._queue.get()
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("side effect failed: %s", e)
            finally:
                self._queue.task_done()

    async def close(self, timeout: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except asyncio.TimeoutError:
            pass
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


def single_attempt(client: Any) -> Any:
    """``client`` sharing its connection, but whose requests are sent once and wait the whole timeout: a bind
    that an overloaded API server answers late is not sent again and again (each repeat costs the server a
    request to answer "in progress"); one that fails goes back to the scheduling queue, as kube-scheduler's."""
    if not hasattr(client, "retries"):
        return client
    out = copy.copy(client)
    out.retries = 0
    return out


class Scheduler:
    def __init__(self, client: Any, name: str = DEFAULT_NAME, clock: Clock | None = None,
                 initial_backoff: float = 1.0, max_backoff: float = 10.0, bind_concurrency: int = 256,
                 assume_ttl: float = 30.0, framework: Framework | None = None, seed: int | None = None) -> None:
        self.client = client
        self.bind_client = single_attempt(client)
        self.name = name
        self.clock = clock or Clock()
        self.cache = SchedulerCache(assume_ttl)
        self.queue = SchedulingQueue(self.clock, initial_backoff, max_backoff)
        self.framework = framework or Framework(DEFAULT_FILTERS, DEFAULT_SCORES, DEFAULT_BINDERS, handle=self,
                                                seed=seed)
        self.recorder = EventRecorder(client, name)
        self.factory = SharedInformerFactory(client)
        self.pods = self.factory.informer("pods")
        self.nodes = self.factory.informer("nodes")
        self.bind_concurrency = bind_concurrency
        self.scheduled = 0
        self._binding: set[asyncio.Task] = set()
        self._bind_slots: asyncio.Semaphore | None = None
        self._effects: _SideEffects | None = None
        self._tasks: list[asyncio.Task] = []
        self.metrics = telemetry.metrics(SchedulerMetrics)  # None: metrics off

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, sync_timeout: float | None = 60.0) -> None:
        self._bind_slots = asyncio.Semaphore(self.bind_concurrency)
        self._effects = _SideEffects()
        self.nodes.add_handler(self._node_changed, lambda old, new: self._node_changed(new), self._node_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        await self.factory.start()
        if not await self.factory.wait_for_cache_sync(sync_timeout):
            raise TimeoutError(f"{self.name}: caches did not sync")
        self._tasks = [asyncio.create_task(self._loop(), name=f"{self.name}-loop"),
                       asyncio.create_task(self._housekeeping(), name=f"{self.name}-housekeeping")]
        for t in self._tasks:
            t.add_done_callback(_log_crash)
        log.info("%s: started (%d nodes, %d pods cached)", self.name, self.cache.nodes.num_nodes, len(self.pods))

    async def stop(self) -> None:
        self.queue.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._binding:
            await asyncio.wait(self._binding, timeout=10.0)
        if self._effects is not None:
            await self._effects.close()
        await self.factory.stop()

    # ---- informer handlers: events become cache entries and queue entries ----------------------

    def _responsible(self, pod: dict) -> bool:
        return (not is_assigned(pod) and scheduler_name(pod) == self.name
                and not (pod.get("metadata") or {}).get("deletionTimestamp") and not is_terminal(pod))

    def _pod_added(self, pod: dict) -> None:
        if is_assigned(pod):
            if not is_terminal(pod):
                self.cache.add_pod(pod)
        elif self._responsible(pod):
            info = PodInfo.of(pod)
            if not self.cache.is_assumed(info.key):
                self.queue.add(info)

    def _pod_updated(self, old: dict, new: dict) -> None:
        key = subjects.object_key((new["metadata"].get("namespace")), new["metadata"]["name"])
        if is_assigned(new):
            self.queue.delete(key)
            if is_terminal(new):
                self.cache.remove_pod(key)
                if not is_terminal(old):
                    self.queue.move_all_to_active()
            else:
                self.cache.add_pod(new)
        elif self._responsible(new):
            if self.cache.is_assumed(key) and key not in self.queue:
                return
            changed = old.get("spec") != new.get("spec") or \
                (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
            self.queue.update(PodInfo.of(new), spec_changed=changed)
        else:
            self.queue.delete(key)

    def _pod_deleted(self, pod: dict) -> None:
        key = subjects.object_key(pod["metadata"].get("namespace"), pod["metadata"]["name"])
        self.queue.delete(key)
        if is_assigned(pod) or self.cache.node_of(key) is not None:
            self.cache.remove_pod(key)
            self.queue.move_all_to_active()

    def _node_changed(self, node: dict) -> None:
        if self.cache.set_node(node):
            self.queue.move_all_to_active()

    def _node_deleted(self, node: dict) -> None:
        self.cache.remove_node(node["metadata"]["name"])

    # ---- the scheduling loop ---------------------------------------------------------------------

    async def _loop(self) -> None:
        done = 0
        while True:
            q = await self.queue.pop()
            if q is None:
                return
            try:
                await self.schedule_one(q)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: scheduling %s failed", self.name, q.key)
                self.queue.add_backoff(q)
            done += 1
            if done % PODS_PER_YIELD == 0:
                # let informers and binds run: the binds of these pods start together, and their requests
                # leave in one write to the bus instead of one each
                await asyncio.sleep(0)

    def _current(self, q: QueuedPod) -> PodInfo | None:
        """The pod as the cache shows it now, if it is still ours to schedule."""
        cur = self.pods.get_by_key(q.key)
        if cur is None or not self._responsible(cur) or self.cache.is_assumed(q.key):
            return None
        if (cur.get("metadata") or {}).get("uid", "") != q.pod.uid:
            return None
        if cur is not q.pod.obj:
            q.pod = PodInfo.of(cur)
        return q.pod

    async def schedule_one(self, q: QueuedPod) -> None:
        pod = self._current(q)
        if pod is None:
            self.queue.done(q.key)
            return
        start = time.perf_counter()
        state = CycleState()
        try:
            node = self.framework.select_host(state, pod, self.cache.nodes)
        except FitError as e:
            self._failed(q, pod, e.message(), unschedulable=True, start=start)
            return
        except SchedulingError as e:
            self._failed(q, pod, str(e), unschedulable=False, start=start)
            return
        self.cache.assume(pod, node)
        st = self.framework.reserve(state, pod, node)
        if not st.ok:
            self.cache.forget(pod.key)
            self._failed(q, pod, st.message, unschedulable=False, start=start)
            return
        assert self._bind_slots is not None
        await self._bind_slots.acquire()
        task = asyncio.create_task(self._bind(q, pod, node, state, start))
        self._binding.add(task)
        task.add_done_callback(self._binding.discard)

    async def _bind(self, q: QueuedPod, pod: PodInfo, node: str, state: CycleState, start: float = 0.0) -> None:
        try:
            st = await self.framework.bind(state, pod, node)
        except Exception as e:  # a plugin bug must not leak the assumed pod
            st = None
            log.exception("%s: binding %s failed", self.name, pod.key)
            err = str(e)
        finally:
            assert self._bind_slots is not None
            self._bind_slots.release()
        if st is not None and st.ok:
            self.cache.finish_binding(pod.key, self.clock.now())
            self.queue.done(pod.key)
            self.scheduled += 1
            self._observe(SCHEDULED, start)
            self._event(pod.obj, NORMAL, "Scheduled", f"Successfully assigned {pod.namespace}/{pod.name} to {node}")
            return
        self.cache.forget(pod.key)
        self.framework.unreserve(state, pod, node)
        self._failed(q, pod, st.message if st is not None else err, unschedulable=False, start=start)

    def _observe(self, result: str, start: float | None) -> None:
        if self.metrics is not None and start:
            self.metrics.observe(result, self.name, time.perf_counter() - start)

    def _failed(self, q: QueuedPod, pod: PodInfo, message: str, unschedulable: bool,
                start: float | None = None) -> None:
        log.info("%s: unable to schedule %s: %s", self.name, pod.key, message)
        self._observe(UNSCHEDULABLE if unschedulable else ERROR, start)
        if unschedulable:
            self.queue.add_unschedulable(q)
        else:
            self.queue.add_backoff(q)
        self._event(pod.obj, WARNING, "FailedScheduling", message)
        if unschedulable:
            assert self._effects is not None
            self._effects.submit(lambda: self._write_unschedulable(pod.key, message))

    def _event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        assert self._effects is not None
        self._effects.submit(lambda: self.recorder.event(obj, type_, reason, message))

    async def _write_unschedulable(self, key: str, message: str) -> None:
        cur = self.pods.get_by_key(key)
        if cur is None or is_assigned(cur):
            return
        new = unschedulable_status(cur, message)
        if new is not None:
            try:
                await self.client.update_status(new)
            except (errors.Conflict, errors.NotFound):
                pass  # changed or gone meanwhile: the next attempt writes again if needed

    async def _housekeeping(self, period: float = 1.0, report_every: int = 5) -> None:
        last, ticks = None, 0
        while True:
            await asyncio.sleep(period)
            if self.cache.cleanup_expired(self.clock.now()):
                self.queue.move_all_to_active()
            self.queue.flush()
            ticks += 1
            if ticks % report_every == 0:
                stats = (self.scheduled, tuple(self.queue.counts().items()), len(self._binding))
                if stats != last:
                    log.info("%s: %d scheduled; queue %s; %d binding; %d events dropped", self.name, stats[0],
                             dict(stats[1]), stats[2], self._effects.dropped if self._effects else 0)
                    last = stats


def _log_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())


def lease_name(name: str) -> str:
    """The Lease a scheduler holds to act: ``kube-scheduler`` for the default one, else its name."""
    return "kube-scheduler" if name == DEFAULT_NAME else name


async def run(server_url: str, stop: asyncio.Event, name: str = DEFAULT_NAME, election: ElectionConfig | None = None,
              **kw: Any) -> None:
    """Run a scheduler named ``name`` until ``stop`` is set (the ``scheduler`` component); it
    schedules only while it holds its Lease in kube-system (``master.leaderelection``; ``election``
    defaults to the environment's ``K8N_LEADER_ELECT_*``)."""
    from bus.client import ApiClient
    from master.leaderelection import run_leader_elected

    client = await ApiClient.connect(server_url, Identity(roles.SCHEDULER))

    async def lead(lead_stop: asyncio.Event) -> None:
        sched = Scheduler(client, name, **kw)
        try:
            await sched.start(sync_timeout=None)
            await lead_stop.wait()
        finally:
            await sched.stop()

    try:
        async with telemetry.publishing(client.nc, roles.SCHEDULER):
            await run_leader_elected(client, lease_name(name), stop, lead, config=election)
    finally:
        await client.close()
