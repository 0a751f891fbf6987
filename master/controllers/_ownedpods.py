"""What the DaemonSet and Job controllers share about the pods they own: building a pod from the
owner's template, creating and deleting pods under expectations (slow-start batches, events),
pod readiness and availability, and writing a status only when it changed."""

from __future__ import annotations

import time
from typing import Any, Iterable

from bus import errors
from bus.controller import controller_owner
from bus.events import NORMAL, WARNING, EventRecorder
from bus.expectations import Expectations
from bus.informer import BY_OWNER, Informer, deep_copy, key_of
from bus.meta import TERMINAL_POD_PHASES, get_condition, timestamp
from master.controllers._ownership import owner_ref_to


# ---- reading pods ----------------------------------------------------------------------------


def controlled_pods(pods: Informer, owner: dict) -> list[dict]:
    """The cached pods whose controller reference is ``owner`` (shared dicts: do not mutate)."""
    uid = owner["metadata"]["uid"]
    return [p for p in pods.by_index(BY_OWNER, uid)
            if any(r.get("uid") == uid and r.get("controller") for r in p["metadata"].get("ownerReferences") or ())]


def terminating(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def finished(pod: dict) -> bool:
    return phase(pod) in TERMINAL_POD_PHASES


def pod_ready(pod: dict) -> bool:
    c = get_condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def pod_available(pod: dict, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (``podutil.IsPodAvailable``)."""
    if not pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = timestamp((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def creation_order(pod: dict) -> tuple:
    return (pod["metadata"].get("creationTimestamp") or "", pod["metadata"].get("name") or "")


# ---- building pods ---------------------------------------------------------------------------


def pod_from_template(owner: dict, labels: dict[str, str] | None = None) -> dict:
    """A new pod (``generateName: <owner>-``) from the owner's ``spec.template`` with extra ``labels``."""
    tmpl = deep_copy((owner.get("spec") or {}).get("template") or {})
    meta = tmpl.get("metadata") or {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": f"{owner['metadata']['name']}-", "namespace": owner["metadata"]["namespace"],
            "labels": {**(meta.get("labels") or {}), **(labels or {})},
            **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
            "ownerReferences": [owner_ref_to(owner)],
        },
        "spec": tmpl.get("spec") or {},
    }


# ---- acting under expectations ---------------------------------------------------------------


def observe_pods(pods: Informer, kind: str, exp: Expectations) -> None:
    """Lower the owner's expectations as the pod informer sees its creates and deletes (a pod
    whose deletionTimestamp got set counts as deleted, as in Kubernetes)."""
    def on_add(pod: dict) -> None:
        owner = controller_owner(pod, kind)
        if owner:
            exp.creation_observed(owner)
            if terminating(pod):
                exp.deletion_observed(owner, pod["metadata"]["uid"])

    def on_update(old: dict, new: dict) -> None:
        owner = controller_owner(new, kind)
        if owner and terminating(new):
            exp.deletion_observed(owner, new["metadata"]["uid"])

    def on_delete(pod: dict) -> None:
        owner = controller_owner(pod, kind)
        if owner:
            exp.deletion_observed(owner, pod["metadata"]["uid"])

    pods.add_handler(on_add=on_add, on_update=on_update, on_delete=on_delete)


class PodControl:
    """Creates and deletes an owner's pods, recording expectations and events."""

    def __init__(self, client: Any, recorder: EventRecorder, exp: Expectations) -> None:
        self.client = client
        self.recorder = recorder
        self.exp = exp

    async def create(self, owner: dict, pods: list[dict]) -> None:
        """Create ``pods`` in slow-start batches (1, 2, 4, ...); stop at the first batch with a
        failure and raise it (the work queue retries with backoff)."""
        key = key_of(owner)
        self.exp.expect_creations(key, len(pods))
        done, batch = 0, 1
        while done < len(pods):
            chunk = pods[done:done + batch]
            failures = []
            for pod in chunk:
                try:
                    made = await self.client.create(pod)
                except errors.ApiError as e:
                    failures.append(e)
                    self.exp.creation_observed(key)
                    await self.recorder.event(owner, WARNING, "FailedCreate", f"Error creating: {e}")
                    continue
                await self.recorder.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {made['metadata']['name']}")
            done += len(chunk)
            if failures:
                self.exp.lower_expectations(key, adds=len(pods) - done)  # never attempted
                raise failures[0]
            batch *= 2

    async def delete(self, owner: dict, pods: Iterable[dict], grace_period_seconds: int | None = None) -> None:
        pods = list(pods)
        if not pods:
            return
        key = key_of(owner)
        self.exp.expect_deletions(key, [p["metadata"]["uid"] for p in pods])
        first: Exception | None = None
        for pod in pods:
            m = pod["metadata"]
            try:
                await self.client.delete("pods", m["name"], m["namespace"], grace_period_seconds=grace_period_seconds,
                                         preconditions={"uid": m["uid"]})
            except errors.NotFound:
                self.exp.deletion_observed(key, m["uid"])
                continue
            except errors.ApiError as e:
                self.exp.deletion_observed(key, m["uid"])
                await self.recorder.event(owner, WARNING, "FailedDelete", f"Error deleting: {e}")
                first = first or e
                continue
            await self.recorder.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {m['name']}")
        if first is not None:
            raise first


async def write_status(client: Any, obj: dict, status: dict) -> bool:
    """Write ``status`` through the status subresource unless it is what ``obj`` (a cached
    object) already has; a stale object is a Conflict and the work queue retries."""
    if (obj.get("status") or {}) == status:
        return False
    new = {**obj, "status": status}
    await client.update_status(new)
    return True


def wall_clock() -> float:
    return time.time()
