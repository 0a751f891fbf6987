"""What the scheduler needs of a pod, computed once per pod object (never a deep copy)."""

from __future__ import annotations

from dataclasses import dataclass

from bus import subjects
from bus.quantity import cpu_millis, memory_bytes

# Scoring counts a container without requests as this much (kube's non-zero defaults).
DEFAULT_CPU_MILLIS = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


def _requests(container: dict) -> dict:
    return ((container.get("resources") or {}).get("requests")) or {}


def _quantity(reqs: dict, name: str, parse) -> int:
    v = reqs.get(name)
    if v is None:
        return 0
    try:
        return parse(v)
    except ValueError:
        return 0


def pod_requests(spec: dict) -> tuple[int, int, int, int]:
    """(cpu millis, memory bytes, and the same counting kube's scoring defaults for a container that
    requests nothing): max(sum of containers, each init container) + overhead."""
    cpu = mem = nz_cpu = nz_mem = 0
    for c in spec.get("containers") or ():
        r = _requests(c)
        c_cpu, c_mem = _quantity(r, "cpu", cpu_millis), _quantity(r, "memory", memory_bytes)
        cpu += c_cpu
        mem += c_mem
        nz_cpu += c_cpu if "cpu" in r else DEFAULT_CPU_MILLIS
        nz_mem += c_mem if "memory" in r else DEFAULT_MEMORY
    for c in spec.get("initContainers") or ():
        r = _requests(c)
        i_cpu, i_mem = _quantity(r, "cpu", cpu_millis), _quantity(r, "memory", memory_bytes)
        cpu, mem, nz_cpu, nz_mem = max(cpu, i_cpu), max(mem, i_mem), max(nz_cpu, i_cpu), max(nz_mem, i_mem)
    overhead = spec.get("overhead") or {}
    o_cpu, o_mem = _quantity(overhead, "cpu", cpu_millis), _quantity(overhead, "memory", memory_bytes)
    return cpu + o_cpu, mem + o_mem, nz_cpu + o_cpu, nz_mem + o_mem


def host_ports(spec: dict) -> tuple[tuple[str, str, int], ...]:
    out = []
    for c in spec.get("containers") or ():
        for p in c.get("ports") or ():
            hp = p.get("hostPort")
            if hp:
                out.append((p.get("protocol") or "TCP", p.get("hostIP") or "0.0.0.0", int(hp)))
    return tuple(out)


def controller_uid(meta: dict) -> str | None:
    for ref in meta.get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref.get("uid")
    return None


@dataclass(slots=True)
class PodInfo:
    obj: dict  # the informer's object: shared, never mutated
    key: str
    namespace: str
    name: str
    uid: str
    priority: int
    cpu: int
    memory: int
    nz_cpu: int
    nz_memory: int
    host_ports: tuple[tuple[str, str, int], ...]
    owner: str | None
    spec: dict

    @classmethod
    def of(cls, pod: dict) -> "PodInfo":
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        cpu, mem, nz_cpu, nz_mem = pod_requests(spec)
        ns = meta.get("namespace") or "default"
        return cls(pod, subjects.object_key(ns, meta.get("name", "")), ns, meta.get("name", ""),
                   meta.get("uid") or "", int(spec.get("priority") or 0), cpu, mem, nz_cpu, nz_mem,
                   host_ports(spec), controller_uid(meta), spec)

    @property
    def node_name(self) -> str | None:
        return self.spec.get("nodeName")
