"""coordination.k8s.io/v1: Lease."""

from __future__ import annotations

from bus.models.base import Int, K8sModel, O
from bus.models.meta import TopLevel


class LeaseSpec(K8sModel):
    holder_identity: O[str] = None
    lease_duration_seconds: O[Int] = None
    acquire_time: O[str] = None  # RFC3339 micro time, "2026-11-26T19:00:00.000000Z"
    renew_time: O[str] = None
    lease_transitions: O[Int] = None
    strategy: O[str] = None
    preferred_holder: O[str] = None


class Lease(TopLevel):
    api_version: O[str] = "coordination.k8s.io/v1"
    kind: O[str] = "Lease"
    spec: O[LeaseSpec] = None
