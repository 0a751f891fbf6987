"""Node-pressure eviction as the kubelet's eviction manager (pkg/kubelet/eviction) decides it: pure functions of
measurements and pods, so every decision is unit-tested; the measuring and acting live in ``node.pressure``.

- **Signals and thresholds** (``--eviction-hard``): ``memory.available``, ``allocatableMemory.available`` (the
  node's memory less its pods' working sets), ``nodefs.available``, ``nodefs.inodesFree``, ``imagefs.available``,
  ``imagefs.inodesFree``, ``pid.available``, each ``<`` a quantity
  (``100Mi``) or a percentage of the capacity (``10%``). The kubelet's Linux defaults: ``memory.available<100Mi,
  nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%`` (no ``pid.available``).
- **Conditions**: a threshold met sets its condition (MemoryPressure, DiskPressure, PIDPressure) True, with the
  kubelet's reasons and messages; it stays True until ``--eviction-pressure-transition-period`` has passed since
  a threshold of it was last met (no flapping).
- **Ranking** (``rank``): memory — pods whose usage exceeds their requests first, then lower priority, then usage
  above requests; disk — the same with ephemeral storage; PIDs — lower priority, then more processes.
  Static, mirror and critical pods (priority ≥ 2000000000) are never evicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterable

from bus.quantity import format_quantity, memory_bytes

MEMORY, NODEFS, NODEFS_INODES = "memory.available", "nodefs.available", "nodefs.inodesFree"
IMAGEFS, IMAGEFS_INODES, PIDS = "imagefs.available", "imagefs.inodesFree", "pid.available"
ALLOCATABLE_MEMORY = "allocatableMemory.available"  # the node's allocatable memory less what its pods use
SIGNALS = (MEMORY, ALLOCATABLE_MEMORY, NODEFS, NODEFS_INODES, IMAGEFS, IMAGEFS_INODES, PIDS)
MEMORY_SIGNALS = (MEMORY, ALLOCATABLE_MEMORY)
DEFAULT_EVICTION_HARD = ("memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,"
                         "imagefs.inodesFree<5%")
MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE = "MemoryPressure", "DiskPressure", "PIDPressure"
CONDITION_OF = {MEMORY: MEMORY_PRESSURE, ALLOCATABLE_MEMORY: MEMORY_PRESSURE, NODEFS: DISK_PRESSURE,
                NODEFS_INODES: DISK_PRESSURE,
                IMAGEFS: DISK_PRESSURE, IMAGEFS_INODES: DISK_PRESSURE, PIDS: PID_PRESSURE}
RESOURCE_OF = {MEMORY: "memory", ALLOCATABLE_MEMORY: "memory", NODEFS: "ephemeral-storage", NODEFS_INODES: "inodes",
               IMAGEFS: "ephemeral-storage", IMAGEFS_INODES: "inodes", PIDS: "pids"}
CONDITIONS = (MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE)
# (status) -> (reason, message) as the kubelet's node status setters write them
CONDITION_TEXT = {
    (MEMORY_PRESSURE, True): ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
    (MEMORY_PRESSURE, False): ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    (DISK_PRESSURE, True): ("KubeletHasDiskPressure", "kubelet has disk pressure"),
    (DISK_PRESSURE, False): ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    (PID_PRESSURE, True): ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
    (PID_PRESSURE, False): ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
}
# the Normal events on the Node when a condition changes (the kubelet's recordNodeStatusEvent)
NODE_EVENT = {(MEMORY_PRESSURE, True): "NodeHasInsufficientMemory", (MEMORY_PRESSURE, False): "NodeHasSufficientMemory",
              (DISK_PRESSURE, True): "NodeHasDiskPressure", (DISK_PRESSURE, False): "NodeHasNoDiskPressure",
              (PID_PRESSURE, True): "NodeHasInsufficientPID", (PID_PRESSURE, False): "NodeHasSufficientPID"}
REASON = "Evicted"
SYSTEM_CRITICAL_PRIORITY = 2000000000
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SOURCE_ANNOTATION = "kubernetes.io/config.source"


class ThresholdError(ValueError):
    pass


@dataclass(frozen=True)
class Threshold:
    signal: str
    quantity: int | None = None  # bytes (or inodes, PIDs)
    percentage: float | None = None  # of the capacity, 0..1

    def value(self, capacity: int) -> int:
        """The threshold in the signal's unit for a resource of ``capacity``."""
        if self.quantity is not None:
            return self.quantity
        return int(Decimal(str(self.percentage)) * capacity)

    def __str__(self) -> str:
        q = format_quantity(self.quantity, binary=True) if self.quantity is not None \
            else f"{self.percentage * 100:g}%"
        return f"{self.signal}<{q}"


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


def parse_thresholds(text: str) -> list[Threshold]:
    """``memory.available<100Mi,nodefs.available<10%`` (the kubelet's ``--eviction-hard``); empty: none."""
    out: dict[str, Threshold] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        signal, op, value = part.partition("<")
        signal, value = signal.strip(), value.strip()
        if not op or not value:
            raise ThresholdError(f"{part!r}: expected SIGNAL<QUANTITY or SIGNAL<PERCENT%")
        if signal not in SIGNALS:
            raise ThresholdError(f"{part!r}: unsupported eviction signal {signal!r} (one of {', '.join(SIGNALS)})")
        if signal in out:
            raise ThresholdError(f"{part!r}: a second threshold for {signal}")
        if value.endswith("%"):
            try:
                pct = float(value[:-1]) / 100
            except ValueError:
                raise ThresholdError(f"{part!r}: not a percentage") from None
            if not 0 <= pct <= 1:
                raise ThresholdError(f"{part!r}: the percentage must be between 0% and 100%")
            out[signal] = Threshold(signal, percentage=pct)
        else:
            try:
                q = memory_bytes(value)
            except (ValueError, ArithmeticError):
                raise ThresholdError(f"{part!r}: not a quantity") from None
            if q < 0:
                raise ThresholdError(f"{part!r}: a negative quantity")
            out[signal] = Threshold(signal, quantity=q)
    return list(out.values())


def thresholds_met(thresholds: Iterable[Threshold], observed: dict[str, Observation]) -> list[Threshold]:
    """The thresholds whose signal is observed below them, memory first (the kubelet's byEvictionPriority)."""
    met = [t for t in thresholds if (o := observed.get(t.signal)) is not None and o.available < t.value(o.capacity)]
    return sorted(met, key=lambda t: t.signal not in MEMORY_SIGNALS)


# ---- conditions ----------------------------------------------------------------------------------


@dataclass
class PressureConditions:
    """The pressure conditions with the kubelet's transition period: True as soon as a threshold is met, False
    only when none of the condition's thresholds was met for ``transition_period`` seconds."""

    transition_period: float = 300.0
    last_met: dict[str, float] = field(default_factory=dict)  # condition -> when a threshold of it was last met
    status: dict[str, bool] = field(default_factory=lambda: {c: False for c in CONDITIONS})
    transitions: dict[str, str] = field(default_factory=dict)  # condition -> lastTransitionTime

    def observe(self, met: Iterable[Threshold], now: float) -> dict[str, bool]:
        """Update from the thresholds met at ``now``; the conditions that changed (condition -> new status)."""
        for t in met:
            self.last_met[CONDITION_OF[t.signal]] = now
        changed = {}
        for c in CONDITIONS:
            last = self.last_met.get(c)
            want = last is not None and now - last < self.transition_period
            if want != self.status[c]:
                self.status[c] = want
                changed[c] = want
        return changed

    def to_api(self, heartbeat: str, started: str) -> list[dict]:
        """The three conditions as Node status entries (``started``: the transition time of one never changed)."""
        out = []
        for c in CONDITIONS:
            on = self.status[c]
            reason, message = CONDITION_TEXT[(c, on)]
            out.append({"type": c, "status": "True" if on else "False", "reason": reason, "message": message,
                        "lastHeartbeatTime": heartbeat, "lastTransitionTime": self.transitions.get(c, started)})
        return out


# ---- pods: criticality, requests, ranking --------------------------------------------------------


def is_critical(pod: dict) -> bool:
    """kubelettypes.IsCriticalPod: a static or mirror pod, or a priority of system-cluster-critical or more."""
    meta = pod.get("metadata") or {}
    ann = meta.get("annotations") or {}
    if MIRROR_ANNOTATION in ann or ann.get(SOURCE_ANNOTATION, "api") != "api":
        return True
    prio = (pod.get("spec") or {}).get("priority")
    return prio is not None and int(prio) >= SYSTEM_CRITICAL_PRIORITY


def priority(pod: dict) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def container_requests(pod: dict, resource: str) -> dict[str, int]:
    """Each app container's request of ``resource`` (``memory``, ``ephemeral-storage``) in bytes."""
    out = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        q = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        out[c.get("name", "")] = memory_bytes(q) if q is not None else 0
    return out


@dataclass
class PodUsage:
    """What a pod uses, as the kubelet's summary stats give it (None: no stats)."""

    pod: dict
    memory: int | None = None
    disk: int | None = None
    processes: int = 0
    containers_memory: dict[str, int] = field(default_factory=dict)  # container -> working set bytes


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def _exceeds(usage: int | None, pod: dict, resource: str) -> tuple[bool, int]:
    """(usage above the pod's requests?, usage minus requests)."""
    req = sum(container_requests(pod, resource).values())
    if usage is None:
        return True, 0
    return usage > req, usage - req


def _by(*cmps: Callable[[PodUsage, PodUsage], int]):
    import functools

    def compare(a: PodUsage, b: PodUsage) -> int:
        for c in cmps:
            if r := c(a, b):
                return r
        return 0
    return functools.cmp_to_key(compare)


def _exceed_cmp(attr: str, resource: str) -> Callable[[PodUsage, PodUsage], int]:
    def cmp(a: PodUsage, b: PodUsage) -> int:
        ea, eb = (getattr(a, attr) is None), (getattr(b, attr) is None)
        if ea or eb:  # no stats: evicted first (the kubelet's exceedMemoryRequests)
            return _cmp(eb, ea)
        return _cmp(_exceeds(getattr(b, attr), b.pod, resource)[0], _exceeds(getattr(a, attr), a.pod, resource)[0])
    return cmp


def _priority_cmp(a: PodUsage, b: PodUsage) -> int:
    return _cmp(priority(a.pod), priority(b.pod))  # lower priority first


def _above_cmp(attr: str, resource: str) -> Callable[[PodUsage, PodUsage], int]:
    def cmp(a: PodUsage, b: PodUsage) -> int:
        return _cmp(_exceeds(getattr(b, attr), b.pod, resource)[1], _exceeds(getattr(a, attr), a.pod, resource)[1])
    return cmp


def _processes_cmp(a: PodUsage, b: PodUsage) -> int:
    return _cmp(b.processes, a.processes)


def rank(pods: list[PodUsage], signal: str) -> list[PodUsage]:
    """The pods in the order the kubelet evicts them for a threshold of ``signal``."""
    if signal in MEMORY_SIGNALS:
        key = _by(_exceed_cmp("memory", "memory"), _priority_cmp, _above_cmp("memory", "memory"))
    elif signal == PIDS:
        key = _by(_priority_cmp, _processes_cmp)
    else:
        key = _by(_exceed_cmp("disk", "ephemeral-storage"), _priority_cmp, _above_cmp("disk", "ephemeral-storage"))
    return sorted(pods, key=key)


def victim(pods: list[PodUsage], signal: str) -> PodUsage | None:
    """The first pod of the ranking that may be evicted (critical ones are skipped, as evictPod refuses them)."""
    return next((p for p in rank(pods, signal) if not is_critical(p.pod)), None)


def eviction_message(threshold: Threshold, observed: Observation | None, usage: PodUsage) -> str:
    """The kubelet's message: the resource, the threshold and what was available, and for memory each container
    using more than its request."""
    resource = RESOURCE_OF[threshold.signal]
    msg = f"The node was low on resource: {resource}. "
    if observed is not None:
        msg += (f"Threshold quantity: {_q(threshold.value(observed.capacity))}, "
                f"available: {_q(observed.available)}. ")
    if threshold.signal in MEMORY_SIGNALS:
        requests = container_requests(usage.pod, "memory")
        for name, used in usage.containers_memory.items():
            req = requests.get(name, 0)
            if used > req:
                msg += (f"Container {name} was using {_q(used)}, request is {_q(req)}, "
                        f"has larger consumption of {resource}. ")
    return msg


def _q(n: int) -> str:
    """A byte count as the kubelet prints it (``Ki`` units, as cAdvisor's figures come out)."""
    n = int(n)
    return format_quantity(n - n % 1024 if n >= 1024 else n, binary=True)

