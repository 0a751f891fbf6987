"""StatefulSet controller (after Kubernetes' ``pkg/controller/statefulset``): stable, ordered pod identities.

Pod ``<set>-<ordinal>`` for each ordinal in ``[ordinals.start, start + replicas)``, labelled
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and ``controller-revision-hash`` (the
revision's name), with ``hostname`` = its name and ``subdomain`` = ``serviceName`` so the governing headless
Service gives it a DNS name. Each ``volumeClaimTemplates`` entry gives each ordinal the claim
``<template>-<set>-<ordinal>``, created before the pod and kept when the pod goes; the retention policy decides
whether the claim is owned by the set (``whenDeleted: Delete``) or by a scaled-down pod (``whenScaled: Delete``),
which the garbage collector acts on.

``OrderedReady`` creates one pod at a time in ordinal order, each only once its predecessors are Running and
Ready (and available for ``minReadySeconds``), scales down from the highest ordinal, and stops at the first
unhealthy pod; ``Parallel`` creates and deletes without waiting. RollingUpdate replaces pods of an old revision
from the highest ordinal down to ``partition``, one at a time, each after the previous one is healthy; OnDelete
only gives a user-deleted pod the new template. The controller never makes a pod whose name a pod object still
holds: a pod on a lost node stays until the node is deleted, tainted out-of-service or the pod force-deleted.

Templates are recorded as ControllerRevisions (``_history``), status is written through the status subresource
only when it changed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from bus import errors, subjects
from bus.controller import Controller, controller_owner
from bus.events import NORMAL, WARNING
from bus.informer import BY_OWNER, Informer, deep_copy, key_of
from bus.labels import selector_from_label_selector
from bus.meta import labels_of
from bus.workqueue import Result, TerminalError
from master.controllers import _history as history
from master.controllers._ownedpods import (finished, phase, pod_available, pod_ready, terminating, wall_clock,
                                           write_status)
from master.controllers._ownership import controller_ref, deleting, owner_ref_to, owner_refs, patch_metadata
from master.controllers.replicaset import available_in

log = logging.getLogger(__name__)

KIND = "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")
_ORPHANS = "statefulset_orphans_by_parent"  # pods without a controller, by the key of the set their name names


def setup(ctx) -> list:
    ssc = StatefulSetController(ctx.client, ctx.informers.informer("statefulsets"), ctx.informers.informer("pods"),
                                ctx.informers.informer("controllerrevisions"),
                                ctx.informers.informer("persistentvolumeclaims"), ctx.recorder("statefulset-controller"))
    return [ssc.controller]


# ---- pure logic: identity ---------------------------------------------------------------------


def parent_and_ordinal(pod: dict) -> tuple[str | None, int]:
    m = _ORDINAL.match((pod.get("metadata") or {}).get("name") or "")
    return (m.group(1), int(m.group(2))) if m else (None, -1)


def is_member(sts: dict, pod: dict) -> bool:
    return parent_and_ordinal(pod)[0] == sts["metadata"]["name"]


def _orphan_index(pod: dict) -> list[str]:
    parent = parent_and_ordinal(pod)[0]
    if parent is None or controller_ref(pod) is not None:
        return []
    return [subjects.object_key(pod["metadata"].get("namespace"), parent)]


def start_ordinal(sts: dict) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: dict) -> int:
    r = (sts.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def in_range(sts: dict, ordinal: int) -> bool:
    start = start_ordinal(sts)
    return start <= ordinal < start + replicas_of(sts)


def pod_name(sts: dict, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template: dict, sts: dict, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"


def revision_of(pod: dict) -> str | None:
    return labels_of(pod).get(REVISION_LABEL)


def new_claims(sts: dict, ordinal: int) -> list[dict]:
    """``getPersistentVolumeClaims``: one claim per template, labelled with the selector's matchLabels."""
    spec = sts.get("spec") or {}
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    out = []
    for t in spec.get("volumeClaimTemplates") or []:
        claim = deep_copy(t)
        meta = claim.setdefault("metadata", {})
        meta["name"] = claim_name(t, sts, ordinal)
        meta["namespace"] = sts["metadata"].get("namespace")
        meta["labels"] = {**(meta.get("labels") or {}), **match}
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        claim.pop("status", None)
        out.append(claim)
    return out


def new_pod(sts: dict, ordinal: int, revision: str) -> dict:
    """``newStatefulSetPod`` + ``setPodRevision``: the pod of ``ordinal`` from ``sts``'s template."""
    spec = sts.get("spec") or {}
    template = deep_copy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    name = pod_name(sts, ordinal)
    meta: dict[str, Any] = {"name": name, "namespace": sts["metadata"].get("namespace"),
                            "labels": {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name,
                                       POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: revision},
                            "ownerReferences": [owner_ref_to(sts)]}
    for k in ("annotations", "finalizers"):
        if tmeta.get(k):
            meta[k] = tmeta[k]
    pspec = template.get("spec") or {}
    pspec["hostname"] = name
    if spec.get("serviceName"):
        pspec["subdomain"] = spec["serviceName"]
    claims = {t["metadata"]["name"]: claim_name(t, sts, ordinal) for t in spec.get("volumeClaimTemplates") or []}
    if claims:
        volumes = [{"name": v, "persistentVolumeClaim": {"claimName": c}} for v, c in claims.items()]
        pspec["volumes"] = volumes + [v for v in pspec.get("volumes") or [] if v.get("name") not in claims]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pspec}


def versioned_pod(sts: dict, current_set: dict, update_set: dict, current: str, update: str, ordinal: int) -> dict:
    """``newVersionedStatefulSetPod``: below the partition a recreated pod keeps the current revision."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    index = ordinal - start_ordinal(sts)
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate" and (
            (rolling is None and index < int((sts.get("status") or {}).get("currentReplicas") or 0))
            or (rolling is not None and index < int(rolling.get("partition") or 0))):
        return new_pod(current_set, ordinal, current)
    return new_pod(update_set, ordinal, update)


def _ref_key(ref: dict) -> str | None:
    return ref.get("uid")


def claim_refs(sts: dict, pod: dict, ordinal: int, claim: dict) -> list[dict] | None:
    """``updateClaimOwnerRefForSetAndPod``: the claim's ownerReferences as the retention policy wants them, None
    when they already are. ``whenDeleted: Delete`` → owned by the set; ``whenScaled: Delete`` → owned by its pod
    once the pod is scaled away (and no longer by the set)."""
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    deleted, scaled = policy.get("whenDeleted") or "Retain", policy.get("whenScaled") or "Retain"
    scaled_down = not in_range(sts, ordinal)
    want_set = deleted == "Delete" and not (scaled == "Delete" and scaled_down)
    want_pod = scaled == "Delete" and scaled_down
    refs = owner_refs(claim)
    set_uid, pod_uid = sts["metadata"]["uid"], (pod.get("metadata") or {}).get("uid")
    out = [r for r in refs if r.get("uid") not in (set_uid, pod_uid)]
    if want_set:
        out.append(next((r for r in refs if r.get("uid") == set_uid), None) or _plain_ref(sts))
    if want_pod and pod_uid:
        out.append(next((r for r in refs if r.get("uid") == pod_uid), None) or _plain_ref(pod))
    return None if sorted(map(_ref_key, out), key=str) == sorted(map(_ref_key, refs), key=str) else out


def _plain_ref(owner: dict) -> dict:
    meta = owner["metadata"]
    return {"apiVersion": owner.get("apiVersion") or "v1", "kind": owner.get("kind") or "Pod", "name": meta["name"],
            "uid": meta["uid"]}


# ---- pure logic: what to do -------------------------------------------------------------------


def running_and_ready(pod: dict | None) -> bool:
    return pod is not None and phase(pod) == "Running" and pod_ready(pod)


def healthy(pod: dict | None) -> bool:
    return running_and_ready(pod) and not terminating(pod)  # type: ignore[arg-type]


@dataclass
class Plan:
    create: list[dict] = field(default_factory=list)   # pods to create (their claims first)
    delete: list[dict] = field(default_factory=list)   # pods to delete
    status: dict = field(default_factory=dict)
    requeue_after: float = 0.0
    waiting_for: str = ""                               # why an OrderedReady set is not progressing


def compute_status(sts: dict, pods: list[dict], current: str, update: str, collision_count: int, now: float) -> dict:
    """``computeReplicaStatus`` + ``completeRollingUpdate``."""
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    replicas = ready = available = n_current = n_updated = 0
    for p in pods:
        replicas += 1
        if running_and_ready(p):
            ready += 1
            available += pod_available(p, min_ready, now)
        if not terminating(p):
            n_current += revision_of(p) == current
            n_updated += revision_of(p) == update
    status: dict[str, Any] = {"observedGeneration": int(sts["metadata"].get("generation") or 1),
                              "replicas": replicas, "readyReplicas": ready, "currentReplicas": n_current,
                              "updatedReplicas": n_updated, "currentRevision": current, "updateRevision": update,
                              "collisionCount": collision_count, "availableReplicas": available}
    strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy == "RollingUpdate" and n_updated == replicas and ready == replicas:
        status["currentReplicas"], status["currentRevision"] = n_updated, update
    old = sts.get("status") or {}
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status


def plan(sts: dict, pods: list[dict], current_set: dict, update_set: dict, current: str, update: str,
         collision_count: int, now: float) -> Plan:
    """``updateStatefulSet``: the pods to create and delete now, in order, and the status. ``pods`` are the set's
    member pods (name ``<set>-<ordinal>``)."""
    spec = sts.get("spec") or {}
    monotonic = (spec.get("podManagementPolicy") or "OrderedReady") != "Parallel"
    min_ready = int(spec.get("minReadySeconds") or 0)
    start, count = start_ordinal(sts), replicas_of(sts)
    out = Plan(status=compute_status(sts, pods, current, update, collision_count, now))
    existing: dict[int, dict] = {}
    condemned: list[dict] = []
    for p in sorted(pods, key=lambda p: parent_and_ordinal(p)[1]):
        ordinal = parent_and_ordinal(p)[1]
        if in_range(sts, ordinal):
            existing[ordinal] = p
        else:
            condemned.append(p)
    condemned.reverse()  # highest ordinal first
    replicas: list[tuple[int, dict | None]] = [(o, existing.get(o)) for o in range(start, start + count)]
    first_unhealthy = next((p for _, p in replicas if not healthy(p)), None)
    if first_unhealthy is None:
        first_unhealthy = next((p for p in reversed(condemned) if not healthy(p)), None)
    if deleting(sts):
        return out

    def wait(why: str, after: float = 0.0) -> Plan:
        out.waiting_for = why
        if after:
            out.requeue_after = after if not out.requeue_after else min(out.requeue_after, after)
        return out

    created: set[int] = set()
    for ordinal, pod in replicas:
        if pod is not None and finished(pod):  # a failed or succeeded pod is deleted, its successor made next time
            if not terminating(pod):
                out.delete.append(pod)
            if monotonic:
                return wait(f"pod {pod['metadata']['name']} to be replaced")
            continue
        if pod is None:
            out.create.append(versioned_pod(sts, current_set, update_set, current, update, ordinal))
            created.add(ordinal)
            if monotonic:
                return wait(f"pod {pod_name(sts, ordinal)} to be created")
            continue
        if not monotonic:
            continue
        name = pod["metadata"]["name"]
        if terminating(pod):
            return wait(f"pod {name} to terminate")
        if not running_and_ready(pod):
            return wait(f"pod {name} to be Running and Ready")
        if not pod_available(pod, min_ready, now):
            return wait(f"pod {name} to be available", max(0.05, available_in(pod, min_ready, now) or 0.0))

    for pod in condemned:
        name = pod["metadata"]["name"]
        if terminating(pod):
            if monotonic:
                return wait(f"pod {name} to terminate")
            continue
        if monotonic and pod is not first_unhealthy:
            if not running_and_ready(pod):
                return wait(f"pod {name} to be Running and Ready before it is scaled down")
            if not pod_available(pod, min_ready, now):
                return wait(f"pod {name} to be available", max(0.05, available_in(pod, min_ready, now) or 0.0))
        out.delete.append(pod)
        if monotonic:
            return out

    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") == "OnDelete":
        return out
    update_min = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    for index in range(len(replicas) - 1, update_min - 1, -1):
        ordinal, pod = replicas[index]
        if pod is None or ordinal in created:
            return out  # not made yet: not healthy
        if revision_of(pod) != update and not terminating(pod):
            if pod not in out.delete:
                out.delete.append(pod)
            return out
        if not healthy(pod):
            return out
    return out


# ---- the controller --------------------------------------------------------------------------


class StatefulSetController:
    def __init__(self, client: Any, sets: Informer, pods: Informer, revisions: Informer, claims: Informer,
                 recorder: Any, clock: Callable[[], float] = wall_clock) -> None:
        self.client, self.sets, self.pods, self.revisions, self.claims = client, sets, pods, revisions, claims
        self.recorder, self.clock = recorder, clock
        self.controller = Controller("statefulset", self.reconcile, workers=2)
        self.controller.watches(sets)
        self.controller.owns(revisions, KIND)
        self.controller.watches(pods, self._pod_key)
        pods.add_index(_ORPHANS, _orphan_index)
        self.controller.informers.append(claims)

    def _pod_key(self, pod: dict) -> str | None:
        key = controller_owner(pod, KIND)
        if key:
            return key
        for parent in _orphan_index(pod):  # an orphan a set of that name may adopt
            if self.sets.get_by_key(parent) is not None:
                return parent
        return None

    async def reconcile(self, key: str) -> Result | None:
        sts = self.sets.get_by_key(key)
        if sts is None or deleting(sts):
            return None  # the garbage collector removes its pods and revisions
        try:
            selector = selector_from_label_selector((sts.get("spec") or {}).get("selector"))
        except ValueError as e:
            raise TerminalError(f"StatefulSet {key}: invalid selector: {e}") from None
        pods = await self._claim(sts, selector)
        revisions = history.by_revision(history.owned_revisions(self.revisions, sts))
        collision = int((sts.get("status") or {}).get("collisionCount") or 0)
        current_rev, update_rev, collision = await self._revisions(sts, revisions, collision)
        current, update = current_rev["metadata"]["name"], update_rev["metadata"]["name"]
        p = plan(sts, pods, history.apply_revision(sts, current_rev), history.apply_revision(sts, update_rev),
                 current, update, collision, self.clock())
        error: Exception | None = None
        try:
            await self._fix_claims(sts, pods)
            await self._act(sts, p)
        except errors.ApiError as e:
            error = e
        await write_status(self.client, sts, p.status)
        live = {revision_of(pod) for pod in pods} | {current, update}
        known = {r["metadata"]["name"]: r for r in revisions + [current_rev, update_rev]}
        await history.trim(self.client, list(known.values()), {n for n in live if n},
                           int((sts.get("spec") or {}).get("revisionHistoryLimit", 10) or 0))
        if error is not None:
            raise error
        return Result(requeue_after=p.requeue_after) if p.requeue_after else None

    async def _claim(self, sts: dict, selector: Any) -> list[dict]:
        """The set's member pods: owned ones that still match, plus matching orphans adopted."""
        uid = sts["metadata"]["uid"]
        out = []
        for pod in self.pods.by_index(BY_OWNER, uid) + self.pods.by_index(_ORPHANS, key_of(sts)):
            if not is_member(sts, pod):
                continue
            ref = controller_ref(pod)
            matches = selector.matches(labels_of(pod))
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    out.append(pod)
                else:
                    await self._set_refs(pod, [r for r in owner_refs(pod) if r.get("uid") != uid])
            elif ref is None and matches and not deleting(pod):
                adopted = await self._set_refs(pod, owner_refs(pod) + [owner_ref_to(sts)])
                if adopted is not None:
                    out.append(adopted)
        return out

    async def _set_refs(self, obj: dict, refs: list[dict], plural: str = "pods") -> dict | None:
        try:
            return await patch_metadata(self.client, plural, obj, ownerReferences=refs)
        except (errors.NotFound, errors.Invalid):
            return None

    async def _revisions(self, sts: dict, revisions: list[dict], collision: int) -> tuple[dict, dict, int]:
        """``getStatefulSetRevisions``: (current, update, collisionCount), recording the template as a revision."""
        update = history.new_revision(sts, history.next_revision(revisions), collision)
        equal = history.equal_revisions(revisions, update)
        if equal and revisions and equal[-1]["metadata"]["name"] == revisions[-1]["metadata"]["name"]:
            update = revisions[-1]
        elif equal:
            update = await history.renumber(self.client, equal[-1], int(update["revision"]))
        else:
            update, collision = await history.create_revision(self.client, sts, update, collision)
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == wanted), update)
        return current, update, collision

    async def _fix_claims(self, sts: dict, pods: list[dict]) -> None:
        """Claims of existing pods owned as the retention policy says (``UpdatePodClaimForRetentionPolicy``)."""
        for pod in pods:
            ordinal = parent_and_ordinal(pod)[1]
            for claim in new_claims(sts, ordinal):
                cur = self.claims.get(claim["metadata"]["namespace"], claim["metadata"]["name"])
                if cur is None or deleting(cur):
                    continue
                refs = claim_refs(sts, pod, ordinal, cur)
                if refs is not None:
                    await self._set_refs(cur, refs, "persistentvolumeclaims")

    async def _act(self, sts: dict, p: Plan) -> None:
        for pod in p.delete:
            await self._delete_pod(sts, pod)
        for pod in p.create:
            await self._create_pod(sts, pod)

    async def _create_pod(self, sts: dict, pod: dict) -> None:
        """``CreateStatefulPod``: the missing claims first, then the pod (a name already taken is left alone)."""
        ordinal = parent_and_ordinal(pod)[1]
        for claim in new_claims(sts, ordinal):
            cur = self.claims.get(claim["metadata"]["namespace"], claim["metadata"]["name"])
            if cur is not None:
                if deleting(cur):
                    raise errors.conflict("persistentvolumeclaims", claim["metadata"]["name"],
                                          why=f"pvc {claim['metadata']['name']} is being deleted")
                continue
            refs = claim_refs(sts, pod, ordinal, claim)
            if refs:
                claim["metadata"]["ownerReferences"] = refs
            cname = claim["metadata"]["name"]
            await self._recorded(sts, "create", self.client.create(claim), (errors.AlreadyExists,),
                                 f"Claim {cname} Pod {pod['metadata']['name']}", "success",
                                 f"Claim {cname} for Pod {pod['metadata']['name']}")
        # a name already taken means the cache lags: the pod is there
        await self._recorded(sts, "create", self.client.create(pod), (errors.AlreadyExists,),
                             f"Pod {pod['metadata']['name']}")

    async def _delete_pod(self, sts: dict, pod: dict) -> None:
        meta = pod["metadata"]
        await self._recorded(sts, "delete", self.client.delete("pods", meta["name"], meta.get("namespace"),
                                                               preconditions={"uid": meta["uid"]}),
                             (errors.NotFound, errors.Conflict), f"Pod {meta['name']}")

    async def _recorded(self, sts: dict, verb: str, call: Any, ignore: tuple[type[Exception], ...], what: str,
                        done: str = "successful", failed_what: str | None = None) -> None:
        """Await ``call`` and record the event Kubernetes' recordPodEvent/recordClaimEvent write (``ignore``d
        errors: nothing happened, nothing recorded; other API errors are recorded and raised)."""
        where = f"in StatefulSet {sts['metadata']['name']}"
        try:
            await call
        except ignore:
            return
        except errors.ApiError as e:
            await self.recorder.event(sts, WARNING, f"Failed{verb.title()}",
                                      f"{verb} {failed_what or what} {where} failed error: {e}")
            raise
        await self.recorder.event(sts, NORMAL, f"Successful{verb.title()}", f"{verb} {what} {where} {done}")
