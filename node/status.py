"""Pod status as the kubelet computes it: a pure function of the pod and its containers' states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.meta import TERMINAL_POD_PHASES

RUNNING, WAITING, TERMINATED = "running", "waiting", "terminated"


@dataclass
class ContainerView:
    """What the agent knows of one container of a pod (the current instance and the previous)."""

    name: str
    image: str
    state: str = WAITING
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    container_id: str = ""
    image_id: str = ""
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    last_terminated: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_status(self) -> dict[str, Any]:
        if self.state == RUNNING:
            state: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.state == TERMINATED:
            state = {"terminated": terminated_state(self)}
        else:
            state = {"waiting": {"reason": self.reason, **({"message": self.message} if self.message else {})}}
        out: dict[str, Any] = {
            "name": self.name, "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
            "ready": self.ready, "restartCount": self.restart_count, "image": self.image,
            "imageID": self.image_id, "started": self.started,
        }
        if self.container_id:
            out["containerID"] = f"docker://{self.container_id}"
        return out


def terminated_state(v: ContainerView) -> dict[str, Any]:
    t: dict[str, Any] = {"exitCode": v.exit_code if v.exit_code is not None else 0,
                         "reason": v.reason or ("Completed" if not v.exit_code else "Error"),
                         "startedAt": v.started_at, "finishedAt": v.finished_at}
    if v.message:
        t["message"] = v.message
    if v.container_id:
        t["containerID"] = f"docker://{v.container_id}"
    return t


def phase(restart_policy: str, init: list[ContainerView], apps: list[ContainerView], init_failed: bool) -> str:
    """Kubernetes' getPhase."""
    if init_failed:
        return "Failed"
    if any(not (c.state == TERMINATED and c.exit_code == 0) for c in init):
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for c in apps:
        if c.state == RUNNING:
            running += 1
        elif c.state == TERMINATED:
            stopped += 1
            succeeded += c.exit_code == 0
        elif c.last_terminated is not None:
            stopped += 1
            succeeded += c.last_terminated.get("exitCode") == 0
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Running" if restart_policy == "OnFailure" else "Failed"
    return "Pending"


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None}
    if not ok and reason:
        c["reason"] = reason
    if not ok and message:
        c["message"] = message
    return c


def pod_status(pod: dict, init: list[ContainerView], apps: list[ContainerView], pod_ip: str, host_ip: str,
               start_time: str | None, now: str, init_failed: bool = False, reason: str = "",
               message: str = "") -> dict[str, Any]:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    ph = phase(spec.get("restartPolicy") or "Always", init, apps, init_failed)
    initialized = all(c.state == TERMINATED and c.exit_code == 0 for c in init)
    unready = [c.name for c in apps if not c.ready]
    terminal = ph in TERMINAL_POD_PHASES
    conds = [
        _condition("Initialized", initialized, "ContainersNotInitialized",
                   "containers with incomplete status: [" + " ".join(
                       c.name for c in init if not (c.state == TERMINATED and c.exit_code == 0)) + "]"),
        _condition("Ready", not unready and not terminal, "PodCompleted" if terminal else "ContainersNotReady",
                   "" if terminal else f"containers with unready status: [{' '.join(unready)}]"),
        _condition("ContainersReady", not unready and not terminal, "PodCompleted" if terminal else "ContainersNotReady",
                   "" if terminal else f"containers with unready status: [{' '.join(unready)}]"),
    ]
    by_type = {c.get("type"): c for c in old.get("conditions") or []}
    merged = [by_type["PodScheduled"]] if "PodScheduled" in by_type else []
    for c in conds:
        prev = by_type.get(c["type"])
        c["lastTransitionTime"] = prev.get("lastTransitionTime") if prev and prev.get("status") == c["status"] else now
        merged.append(c)
    status: dict[str, Any] = {
        "phase": ph, "conditions": merged, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}] if host_ip else [],
        "startTime": start_time, "qosClass": old.get("qosClass"),
        "containerStatuses": [c.to_status() for c in apps],
    }
    if init:
        status["initContainerStatuses"] = [c.to_status() for c in init]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {k: v for k, v in status.items() if v is not None}
