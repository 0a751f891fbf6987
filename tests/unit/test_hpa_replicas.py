"""The HPA's replica calculator and behavior against Kubernetes' own examples (the cases of
kube-controller-manager's replica_calculator tests and the documented algorithm)."""

from __future__ import annotations

import pytest

from master.controllers.hpa import (History, MetricError, Sample, average_value_replicas, behavior_of, limit_rate,
                                    record_scale, resource_replicas, sample_of, stabilize)
from tests import builders
from tests.builders import container, requests

NOW = 1_000_000.0
COOL = NOW - 3600  # started long ago (past the cpu initialization period)
HOT = NOW - 60  # started within it


def pod(i: int, ready: str = "True", phase: str = "Running", start: float = COOL, ready_since: float | None = None,
        deleting: bool = False, request: str | None = "1", containers: int = 1) -> dict:
    res = requests(request, "100Mi") if request else {}
    return builders.pod(f"p{i}", deleting=NOW if deleting else None,
                        containers=[container(f"c{j}", resources=res) for j in range(containers)],
                        phase=phase, started=start, ready=ready,
                        ready_since=ready_since if ready_since is not None else start)


def samples(levels: list[int], ts: float = NOW - 5) -> dict[str, Sample]:
    return {f"p{i}": Sample(cpu=v, memory=v * 2**20, timestamp=ts, window=1.0) for i, v in enumerate(levels)}


def calc(current, pods, levels, target, resource="cpu"):
    return resource_replicas(current, target, resource, pods, samples(levels), NOW)


def test_scale_up():  # TestReplicaCalcScaleUp
    assert calc(3, [pod(i) for i in range(3)], [300, 500, 700], 30)[:2] == (5, 50)


def test_scale_down():  # TestReplicaCalcScaleDown
    assert calc(5, [pod(i) for i in range(5)], [100, 300, 500, 250, 250], 50)[:2] == (3, 28)


def test_within_tolerance_keeps_the_count():  # TestReplicaCalcTolerance: 102 % of target
    pods = [pod(0, request="900m"), pod(1, request="1"), pod(2, request="1100m")]
    replicas, util, _ = calc(3, pods, [1010, 1030, 1020], 100)
    assert (replicas, util) == (3, 102)


def test_scale_up_with_an_unready_pod_scales_less():  # TestReplicaCalcScaleUpUnreadyLessScale
    pods = [pod(0, ready="False"), pod(1), pod(2)]
    assert calc(3, pods, [300, 500, 700], 30)[:2] == (4, 60)


def test_hot_cpu_pod_counts_as_unready():  # TestReplicaCalcScaleUpHotCpuLessScale
    pods = [pod(0, start=HOT, ready_since=NOW - 1), pod(1), pod(2)]  # metric older than readiness + window
    assert calc(3, pods, [300, 500, 700], 30)[:2] == (4, 60)


def test_unready_pods_that_would_flip_the_direction_keep_the_count():  # TestReplicaCalcScaleUpUnreadyNoScale
    pods = [pod(0), pod(1, ready="False"), pod(2, ready="False")]
    assert calc(3, pods, [400, 500, 700], 30)[:2] == (3, 40)


def test_failed_and_deleting_pods_are_ignored():  # TestReplicaCalcScaleUpIgnoresFailedPods / DeletionPods
    pods = [pod(0), pod(1), pod(2, ready="False", phase="Failed"), pod(3, ready="False", phase="Failed")]
    assert calc(2, pods, [500, 700], 30)[:2] == (4, 60)
    pods = [pod(0), pod(1), pod(2, ready="False", deleting=True), pod(3, ready="False", deleting=True)]
    assert calc(2, pods, [500, 700], 30)[:2] == (4, 60)


def test_scale_down_excludes_unready_and_pending_pods():  # ...IncludeUnreadyPods / ExcludeUnscheduledPods
    pods = [pod(0), pod(1), pod(2), pod(3, ready="False"), pod(4, ready="False")]
    assert calc(5, pods, [100, 300, 500, 250, 250], 50)[:2] == (2, 30)
    pods = [pod(0)] + [pod(i, ready="False", phase="Pending") for i in range(1, 5)]
    assert calc(5, pods, [100], 50)[:2] == (1, 10)


def test_missing_metrics_count_as_full_use_when_scaling_down():
    # 4 pods, 2 with samples at 10 %: the missing two count as 100 % of their request, so
    # (100 + 100 + 1000 + 1000) / 4000 = 55 % of a 50 % target: within tolerance -> unchanged
    assert calc(4, [pod(i) for i in range(4)], [100, 100], 50)[0] == 4
    # at a 90 % target the same use is 61 %: scale down to ceil(0.61 * 4) = 3
    assert calc(4, [pod(i) for i in range(4)], [100, 100], 90)[0] == 3


def test_missing_metrics_count_as_zero_when_scaling_up():
    # 2 of 4 pods at 100 % of a 50 % target; the missing two count as 0: 50 % average -> unchanged
    assert calc(4, [pod(i) for i in range(4)], [1000, 1000], 50)[0] == 4
    assert calc(4, [pod(i) for i in range(4)], [1000, 1000], 30)[0] == 7  # ceil(4 * 50/30)


def test_missing_metrics_exactly_on_target_are_left_out():
    # one of 2 pods at exactly the 50 % target, the other without a sample: Kubernetes fills missing pods in only
    # when the ratio is above or below 1, so the count stays (filled with 0 it would halve)
    assert calc(2, [pod(0), pod(1)], [500], 50)[0] == 2


def test_documented_formula_doubles_and_halves():
    # desiredReplicas = ceil(currentReplicas * currentMetricValue / desiredMetricValue)
    assert calc(2, [pod(0, request="100m"), pod(1, request="100m")], [200, 200], 100)[0] == 4
    assert calc(4, [pod(i, request="100m") for i in range(4)], [50] * 4, 100)[0] == 2


def test_pods_without_requests_are_reported_not_guessed():
    with pytest.raises(MetricError, match="missing request for cpu in container c0 of Pod p1"):
        calc(2, [pod(0), pod(1, request=None)], [100, 100], 50)


def test_no_metrics_at_all_is_an_error():
    with pytest.raises(MetricError, match="did not receive metrics"):
        calc(2, [pod(0, ready="False"), pod(1, ready="False")], [100, 100], 50)


def test_average_value_target_for_memory():
    pods = [pod(i) for i in range(3)]
    replicas, avg = average_value_replicas(3, 100 * 2**20, "memory", pods, samples([200, 200, 200]), NOW)
    assert replicas == 6 and avg == 200 * 2**20


def test_sample_of_pod_metrics_sums_containers():
    s = sample_of({"timestamp": "2026-01-01T00:00:00Z", "window": "10s",
                   "containers": [{"usage": {"cpu": "150000000n", "memory": "1024Ki"}},
                                  {"usage": {"cpu": "50m", "memory": "1Mi"}}]})
    assert (s.cpu, s.memory, s.window) == (200, 2 * 2**20, 10.0)


# ---- behavior -------------------------------------------------------------------------------------


def test_scale_down_waits_for_the_stabilization_window():
    h, b = History(), behavior_of({}, 300)
    assert stabilize(h, 0, 5, 5, 0, 300)[0] == 5
    assert stabilize(h, 100, 2, 5, 0, 300)[0] == 5  # 5 was recommended within 300 s
    assert stabilize(h, 250, 2, 5, 0, 300)[0] == 5
    assert stabilize(h, 301, 2, 5, 0, 300)[0] == 2  # only 2s within the window now
    assert b["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_per_hpa_window_overrides_the_default():
    b = behavior_of({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}}, 300)
    assert b["scaleDown"]["stabilizationWindowSeconds"] == 5
    assert b["scaleDown"]["policies"] == [{"type": "Percent", "value": 100, "periodSeconds": 15}]


def test_default_scale_up_limit_is_max_of_4_pods_and_100_percent():
    b, h = behavior_of({}, 300), History()
    assert limit_rate(h, 0, 20, 1, 1, 50, b) == (5, "ScaleUpLimit",
                                                 "the desired replica count is increasing faster than the maximum scale rate")
    assert limit_rate(h, 0, 20, 10, 1, 50, b)[0] == 20
    assert limit_rate(h, 0, 80, 10, 1, 50, b)[0] == 20
    assert limit_rate(h, 0, 80, 30, 1, 50, b)[:2] == (50, "TooManyReplicas")
    record_scale(h, 0, 1, 5, b)  # within the 15 s period the start is 1 again
    assert limit_rate(h, 10, 20, 5, 1, 50, b)[0] == 5
    assert limit_rate(h, 16, 20, 5, 1, 50, b)[0] == 10


def test_scale_down_limits_and_min_replicas():
    b = behavior_of({"behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}}, 0)
    h = History()
    assert limit_rate(h, 0, 1, 10, 1, 20, b)[:2] == (8, "ScaleDownLimit")
    assert limit_rate(h, 0, 7, 10, 1, 20, b)[:2] == (8, "ScaleDownLimit")
    assert limit_rate(h, 0, 1, 3, 2, 20, b)[:2] == (2, "TooFewReplicas")
    assert limit_rate(h, 0, 3, 3, 2, 20, b)[:2] == (3, "DesiredWithinRange")
