"""HorizontalPodAutoscaler (autoscaling/v2), computed the way Kubernetes' HPA controller does.

Metrics: the node agents publish PodMetrics on ``k8n.metrics.pod.<node>.<ns>.<pod>``; this
controller keeps the latest ones (``bus.metrics.MetricsCache``, as the gateway's metrics.k8s.io does: a pod's
sample counts only from the node it is bound to, while fresh: within 3 of its windows, so no stale sample is averaged
in) and reads them as cpu in millicores and memory in bytes, with their timestamp and window.

An HPA is evaluated every ``hpa-sync-period`` (15 s) as in Kubernetes, and also as soon as a sample arrives for a pod
its target's scale selector picks (an index pod → HPAs, filled from the selectors the last evaluations read and the
pod informer; a cheap dict lookup per sample; repeated adds collapse in the work queue, and sample-driven evaluations
of one HPA are at least ``min_interval`` (1 s) apart). So a load change reaches the scale request about one metrics
period (``--metrics-seconds``, down to 1 s) after it happens instead of a 15 s sync over a 15–60 s scrape. The
stabilization windows and behavior policies are in seconds of this controller's clock whatever the rate of
evaluations; status changes that are only new ``currentMetrics`` are written at most once per sync period, and a
repeated warning event at most once per sync period. Per evaluation:

1. read the target's scale subresource (Deployment, ReplicaSet, ReplicationController, StatefulSet);
2. for each ``Resource`` metric (cpu/memory; ``Utilization`` of requests or ``AverageValue``) run
   the replica calculator over the pods the scale selector picks: pods being deleted or Failed
   are ignored, Pending and (for cpu) not-yet-ready pods are unready, pods without a sample are
   missing; a ratio within the tolerance (0.1) keeps the count; missing pods count as 100 % of
   their request when scaling down and 0 when scaling up, unready pods as 0 when scaling up, and
   the result never flips direction (Kubernetes' ``replica_calculator``). A pod without a request
   is reported (``ScalingActive=False``, ``FailedGetResourceMetric``: "missing request for cpu"),
   never guessed;
3. the largest proposal is stabilised (scale-down window: ``behavior.scaleDown.stabilizationWindowSeconds``,
   default ``hpa-downscale-stabilization``, 300 s) and limited by the behavior policies (defaults:
   up by max(4 pods, 100 %) per 15 s, down by 100 % per 15 s) and min/max replicas;
4. a changed count is written through the scale subresource (event ``SuccessfulRescale``); status
   (currentReplicas, desiredReplicas, currentMetrics, lastScaleTime, conditions AbleToScale,
   ScalingActive, ScalingLimited, observedGeneration) is written when it changes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from bus import errors, subjects
from bus.controller import Controller
from bus.events import NORMAL, WARNING
from bus.informer import Informer, deep_copy
from bus.labels import Selector, parse_selector
from bus.meta import format_time, get_condition, key_of, parse_duration, set_condition, timestamp
from bus.metrics import MetricsCache
from bus.quantity import cpu_millis, format_quantity, memory_bytes
from bus.resources import by_kind
from bus.workqueue import Clock, Result, WorkQueue

log = logging.getLogger(__name__)

TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
DELAY_OF_INITIAL_READINESS = 30.0
MIN_INTERVAL = 1.0  # seconds between two sample-driven evaluations of one HPA
PRUNE_EVERY = 30.0  # seconds between sweeps of the samples of pods that are gone
TARGETS = {"Deployment": "deployments", "ReplicaSet": "replicasets", "ReplicationController": "replicationcontrollers",
           "StatefulSet": "statefulsets"}


def scale_target(ref: dict) -> Any:
    """What ``scaleTargetRef`` names: a built-in workload, or any resource with a scale subresource (a custom
    resource whose definition has one, found by its apiVersion and kind)."""
    plural = TARGETS.get(ref.get("kind") or "")
    if plural is not None:
        return plural
    res = by_kind(ref.get("kind") or "", ref.get("apiVersion") or None)
    return res if res is not None and "scale" in res.subresources else None


def setup(ctx) -> list:
    return [HPAController(ctx.client, ctx.informers.informer("horizontalpodautoscalers"), ctx.informers.informer("pods"),
                          ctx.recorder("horizontal-pod-autoscaler"), sync_period=ctx.settings.hpa_sync_period,
                          downscale_window=ctx.settings.hpa_downscale_stabilization)]


class MetricError(Exception):
    """A metric that cannot be computed: ``reason`` for the ScalingActive condition."""

    def __init__(self, message: str, reason: str = "FailedGetResourceMetric") -> None:
        super().__init__(message)
        self.reason = reason


# ---- metrics off the bus -------------------------------------------------------------------------


@dataclass
class Sample:
    cpu: int  # millicores
    memory: int  # bytes
    timestamp: float  # epoch seconds
    window: float

    def value(self, resource: str) -> int:
        return self.cpu if resource == "cpu" else self.memory


def sample_of(pm: dict) -> Sample:
    """A PodMetrics (metrics.k8s.io/v1beta1 shape) summed over its containers."""
    cpu = mem = 0
    for c in pm.get("containers") or []:
        usage = c.get("usage") or {}
        cpu += cpu_millis(usage.get("cpu") or 0)
        mem += memory_bytes(usage.get("memory") or 0)
    return Sample(cpu, mem, timestamp(pm.get("timestamp")) or time.time(), parse_duration(pm.get("window") or "0s"))


class MetricsStore:
    """The pods' fresh samples off the bus: within 3 windows of their arrival (no 30 s floor as ``kubectl top``
    has), so a pod whose samples stopped counts as missing rather than by its last value."""

    def __init__(self, cache: MetricsCache | None = None) -> None:
        self.cache = cache or MetricsCache()
        self.cache.min_freshness = 0.0
        self._pruned = self.cache.clock()

    def for_pods(self, pods: list[dict]) -> dict[str, Sample]:
        """Fresh samples of ``pods`` (from the node each is bound to) by pod name."""
        out = {}
        if self.cache.clock() - self._pruned >= PRUNE_EVERY:
            self._pruned = self.cache.clock()
            self.cache.prune()  # forgets samples of pods that are gone
        for p in pods:
            m = p["metadata"]
            s = self.cache.pod(m["namespace"], m["name"], (p.get("spec") or {}).get("nodeName"))
            if s is not None:
                out[m["name"]] = sample_of(s.doc)
        return out


# ---- the replica calculator (pure) ---------------------------------------------------------------


def pod_request(pod: dict, resource: str) -> int:
    """Sum of the containers' requests (millicores or bytes); MetricError if one has none."""
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        req = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        if req is None:
            raise MetricError(f"failed to get {resource} utilization: missing request for {resource} in container "
                              f"{c.get('name')} of Pod {pod['metadata']['name']}")
        total += cpu_millis(req) if resource == "cpu" else memory_bytes(req)
    return total


def group_pods(pods: list[dict], metrics: dict[str, Sample], resource: str, now: float,
               cpu_init: float = CPU_INITIALIZATION_PERIOD, initial_delay: float = DELAY_OF_INITIAL_READINESS
               ) -> tuple[int, set[str], set[str], set[str]]:
    """(ready count, unready, missing, ignored) as Kubernetes' ``groupPods``."""
    ready, unready, missing, ignored = 0, set(), set(), set()
    for pod in pods:
        name, status = pod["metadata"]["name"], pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") == "Failed":
            ignored.add(name)
            continue
        if status.get("phase") == "Pending":
            unready.add(name)
            continue
        sample = metrics.get(name)
        if sample is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond, start = get_condition(pod, "Ready"), timestamp(status.get("startTime"))
            if cond is None or start is None:
                is_unready = True
            else:
                ltt = timestamp(cond.get("lastTransitionTime")) or 0.0
                if start + cpu_init > now:
                    is_unready = cond.get("status") == "False" or sample.timestamp < ltt + sample.window
                else:
                    is_unready = cond.get("status") == "False" and start + initial_delay > ltt
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def utilization_ratio(usage: dict[str, float], requests: dict[str, int], target: int) -> tuple[float, int, float]:
    """(ratio to target, utilization %, average raw usage) over the pods that have both."""
    used = sum(v for k, v in usage.items() if k in requests)
    requested = sum(requests[k] for k in usage if k in requests)
    if requested == 0:
        raise MetricError("failed to get utilization: no requests for the pods with metrics")
    util = int(used * 100 / requested)
    return util / target, util, used / len(usage)


def _calculate(current: int, pods: list[dict], metrics: dict[str, Sample], resource: str, now: float,
               ratio_of: Callable[[dict[str, float]], float], fallback: Callable[[str], float],
               tolerance: float) -> tuple[int, dict[str, float]]:
    """The shared flow of Kubernetes' GetResourceReplicas / calcPlainMetricReplicas: (replicas, the
    usage of the ready pods, from which the reported utilization is computed)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count", "InvalidSelector")
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, now)
    usage = {k: float(s.value(resource)) for k, s in metrics.items() if k not in ignored and k not in unready}
    if not usage:
        raise MetricError(f"failed to get {resource} utilization: did not receive metrics for targeted pods "
                          "(pods might be unready)")
    ratio, measured = ratio_of(usage), dict(usage)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current, measured
        return math.ceil(ratio * ready), measured
    if ratio != 1.0:  # exactly on target: missing pods are left out, as Kubernetes does
        for name in missing:
            usage[name] = fallback(name) if ratio < 1.0 else 0.0
    if scale_up_with_unready:
        for name in unready:
            usage[name] = 0.0
    new_ratio = ratio_of(usage)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current, measured
    replicas = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current, measured
    return replicas, measured


def resource_replicas(current: int, target_util: int, resource: str, pods: list[dict], metrics: dict[str, Sample],
                      now: float, tolerance: float = TOLERANCE) -> tuple[int, int, float]:
    """Utilization target: (replicas, current utilization %, average usage)."""
    requests = {p["metadata"]["name"]: pod_request(p, resource) for p in pods}
    replicas, measured = _calculate(current, pods, metrics, resource, now,
                                    lambda u: utilization_ratio(u, requests, target_util)[0],
                                    lambda name: requests[name] * max(100, target_util) / 100, tolerance)
    _, util, avg = utilization_ratio(measured, requests, target_util)
    return replicas, util, avg


def average_value_replicas(current: int, target: float, resource: str, pods: list[dict], metrics: dict[str, Sample],
                           now: float, tolerance: float = TOLERANCE) -> tuple[int, float]:
    """AverageValue target (millicores or bytes): (replicas, average usage)."""
    replicas, measured = _calculate(current, pods, metrics, resource, now,
                                    lambda u: sum(u.values()) / len(u) / target, lambda _name: target, tolerance)
    return replicas, sum(measured.values()) / len(measured)


# ---- behavior: stabilization and rate limits (pure) ----------------------------------------------


def default_behavior(downscale_window: float) -> dict:
    return {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                     {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": downscale_window, "selectPolicy": "Max",
                          "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}


def behavior_of(spec: dict, downscale_window: float) -> dict:
    d = default_behavior(downscale_window)
    b = spec.get("behavior") or {}
    out = {}
    for direction in ("scaleUp", "scaleDown"):
        rules = {k: v for k, v in (b.get(direction) or {}).items() if v is not None}
        out[direction] = {**d[direction], **rules}
    return out


@dataclass
class History:
    """Per-HPA memory: recent recommendations and scale events, (time, value) pairs."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)


def stabilize(h: History, now: float, desired: int, current: int, up_window: float,
              down_window: float) -> tuple[int, str, str]:
    """Kubernetes' ``stabilizeRecommendationWithBehaviors``."""
    up, down = desired, desired
    for t, rec in h.recommendations:
        if t > now - up_window:
            up = min(up, rec)
        if t > now - down_window:
            down = max(down, rec)
    rec = max(current, up)
    rec = min(rec, down)
    keep = max(up_window, down_window)
    h.recommendations = [(t, r) for t, r in h.recommendations if t > now - keep] + [(now, desired)]
    if desired >= current:
        return rec, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
    return rec, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"


def _changed(events: list[tuple[float, int]], now: float, period: float) -> int:
    return sum(n for t, n in events if t > now - period)


def scale_limit(current: int, h: History, now: float, rules: dict, up: bool) -> int:
    """The scale-up (or -down) limit of the behavior ``rules``' policies over their periods."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    proposals = []
    for p in rules.get("policies") or []:
        period = float(p.get("periodSeconds") or 15)
        start = current - _changed(h.up_events, now, period) + _changed(h.down_events, now, period)
        v = int(p.get("value") or 0)
        if p.get("type") == "Pods":
            proposals.append(start + v if up else start - v)
        elif up:
            proposals.append(math.ceil(start * (1 + v / 100)))
        else:
            proposals.append(int(start * (1 - v / 100)))
    if not proposals:
        return current
    want_most = select != "Min"
    return (max if want_most == up else min)(proposals)


def limit_rate(h: History, now: float, desired: int, current: int, min_r: int, max_r: int,
               behavior: dict) -> tuple[int, str, str]:
    """Kubernetes' ``convertDesiredReplicasWithBehaviorRate``: (replicas, reason, message)."""
    if desired > current:
        limit = max(scale_limit(current, h, now, behavior["scaleUp"], True), current)
        if max_r > limit:
            allowed, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
        else:
            allowed, reason, msg = max_r, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
        if desired > allowed:
            return allowed, reason, msg
    elif desired < current:
        limit = min(scale_limit(current, h, now, behavior["scaleDown"], False), current)
        if min_r < limit:
            allowed, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            allowed, reason, msg = min_r, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
        if desired < allowed:
            return allowed, reason, msg
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def record_scale(h: History, now: float, old: int, new: int, behavior: dict) -> None:
    for events, direction in ((h.up_events, "scaleUp"), (h.down_events, "scaleDown")):
        longest = max([float(p.get("periodSeconds") or 15) for p in behavior[direction].get("policies") or []] or [15])
        events[:] = [(t, n) for t, n in events if t > now - longest]
    if new > old:
        h.up_events.append((now, new - old))
    elif new < old:
        h.down_events.append((now, old - new))


# ---- the controller ------------------------------------------------------------------------------


class HPAController:
    name = "hpa"

    def __init__(self, client, hpas: Informer, pods: Informer, recorder, sync_period: float = 15.0,
                 downscale_window: float = 300.0, clock: Clock | None = None,
                 wall: Callable[[], float] = time.time, metrics: MetricsCache | None = None,
                 min_interval: float = MIN_INTERVAL) -> None:
        self.client, self.hpas, self.pods, self.recorder = client, hpas, pods, recorder
        self.sync_period, self.downscale_window = float(sync_period), float(downscale_window)
        self.clock, self.wall, self.min_interval = clock or Clock(), wall, float(min_interval)
        self.metrics = MetricsStore(metrics)
        self.metrics.cache.on_pod = self.on_pod_sample
        self.history: dict[str, History] = {}
        self.targets: dict[str, tuple[str, str, Selector]] = {}  # HPA key -> (namespace, scale selector, parsed)
        self._by_pod: dict[str, tuple[str | None, tuple[str, ...]]] = {}  # pod key -> (its node, HPA keys)
        self._kicked: dict[str, float] = {}  # HPA key -> when its last sample-driven evaluation was due
        self._pending: set[str] = set()  # HPAs queued by a sample whose evaluation has not started yet
        self._written: dict[str, float] = {}  # HPA key -> when its status was last written
        self._warned: dict[tuple[str, str], tuple[str, float]] = {}  # (HPA key, reason) -> (message, when)
        queue = WorkQueue("hpa", clock=clock) if clock is not None else None
        self.controller = Controller("hpa", self.reconcile, queue=queue)
        self.controller.watches(hpas)
        self.controller.informers.append(pods)
        pods.add_handler(on_add=self._forget_pod, on_update=self._pod_changed, on_delete=self._forget_pod)

    async def run(self) -> None:
        await self.metrics.cache.start(self.client.nc, nodes=False)
        try:
            await self.controller.run()
        finally:
            await self.metrics.cache.stop()

    def shutdown(self) -> None:
        self.controller.shutdown()

    async def reconcile(self, key: str) -> Result | None:
        hpa = self.hpas.get_by_key(key)
        if hpa is None:
            self._forget_hpa(key)
            return None
        await self.sync(key, hpa)
        return Result(requeue_after=self.sync_period)

    # ---- samples as they arrive ----------------------------------------------------------------

    def on_pod_sample(self, node: str, namespace: str, name: str) -> None:
        """A pod's sample arrived (from ``node``): evaluate the HPAs whose target selects the pod, if the pod is
        bound to that node. A dict lookup while nothing changed; the pod's HPAs are found again after the pod's
        labels or node change or any HPA's selector does."""
        key = subjects.object_key(namespace, name)
        entry = self._by_pod.get(key)
        if entry is None:
            pod = self.pods.get_by_key(key)
            if pod is None:
                return
            labels = pod["metadata"].get("labels") or {}
            entry = ((pod.get("spec") or {}).get("nodeName"),
                     tuple(k for k, (ns, _, sel) in self.targets.items() if ns == namespace and sel.matches(labels)))
            self._by_pod[key] = entry
        bound, hpas = entry
        if node != bound:
            return
        now = self.clock.now()
        for k in hpas:
            if k in self._pending:
                continue  # the evaluation queued already will read this sample
            due = max(now, self._kicked.get(k, -math.inf) + self.min_interval)
            self._kicked[k] = due
            self._pending.add(k)
            if due > now:
                self.controller.queue.add_after(k, due - now)
            else:
                self.controller.queue.add(k)

    def _forget_pod(self, pod: dict) -> None:
        self._by_pod.pop(key_of(pod), None)

    def _pod_changed(self, old: dict, new: dict) -> None:
        if (old["metadata"].get("labels") != new["metadata"].get("labels")
                or (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName")):
            self._by_pod.pop(key_of(new), None)

    def _target_selector(self, key: str, namespace: str, scale: dict) -> Selector | MetricError:
        """The parsed selector of the HPA ``key``'s scale, remembered for :meth:`on_pod_sample` (the error when
        it has none or it does not parse)."""
        selector = (scale.get("status") or {}).get("selector")
        known = self.targets.get(key)
        if known is not None and known[1] == selector:
            return known[2]
        if known is not None:  # which pods select which HPAs changed
            del self.targets[key]
            self._by_pod.clear()
        if not selector:
            return MetricError("the HPA target's scale is missing a selector", "InvalidSelector")
        try:
            parsed = parse_selector(selector)
        except ValueError as e:
            return MetricError(f"couldn't convert selector into a corresponding internal selector object: {e}",
                               "InvalidSelector")
        self.targets[key] = (namespace, selector, parsed)
        self._by_pod.clear()
        return parsed

    def _forget_hpa(self, key: str) -> None:
        self.history.pop(key, None)
        self._kicked.pop(key, None)
        self._pending.discard(key)
        self._written.pop(key, None)
        for k in [k for k in self._warned if k[0] == key]:
            del self._warned[k]
        if self.targets.pop(key, None) is not None:
            self._by_pod.clear()

    async def _warn(self, key: str, hpa: dict, reason: str, message: str) -> None:
        """A Warning event, unless the same one was recorded for this HPA within the sync period."""
        now = self.clock.now()
        last = self._warned.get((key, reason))
        if last is not None and last[0] == message and now - last[1] < self.sync_period:
            return
        self._warned[(key, reason)] = (message, now)
        await self.recorder.event(hpa, WARNING, reason, message)

    # ---- one pass ------------------------------------------------------------------------------

    def _compute(self, hpa: dict, selector: Selector | MetricError, current: int) -> tuple[int, list[dict], str]:
        """(proposed replicas, currentMetrics, name of the deciding metric); MetricError if none works."""
        ns = hpa["metadata"]["namespace"]
        if isinstance(selector, MetricError):
            raise selector
        pods = [p for p in self.pods.list(ns) if selector.matches(p["metadata"].get("labels") or {})]
        metrics = self.metrics.for_pods(pods)
        now = self.wall()
        best, statuses, deciding, failures = None, [], "", []
        for spec in (hpa.get("spec") or {}).get("metrics") or []:
            try:
                replicas, status, label = self._one_metric(spec, current, pods, metrics, now)
            except MetricError as e:
                failures.append(e)
                continue
            statuses.append(status)
            if best is None or replicas > best:
                best, deciding = replicas, label
        if failures and (best is None or best < current):
            raise failures[0]
        return best if best is not None else current, statuses, deciding

    def _one_metric(self, spec: dict, current: int, pods: list[dict], metrics: dict[str, Sample],
                    now: float) -> tuple[int, dict, str]:
        if spec.get("type") != "Resource" or not spec.get("resource"):
            raise MetricError(f"unsupported metric type {spec.get('type')!r}: k8n supports Resource metrics",
                              "InvalidMetricSourceType")
        res = spec["resource"]
        name, target = res.get("name"), res.get("target") or {}
        if name not in ("cpu", "memory"):
            raise MetricError(f"unsupported resource {name!r}: k8n's metrics have cpu and memory")
        fmt = (lambda v: f"{int(v)}m") if name == "cpu" else (lambda v: format_quantity(int(v), binary=True))
        if target.get("type") == "AverageValue" and target.get("averageValue") is not None:
            tv = cpu_millis(target["averageValue"]) if name == "cpu" else memory_bytes(target["averageValue"])
            replicas, avg = average_value_replicas(current, tv, name, pods, metrics, now)
            current_v = {"averageValue": fmt(avg)}
            label = f"{name} resource"
        else:
            util_target = int(target.get("averageUtilization") or 80)
            replicas, util, avg = resource_replicas(current, util_target, name, pods, metrics, now)
            current_v = {"averageUtilization": util, "averageValue": fmt(avg)}
            label = f"{name} resource utilization (percentage of request)"
        return replicas, {"type": "Resource", "resource": {"name": name, "current": current_v}}, label

    async def sync(self, key: str, hpa: dict) -> None:
        self._pending.discard(key)  # samples from now on need another evaluation
        spec, status = hpa.get("spec") or {}, dict(hpa.get("status") or {})
        ref = spec.get("scaleTargetRef") or {}
        ns, now_s = hpa["metadata"]["namespace"], format_time(self.wall())
        conds = list(status.get("conditions") or [])

        def cond(type_: str, st: bool, reason: str, msg: str) -> None:
            nonlocal conds
            conds = set_condition(conds, {"type": type_, "status": "True" if st else "False", "reason": reason,
                                          "message": msg}, now_s)

        new = {**status, "observedGeneration": hpa["metadata"].get("generation")}
        plural = scale_target(ref)
        try:
            if plural is None:
                raise errors.bad_request(f"unsupported scale target kind {ref.get('kind')!r}")
            scale = await self.client.get_scale(plural, ref.get("name"), ns)
        except errors.ApiError as e:
            cond("AbleToScale", False, "FailedGetScale", f"the HPA controller was unable to get the target's current scale: {e}")
            await self._warn(key, hpa, "FailedGetScale", str(e))
            await self._write(key, hpa, {**new, "conditions": conds})
            return
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        selector = self._target_selector(key, ns, scale)
        min_r, max_r = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        new["currentReplicas"] = int((scale.get("status") or {}).get("replicas") or 0)
        cond("AbleToScale", True, "SucceededGetScale", "the HPA controller was able to get the target's current scale")
        h = self.history.setdefault(key, History())
        now = self.clock.now()
        behavior = behavior_of(spec, self.downscale_window)
        reason = ""
        if current == 0 and min_r != 0:
            desired = 0
            cond("ScalingActive", False, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
        elif current > max_r:
            desired, reason = max_r, "Current number of replicas above Spec.MaxReplicas"
        elif current < min_r:
            desired, reason = min_r, "Current number of replicas below Spec.MinReplicas"
        else:
            try:
                proposal, statuses, label = self._compute(hpa, selector, current)
            except MetricError as e:
                cond("ScalingActive", False, e.reason, str(e))
                await self._warn(key, hpa, e.reason, str(e))
                new["currentMetrics"] = new.get("currentMetrics")
                await self._write(key, hpa, {**new, "desiredReplicas": current, "conditions": conds})
                return
            new["currentMetrics"] = statuses
            cond("ScalingActive", True, "ValidMetricFound",
                 f"the HPA was able to successfully calculate a replica count from {label}")
            if not h.recommendations and float(behavior["scaleDown"]["stabilizationWindowSeconds"]) > 0:
                h.recommendations.append((now, current))  # a new HPA does not scale down at once
            stabilized, s_reason, s_msg = stabilize(h, now, proposal, current,
                                                    float(behavior["scaleUp"]["stabilizationWindowSeconds"]),
                                                    float(behavior["scaleDown"]["stabilizationWindowSeconds"]))
            if stabilized != proposal:
                cond("AbleToScale", True, s_reason, s_msg)
            else:
                cond("AbleToScale", True, "ReadyForNewScale", "recommended size matches current size")
            desired, l_reason, l_msg = limit_rate(h, now, stabilized, current, min_r, max_r, behavior)
            cond("ScalingLimited", desired != stabilized, l_reason, l_msg)
            reason = f"{label} above target" if desired > current else "All metrics below target"
        if desired != current:
            try:
                await self.client.scale(plural, ref["name"], desired, ns)
            except errors.ApiError as e:
                cond("AbleToScale", False, "FailedUpdateScale", f"the HPA controller was unable to update the target scale: {e}")
                await self._warn(key, hpa, "FailedRescale", f"New size: {desired}; reason: {reason}; error: {e}")
                await self._write(key, hpa, {**new, "conditions": conds})
                return
            record_scale(h, now, current, desired, behavior)
            cond("AbleToScale", True, "SucceededRescale", f"the HPA controller was able to update the target scale to {desired}")
            await self.recorder.event(hpa, NORMAL, "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            log.info("hpa %s: %s %d -> %d (%s)", key, ref.get("name"), current, desired, reason)
            new["lastScaleTime"] = now_s
        await self._write(key, hpa, {**new, "desiredReplicas": desired, "conditions": conds})

    async def _write(self, key: str, hpa: dict, status: dict) -> None:
        """Write a changed status; a change of ``currentMetrics`` alone at most once per sync period (samples
        arrive every second, Kubernetes writes them every sync)."""
        status = {k: v for k, v in status.items() if v is not None}
        old = hpa.get("status") or {}
        if status == old:
            return
        now = self.clock.now()
        if _but_metrics(status) == _but_metrics(old) and now - self._written.get(key, -math.inf) < self.sync_period:
            return
        self._written[key] = now
        obj = deep_copy(hpa)
        obj["status"] = status
        await self.client.update_status(obj)


def _but_metrics(status: dict) -> dict:
    return {k: v for k, v in status.items() if k != "currentMetrics"}
