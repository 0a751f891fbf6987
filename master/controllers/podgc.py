"""Pod garbage collection: every ``podgc-period`` (2 s) over the informer caches, it force-deletes
(grace 0) two kinds of pods nobody else will ever finish:

- pods bound to a Node that no longer exists (missing from the cache for ``podgc-orphan-quarantine``
  seconds, 5 s, and confirmed NotFound by a read), as Kubernetes' PodGC does for orphaned pods;
- terminating pods on a node tainted ``node.kubernetes.io/unreachable`` whose deletion deadline
  (``deletionTimestamp``, i.e. delete time + grace period) passed more than
  ``podgc-terminating-unreachable-seconds`` (5 s) ago: their agent cannot confirm the containers
  stopped, and a pod left Terminating would block replacements that need its name or its slot.
  Kubernetes only does this for the ``out-of-service`` taint an operator sets; k8n does it for the
  unreachable taint too, and an agent that comes back removes the containers of pods it no longer
  finds (``Agent.adopt``).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from bus import errors
from bus.controller import Controller
from bus.informer import Informer, key_of
from bus.meta import timestamp
from bus.workqueue import Result
from master.controllers._lifecycle_util import UNREACHABLE, has_taint

log = logging.getLogger(__name__)

KEY = "podgc"


def setup(ctx) -> list:
    gc = PodGC(ctx.client, ctx.informers.informer("nodes"), ctx.informers.informer("pods"),
               period=ctx.settings.podgc_period, quarantine=ctx.settings.podgc_orphan_quarantine,
               terminating_after=ctx.settings.podgc_terminating_unreachable_seconds)
    return [gc.controller]


class PodGC:
    def __init__(self, client, nodes: Informer, pods: Informer, period: float = 2.0, quarantine: float = 5.0,
                 terminating_after: float = 5.0, wall: Callable[[], float] = time.time) -> None:
        self.client, self.nodes, self.pods = client, nodes, pods
        self.period, self.quarantine, self.terminating_after = float(period), float(quarantine), float(terminating_after)
        self.wall = wall
        self.missing_since: dict[str, float] = {}  # node name -> first time seen missing
        self.controller = Controller("podgc", self.reconcile)
        for inf in (nodes, pods):  # caches to sync before the first pass; the pass itself is periodic
            self.controller.watches(inf, lambda _obj: None)
        self.controller.queue.add(KEY)

    def doomed(self) -> tuple[list[dict], list[dict]]:
        """(pods on vanished nodes past quarantine, terminating pods on unreachable nodes past due)."""
        now = self.wall()
        orphans, stuck = [], []
        seen_missing = set()
        for pod in self.pods.list():
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                continue
            node = self.nodes.get(None, node_name)
            if node is None:
                seen_missing.add(node_name)
                if now - self.missing_since.setdefault(node_name, now) >= self.quarantine:
                    orphans.append(pod)
                continue
            deadline = timestamp(pod["metadata"].get("deletionTimestamp"))
            if deadline is not None and has_taint(node, UNREACHABLE) and now - deadline >= self.terminating_after:
                stuck.append(pod)
        for name in set(self.missing_since) - seen_missing:
            del self.missing_since[name]
        return orphans, stuck

    async def reconcile(self, _key: str) -> Result:
        orphans, stuck = self.doomed()
        gone: dict[str, bool] = {}
        for pod in orphans:
            node_name = pod["spec"]["nodeName"]
            if node_name not in gone:
                try:
                    await self.client.get("nodes", node_name)
                    gone[node_name] = False
                except errors.NotFound:
                    gone[node_name] = True
            if gone[node_name]:
                await self._force_delete(pod, f"node {node_name} no longer exists")
        for pod in stuck:
            await self._force_delete(pod, f"terminating on unreachable node {pod['spec']['nodeName']}")
        return Result(requeue_after=self.period)

    async def _force_delete(self, pod: dict, why: str) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], grace_period_seconds=0,
                                     preconditions={"uid": meta["uid"]})
            log.info("podgc: force-deleted pod %s: %s", key_of(pod), why)
        except (errors.NotFound, errors.Conflict):
            pass
