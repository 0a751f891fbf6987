"""Service and pod documents for the Endpoints and EndpointSlice logic tests: a ``web`` Service
selecting ``app: web`` pods in ``default``, and pods with their status as a node agent writes it."""

from __future__ import annotations

from tests import builders
from tests.builders import container


def service(ports=None, uid="svc-uid", **spec) -> dict:
    return builders.service("web", uid=uid, labels={"tier": "front"}, ports=ports, **{"selector": {"app": "web"}, **spec})


def pod(name: str, ip: str | None = "10.244.0.1", ready: bool = True, ports=None, phase="Running",
        deleting=False, node="n1", **spec) -> dict:
    return builders.pod(name, uid=f"uid-{name}", labels={"app": "web"},
                        deleting="2026-01-01T00:00:00Z" if deleting else None, node=node,
                        containers=[container("c", ports=ports or [])], phase=phase, ready=ready, ip=ip or None,
                        **spec)


def target_ref(p: dict) -> dict:
    m = p["metadata"]
    return {"kind": "Pod", "namespace": "default", "name": m["name"], "uid": m["uid"]}
