"""The scheduler's Prometheus metrics (``bus.telemetry``), kube-scheduler's names:
``scheduler_schedule_attempts_total{result,profile}`` and ``scheduler_scheduling_attempt_duration_seconds
{result,profile}`` (from taking a pod off the queue to its bind's answer, or to the failure); ``result`` is
``scheduled``, ``unschedulable`` or ``error``."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

SCHEDULED, UNSCHEDULABLE, ERROR = "scheduled", "unschedulable", "error"
#: kube-scheduler's buckets: 1 ms doubling, 15 of them
ATTEMPT_BUCKETS = tuple(0.001 * 2**i for i in range(15))


class SchedulerMetrics:
    def __init__(self, registry: Any) -> None:
        self.attempts = Counter("scheduler_schedule_attempts_total", "Number of attempts to schedule pods, by the "
                                "result. 'unschedulable' means a pod could not be scheduled, while 'error' means an "
                                "internal scheduler problem.", ("result", "profile"), registry=registry)
        self.duration = Histogram("scheduler_scheduling_attempt_duration_seconds", "Scheduling attempt latency in "
                                  "seconds (scheduling algorithm + binding)", ("result", "profile"),
                                  buckets=ATTEMPT_BUCKETS, registry=registry)

    def observe(self, result: str, profile: str, seconds: float) -> None:
        self.attempts.labels(result, profile).inc()
        self.duration.labels(result, profile).observe(seconds)
