"""Node lifecycle: node health from Leases, the NoExecute taints, and taint-based eviction.

- **Health** (controller ``nodelifecycle``, one key per Node): a node whose Lease in
  ``kube-node-lease`` has not been renewed for ``node-monitor-grace-period`` (8 s) — measured on
  this process's clock from when it last saw the Lease change — gets every condition set to
  ``Unknown`` (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status.") through the
  status subresource, and a ``NodeNotReady`` event. Taints follow the Ready condition:
  ``Unknown`` → ``node.kubernetes.io/unreachable:NoExecute``, ``False`` →
  ``node.kubernetes.io/not-ready:NoExecute``, ``True`` → neither (the agent posts Ready=True when it
  comes back). Taints are written with compare-and-set updates. As TaintNodesByCondition, the pressure
  conditions the agent measures (node.pressure) add NoSchedule taints while True:
  ``MemoryPressure`` → ``node.kubernetes.io/memory-pressure``, ``DiskPressure`` → ``…/disk-pressure``,
  ``PIDPressure`` → ``…/pid-pressure`` (DaemonSet pods tolerate them; the scheduler keeps other pods away).
- **Eviction** (controller ``taint-eviction``, one key per Pod): a pod on a node with NoExecute
  taints is deleted (gracefully, through the API) once its toleration time has passed since the
  taint's ``timeAdded``: the tolerationSeconds of its matching tolerations, forever when one
  matches without tolerationSeconds (DaemonSet pods), ``default-toleration-seconds`` (5 s) when
  none matches the unreachable/not-ready taints (Kubernetes' admission would add 300 s ones).
  Evictions go through a token bucket: ``node-eviction-rate`` (10/s) normally, the
  ``secondary-node-eviction-rate`` (0.1/s) when more than a third of the nodes (and at least two)
  are unhealthy, and none at all when more than ``unhealthy-zone-threshold`` (55 %) are: so many
  nodes down at once means the control plane is cut off, not the nodes (full disruption). When the
  full disruption ends every pod gets its default toleration afresh before being evicted.
  Each eviction is recorded as a ``TaintManagerEviction`` event on the pod.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

from bus import errors, subjects
from bus.controller import Controller
from bus.events import NORMAL
from bus.informer import BY_NODE, Informer, key_of
from bus.meta import format_time, set_condition
from bus.workqueue import Clock, Result
from master.controllers._lifecycle_util import (NO_EXECUTE, NOT_READY, UNREACHABLE, eviction_time, has_taint,
                                                ready_status)

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
PARTIAL_THRESHOLD = 0.33
NORMAL_STATE, PARTIAL, FULL = "Normal", "PartialDisruption", "FullDisruption"
NO_SCHEDULE = "NoSchedule"
# TaintNodesByCondition: the NoSchedule taint a condition calls for while it is True
CONDITION_TAINTS = {"MemoryPressure": "node.kubernetes.io/memory-pressure",
                    "DiskPressure": "node.kubernetes.io/disk-pressure",
                    "PIDPressure": "node.kubernetes.io/pid-pressure"}
UNKNOWN_REASON, UNKNOWN_MESSAGE = "NodeStatusUnknown", "Kubelet stopped posting node status."


def setup(ctx) -> list:
    nl = NodeLifecycle(
        ctx.client, ctx.informers.informer("nodes"), ctx.informers.informer("leases", namespace=LEASE_NAMESPACE),
        ctx.informers.informer("pods"), ctx.recorder("node-controller"),
        grace=ctx.settings.node_monitor_grace_period,
        default_toleration=ctx.settings.default_toleration_seconds,
        rates=(ctx.settings.node_eviction_rate, ctx.settings.secondary_node_eviction_rate),
        unhealthy_threshold=ctx.settings.unhealthy_zone_threshold)
    return [nl.monitor, nl.evictor]


# ---- pure pieces ---------------------------------------------------------------------------------


def disruption_state(total: int, unhealthy: int, threshold: float = 0.55) -> str:
    """``FullDisruption`` when more than ``threshold`` of the nodes are unhealthy, ``PartialDisruption``
    when more than a third (and at least two) are, else ``Normal``."""
    if total <= 0 or unhealthy <= 0:
        return NORMAL_STATE
    share = unhealthy / total
    if share > threshold:
        return FULL
    if unhealthy >= 2 and share > PARTIAL_THRESHOLD:
        return PARTIAL
    return NORMAL_STATE


class EvictionLimiter:
    """A token bucket (burst 1, like the node lifecycle controller's) whose rate can change."""

    def __init__(self, qps: float, burst: int = 1, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.qps, self.burst = qps, burst
        self.tokens = float(burst)
        self.last: float | None = None

    def _refill(self) -> None:
        now = self.clock.now()
        if self.last is not None and self.qps > 0:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now

    def set_rate(self, qps: float) -> None:
        if qps != self.qps:
            self._refill()
            self.qps = qps

    def try_accept(self) -> float:
        """0 when a token was taken, else seconds until one is available (inf: paused)."""
        self._refill()
        if self.qps <= 0:
            return math.inf
        if self.tokens >= 1 - 1e-9:  # float refills: 0.1 s * 10/s may come to 0.999…
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.qps


def unknown_conditions(node: dict, now: str) -> list[dict] | None:
    """The node's conditions all set to Unknown (as the node controller does), or None if they are."""
    conds = list((node.get("status") or {}).get("conditions") or [])
    if not any(c.get("type") == "Ready" for c in conds):
        conds.append({"type": "Ready"})
    if all(c.get("status") == "Unknown" for c in conds):
        return None
    for c in list(conds):
        new = {**c, "status": "Unknown", "reason": UNKNOWN_REASON, "message": UNKNOWN_MESSAGE}
        conds = set_condition(conds, new, now)
    return conds


def wanted_taints(node: dict, now: str) -> list[dict] | None:
    """The node's taints with unreachable/not-ready matching its Ready condition and the pressure NoSchedule ones
    its conditions (TaintNodesByCondition), None if unchanged."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    ready = ready_status(node)
    want = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready)
    out = [t for t in taints if not (t.get("key") in (UNREACHABLE, NOT_READY) and t.get("effect") == NO_EXECUTE
                                     and t.get("key") != want)]
    if want and not has_taint(node, want):
        out.append({"key": want, "effect": NO_EXECUTE, "timeAdded": now})
    pressure = {CONDITION_TAINTS[c["type"]] for c in (node.get("status") or {}).get("conditions") or []
                if c.get("type") in CONDITION_TAINTS and c.get("status") == "True"}
    out = [t for t in out if not (t.get("key") in CONDITION_TAINTS.values() and t.get("effect") == NO_SCHEDULE
                                  and t.get("key") not in pressure)]
    for key in sorted(pressure):
        if not has_taint(node, key, NO_SCHEDULE):
            out.append({"key": key, "effect": NO_SCHEDULE})
    return out if out != taints else None


@dataclass
class _Health:
    renew: str | None
    observed: float


# ---- the controllers -----------------------------------------------------------------------------


class NodeLifecycle:
    def __init__(self, client, nodes: Informer, leases: Informer, pods: Informer, recorder,
                 grace: float = 8.0, default_toleration: float = 5.0, rates: tuple[float, float] = (10.0, 0.1),
                 unhealthy_threshold: float = 0.55, clock: Clock | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.client, self.nodes, self.leases, self.pods, self.recorder = client, nodes, leases, pods, recorder
        self.grace, self.default_toleration = float(grace), float(default_toleration)
        self.rates, self.threshold = rates, float(unhealthy_threshold)
        self.clock, self.wall = clock or Clock(), wall
        self.limiter = EvictionLimiter(rates[0], clock=self.clock)
        self.health: dict[str, _Health] = {}
        self.state = NORMAL_STATE
        self.resumed_at = 0.0  # wall time the last full disruption ended

        self.monitor = Controller("nodelifecycle", self.reconcile_node)
        self.monitor.watches(nodes)
        self.monitor.watches(leases, lambda lease: subjects.object_key(None, lease["metadata"]["name"]))
        self.evictor = Controller("taint-eviction", self.reconcile_pod)
        self.evictor.watches(pods)
        nodes.add_handler(on_add=self._node_pods, on_update=lambda old, new: self._node_pods(new))
        self.evictor.informers.append(nodes)
        self._not_ready: set[str] = set()  # kept by the informer's events: no scan of every node per reconcile
        nodes.add_handler(on_add=self._count, on_update=lambda old, new: self._count(new), on_delete=self._uncount)

    def _count(self, node: dict) -> None:
        name = node["metadata"]["name"]
        if ready_status(node) != "True":
            self._not_ready.add(name)
        else:
            self._not_ready.discard(name)

    def _uncount(self, node: dict) -> None:
        self._not_ready.discard(node["metadata"]["name"])

    def _node_pods(self, node: dict) -> None:
        if node.get("spec", {}).get("taints") or self.state == FULL:
            for key in self.pods.index_keys(BY_NODE, node["metadata"]["name"]):
                self.evictor.queue.add(key)

    # ---- disruption ----------------------------------------------------------------------------

    def update_state(self) -> str:
        total, unhealthy = len(self.nodes), len(self._not_ready)
        state = disruption_state(total, unhealthy, self.threshold)
        if state != self.state:
            log.warning("node health: %d of %d nodes unhealthy: %s -> %s", unhealthy, total, self.state, state)
            if self.state == FULL:
                self.resumed_at = self.wall()
                now = self.clock.now()
                for h in self.health.values():  # as Kubernetes: a fresh grace period for every node
                    h.observed = now
            self.state = state
        self.limiter.set_rate({NORMAL_STATE: self.rates[0], PARTIAL: self.rates[1], FULL: 0.0}[state])
        return state

    # ---- health --------------------------------------------------------------------------------

    async def reconcile_node(self, key: str) -> Result | None:
        node = self.nodes.get_by_key(key)
        if node is None:
            self.health.pop(key, None)
            self.update_state()
            return None
        name = node["metadata"]["name"]
        lease = self.leases.get(LEASE_NAMESPACE, name)
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        now = self.clock.now()
        h = self.health.get(key)
        if h is None or h.renew != renew:
            h = self.health[key] = _Health(renew, now)
        age = now - h.observed
        stamp = format_time(self.wall())
        if age > self.grace:
            conds = unknown_conditions(node, stamp)
            if conds is not None:
                node = await self.client.update({**node, "status": {**node.get("status", {}), "conditions": conds}},
                                                subresource="status")
                log.warning("node %s: lease not renewed for %.1fs: Ready=Unknown", name, age)
                await self.recorder.event(node, NORMAL, "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        taints = wanted_taints(node, stamp)
        if taints is not None:
            await self.client.update({**node, "spec": {**node.get("spec", {}), "taints": taints}})
            log.info("node %s: taints now %s", name, [t.get("key") for t in taints])
        self.update_state()
        return Result(requeue_after=self.grace - age + 0.05 if age <= self.grace else self.grace)

    # ---- eviction ------------------------------------------------------------------------------

    async def reconcile_pod(self, key: str) -> Result | None:
        pod = self.pods.get_by_key(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return None
        due = eviction_time(pod, self.nodes.get(None, node_name), self.default_toleration)
        if due is None:
            return None
        if self.resumed_at:
            due = max(due, self.resumed_at + self.default_toleration)
        wait = due - self.wall()
        if wait > 0:
            return Result(requeue_after=wait + 0.01)
        if self.update_state() == FULL:
            return Result(requeue_after=1.0)  # paused; looked at again until the disruption ends
        delay = self.limiter.try_accept()
        if delay > 0:
            return Result(requeue_after=min(delay, 1.0))
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
        except (errors.NotFound, errors.Conflict):
            return None
        log.info("evicted pod %s from node %s", key_of(pod), node_name)
        await self.recorder.event(pod, NORMAL, "TaintManagerEviction", f"Marking for deletion Pod {meta['namespace']}/{meta['name']}")
        return None
