"""The API server's side of object history and audit (``bus.history``): the ``history`` subresource — a ``get``
answers one object's kept revisions, a ``list`` the final states of a kind's deleted objects — authorized as reading
the object (or listing the kind), Secrets included; and the audit record of every mutating request."""

from __future__ import annotations

from typing import Any

from bus import errors, history, subjects
from bus.client import MUTATING_VERBS
from master.apiserver.request import Reply, Request


async def serve(nc: Any, req: Request) -> Reply:
    """``get`` of ``<resource>/<name>/history``: 404 when no revision of the object is kept (it never existed, or
    its kind keeps no history); ``list`` of ``<resource>/history``: the deleted objects in the namespace."""
    res = req.res
    if req.verb == "list":
        items = await history.read_deleted(nc, res, req.namespace if res.namespaced else None)
        return 200, history.history_list(items), []
    if req.verb != "get":
        raise errors.method_not_allowed(f"{req.verb} is not supported on {res.plural}/{history.HISTORY}")
    if not req.name or not subjects.SAFE_TOKEN.fullmatch(req.name):
        raise errors.bad_request(f"invalid name {req.name!r}")
    items = await history.read_object(nc, res, req.namespace, req.name)
    if not items:
        raise errors.not_found(res.plural, req.name, res.group)
    return 200, history.history_list(items), []


def writer(req: Request) -> dict[str, str] | None:
    """The headers a mutating request's writes carry (who, which verb, which field manager)."""
    if req.verb not in MUTATING_VERBS:
        return None
    verb = f"{req.verb}/{req.subresource}" if req.subresource else req.verb
    manager = req.options.get("fieldManager")
    return history.writer_headers(req.user.name, verb, manager if isinstance(manager, str) else None)


class Auditor(history.Auditor):
    """The API server's auditor: the record of a request (its user, verb, object and outcome)."""

    async def record(self, req: Request, received: float, code: int, body: Any = None,
                     reason: str | None = None) -> None:
        if not self.enabled:
            return
        rv, name = None, req.name
        if code < 400 and isinstance(body, dict):
            rv = (body.get("metadata") or {}).get("resourceVersion")
            name = name or (body.get("metadata") or {}).get("name")  # a create's (generated) name, as Kubernetes logs
        if not name and isinstance(req.body, dict) and isinstance(req.body.get("metadata"), dict):
            name = req.body["metadata"].get("name")  # a failed create: the name it asked for
        self.add(req.request_id, req.user, req.verb, req.res, req.namespace, name if isinstance(name, str) else None,
                 req.subresource, code, received, rv, reason)
