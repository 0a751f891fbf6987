"""The HPA controller acting on pod samples as they arrive (fake clock, fake API, informers on a fake store): a
sample of a pod the target selects queues the HPA at once; Kubernetes' rules still hold — tolerance, the
stabilization windows and the behavior policies' periods in seconds, fresh samples only — and samples every second
neither make it thrash nor write its status or warnings every second."""

from __future__ import annotations

import asyncio

import pytest

from bus import codec, subjects
from bus.informer import Informer
from bus.meta import format_time
from bus.metrics import MetricsCache
from bus.workqueue import FakeClock, process_one
from master.controllers.hpa import HPAController
from tests import builders
from tests.builders import container, requests
from tests.unit.fakestore import FakeStore

WALL = 2_000_000_000.0  # epoch seconds at fake clock 0
NODE = "n1"


def hpa(behavior: dict | None = None, target: int = 50, min_r: int = 1, max_r: int = 10) -> dict:
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": min_r, "maxReplicas": max_r,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                  "averageUtilization": target}}}]}
    if behavior:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "spec": spec, "status": {},
            "metadata": {"name": "web", "namespace": "default", "uid": "h1", "generation": 1}}


def web_pod(i: int, labels: dict | None = None, node: str = NODE) -> dict:
    return builders.pod(f"web-{i}", labels=labels or {"app": "web"}, node=node,
                        containers=[container("main", resources=requests("100m"))],
                        phase="Running", started=WALL - 3600, ready="True", ready_since=WALL - 3600)


class Api:
    """The API calls the HPA makes: the Deployment's scale (a ReplicaSet's work done at once: pods added or
    removed in the store), status writes into the store, events."""

    def __init__(self, rig: "Rig") -> None:
        self.rig, self.replicas, self.selector = rig, 1, "app=web"
        self.scaled: list[tuple[float, int]] = []  # (fake time, new replicas)
        self.statuses: list[dict] = []
        self.scale_reads = 0
        self.nc = None

    async def get_scale(self, plural, name, ns):
        self.scale_reads += 1
        return {"spec": {"replicas": self.replicas}, "status": {"replicas": self.replicas, "selector": self.selector}}

    async def scale(self, plural, name, replicas, ns):
        self.scaled.append((self.rig.clock.now(), replicas))
        for i in range(self.replicas, replicas):
            self.rig.store.put(web_pod(i))
        for i in range(replicas, self.replicas):
            self.rig.store.remove("default", f"web-{i}")
        self.replicas = replicas
        return {}

    async def update_status(self, obj):
        self.statuses.append(obj["status"])
        return self.rig.store.put(obj)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def event(self, obj, type_, reason, message, field_path=None):
        self.events.append((type_, reason, message))


class Rig:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = FakeStore()
        self.api = Api(self)
        self.recorder = Recorder()

    async def start(self, h: dict, pods: int = 1) -> "Rig":
        for i in range(pods):
            self.store.put(web_pod(i))
        self.api.replicas = pods
        self.store.put(h)
        self.hpas, self.pods = Informer(self.store, "horizontalpodautoscalers"), Informer(self.store, "pods")
        for inf in (self.hpas, self.pods):
            await inf.start()
        self.cache = MetricsCache(clock=self.clock.now)
        self.ctl = HPAController(self.api, self.hpas, self.pods, self.recorder, clock=self.clock,
                                 wall=lambda: WALL + self.clock.now(), metrics=self.cache)
        return self

    @property
    def queue(self):
        return self.ctl.controller.queue

    def sample(self, pod: str, millicores: int, node: str = NODE) -> None:
        doc = {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
               "metadata": {"name": pod, "namespace": "default"},
               "timestamp": format_time(WALL + self.clock.now()), "window": "1s",
               "containers": [{"name": "main", "usage": {"cpu": f"{millicores}m", "memory": "1Mi"}}]}
        assert self.cache.receive(subjects.pod_metrics(node, "default", pod), codec.pack(doc))

    def load(self, millicores: list[int]) -> None:
        """One metrics period: a sample for each of the current pods (the first ones get the given values)."""
        for i in range(self.api.replicas):
            self.sample(f"web-{i}", millicores[i] if i < len(millicores) else 0)

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def work(self) -> int:
        """Reconcile every key due now; how many reconciles ran."""
        await self.settle()
        n = 0
        while len(self.queue):
            key = await self.queue.get()
            try:
                await process_one(self.queue, self.ctl.reconcile, key)
            finally:
                self.queue.done(key)
            n += 1
            await self.settle()
        return n

    async def tick(self, seconds: float = 1.0) -> None:
        self.clock.advance(seconds)
        await self.work()

    async def stop(self) -> None:
        self.ctl.shutdown()
        for inf in (self.hpas, self.pods):
            await inf.stop()


async def rig(h: dict | None = None, pods: int = 1) -> Rig:
    r = await Rig().start(h or hpa(), pods)
    await r.work()  # the HPA's first evaluation (its informer add)
    return r


async def test_a_sample_of_a_selected_pod_queues_its_hpa_at_once_and_adds_collapse():
    r = await rig(pods=2)
    r.clock.advance(2)
    r.store.put(builders.pod("other", labels={"app": "db"}, node=NODE))
    await r.settle()
    r.sample("other", 500)
    assert len(r.queue) == 0  # not selected by the target's scale selector
    r.sample("web-0", 30, node="n2")
    assert len(r.queue) == 0  # not from the node the pod is bound to
    r.sample("web-0", 30)
    r.sample("web-1", 30)
    r.sample("web-0", 30)
    assert len(r.queue) == 1  # repeated adds collapse
    await r.work()
    r.store.put(web_pod(1, labels={"app": "web", "tier": "x"}))  # labels changed: found again
    r.store.put(web_pod(0, labels={"app": "other"}))
    await r.settle()
    r.clock.advance(1)
    r.sample("web-0", 30)
    assert len(r.queue) == 0
    r.sample("web-1", 30)
    assert len(r.queue) == 1
    await r.stop()


async def test_a_changed_scale_selector_is_followed():
    r = await rig()
    r.store.put(builders.pod("db-0", labels={"app": "db"}, node=NODE))
    r.api.selector = "app=db"
    r.clock.advance(2)
    r.sample("web-0", 30)  # still indexed under the old selector: one evaluation, which reads the new one
    await r.work()
    r.clock.advance(2)
    r.sample("web-0", 30)
    assert len(r.queue) == 0
    r.sample("db-0", 30)
    assert len(r.queue) == 1
    await r.stop()


def test_the_metrics_period_goes_down_to_one_second(tmp_path):
    from bus.settings import SettingsError
    from node.agent import AgentConfig

    assert AgentConfig("n1", "nats://x", tmp_path, metrics_seconds=1.0).metrics_seconds == 1.0
    with pytest.raises(SettingsError, match="expected 1 or more"):
        AgentConfig("n1", "nats://x", tmp_path, metrics_seconds=0.5)


async def test_hot_sample_scales_up_before_the_sync_period():
    r = await rig()
    r.clock.advance(3)
    r.load([100])  # 100 % of a 100m request against a 50 % target: double
    await r.work()
    assert r.api.scaled == [(3.0, 2)]
    assert r.recorder.events[-1] == ("Normal", "SuccessfulRescale",
                                     "New size: 2; reason: cpu resource utilization (percentage of request) above "
                                     "target")
    status = next(s for s in r.api.statuses if s.get("lastScaleTime"))
    assert status["desiredReplicas"] == 2 and status["currentMetrics"][0]["resource"]["current"][
        "averageUtilization"] == 100
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["AbleToScale"]["reason"] == "SucceededRescale" and conds["ScalingActive"]["status"] == "True"
    await r.stop()


async def test_sample_driven_evaluations_are_at_least_min_interval_apart():
    r = await rig(pods=2)
    r.clock.advance(5)
    r.sample("web-0", 50)
    await r.work()
    reads = r.api.scale_reads
    r.clock.advance(0.3)
    r.sample("web-1", 50)  # another node's beat, 0.3 s later: waits until 1 s after the last evaluation
    assert len(r.queue) == 0 and r.queue.waiting() == 1
    await r.tick(0.69)
    assert r.api.scale_reads == reads
    await r.tick(0.02)
    assert r.api.scale_reads > reads
    r.clock.advance(0.5)
    r.store.put({**r.hpas.get("default", "web"), "status": {}})  # another change: evaluated at once
    await r.work()
    assert len(r.queue) == 0 and r.api.scale_reads > reads + 1
    await r.stop()


async def test_within_tolerance_nothing_changes():
    r = await rig(pods=2)
    for _ in range(30):
        r.load([54, 54])  # 54 % of a 50 % target: ratio 1.08, within 0.1
        await r.tick()
    r.load([56, 56])
    await r.tick()
    assert r.api.scaled == [(31.0, 3)]  # ratio 1.12: ceil(2 × 1.12)
    await r.stop()


async def test_a_percent_policy_still_limits_per_its_period_in_seconds():
    up = {"scaleUp": {"policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}
    r = await rig(hpa(up, max_r=16))
    for _ in range(40):
        r.clock.advance(1)
        r.load([500] * r.api.replicas)  # far above target all along
        await r.work()
    # doubling at most once per 15 s: 1 -> 2 at t=1, 2 -> 4 once the t=1 scale left the period, ...
    assert [n for _, n in r.api.scaled] == [2, 4, 8]
    times = [t for t, _ in r.api.scaled]
    assert times[0] == 1 and all(b - a >= 15 for a, b in zip(times, times[1:])), times
    conds = {c["type"]: c for c in r.api.statuses[-1]["conditions"]}
    assert conds["ScalingLimited"] == {**conds["ScalingLimited"], "status": "True", "reason": "ScaleUpLimit"}
    await r.stop()


async def test_samples_every_second_do_not_thrash_within_the_scale_down_window():
    down = {"scaleDown": {"stabilizationWindowSeconds": 20}}
    r = await rig(hpa(down, max_r=4))
    for second in range(1, 61):  # bursts of 4 s every 8 s: hot, then quiet
        r.clock.advance(1)
        r.load([400] * r.api.replicas if second % 8 < 4 else [0] * r.api.replicas)
        await r.work()
    assert r.api.scaled == [(1.0, 4)]  # up at once (to maxReplicas), and held up: each quiet spell is < 20 s
    for _ in range(25):  # quiet for good: down once the window has passed
        r.clock.advance(1)
        r.load([0] * r.api.replicas)
        await r.work()
    last_hot = 59.0  # the last second with second % 8 < 4 (56..59)
    assert r.api.scaled == [(1.0, 4), (last_hot + 20, 1)]
    await r.stop()


async def test_stale_samples_are_not_used():
    for age, scaled in ((2, [(7.0, 3)]), (4, [])):
        r = await rig(pods=2)
        r.clock.advance(5)
        r.load([10, 10])
        await r.work()
        r.clock.advance(age)  # web-1's samples stop; web-0 gets busy
        r.sample("web-0", 100)
        await r.work()
        # 2 s old, web-1's 10 % is fresh (3 windows): 55 % of the 50 % target, beyond the tolerance: 2 -> 3;
        # 4 s old it is missing, counted as 0 when scaling up: 50 %, on target: no scale-up from a stale sample
        assert r.api.scaled == scaled, age
        fresh = r.ctl.metrics.for_pods([web_pod(0), web_pod(1)])
        assert fresh.keys() == ({"web-0", "web-1"} if age < 3 else {"web-0"})
        await r.stop()


async def test_status_with_only_new_metrics_is_written_once_per_sync_period_and_warnings_too():
    r = await rig(pods=2)
    writes = len(r.api.statuses)
    for second in range(1, 31):
        r.clock.advance(1)
        r.load([10 + second % 3, 10])  # changing utilization, far below target: scaled to min already
        await r.work()
    metric_writes = len(r.api.statuses) - writes
    assert 2 <= metric_writes <= 3, metric_writes  # about every 15 s, not every second
    r.store.put({**builders.pod("web-0", labels={"app": "web"}, node=NODE,
                                containers=[container("main")], phase="Running", started=WALL - 3600,
                                ready="True", ready_since=WALL - 3600)})  # no cpu request now
    await r.settle()
    for _ in range(20):
        r.clock.advance(1)
        r.load([10, 10])
        await r.work()
    warned = [e for e in r.recorder.events if "missing request for cpu" in e[2]]
    assert [e[1] for e in warned] == ["FailedGetResourceMetric"] * 2  # at t=31 and 15 s later, not every second
    await r.stop()


async def test_deleting_the_hpa_forgets_it():
    r = await rig()
    r.store.remove("default", "web")
    await r.work()
    assert r.ctl.targets == {} and r.ctl.history == {}
    r.sample("web-0", 100)
    assert len(r.queue) == 0
    await r.stop()
