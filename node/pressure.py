"""The node's eviction manager (the kubelet's pkg/kubelet/eviction): measures the eviction signals every
``--eviction-monitoring-seconds``, keeps the MemoryPressure/DiskPressure/PIDPressure conditions (the Node status is
posted at once when one changes, with a Normal ``NodeHas…`` event), and while a threshold is met reclaims: unused
images first for disk pressure (``node.imagegc``), then one pod per round, ranked by ``node.eviction``. An evicted
pod is Failed with reason ``Evicted``, a ``DisruptionTarget`` condition and the kubelet's message, gets a Warning
``Evicted`` event, and its containers, sandbox, network and volumes are removed; it is never restarted.

Measurements: ``memory.available`` is MemAvailable of ``/proc/meminfo``; ``allocatableMemory.available`` MemTotal
less the working sets of the node's pods' containers (their cgroups); ``nodefs`` the filesystem of the
agent's state directory (pods' volumes) or ``--eviction-nodefs-path``; ``imagefs`` Docker's data root or
``--eviction-imagefs-path``; ``pid.available`` ``kernel.pid_max`` less the tasks of ``/proc/loadavg``."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from bus import errors
from bus.events import NORMAL, WARNING
from bus.meta import format_time
from node import eviction as ev

log = logging.getLogger(__name__)
POD_CLEANUP_SECONDS = 30.0  # the kubelet waits this long for an evicted pod's resources to go


def _meminfo(path: str = "/proc/meminfo") -> ev.Observation | None:
    info: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("MemTotal", "MemAvailable"):
            info[k] = int(v.split()[0]) * 1024
            if len(info) == 2:
                return ev.Observation(info["MemAvailable"], info["MemTotal"])
    return None


def _fs(path: str) -> tuple[ev.Observation, ev.Observation | None]:
    st = os.statvfs(path)
    space = ev.Observation(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
    inodes = ev.Observation(st.f_favail, st.f_files) if st.f_files else None
    return space, inodes


def _pids() -> ev.Observation:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    tasks = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    return ev.Observation(pid_max - tasks, pid_max)


def measure(nodefs: str, imagefs: str | None) -> dict[str, ev.Observation]:
    """Every signal that can be observed now (a path that cannot be read is left out)."""
    out: dict[str, ev.Observation] = {}
    if (m := _meminfo()) is not None:
        out[ev.MEMORY] = m
    for signal, inode_signal, path in ((ev.NODEFS, ev.NODEFS_INODES, nodefs), (ev.IMAGEFS, ev.IMAGEFS_INODES, imagefs)):
        if not path:
            continue
        try:
            space, inodes = _fs(path)
        except OSError:
            continue
        out[signal] = space
        if inodes is not None:
            out[inode_signal] = inodes
    try:
        out[ev.PIDS] = _pids()
    except (OSError, ValueError, IndexError):
        pass
    return out


def du(path: Path) -> int:
    """Bytes of the files under ``path`` (blocks allocated, as ``du``), without following symlinks."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _cgroup_pids(container_id: str) -> int:
    for rel in (f"pids/docker/{container_id}/pids.current",
                f"pids/system.slice/docker-{container_id}.scope/pids.current",
                f"system.slice/docker-{container_id}.scope/pids.current", f"docker/{container_id}/pids.current"):
        try:
            return int(Path("/sys/fs/cgroup", rel).read_text())
        except (OSError, ValueError):
            continue
    return 0


class PressureManager:
    def __init__(self, agent: Any, thresholds: list[ev.Threshold], *, nodefs: str, imagefs: str | None,
                 monitoring_seconds: float = 10.0, transition_period: float = 300.0, image_gc: Any = None) -> None:
        self.agent = agent
        self.thresholds = thresholds
        self.nodefs, self.imagefs = nodefs, imagefs
        self.monitoring_seconds = monitoring_seconds
        self.conditions = ev.PressureConditions(transition_period)
        self.image_gc = image_gc
        self.started = format_time()
        self.observed: dict[str, ev.Observation] = {}

    def node_conditions(self) -> list[dict]:
        """The three pressure conditions for the Node's status."""
        return self.conditions.to_api(format_time(), self.started)

    async def measure(self) -> dict[str, ev.Observation]:
        self.observed = await asyncio.to_thread(measure, self.nodefs, self.imagefs)
        return self.observed

    async def loop(self) -> None:
        while True:
            try:
                await self.synchronize()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("eviction manager round failed")
            await asyncio.sleep(self.monitoring_seconds)

    async def synchronize(self) -> ev.PodUsage | None:
        """One round: measure, update the conditions, reclaim; the pod evicted, if any."""
        observed = await self.measure()
        usages: list[ev.PodUsage] | None = None
        if ev.MEMORY in observed and any(t.signal == ev.ALLOCATABLE_MEMORY for t in self.thresholds):
            usages = await self.pod_usages()
            used = sum(u.memory or 0 for u in usages)
            cap = observed[ev.MEMORY].capacity
            observed[ev.ALLOCATABLE_MEMORY] = ev.Observation(max(0, cap - used), cap)
        met = ev.thresholds_met(self.thresholds, observed)
        await self._update_conditions(met)
        if not met:
            return None
        log.warning("eviction thresholds met: %s", ", ".join(
            f"{t} (available {observed[t.signal].available})" for t in met))
        if self.image_gc is not None and any(t.signal in self._image_signals() for t in met):
            await self.image_gc.delete_unused()  # node-level reclaim first (reclaimNodeLevelResources)
            observed = {**observed, **await self.measure()}
            met = ev.thresholds_met(self.thresholds, observed)
            if not met:
                return None
        threshold = met[0]
        usages = usages if usages is not None else await self.pod_usages()
        victim = ev.victim(usages, threshold.signal)
        if victim is None:
            log.error("eviction manager: no pod to evict for %s", threshold)
            return None
        message = ev.eviction_message(threshold, observed.get(threshold.signal), victim)
        await self.evict(victim.pod, message)
        return victim

    def _image_signals(self) -> tuple[str, ...]:
        """The signals removing images relieves: imagefs's, and nodefs's when images are on that filesystem."""
        try:
            shared = bool(self.imagefs) and os.stat(self.nodefs).st_dev == os.stat(self.imagefs).st_dev
        except OSError:
            shared = False
        image = (ev.IMAGEFS, ev.IMAGEFS_INODES)
        return image + (ev.NODEFS, ev.NODEFS_INODES) if shared else image

    async def _update_conditions(self, met: list[ev.Threshold]) -> None:
        before = dict(self.conditions.status)
        changed = self.conditions.observe(met, time.monotonic())
        if not changed:
            return
        stamp = format_time()
        for c, on in changed.items():
            self.conditions.transitions[c] = stamp
            log.log(logging.WARNING if on else logging.INFO, "node %s: %s is now %s (was %s)", self.agent.name, c, on,
                    before[c])
            reason = ev.NODE_EVENT[(c, on)]
            node = {"kind": "Node", "apiVersion": "v1",
                    "metadata": {"name": self.agent.name, "uid": getattr(self.agent, "node_uid", None)}}
            await self.agent.recorder.event(node, NORMAL, reason, f"Node {self.agent.name} status is now: {reason}")
        await self.agent.post_status()

    # ---- pods ----------------------------------------------------------------------------------

    def _active(self) -> list:
        """The workers of pods that run (not deleted, not finished, not evicted already)."""
        out = []
        for w in list(self.agent.workers.values()):
            pod = w.pod or {}
            if w.done or w.deleted or w.rejected or (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if (w.last_status or pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            out.append(w)
        return out

    async def pod_usages(self) -> list[ev.PodUsage]:
        out = []
        rt = self.agent.runtime
        for w in self._active():
            mem: dict[str, int] = {}
            procs = 0
            for name, inst in list(w.current.items()):
                if inst.state != "running":
                    continue
                try:
                    st = await rt.stats(inst.id)
                    mem[name] = int(st.get("memory_working_set_bytes") or st.get("memory_usage_bytes") or 0)
                except Exception:
                    pass
                procs += _cgroup_pids(inst.id)
            disk = await asyncio.to_thread(du, self.agent.volumes.pod_dir(w.uid))
            out.append(ev.PodUsage(w.pod, memory=sum(mem.values()), disk=disk, processes=procs, containers_memory=mem))
        return out

    async def evict(self, pod: dict, message: str) -> None:
        """The kubelet's evictPod with a hard threshold: no grace beyond the immediate one, status Failed/Evicted."""
        uid = pod["metadata"]["uid"]
        w = self.agent.workers.get(uid)
        if w is None:
            return
        w.rejected = True  # its sync does nothing more but terminate it once deleted
        meta = pod["metadata"]
        log.warning("evicting pod %s/%s: %s", meta.get("namespace"), meta.get("name"), message)
        await w.event(WARNING, ev.REASON, message)
        await w.kill_containers(grace=1, quiet=False)
        await w._remove_sandbox()
        try:
            await self.agent.network.detach(uid)
        except Exception as e:
            log.warning("pod %s: network detach: %s", w.name, e)
        self.agent.volumes.cleanup(uid)
        status = evicted_status(w.last_status or pod.get("status") or {}, message, format_time())
        try:
            await self.agent.client.patch("pods", meta["name"], [{"op": "add", "path": "/status", "value": status}],
                                          meta.get("namespace"), patch_type="json", subresource="status")
            w.last_status = status
        except errors.NotFound:
            w.update(None)
        except errors.ApiError as e:
            log.warning("pod %s: eviction status write failed: %s", w.name, e)


def evicted_status(old: dict, message: str, now: str) -> dict:
    """The status of a pod the kubelet evicted: Failed, reason Evicted, not ready, a DisruptionTarget condition and
    every container terminated (137)."""
    status = {k: v for k, v in old.items() if k not in ("podIP", "podIPs")}
    status.update(phase="Failed", reason=ev.REASON, message=message)
    conds = []
    for c in old.get("conditions") or []:
        if c.get("type") in ("Ready", "ContainersReady"):
            c = {**c, "status": "False", "reason": "PodFailed", "lastTransitionTime": now}
            c.pop("message", None)
        if c.get("type") != "DisruptionTarget":
            conds.append(c)
    conds.append({"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": message,
                  "lastProbeTime": None, "lastTransitionTime": now})
    status["conditions"] = conds
    for key in ("initContainerStatuses", "containerStatuses"):
        if key in old:
            status[key] = [_terminated(cs, now) for cs in old[key]]
    return status


def _terminated(cs: dict, now: str) -> dict:
    state = cs.get("state") or {}
    if "terminated" in state:
        return {**cs, "ready": False}
    started = (state.get("running") or {}).get("startedAt")
    term = {"exitCode": 137, "reason": "Error", "finishedAt": now, **({"startedAt": started} if started else {})}
    if cs.get("containerID"):
        term["containerID"] = cs["containerID"]
    return {**cs, "ready": False, "started": False, "state": {"terminated": term}}
