"""Pod garbage collection: every ``podgc-period`` (2 s) over the informer caches, it force-deletes
(grace 0) two kinds of pods nobody else will ever finish, as Kubernetes' PodGC does:

- pods bound to a Node that no longer exists (missing from the cache for ``podgc-orphan-quarantine``
  seconds, 5 s, and confirmed NotFound by a read);
- terminating pods on a node that is not Ready and carries the ``node.kubernetes.io/out-of-service``
  taint: an operator's word that the node is down for good, so its containers cannot be running.

A terminating pod on a node that is merely unreachable stays (Terminating) until one of those, or a force
delete (``kubectl delete --grace-period=0 --force``): its containers may still run, and a StatefulSet must not
start a second pod of the same identity elsewhere. An agent that comes back finishes the deletion itself.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from bus import errors
from bus.controller import Controller
from bus.informer import Informer, key_of
from bus.workqueue import Result
from master.controllers._lifecycle_util import OUT_OF_SERVICE, ready_status

log = logging.getLogger(__name__)

KEY = "podgc"


def setup(ctx) -> list:
    gc = PodGC(ctx.client, ctx.informers.informer("nodes"), ctx.informers.informer("pods"),
               period=ctx.settings.podgc_period, quarantine=ctx.settings.podgc_orphan_quarantine)
    return [gc.controller]


def out_of_service(node: dict) -> bool:
    """Not Ready and tainted ``node.kubernetes.io/out-of-service`` (any effect), as PodGC's gcTerminating asks."""
    taints = (node.get("spec") or {}).get("taints") or []
    return ready_status(node) != "True" and any(t.get("key") == OUT_OF_SERVICE for t in taints)


class PodGC:
    def __init__(self, client, nodes: Informer, pods: Informer, period: float = 2.0, quarantine: float = 5.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.client, self.nodes, self.pods = client, nodes, pods
        self.period, self.quarantine = float(period), float(quarantine)
        self.wall = wall
        self.missing_since: dict[str, float] = {}  # node name -> first time seen missing
        self.controller = Controller("podgc", self.reconcile)
        for inf in (nodes, pods):  # caches to sync before the first pass; the pass itself is periodic
            self.controller.watches(inf, lambda _obj: None)
        self.controller.queue.add(KEY)

    def doomed(self) -> tuple[list[dict], list[dict]]:
        """(pods on vanished nodes past quarantine, terminating pods on out-of-service nodes)."""
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
            if pod["metadata"].get("deletionTimestamp") and out_of_service(node):
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
            await self._force_delete(pod, f"terminating on out-of-service node {pod['spec']['nodeName']}")
        return Result(requeue_after=self.period)

    async def _force_delete(self, pod: dict, why: str) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], meta["namespace"], grace_period_seconds=0,
                                     preconditions={"uid": meta["uid"]})
            log.info("podgc: force-deleted pod %s: %s", key_of(pod), why)
        except (errors.NotFound, errors.Conflict):
            pass
