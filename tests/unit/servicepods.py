"""Service and pod documents for the Endpoints and EndpointSlice logic tests: a ``web`` Service
selecting ``app: web`` pods in ``default``, and pods with their status as a node agent writes it."""

from __future__ import annotations


def service(ports=None, uid="svc-uid", **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "default", "uid": uid, "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"},
                     "ports": ports if ports is not None else [{"port": 80, "targetPort": 8080}], **spec}}


def pod(name: str, ip: str | None = "10.244.0.1", ready: bool = True, ports=None, phase="Running",
        deleting=False, node="n1", **spec) -> dict:
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status,
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec}}


def target_ref(p: dict) -> dict:
    m = p["metadata"]
    return {"kind": "Pod", "namespace": "default", "name": m["name"], "uid": m["uid"]}
