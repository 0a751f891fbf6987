"""What a node reports about itself: the Node object (capacity, addresses, nodeInfo, conditions)
and its Lease."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from bus import config, skew
from bus.meta import now

KUBELET_VERSION = skew.kubelet_version()  # what the API server checks against the version-skew policy
MAX_PODS = 110


def host_ip() -> str:
    """The address this host uses for its default route (no packet is sent)."""
    return config.default_route_address()


def memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(p).read_text().strip()
        except OSError:
            continue
    return ""


def conditions(ready: bool = True, pressure: list[dict] | None = None) -> list[dict]:
    """Ready and the pressure conditions (``pressure``: the eviction manager's, node.pressure; else all False)."""
    t = now()
    base = [("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True" if ready else "False", "KubeletReady" if ready else "KubeletNotReady",
             "kubelet is posting ready status" if ready else "kubelet is not ready")]
    out = [{"type": ty, "status": st, "reason": r, "message": m, "lastHeartbeatTime": t, "lastTransitionTime": t}
           for ty, st, r, m in base]
    if pressure:
        given = {c["type"]: c for c in pressure}
        out = [given.get(c["type"], c) for c in out]
    return out


def heartbeat_status(ip: str, pressure: list[dict] | None = None) -> dict:
    return {"conditions": conditions(True, pressure), "addresses": addresses(ip)}


def addresses(ip: str) -> list[dict]:
    return [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": socket.gethostname()}]


def node_object(name: str, ip: str, labels: dict[str, str], pod_cidr: str | None) -> dict:
    cpu = str(os.cpu_count() or 1)
    mem = f"{memory_kib()}Ki"
    capacity = {"cpu": cpu, "memory": mem, "pods": str(MAX_PODS), "ephemeral-storage": "0"}
    spec: dict = {}
    if pod_cidr:
        spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                              "kubernetes.io/arch": _arch(), "beta.kubernetes.io/os": "linux",
                                              "beta.kubernetes.io/arch": _arch(), **labels}},
        "spec": spec,
        "status": {
            "capacity": capacity, "allocatable": dict(capacity), "conditions": conditions(True),
            "addresses": addresses(ip),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": _machine_id(), "systemUUID": _machine_id(), "bootID": _boot_id(),
                "kernelVersion": platform.release(), "osImage": os_image(),
                "containerRuntimeVersion": "docker://" + _docker_version(), "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux", "architecture": _arch(),
            },
        },
    }


def lease_object(name: str, renew: str, duration: int = 40) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": renew}}


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _docker_version() -> str:
    try:
        import docker

        return str(docker.from_env(timeout=2).version().get("Version", "unknown"))
    except Exception:
        return "unknown"
