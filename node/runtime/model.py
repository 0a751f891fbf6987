"""What the runtime hands back, and the Docker labels and names that tie a container to its pod."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from bus.meta import timestamp

LABEL_NODE = "io.k8n.node"
LABEL_POD_UID = "io.k8n.pod.uid"
LABEL_POD_NAME = "io.k8n.pod.name"
LABEL_POD_NAMESPACE = "io.k8n.pod.namespace"
LABEL_CONTAINER_NAME = "io.k8n.container.name"
LABEL_ATTEMPT = "io.k8n.container.attempt"
LABEL_INIT = "io.k8n.container.init"
LABEL_HASH = "io.k8n.container.hash"
SANDBOX_NAME = "POD"  # io.k8n.container.name of a pod's sandbox, as dockershim names it


@dataclass(frozen=True)
class Mount:
    """A bind mount the agent prepared (emptyDir, hostPath, projected secret/configMap, ...)."""
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Sandbox:
    id: str
    netns_path: str  # /proc/<pid>/ns/net
    pid: int


@dataclass
class ContainerInfo:
    """A container of this node, from the labels of the list call."""
    id: str
    pod_uid: str
    pod_name: str
    namespace: str
    container_name: str  # the Kubernetes container name; SANDBOX_NAME for the sandbox
    attempt: int
    init: bool
    hash: str
    state: str  # Docker's: created, running, paused, restarting, removing, exited, dead
    image: str
    created: int  # unix seconds

    @property
    def is_sandbox(self) -> bool:
        return self.container_name == SANDBOX_NAME


@dataclass
class ContainerStatus(ContainerInfo):
    """A container as inspected: what Kubernetes' containerStatuses need."""
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None  # RFC3339 UTC, seconds precision, like Kubernetes
    finished_at: str | None = None
    error: str = ""  # Docker's State.Error (e.g. the executable was not found)
    image_id: str = ""
    pid: int = 0


def pod_meta(pod: dict) -> tuple[str, str, str]:
    meta = pod["metadata"]
    return meta["name"], meta.get("namespace") or "default", meta["uid"]


def container_name(pod: dict, name: str, attempt: int) -> str:
    """``k8n_<container>_<pod>_<namespace>_<uid8>_<attempt>``, like dockershim's names."""
    pod_name, namespace, uid = pod_meta(pod)
    return f"k8n_{name}_{pod_name}_{namespace}_{uid[:8]}_{attempt}"


def container_hash(container: dict) -> str:
    """A stable hash of a container spec, so the agent can tell a changed spec from the labels alone."""
    return hashlib.sha256(orjson.dumps(container, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def labels(node: str, pod: dict, name: str, attempt: int, init: bool = False, spec_hash: str = "") -> dict[str, str]:
    pod_name, namespace, uid = pod_meta(pod)
    return {
        LABEL_NODE: node, LABEL_POD_UID: uid, LABEL_POD_NAME: pod_name, LABEL_POD_NAMESPACE: namespace,
        LABEL_CONTAINER_NAME: name, LABEL_ATTEMPT: str(attempt), LABEL_INIT: "true" if init else "false",
        LABEL_HASH: spec_hash,
    }


def _from_labels(cid: str, lab: dict[str, str], state: str, image: str, created: int) -> dict[str, Any]:
    return dict(
        id=cid, pod_uid=lab.get(LABEL_POD_UID, ""), pod_name=lab.get(LABEL_POD_NAME, ""),
        namespace=lab.get(LABEL_POD_NAMESPACE, ""), container_name=lab.get(LABEL_CONTAINER_NAME, ""),
        attempt=int(lab.get(LABEL_ATTEMPT) or 0), init=lab.get(LABEL_INIT) == "true", hash=lab.get(LABEL_HASH, ""),
        state=state, image=image, created=created,
    )


def info_from_list(entry: dict) -> ContainerInfo:
    """One entry of ``GET /containers/json``."""
    return ContainerInfo(**_from_labels(entry["Id"], entry.get("Labels") or {}, entry.get("State", ""),
                                        entry.get("Image", ""), int(entry.get("Created") or 0)))


def rfc3339(docker_time: str | None) -> str | None:
    """Docker's ``2026-11-26T19:00:00.123456789Z`` → ``2026-11-26T19:00:00Z``; Docker's zero time → None."""
    if not docker_time or docker_time.startswith("0001-01-01"):
        return None
    return docker_time[:19] + "Z"


def _unix(docker_time: str) -> int:
    return int(timestamp(docker_time, 0.0))


def status_from_inspect(data: dict) -> ContainerStatus:
    """``GET /containers/<id>/json``."""
    state, config = data.get("State") or {}, data.get("Config") or {}
    status = state.get("Status", "")
    fields = _from_labels(data["Id"], config.get("Labels") or {}, status, config.get("Image", ""),
                          _unix(data.get("Created") or ""))
    # a container that never ran (start failed) carries its exit code (e.g. 127) with State.Error
    has_exited = status in ("exited", "dead") or bool(state.get("Error"))
    return ContainerStatus(
        **fields,
        exit_code=state.get("ExitCode") if has_exited else None,
        oom_killed=bool(state.get("OOMKilled")), started_at=rfc3339(state.get("StartedAt")),
        finished_at=rfc3339(state.get("FinishedAt")), error=state.get("Error") or "",
        image_id=data.get("Image", ""), pid=int(state.get("Pid") or 0),
    )
