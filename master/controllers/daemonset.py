"""DaemonSet controller: one pod per eligible node.

A node is eligible when the pod (with the DaemonSet tolerations added) matches its nodeSelector and
required node affinity and tolerates its NoSchedule/NoExecute taints; a pod already there keeps
running unless an untolerated NoExecute taint (or a selector change) says otherwise. Pods are made
with a required node affinity naming their node (``matchFields metadata.name In [node]``) so the
default scheduler places them, as Kubernetes does since 1.12. RollingUpdate deletes old-template pods
at most ``maxUnavailable`` unavailable at a time and the next pass creates their replacements;
OnDelete only replaces pods the user deleted.

Every template is recorded as a ControllerRevision ``<ds>-<hash>`` (labels: the template's and
``controller-revision-hash``, the label the pods carry too), renumbered when a rollback returns to it and trimmed to
``revisionHistoryLimit`` beyond the ones pods still run, as Kubernetes' daemonset controller history does: what
``kubectl rollout history|undo daemonset`` read and apply."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from bus import errors
from bus.controller import Controller
from bus.events import WARNING
from bus.expectations import Expectations
from bus.informer import Informer, key_of
from bus.scheduling import NO_EXECUTE, find_untolerated_taint, matches_node, node_taints, required_affinity
from bus.workqueue import Result
from master.controllers import _history as history
from master.controllers._ownedpods import (PodControl, controlled_pods, creation_order, observe_pods, phase,
                                           pod_available, pod_from_template, pod_ready, terminating, wall_clock,
                                           write_status)

log = logging.getLogger(__name__)

KIND = "DaemonSet"
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
NAME_FIELD = "metadata.name"

# util.AddOrUpdateDaemonPodTolerations
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def setup(ctx) -> list:
    dsc = DaemonSetController(ctx.client, ctx.informers.informer("daemonsets"), ctx.informers.informer("pods"),
                              ctx.informers.informer("nodes"), ctx.recorder("daemonset-controller"),
                              revisions=ctx.informers.informer("controllerrevisions"))
    return [dsc.controller]


# ---- pure logic ------------------------------------------------------------------------------


def template_hash(template: dict, collision_count: int | None = None) -> str:
    """The hash of the pod template's revision (the ``controller-revision-hash`` label, the revision name's end)."""
    return history.hash_revision(history.template_patch({"spec": {"template": template or {}}}), collision_count)


def collision_count(ds: dict) -> int | None:
    return (ds.get("status") or {}).get("collisionCount")


def with_daemon_tolerations(tolerations: list[dict] | None) -> list[dict]:
    out = list(tolerations or ())
    out.extend(t for t in DAEMON_TOLERATIONS if t not in out)
    return out


def node_affinity_to(affinity: dict | None, node: str) -> dict:
    """``affinity`` whose required node affinity is replaced by one term naming ``node``."""
    affinity = dict(affinity or {})
    na = dict(affinity.get("nodeAffinity") or {})
    na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": NAME_FIELD, "operator": "In", "values": [node]}]}]}
    affinity["nodeAffinity"] = na
    return affinity


def target_node(pod: dict) -> str | None:
    """The node a daemon pod belongs to: its nodeName, else the node its required affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    _, terms = required_affinity(spec)
    for term in terms or ():
        for f in term.get("matchFields") or ():
            if f.get("key") == NAME_FIELD and f.get("operator") == "In" and len(f.get("values") or ()) == 1:
                return f["values"][0]
    return None


def node_fit(pod_spec: dict, node: dict) -> tuple[bool, bool]:
    """``(should_run, should_continue_running)`` for a daemon pod on ``node``
    (``NodeShouldRunDaemonPod``: selectors must match; NoSchedule taints block new pods only)."""
    if not matches_node(pod_spec, node):
        return False, False
    tols, taints = with_daemon_tolerations(pod_spec.get("tolerations")), node_taints(node)
    run = find_untolerated_taint(taints, tols) is None  # NoSchedule and NoExecute taints
    keep_running = find_untolerated_taint(taints, tols, (NO_EXECUTE,)) is None
    return run, keep_running


def scaled_value(value: Any, total: int, round_up: bool = True) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``."""
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return int(math.ceil(scaled) if round_up else math.floor(scaled))
    return int(value or 0)


@dataclass
class Plan:
    create_on: list[str] = field(default_factory=list)     # node names that need a pod
    delete: list[dict] = field(default_factory=list)       # pods to delete
    status: dict = field(default_factory=dict)
    requeue_after: float = 0.0


def plan(ds: dict, nodes: list[dict], pods: list[dict], now: float) -> Plan:
    """What to create and delete, and the status: a pure function of the DaemonSet, the nodes and
    the DaemonSet's pods."""
    spec = ds.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    current = template_hash(spec.get("template") or {}, collision_count(ds))
    by_node: dict[str, list[dict]] = {}
    out = Plan()
    for pod in sorted(pods, key=creation_order):
        node = target_node(pod)
        if node is None:
            if not terminating(pod):
                out.delete.append(pod)
        else:
            by_node.setdefault(node, []).append(pod)
    known = {n["metadata"]["name"] for n in nodes}
    for node, node_pods in by_node.items():  # pods whose node is gone
        if node not in known:
            out.delete.extend(p for p in node_pods if not terminating(p))

    desired = scheduled = misscheduled = ready = available = updated = 0
    should_run_nodes: list[str] = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        run, cont = node_fit(pod_spec, node)
        node_pods = by_node.get(name, [])
        live = [p for p in node_pods if not terminating(p)]
        running = [p for p in live if phase(p) != "Failed"]
        if run:
            desired += 1
            should_run_nodes.append(name)
        if run or cont:
            out.delete.extend(p for p in live if phase(p) == "Failed")
            if run and not node_pods:
                out.create_on.append(name)
            out.delete.extend(running[1:])  # more than one: keep the oldest
        else:
            out.delete.extend(live)
        if running and run:
            scheduled += 1
            first = running[0]
            if pod_ready(first):
                ready += 1
                if pod_available(first, min_ready, now):
                    available += 1
                elif min_ready:
                    out.requeue_after = max(out.requeue_after, 1.0)
            if first["metadata"].get("labels", {}).get(HASH_LABEL) == current:
                updated += 1
        elif running:
            misscheduled += 1

    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
        max_unavailable = scaled_value(((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)), desired)
        out.delete.extend(rolling_deletes(should_run_nodes, by_node, current, max(1, max_unavailable), min_ready,
                                          now, {p["metadata"]["uid"] for p in out.delete}))

    out.status = {
        "currentNumberScheduled": scheduled, "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired, "numberReady": ready,
        "observedGeneration": ds["metadata"].get("generation", 1),
        "updatedNumberScheduled": updated, "numberAvailable": available,
        "numberUnavailable": max(0, desired - available),
    }
    if (ds.get("status") or {}).get("collisionCount") is not None:
        out.status["collisionCount"] = ds["status"]["collisionCount"]
    return out


def rolling_deletes(nodes: list[str], by_node: dict[str, list[dict]], current: str, max_unavailable: int,
                    min_ready: int, now: float, already: set[str]) -> list[dict]:
    """Old-template pods to delete now (``rollingUpdate`` with maxSurge 0): every unavailable old pod,
    and available ones while fewer than ``max_unavailable`` nodes are unavailable."""
    unavailable = 0
    replace_now: list[dict] = []
    candidates: list[dict] = []
    for name in nodes:
        live = [p for p in by_node.get(name, []) if not terminating(p) and p["metadata"]["uid"] not in already]
        new = [p for p in live if p["metadata"].get("labels", {}).get(HASH_LABEL) == current]
        old = [p for p in live if p not in new]
        if len(new) > 1 or len(old) > 1:
            continue  # the duplicate clean-up acts first
        if bool(new) == bool(old):
            unavailable += 1  # nothing there, or both: counted unavailable
        elif new:
            unavailable += not pod_available(new[0], min_ready, now)
        elif not pod_available(old[0], min_ready, now):
            replace_now.append(old[0])
            unavailable += 1
        elif unavailable < max_unavailable:
            candidates.append(old[0])
    room = max(0, min(max_unavailable - unavailable, len(candidates)))
    return replace_now + candidates[:room]


def daemon_pod(ds: dict, node: str) -> dict:
    spec = ds["spec"]
    pod = pod_from_template(ds, {HASH_LABEL: template_hash(spec.get("template") or {}, collision_count(ds)),
                                 GENERATION_LABEL: str(ds["metadata"].get("generation", 1))})
    pod["spec"]["affinity"] = node_affinity_to(pod["spec"].get("affinity"), node)
    pod["spec"]["tolerations"] = with_daemon_tolerations(pod["spec"].get("tolerations"))
    return pod


# ---- the controller --------------------------------------------------------------------------


class DaemonSetController:
    def __init__(self, client: Any, daemonsets: Informer, pods: Informer, nodes: Informer, recorder: Any,
                 clock: Callable[[], float] = wall_clock, revisions: Informer | None = None) -> None:
        self.client = client
        self.daemonsets, self.pods, self.nodes = daemonsets, pods, nodes
        self.recorder = recorder
        self.clock = clock
        self.exp = Expectations()
        self.pod_control = PodControl(client, recorder, self.exp)
        self.controller = Controller("daemonset", self.reconcile, workers=2)
        self.controller.watches(daemonsets)
        self.controller.owns(pods, KIND)
        observe_pods(pods, KIND, self.exp)
        self.revisions = revisions
        if revisions is not None:
            self.controller.owns(revisions, KIND)
        self.controller.informers.append(nodes)  # waited for before the workers start
        nodes.add_handler(on_add=self._enqueue_all, on_update=self._node_updated, on_delete=self._enqueue_all)

    def _enqueue_all(self, node: dict | None = None) -> None:
        for ds in self.daemonsets.list():
            self.controller.queue.add(key_of(ds))

    def _node_updated(self, old: dict, new: dict) -> None:
        """Only labels and spec (taints) decide eligibility; heartbeats do not matter."""
        if old["metadata"].get("labels") != new["metadata"].get("labels") or old.get("spec") != new.get("spec"):
            self._enqueue_all()

    async def reconcile(self, key: str) -> Result | None:
        ds = self.daemonsets.get_by_key(key)
        if ds is None:
            self.exp.delete(key)
            return None
        if ds["metadata"].get("deletionTimestamp"):
            return None  # the garbage collector removes the pods
        pods = controlled_pods(self.pods, ds)
        seen = ds
        if self.revisions is not None:
            ds = await self._history(ds, pods)
        p = plan(ds, self.nodes.list(), pods, self.clock())
        if self.exp.satisfied(key):
            for pod in p.delete:
                if phase(pod) == "Failed":
                    await self.recorder.event(ds, WARNING, "FailedDaemonPod", f"Found failed daemon pod "
                                              f"{pod['metadata']['namespace']}/{pod['metadata']['name']} on node "
                                              f"{pod['spec'].get('nodeName')}, will try to kill it")
            await self.pod_control.delete(ds, p.delete)
            await self.pod_control.create(ds, [daemon_pod(ds, n) for n in p.create_on])
        await write_status(self.client, seen, p.status)
        return Result(requeue_after=p.requeue_after) if p.requeue_after else None

    async def _history(self, ds: dict, pods: list[dict]) -> dict:
        """``constructHistory`` + ``cleanupHistory``: the current template recorded as the newest revision, old
        ones trimmed. Returns ``ds`` with the collision count that gave its revision a free name."""
        assert self.revisions is not None
        revisions = history.by_revision(history.owned_revisions(self.revisions, ds))
        cc = collision_count(ds)
        h = template_hash((ds.get("spec") or {}).get("template") or {}, cc)
        current = [r for r in revisions if (r["metadata"].get("labels") or {}).get(HASH_LABEL) == h]
        newest = history.next_revision(revisions) - 1
        if not current:
            rev = history.new_revision(ds, newest + 1, cc, hash_label=HASH_LABEL)
            made, new_cc = await history.create_revision(self.client, ds, rev, cc or 0, hash_label=HASH_LABEL)
            if new_cc != (cc or 0):
                ds = {**ds, "status": {**(ds.get("status") or {}), "collisionCount": new_cc}}
            current = [made]
        elif int(current[-1].get("revision") or 0) < newest:
            try:
                current = [await history.renumber(self.client, current[-1], newest + 1)]
            except errors.NotFound:
                pass
        live = {(p["metadata"].get("labels") or {}).get(HASH_LABEL) for p in pods} | {h}
        live_names = {history.revision_name(ds["metadata"]["name"], x) for x in live if x}
        limit = int((ds.get("spec") or {}).get("revisionHistoryLimit", 10) or 0)
        await history.trim(self.client, revisions, live_names | {current[-1]["metadata"]["name"]}, limit)
        return ds
