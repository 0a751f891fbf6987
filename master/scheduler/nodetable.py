"""Per-node data as numpy arrays indexed by a node slot: parsed once when a node changes
(allocatable, readiness, taints, labels) and requested sums kept incrementally as pods come and go.
Plugins read these arrays and memoise what depends only on the nodes' shape (``memo``)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from bus.quantity import cpu_millis, memory_bytes
from bus.scheduling import node_taints
from master.scheduler.podinfo import PodInfo

_FLOAT_ARRAYS = ("alloc_cpu", "alloc_mem", "alloc_pods", "inv_cpu", "inv_mem", "req_cpu", "req_mem", "nz_cpu",
                 "nz_mem", "pod_count")
_FULL = 1e30  # 1/allocatable of a node with none: any request makes it full
_BOOL_ARRAYS = ("valid", "ready", "unschedulable")


def _q(d: dict, name: str, parse: Callable[[Any], int]) -> int:
    try:
        return parse(d[name]) if d.get(name) is not None else 0
    except ValueError:
        return 0


def node_shape(node: dict) -> tuple:
    """Everything scheduling reads from a Node (a change of anything else is ignored)."""
    spec, status = node.get("spec") or {}, node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    taints = node_taints(node)
    labels = tuple(sorted(((node.get("metadata") or {}).get("labels") or {}).items()))
    return (_q(alloc, "cpu", cpu_millis), _q(alloc, "memory", memory_bytes), _q(alloc, "pods", int),
            ready, bool(spec.get("unschedulable")), taints, labels)


class NodeTable:
    def __init__(self, capacity: int = 64) -> None:
        self.slot_of: dict[str, int] = {}
        self.names: list[str] = []
        self.labels: list[dict] = []
        self.taints: list[tuple] = []
        self.ports: list[Counter] = []
        self.owners: dict[str, np.ndarray] = {}  # controller uid -> pods per slot
        self.version = 0  # bumped when any node's shape changes
        self._shapes: list[tuple | None] = []
        self._memo: dict[Any, Any] = {}
        self._cap = 0
        for a in _FLOAT_ARRAYS:
            setattr(self, a, np.zeros(0))
        for a in _BOOL_ARRAYS:
            setattr(self, a, np.zeros(0, dtype=bool))
        self._grow(capacity)

    # ---- nodes -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_nodes(self) -> int:
        return int(self.valid[: len(self.names)].sum())

    def slot(self, name: str) -> int:
        """The node's slot (allocated on first sight; pods may name a node before it appears)."""
        s = self.slot_of.get(name)
        if s is None:
            s = len(self.names)
            if s >= self._cap:
                self._grow(self._cap * 2)
            self.slot_of[name] = s
            self.names.append(name)
            self.labels.append({})
            self.taints.append(())
            self.ports.append(Counter())
            self._shapes.append(None)
        return s

    def set_node(self, node: dict) -> bool:
        """Add or update a node; returns whether anything scheduling reads changed."""
        s = self.slot(node["metadata"]["name"])
        shape = node_shape(node)
        if self.valid[s] and self._shapes[s] == shape:
            return False
        cpu, mem, pods, ready, unsched, taints, labels = shape
        self.alloc_cpu[s], self.alloc_mem[s], self.alloc_pods[s] = cpu, mem, pods
        self.inv_cpu[s], self.inv_mem[s] = (1.0 / cpu if cpu else _FULL), (1.0 / mem if mem else _FULL)
        self.ready[s], self.unschedulable[s], self.valid[s] = ready, unsched, True
        self.taints[s], self.labels[s], self._shapes[s] = taints, dict(labels), shape
        self._changed()
        return True

    def remove_node(self, name: str) -> None:
        s = self.slot_of.get(name)
        if s is not None and self.valid[s]:
            self.valid[s] = False
            self._shapes[s] = None
            self._changed()

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """A value that depends only on node shapes, recomputed after any of them changes."""
        try:
            return self._memo[key]
        except KeyError:
            v = self._memo[key] = compute()
            return v

    # ---- pods --------------------------------------------------------------------------------

    def account(self, slot: int, pod: PodInfo, sign: int) -> None:
        """Add (+1) or remove (-1) a pod's requests, ports and owner on a node."""
        self.req_cpu[slot] += sign * pod.cpu
        self.req_mem[slot] += sign * pod.memory
        self.nz_cpu[slot] += sign * pod.nz_cpu
        self.nz_mem[slot] += sign * pod.nz_memory
        self.pod_count[slot] += sign
        if pod.host_ports:
            ports = self.ports[slot]
            for p in pod.host_ports:
                ports[p] += sign
                if ports[p] <= 0:
                    del ports[p]
        if pod.owner:
            counts = self.owners.get(pod.owner)
            if counts is None:
                counts = self.owners[pod.owner] = np.zeros(self._cap)
            counts[slot] += sign
            if sign < 0 and not counts.any():
                del self.owners[pod.owner]

    def owner_counts(self, owner: str | None) -> np.ndarray | None:
        return self.owners.get(owner) if owner else None

    # ---- internals ---------------------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1
        self._memo.clear()

    def _grow(self, cap: int) -> None:
        n = self._cap
        for a in _FLOAT_ARRAYS + _BOOL_ARRAYS:
            old = getattr(self, a)
            new = np.zeros(cap, dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, a, new)
        for owner, counts in self.owners.items():
            new = np.zeros(cap)
            new[:n] = counts[:n]
            self.owners[owner] = new
        self._cap = cap
        self._memo.clear()

    def view(self, name: str) -> np.ndarray:
        """An array trimmed to the allocated slots."""
        return getattr(self, name)[: len(self.names)]
