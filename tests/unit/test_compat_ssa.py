"""Server-side apply cases client libraries' and kubectl's own tests hit: a field applied empty and then with
members, and kubectl's upgrade from client-side apply (kube-apiserver's lastAppliedManager/lastAppliedUpdater)."""

from __future__ import annotations

import json

import pytest

from bus import errors
from bus.resources import by_kind
from master.apiserver import ssa
from tests.unit.test_ssa import apply, deployment, managers, set_replicas, update

CM = by_kind("ConfigMap")


def configmap(data: dict | None, annotations: dict | None = None) -> dict:
    meta = {"name": "c", **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **({"data": data} if data is not None else {})}


def test_a_map_applied_empty_then_with_members_keeps_them() -> None:
    first = apply(None, configmap({}), res=CM)
    assert first["data"] == {}
    second = apply(first, configmap({"a": "1"}), res=CM)
    assert second["data"] == {"a": "1"}
    assert managers(second)[("kubectl", "Apply")] == {".data.a"}
    # and back: members dropped, the empty map the manager applies stays
    third = apply(second, configmap({}), res=CM)
    assert third["data"] == {}


def client_side(manifest: dict) -> dict:
    """What `kubectl apply` (client-side) creates: the manifest, its last-applied annotation, an Update entry."""
    obj = json.loads(json.dumps(manifest))
    obj["metadata"].setdefault("annotations", {})[ssa.LAST_APPLIED] = json.dumps(manifest) + "\n"
    obj["metadata"].update(uid="u", resourceVersion="3")
    ssa.track_create(by_kind(obj["kind"]), obj, {"fieldManager": "kubectl-client-side-apply"})
    return obj


def test_kubectl_server_side_apply_after_client_side_apply_takes_over_without_conflict() -> None:
    live = client_side(deployment(replicas=2, labels={"name": "test"}))
    out = apply(live, deployment(replicas=3, labels={"name": "applied"}))
    assert out["spec"]["replicas"] == 3 and out["metadata"]["labels"] == {"name": "applied"}
    m = managers(out)
    assert {".spec.replicas", ".metadata.labels.name"} <= m[("kubectl", "Apply")]
    assert ".spec.replicas" not in m.get(("kubectl-client-side-apply", "Update"), set())
    # the annotation follows the applied configuration, so a later client-side apply diffs against it
    last = json.loads(out["metadata"]["annotations"][ssa.LAST_APPLIED])
    assert last["spec"]["replicas"] == 3 and out["metadata"]["annotations"][ssa.LAST_APPLIED].endswith("}\n")


def test_fields_changed_since_the_client_side_apply_still_conflict() -> None:
    live = update(client_side(deployment(replicas=2)), set_replicas(5), "kubectl-scale")
    with pytest.raises(errors.Conflict, match='conflict with "kubectl-scale" using apps/v1: .spec.replicas'):
        apply(live, deployment(replicas=3))


def test_only_the_kubectl_manager_is_upgraded() -> None:
    live = client_side(deployment(replicas=2))
    with pytest.raises(errors.Conflict, match='conflict with "kubectl-client-side-apply"'):
        apply(live, deployment(replicas=3), manager="my-tool")


def test_an_object_without_managed_fields_but_with_last_applied_applies_cleanly() -> None:
    live = client_side(deployment(replicas=2))
    del live["metadata"]["managedFields"]  # e.g. written by a client that sent no fieldManager
    out = apply(live, deployment(replicas=4))
    assert out["spec"]["replicas"] == 4
    assert ".spec.replicas" in managers(out)[("kubectl", "Apply")]
