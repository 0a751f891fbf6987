"""The ``pods/eviction`` subresource: a policy/v1 ``Eviction`` posted for a pod is a graceful delete of that
pod honouring the Eviction's ``deleteOptions`` (gracePeriodSeconds, preconditions, propagationPolicy, dryRun),
as Kubernetes' eviction REST does: the pod first gets the ``DisruptionTarget`` condition, then it is deleted, and
the reply is ``201`` with a ``Status`` of ``Success``. ``kubectl drain`` evicts through it.

PodDisruptionBudgets are not implemented in k8n, so no budget is ever consulted: every eviction is allowed
(Kubernetes would answer 429 TooManyRequests when a budget forbids the disruption)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from bus import errors
from bus.meta import deep_copy, now, set_condition
from bus.models import Eviction, to_dict
from bus.models.decode import decode
from master.apiserver.request import Reply, Request

if TYPE_CHECKING:
    from bus.store import NatsStore

API_VERSIONS = ("policy/v1", "policy/v1beta1")
RETRIES = 8
DISRUPTION_TARGET = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                     "message": "Eviction API: evicting"}
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def parse_eviction(req: Request) -> dict:
    """The Eviction of the request as a dict with ``deleteOptions`` (camelCase) — or a Status error."""
    body = req.body
    if not isinstance(body, dict):
        raise errors.bad_request("the body of an eviction must be an Eviction object (policy/v1)")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind is not None and kind != "Eviction":
        raise errors.bad_request(f"the object kind {kind!r} is not an Eviction")
    if api_version is not None and api_version not in API_VERSIONS:
        raise errors.bad_request(f"the API version {api_version!r} is not served for Eviction; use 'policy/v1'")
    model, causes = decode(Eviction, body)
    name = str(req.name or "")
    if causes or model is None:
        raise errors.invalid("Eviction", name, causes, "policy")
    eviction = to_dict(model)
    meta = eviction.get("metadata") or {}
    if meta.get("name") != req.name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    if meta.get("namespace") not in (None, "", req.namespace):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request")
    return eviction


def _check_preconditions(pod: dict, pre: dict) -> None:
    meta, name = pod["metadata"], pod["metadata"]["name"]
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise errors.conflict("pods", name, why=f"Precondition failed: UID in precondition: {pre['uid']}, "
                                                f"UID in object meta: {meta.get('uid')}")
    if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta.get("resourceVersion"):
        raise errors.conflict("pods", name, why=f"Precondition failed: ResourceVersion in precondition: "
                                                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                                f"{meta.get('resourceVersion')}")


async def _mark_disruption_target(store: NatsStore, req: Request, pre: dict) -> str:
    """Add the DisruptionTarget condition to the pod's status (CAS); the pod's new resourceVersion."""
    res, ns, name = req.res, req.namespace, str(req.name)
    for _ in range(RETRIES):
        pod = await store.get(res, ns, name)
        _check_preconditions(pod, pre)
        new = deep_copy(pod)
        status = new.setdefault("status", {})
        status["conditions"] = set_condition(status.get("conditions") or [],
                                             {**DISRUPTION_TARGET, "lastProbeTime": None, "lastTransitionTime": now()})
        if new == pod:
            return pod["metadata"]["resourceVersion"]
        try:
            out = await store.update(res, ns, name, new, int(pod["metadata"]["resourceVersion"]))
        except errors.Conflict:
            continue
        return out["metadata"]["resourceVersion"]
    raise errors.conflict(res.plural, name, why="too many concurrent writers; try again")


async def evict(req: Request, store: NatsStore, delete: Callable[[Request], Awaitable[Reply]]) -> Reply:
    """POST pods/NAME/eviction (``req.name`` already checked by the caller): ``store`` holds the pod,
    ``delete`` is the API server's delete verb."""
    eviction = parse_eviction(req)
    opts: dict[str, Any] = dict(eviction.get("deleteOptions") or {})
    pre = opts.get("preconditions") or {}
    if not isinstance(pre, dict):
        raise errors.bad_request("deleteOptions.preconditions must be an object")
    dry_run = req.dry_run or bool(opts.get("dryRun"))
    # With no resourceVersion precondition from the caller a conflict (another writer in between) is retried;
    # with one, the caller asked to fail instead.
    retry = not pre.get("resourceVersion")

    def delete_request(preconditions: dict, dry: bool) -> Request:
        return dataclasses.replace(req, verb="delete", subresource=None, body=None, options={
            "gracePeriodSeconds": opts.get("gracePeriodSeconds"),
            "propagationPolicy": opts.get("propagationPolicy"),
            "preconditions": preconditions or None,
            "dryRun": ["All"] if dry else None,
        })

    for _ in range(RETRIES):
        # A dry run of the delete first: bad options, failed preconditions and a missing pod fail before any write.
        await delete(delete_request(pre, True))
        if dry_run:
            return 201, dict(SUCCESS), []
        delete_pre = dict(pre)
        rv = await _mark_disruption_target(store, req, pre)
        if pre.get("resourceVersion"):
            delete_pre["resourceVersion"] = rv  # we changed it ourselves
        try:
            await delete(delete_request(delete_pre, False))
        except errors.Conflict:
            if retry:
                continue
            raise
        return 201, dict(SUCCESS), []
    raise errors.conflict(req.res.plural, str(req.name), why="too many concurrent writers; try again")
