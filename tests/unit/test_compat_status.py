"""The status kube-apiserver answers for a new object — the zero counts its Go types always serialise, which typed
clients require (the Python client's V1ReplicationControllerStatus needs ``replicas``) — and that no status writer
can drop them afterwards."""

from __future__ import annotations

import pytest

from bus.resources import by_kind
from master.apiserver import strategy
from tests import builders


def created(kind: str, obj: dict | None = None) -> dict:
    obj = obj or {"metadata": {"name": "x"}, "spec": {}}
    return strategy.prepare_create(by_kind(kind), obj, "default" if by_kind(kind).namespaced else None)


@pytest.mark.parametrize("kind, status", [
    ("ReplicationController", {"replicas": 0}),
    ("ReplicaSet", {"replicas": 0}),
    ("DaemonSet", {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                   "numberReady": 0}),
    ("Deployment", {}),
    ("Job", {}),
    ("Service", {"loadBalancer": {}}),
    ("HorizontalPodAutoscaler", {"desiredReplicas": 0}),
])
def test_a_new_object_carries_the_status_kubernetes_answers(kind, status):
    assert created(kind)["status"] == status


def test_status_a_client_sent_on_create_is_replaced_and_kinds_without_status_have_none():
    rc = created("ReplicationController", {"metadata": {"name": "x"}, "spec": {}, "status": {"replicas": 9}})
    assert rc["status"] == {"replicas": 0}
    assert "status" not in created("ConfigMap", {"metadata": {"name": "x"}, "data": {}})


def test_a_status_writer_that_leaves_zeros_out_cannot_drop_them():
    ds = by_kind("DaemonSet")
    written = {"metadata": {"name": "x"}, "status": {"numberReady": 2, "observedGeneration": 1}}
    assert strategy.complete_status(ds, written)["status"] == {
        "numberReady": 2, "observedGeneration": 1, "currentNumberScheduled": 0, "numberMisscheduled": 0,
        "desiredNumberScheduled": 0}
    no_status = strategy.complete_status(by_kind("ReplicaSet"), {"metadata": {"name": "x"}})
    assert no_status["status"] == {"replicas": 0}
    svc = strategy.complete_status(by_kind("Service"), builders.service("web"))
    assert svc["status"]["loadBalancer"] == {}
