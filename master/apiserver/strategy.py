"""Per-resource rules the verbs apply: what create sets, what update keeps, when generation moves.

Everything here works on plain dicts (the stored form) and is pure, so it is unit-testable.
"""

from __future__ import annotations

import uuid

from bus.meta import TERMINAL_POD_PHASES, deep_copy, now
from bus.resources import Resource

# Kinds whose status the main resource may not write (it has a status subresource) — except
# Node, whose agent creates it with status, as Kubernetes' kubelet does.
_KEEP_STATUS_ON_CREATE = {"Node"}


def _without(obj: dict, *keys: str) -> dict:
    return {k: v for k, v in obj.items() if k not in keys}


def spec_of(obj: dict) -> dict:
    """What counts as the object's desired state: everything but metadata and status."""
    return _without(obj, "metadata", "status", "apiVersion", "kind")


def qos_class(spec: dict) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# Status fields Kubernetes' Go types serialise without ``omitempty``: kube-apiserver answers them (zero when unset)
# from the create on, and typed clients require them (the Python client's V1ReplicationControllerStatus needs
# ``replicas``, V1DaemonSetStatus its four counts). Structs without omitempty's effect (``loadBalancer``) likewise.
REQUIRED_STATUS: dict[str, dict] = {
    "ReplicationController": {"replicas": 0},
    "ReplicaSet": {"replicas": 0},
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                  "numberReady": 0},
    "HorizontalPodAutoscaler": {"desiredReplicas": 0},  # autoscaling/v2
    "PodDisruptionBudget": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    "Service": {"loadBalancer": {}},
    "Ingress": {"loadBalancer": {}},
}


def complete_status(res: Resource, obj: dict) -> dict:
    """Give ``obj`` (in place) the status fields Kubernetes always serialises, zero where a writer left them out —
    every write of a kind with a status goes through here, so no status writer can drop them."""
    required = REQUIRED_STATUS.get(res.kind)
    if required and res.has_status:
        status = obj.get("status")
        if not isinstance(status, dict):
            status = obj["status"] = {}
        for k, v in required.items():
            if status.get(k) is None:
                status[k] = deep_copy(v)
    return obj


def initial_status(res: Resource, obj: dict) -> dict | None:
    if res.custom is not None:  # a create cannot set status where it is a subresource; elsewhere it is data
        return None if res.has_status else obj.get("status")
    kind = res.kind
    if kind == "Pod":
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    if kind == "Namespace":
        return {"phase": "Active"}
    if kind in ("PersistentVolume", "PersistentVolumeClaim"):
        return {"phase": "Pending"}
    if res.has_status:
        return deep_copy(REQUIRED_STATUS.get(kind) or {})
    return None


def prepare_create(res: Resource, obj: dict, namespace: str | None) -> dict:
    """Set the server-owned metadata and the initial status of a new object (in place)."""
    meta = obj.setdefault("metadata", {})
    if res.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    meta["generation"] = 1
    for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(k, None)
    obj["apiVersion"] = res.storage_api_version  # a custom resource's storage version
    obj["kind"] = res.kind
    if res.kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name")
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
    if res.kind not in _KEEP_STATUS_ON_CREATE:
        status = initial_status(res, obj)
        if status is None:
            obj.pop("status", None)
        else:
            obj["status"] = status
    return obj


_IMMUTABLE_META = ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp",
                   "deletionGracePeriodSeconds", "generation")


def prepare_update(res: Resource, old: dict, new: dict) -> dict:
    """A main-resource update: server-owned metadata and (with a status subresource) the status
    come from the stored object; generation moves when the desired state changed."""
    new_meta = new.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    for k in _IMMUTABLE_META:
        if k in old_meta:
            new_meta[k] = old_meta[k]
        else:
            new_meta.pop(k, None)
    new["apiVersion"], new["kind"] = res.storage_api_version, res.kind
    if res.has_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if spec_of(old) != spec_of(new):
        new_meta["generation"] = int(old_meta.get("generation") or 1) + 1
    return new


def prepare_status_update(res: Resource, old: dict, new: dict) -> dict:
    """A status-subresource update: only the status comes from the request."""
    out = deep_copy(old)
    if "status" in new:
        out["status"] = new["status"]
    else:
        out.pop("status", None)
    return out


def same_but_status(a: dict, b: dict) -> bool:
    """Whether two versions of an object differ at most in their status."""
    return {k: v for k, v in a.items() if k != "status"} == {k: v for k, v in b.items() if k != "status"}


def strip_for_compare(obj: dict) -> dict:
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    return {**obj, "metadata": meta}


def unchanged(old: dict, new: dict) -> bool:
    return strip_for_compare(old) == strip_for_compare(new)


def pod_delete_grace(pod: dict, requested: int | None) -> int:
    """Kubernetes' pod grace period: the request's, else the spec's; 0 when the pod never ran."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in TERMINAL_POD_PHASES:
        return 0
    if requested is not None:
        return max(0, int(requested))
    grace = spec.get("terminationGracePeriodSeconds")
    return 30 if grace is None else max(0, int(grace))


def set_replicas(res: Resource, obj: dict, replicas: int) -> None:
    """What a Scale update writes: ``spec.replicas``, or a custom resource's ``specReplicasPath``."""
    if res.custom is not None:
        from bus import crd

        crd.set_path(obj, (crd.scale_paths(res) or {}).get("specReplicasPath") or ".spec.replicas", replicas)
        return
    obj.setdefault("spec", {})["replicas"] = replicas


def scale_of(res: Resource, obj: dict) -> dict:
    """The autoscaling/v1 Scale view of a Deployment, ReplicaSet or ReplicationController (or a custom resource
    with a scale subresource: its definition's paths)."""
    if res.custom is not None:
        from bus import crd

        return crd.scale_of(res, obj)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    sel = spec.get("selector")
    if res.kind == "ReplicationController":
        sel_str = ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items()))
    else:
        from bus.labels import selector_from_label_selector

        sel_str = str(selector_from_label_selector(sel)) if sel is not None else ""
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": int(spec.get("replicas", 1) or 0)},
        "status": {"replicas": int(status.get("replicas") or 0), "selector": sel_str},
    }
