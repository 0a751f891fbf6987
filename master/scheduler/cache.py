"""The scheduler cache: nodes and the pods on them (from the informers), plus assumed pods.

After a successful Reserve a pod is *assumed* on its node: it counts there at once, so the next
pod cannot take the same last slot. The informer showing the pod bound confirms it; a failed bind
forgets it; an assumed pod whose binding finished but never showed up expires after ``ttl``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bus import subjects
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _PodState:
    info: PodInfo
    slot: int
    assumed: bool = False
    deadline: float | None = None  # set when binding finished (assumed pods only)


class SchedulerCache:
    def __init__(self, ttl: float = 30.0) -> None:
        self.nodes = NodeTable()
        self.ttl = ttl
        self._pods: dict[str, _PodState] = {}

    # ---- nodes

    def set_node(self, node: dict) -> bool:
        return self.nodes.set_node(node)

    def remove_node(self, name: str) -> None:
        self.nodes.remove_node(name)

    # ---- pods seen bound by the informer

    def add_pod(self, obj: dict) -> None:
        """A bound, non-terminal pod as the informer shows it (also confirms an assumed one). A pod's
        requests, ports and owner do not change once it exists, so a newer version of a pod already
        counted on the same node only replaces the object."""
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        key = subjects.object_key(meta.get("namespace") or "default", meta.get("name", ""))
        old = self._pods.get(key)
        if old is not None:
            if old.info.uid == (meta.get("uid") or "") and self.nodes.names[old.slot] == spec.get("nodeName"):
                old.info.obj, old.info.spec = obj, spec
                old.assumed, old.deadline = False, None
                return
            self._remove(key)
        pod = PodInfo.of(obj)
        self._add(pod, pod.node_name or "", assumed=False)

    def remove_pod(self, key: str) -> None:
        self._remove(key)

    # ---- assume

    def assume(self, pod: PodInfo, node: str) -> None:
        self._remove(pod.key)
        self._add(pod, node, assumed=True)

    def finish_binding(self, key: str, now: float) -> None:
        st = self._pods.get(key)
        if st is not None and st.assumed:
            st.deadline = now + self.ttl

    def forget(self, key: str) -> None:
        st = self._pods.get(key)
        if st is not None and st.assumed:
            self._remove(key)

    def is_assumed(self, key: str) -> bool:
        st = self._pods.get(key)
        return st is not None and st.assumed

    def cleanup_expired(self, now: float) -> list[str]:
        expired = [k for k, st in self._pods.items() if st.assumed and st.deadline is not None and st.deadline <= now]
        for k in expired:
            log.warning("assumed pod %s expired before it showed up bound", k)
            self._remove(k)
        return expired

    def node_of(self, key: str) -> str | None:
        st = self._pods.get(key)
        return self.nodes.names[st.slot] if st is not None else None

    def __len__(self) -> int:
        return len(self._pods)

    # ---- internals

    def _add(self, pod: PodInfo, node: str, assumed: bool) -> None:
        slot = self.nodes.slot(node)
        self._pods[pod.key] = _PodState(pod, slot, assumed)
        self.nodes.account(slot, pod, +1)

    def _remove(self, key: str) -> None:
        st = self._pods.pop(key, None)
        if st is not None:
            self.nodes.account(st.slot, st.info, -1)
