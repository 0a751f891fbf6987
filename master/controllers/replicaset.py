"""Replication: ReplicaSet (apps/v1) and ReplicationController (v1), one reconcile for both kinds.

Keeps exactly ``spec.replicas`` active pods (not terminating, not Succeeded/Failed) matching the
selector, like Kubernetes' ReplicaSetController: claims pods (adopts matching orphans, releases
owned pods that stopped matching, never touches pods another controller owns), creates from the
template in slow-start batches, deletes the surplus in Kubernetes' order, guards both with
expectations so a lagging cache never duplicates, and reports status through the status
subresource (``ReplicaFailure`` condition on create/delete errors). An owner being deleted is
left alone (the garbage collector handles its pods); only its status is kept true.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, NamedTuple

from bus import errors, subjects
from bus.controller import Controller
from bus.events import NORMAL, WARNING
from bus.expectations import Expectations
from bus.informer import BY_OWNER, Informer, deep_copy, key_of
from bus.labels import Selector, nothing, selector_from_label_selector, selector_from_map
from bus.meta import TERMINAL_POD_PHASES, format_time, labels_of, namespace_of, timestamp, uid_of
from bus.workqueue import Result, TerminalError
from master.controllers._ownership import controller_ref, deleting, owner_ref_to, set_owner_refs

log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # most pods created or deleted in one sync, as Kubernetes' burstReplicas
IN_FLIGHT = 100  # most pod creates and deletes awaiting the API at once, all owners together: what a
# controller manager's client rate limit does in Kubernetes, so node leases and status writes never wait
# behind thousands of queued creates
KINDS = {"ReplicaSet": ("replicasets", "replicaset-controller"),
         "ReplicationController": ("replicationcontrollers", "replication-controller")}
_ORPHANS = "replication_orphans_by_namespace"  # pods without a controller, by namespace


def setup(ctx) -> list:
    pods = ctx.informers.informer("pods")
    workers = ctx.settings.replicaset_workers
    return [ReplicaManager(ctx.client, kind, ctx.informers.informer(plural), pods, ctx.recorder(component),
                           workers).controller
            for kind, (plural, component) in KINDS.items()]


# ---- pure logic ------------------------------------------------------------------------------


def selector_of(owner: dict) -> Selector:
    """The owner's pod selector; a ReplicationController's empty selector selects nothing."""
    sel = (owner.get("spec") or {}).get("selector")
    if owner.get("kind") == "ReplicationController":
        return selector_from_map(sel) if sel else nothing()
    return selector_from_label_selector(sel)


def is_active(pod: dict) -> bool:
    return not deleting(pod) and (pod.get("status") or {}).get("phase") not in TERMINAL_POD_PHASES


def _ready_condition(pod: dict) -> dict | None:
    """The pod's Ready condition when it is True, else None."""
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c if c.get("status") == "True" else None
    return None


def ready_since(pod: dict) -> float | None:
    """When the pod became Ready (epoch seconds), or None when it is not Ready."""
    c = _ready_condition(pod)
    return None if c is None else timestamp(c.get("lastTransitionTime"), 0.0)


def available_in(pod: dict, min_ready_seconds: int, now: float) -> float | None:
    """Seconds until the pod counts as available (0: it is), None when it is not Ready."""
    c = _ready_condition(pod)
    return None if c is None else _available_after(c, min_ready_seconds, now)


def _available_after(ready: dict, min_ready_seconds: int, now: float) -> float:
    """Seconds until a pod Ready since ``ready``'s transition counts as available (no time parsed without
    minReadySeconds)."""
    if min_ready_seconds <= 0:
        return 0.0
    return max(0.0, timestamp(ready.get("lastTransitionTime"), 0.0) + min_ready_seconds - now)


def _restarts(pod: dict) -> int:
    return max((int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: dict, on_same_node: int) -> tuple:
    """Sort key, lowest deleted first (Kubernetes' ActivePodsWithRanks): unscheduled before
    scheduled, Pending < Unknown < Running, not ready before ready, more pods of the owner on the
    same node first, ready for less time first, more restarts first, newest first."""
    since = ready_since(pod)
    return (1 if (pod.get("spec") or {}).get("nodeName") else 0,
            _PHASE_ORDER.get((pod.get("status") or {}).get("phase"), 3),
            0 if since is None else 1,
            -on_same_node,
            -(since or 0.0),
            -_restarts(pod),
            -timestamp((pod.get("metadata") or {}).get("creationTimestamp"), 0.0))


def pods_to_delete(pods: list[dict], n: int) -> list[dict]:
    """The ``n`` pods to delete out of ``pods`` (the owner's active pods)."""
    if n >= len(pods):
        return list(pods)
    per_node: dict[str, int] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName") or ""
        per_node[node] = per_node.get(node, 0) + 1
    ranked = sorted(pods, key=lambda p: deletion_rank(p, per_node[(p.get("spec") or {}).get("nodeName") or ""]))
    return ranked[:n]


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes 1, 2, 4, … adding up to ``count`` (Kubernetes' slowStartBatch)."""
    out, remaining = [], count
    size = min(remaining, initial)
    while size > 0:
        out.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return out


async def slow_start(count: int, fn: Callable[[], Awaitable[Any]], initial: int = 1) -> tuple[int, BaseException | None]:
    """Call ``fn`` ``count`` times, batch by batch (concurrently within a batch); stop after the
    first batch with a failure. Returns (successes, first error)."""
    ok = 0
    for size in slow_start_batches(count, initial):
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        ok += size - len(failed)
        if failed:
            return ok, failed[0]
    return ok, None


class PodFacts(NamedTuple):
    """What a reconcile needs of one pod, for one owner (kept while the cached pod is the same object)."""

    controller_uid: str | None  # the uid of the pod's controller, if any
    matches: bool  # the owner's selector selects the pod
    active: bool  # is_active
    fully_labeled: bool  # carries every label of the owner's template
    ready: dict | None  # the Ready condition when it is True


def pod_facts(pod: dict, selector: Selector, template_labels: dict) -> PodFacts:
    labels = labels_of(pod)
    return PodFacts((controller_ref(pod) or {}).get("uid"), selector.matches(labels), is_active(pod),
                    template_labels.items() <= labels.items(), _ready_condition(pod))


def compute_status(owner: dict, pods: list[dict], now: float,
                   failure: tuple[str, str] | None = None) -> tuple[dict, float | None]:
    """The owner's status from its active pods, and when to look again for a pod that will become
    available (minReadySeconds). ``failure`` (reason, message) sets the ReplicaFailure condition;
    without it the condition is removed."""
    wanted = labels_of((owner.get("spec") or {}).get("template") or {}).items()
    return status_of(owner, [(wanted <= labels_of(p).items(), _ready_condition(p)) for p in pods], now, failure)


def status_of(owner: dict, pods: list[tuple[bool, dict | None]], now: float,
              failure: tuple[str, str] | None = None) -> tuple[dict, float | None]:
    """:func:`compute_status` from each active pod's (fully labelled, True Ready condition or None)."""
    spec = owner.get("spec") or {}
    old = owner.get("status") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully = ready = available = 0
    recheck: float | None = None
    for full, cond in pods:
        fully += full
        if cond is None:
            continue
        ready += 1
        left = _available_after(cond, min_ready, now)
        if left <= 0:
            available += 1
        else:
            recheck = left if recheck is None else min(recheck, left)
    status: dict[str, Any] = {"replicas": len(pods), "fullyLabeledReplicas": fully, "readyReplicas": ready,
                              "availableReplicas": available,
                              "observedGeneration": int((owner.get("metadata") or {}).get("generation") or 1)}
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if failure is not None:
        existing = next((c for c in old.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        conditions.append(existing or {
            "type": "ReplicaFailure", "status": "True", "reason": failure[0], "message": failure[1],
            "lastTransitionTime": format_time(now)})
    if conditions:
        status["conditions"] = conditions
    return status, recheck


def pod_from_template(owner: dict) -> dict:
    meta = owner["metadata"]
    template = deep_copy((owner.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    pmeta = {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
             "ownerReferences": [owner_ref_to(owner)]}
    for k in ("labels", "annotations", "finalizers"):
        if tmeta.get(k):
            pmeta[k] = tmeta[k]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pmeta, "spec": template.get("spec") or {}}


class EventQueue:
    """Records events without holding up the work that caused them: Kubernetes' recorder hands
    events to a broadcaster and drops them when ``limit`` are already waiting, so a burst of pod
    creations is never paced by event writes."""

    def __init__(self, recorder: Any, limit: int = 1000) -> None:
        self.recorder = recorder
        self.limit = limit
        self.dropped = 0
        self._pending: set[asyncio.Future] = set()

    def event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        if len(self._pending) >= self.limit:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.info("events: %d waiting, %d dropped so far (%s)", len(self._pending), self.dropped, reason)
            return
        fut = asyncio.ensure_future(self.recorder.event(obj, type_, reason, message))
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)


def _orphan_index(pod: dict) -> list[str]:
    ns = namespace_of(pod)
    return [ns] if ns and controller_ref(pod) is None else []


# ---- the controller --------------------------------------------------------------------------


class ReplicaManager:
    def __init__(self, client: Any, kind: str, owners: Informer, pods: Informer, recorder: Any,
                 workers: int = 5, expectations: Expectations | None = None) -> None:
        self.client, self.kind, self.owners, self.pods, self.recorder = client, kind, owners, pods, recorder
        self.events = EventQueue(recorder)
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        # owner key -> (uid, generation, {id(pod): (pod, facts)}): what the last reconcile learnt of each pod
        self._facts: dict[str, tuple[str, int, dict[int, tuple[dict, PodFacts]]]] = {}
        self.plural = KINDS[kind][0]
        self.expectations = expectations or Expectations()
        self.controller = Controller(kind.lower(), self.reconcile, workers)
        self.controller.watches(owners)
        pods.add_index(_ORPHANS, _orphan_index)
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.controller.informers.append(pods)

    # -- pod events → owner keys (and expectations)

    def _owner_key(self, pod: dict) -> str | None:
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != self.kind or not ref.get("name"):
            return None
        key = subjects.object_key(pod["metadata"].get("namespace"), ref["name"])
        owner = self.owners.get_by_key(key)
        return key if owner is not None and uid_of(owner) == ref.get("uid") else None

    def _enqueue_matching(self, pod: dict) -> None:
        labels = labels_of(pod)
        for owner in self.owners.list(pod["metadata"].get("namespace")):
            try:
                if not deleting(owner) and selector_of(owner).matches(labels):
                    self.controller.queue.add(key_of(owner))
            except ValueError:
                continue

    def _pod_added(self, pod: dict) -> None:
        if deleting(pod):
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key:
            self.expectations.creation_observed(key)
            self.controller.queue.add(key)
        elif controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if old.get("metadata", {}).get("resourceVersion") == new.get("metadata", {}).get("resourceVersion"):
            return
        relabelled = labels_of(old) != labels_of(new)
        if deleting(new):
            self._pod_deleted(new)
            if relabelled:
                self._pod_deleted(old)
            return
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key and old_key != new_key:
            self.controller.queue.add(old_key)
        if new_key:
            self.controller.queue.add(new_key)
        elif controller_ref(new) is None and (relabelled or old_key):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: dict) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.deletion_observed(key, uid_of(pod))
            self.controller.queue.add(key)

    # -- reconcile

    async def reconcile(self, key: str) -> Result | None:
        owner = self.owners.get_by_key(key)
        if owner is None:
            self.expectations.delete(key)
            self._facts.pop(key, None)
            return None
        try:
            selector = selector_of(owner)
        except ValueError as e:
            raise TerminalError(f"{self.kind} {key}: invalid selector: {e}") from None
        active = [(p, f) for p, f in await self._claim(owner, key, selector) if f.active]
        pods = [p for p, _ in active]
        failure, error = None, None
        if not deleting(owner) and self.expectations.satisfied(key):
            failure, error = await self._manage(owner, key, pods)
        status, recheck = status_of(owner, [(f.fully_labeled, f.ready) for _, f in active], time.time(), failure)
        await self._write_status(owner, status)
        if error is not None:
            raise error
        return Result(requeue_after=recheck + 0.05) if recheck else None

    def _owned(self, owner: dict, key: str, selector: Selector) -> list[tuple[dict, PodFacts]]:
        """The cached pods with ``owner`` as their controller, with their facts (recomputed only
        for pods that changed since the last reconcile: most of a big owner's pods did not)."""
        meta = owner["metadata"]
        uid, generation = meta.get("uid"), int(meta.get("generation") or 0)
        last = self._facts.get(key)
        known = last[2] if last is not None and last[0] == uid and last[1] == generation else {}
        template_labels = labels_of((owner.get("spec") or {}).get("template") or {})
        facts: dict[int, tuple[dict, PodFacts]] = {}
        out = []
        for pod in self.pods.by_index(BY_OWNER, uid, ordered=False):
            seen = known.get(id(pod))
            f = seen[1] if seen is not None and seen[0] is pod else pod_facts(pod, selector, template_labels)
            facts[id(pod)] = (pod, f)
            if f.controller_uid == uid:
                out.append((pod, f))
        self._facts[key] = (uid, generation, facts)
        return out

    async def _claim(self, owner: dict, key: str, selector: Selector) -> list[tuple[dict, PodFacts]]:
        """The owner's pods (with their facts) after adopting matching orphans and releasing owned
        pods that no longer match (Kubernetes' PodControllerRefManager)."""
        ns, uid = owner["metadata"].get("namespace"), uid_of(owner)
        owned = self._owned(owner, key, selector)
        orphans = [p for p in self.pods.by_index(_ORPHANS, ns) if not deleting(p) and selector.matches(labels_of(p))]
        claimed, fresh_checked = [], False
        for pod, f in owned:
            if f.matches:
                claimed.append((pod, f))
            elif not deleting(owner):
                await self._set_refs(pod, [r for r in pod["metadata"]["ownerReferences"] if r.get("uid") != uid])
        if deleting(owner):
            return claimed
        template_labels = labels_of((owner.get("spec") or {}).get("template") or {})
        for pod in orphans:
            if not fresh_checked:
                await self._check_owner_fresh(owner)
                fresh_checked = True
            adopted = await self._set_refs(pod, list(pod["metadata"].get("ownerReferences") or [])
                                           + [owner_ref_to(owner)])
            if adopted is not None:
                claimed.append((adopted, pod_facts(adopted, selector, template_labels)))
        return claimed

    async def _check_owner_fresh(self, owner: dict) -> None:
        """Before adopting, make sure the owner read from the API (not the cache) is still this
        one and not being deleted (Kubernetes' RecheckDeletionTimestamp)."""
        meta = owner["metadata"]
        fresh = await self.client.get(self.plural, meta["name"], meta.get("namespace"))
        if uid_of(fresh) != meta.get("uid") or deleting(fresh):
            raise errors.conflict(self.plural, meta["name"], why="the owner changed or is being deleted; not adopting")

    async def _set_refs(self, pod: dict, refs: list[dict]) -> dict | None:
        try:
            return await set_owner_refs(self.client, "pods", pod, refs)
        except (errors.NotFound, errors.Invalid):
            return None  # the pod went (or is going) away

    async def _manage(self, owner: dict, key: str, pods: list[dict]) -> tuple[tuple[str, str] | None, Exception | None]:
        diff = len(pods) - int((owner.get("spec") or {}).get("replicas", 1) or 0)
        if diff < 0:
            n = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, n)
            ok, err = await slow_start(n, lambda: self._create_pod(owner))
            if n - ok > 0:  # failed or never tried: the informer will not see them
                self.expectations.lower_expectations(key, adds=n - ok)
            return (("FailedCreate", str(err)), err) if err is not None else (None, None)  # type: ignore[return-value]
        if diff > 0:
            victims = pods_to_delete(pods, min(diff, BURST_REPLICAS))
            self.expectations.expect_deletions(key, [uid_of(p) for p in victims])
            results = await asyncio.gather(*(self._delete_pod(owner, key, p) for p in victims), return_exceptions=True)
            err = next((r for r in results if isinstance(r, Exception)), None)
            return (("FailedDelete", str(err)), err) if err is not None else (None, None)
        return None, None

    async def _create_pod(self, owner: dict) -> None:
        try:
            async with self._in_flight:
                pod = await self.client.create(pod_from_template(owner))
        except errors.ApiError as e:
            self.events.event(owner, WARNING, "FailedCreate", f"Error creating: {e}")
            raise
        self.events.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    async def _delete_pod(self, owner: dict, key: str, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            async with self._in_flight:
                await self.client.delete("pods", meta["name"], meta.get("namespace"), propagation_policy="Background",
                                         preconditions={"uid": meta.get("uid")})
        except (errors.NotFound, errors.Conflict):
            self.expectations.deletion_observed(key, meta.get("uid"))
            return
        except errors.ApiError as e:
            self.expectations.deletion_observed(key, meta.get("uid"))
            self.events.event(owner, WARNING, "FailedDelete", f"Error deleting: {e}")
            raise
        self.events.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    async def _write_status(self, owner: dict, status: dict) -> None:
        if (owner.get("status") or {}) == status:
            return
        try:
            await self.client.update_status({**owner, "status": status})
        except errors.NotFound:
            pass
