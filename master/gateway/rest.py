"""The resource verbs over HTTP: each request becomes the same API server request on the bus
(create, get, update, patch, delete, deletecollection; status, scale, binding, eviction), lists and
watches are read off the KV buckets as ``bus.client.ApiClient`` reads them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bus import crd, errors, listchunks
from bus.client import ApiClient
from master.gateway import busreq, tables, watch
from master.gateway.auth import USER_KEY
from master.gateway.context import CLIENT, CRDS
from master.gateway.paths import Target, custom_candidate, parse_path
from master.gateway.respond import JSON, TABLE_MEDIA, error_response, json_response, media_type, read_body

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
CREATE_SUBRESOURCES = ("binding", "eviction", "token")


def wants_table(request: web.Request) -> bool:
    for part in request.headers.get("Accept", "").split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in part.split(";")[1:])}
        if params.get("as") == "Table":
            return True
    return False


def _include_object(request: web.Request) -> str:
    inc = request.query.get("includeObject") or "Metadata"
    if inc not in tables.INCLUDE_OBJECT:
        raise errors.bad_request(f'includeObject must be one of "None", "Metadata", "Object", not "{inc}"')
    return inc


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _dry_run(request: web.Request, body: Any = None) -> list[str] | None:
    values = request.query.getall("dryRun", [])
    if isinstance(body, dict) and isinstance(body.get("dryRun"), list):
        values = values + body["dryRun"]
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid dry run value "{v}": supported values are "All"')
    return ["All"] if values else None


def field_manager(request: web.Request) -> str | None:
    """``fieldManager``, else the User-Agent's program name (``kubectl`` of ``kubectl/v1.32.0 (...)``)."""
    fm = request.query.get("fieldManager")
    if fm:
        return fm
    ua = request.headers.get("User-Agent", "")
    return ua.split("/", 1)[0].strip()[:128] or None


def _write_options(request: web.Request, body: Any = None) -> dict:
    return {"dryRun": _dry_run(request, body), "fieldManager": field_manager(request),
            "fieldValidation": request.query.get("fieldValidation") or None}


def _int(request: web.Request, name: str) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer, not {v!r}") from None


def _delete_options(request: web.Request, body: Any) -> dict:
    if body is not None and not isinstance(body, dict):
        raise errors.bad_request("the body of a delete must be DeleteOptions")
    body = body or {}
    grace = body.get("gracePeriodSeconds")
    if grace is None:
        grace = _int(request, "gracePeriodSeconds")
    policy = body.get("propagationPolicy") or request.query.get("propagationPolicy") or None
    orphan = body.get("orphanDependents")
    if orphan is None and "orphanDependents" in request.query:
        orphan = _flag(request, "orphanDependents")
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    return {"gracePeriodSeconds": grace, "propagationPolicy": policy,
            "preconditions": body.get("preconditions") or None, "dryRun": _dry_run(request, body)}


def _list_body(target: Target, items: list[dict], rv: int) -> dict:
    r = target.res
    body = {"kind": f"{r.kind}List", "apiVersion": r.api_version, "metadata": {"resourceVersion": str(rv)},
            "items": items}
    if r.custom is not None:  # stored at the storage version: items at the version the path names
        body["kind"] = r.custom.list_kind
        crd.convert(r, body)
    return body


class Rest:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.client: ApiClient = request.app[CLIENT]
        self.warnings: list[str] = []

    async def call(self, t: Target, verb: str, body: Any = None, options: dict | None = None,
                   name: str | None = None) -> tuple[int, Any]:
        code, out, warnings = await busreq.call(self.client, t.res, verb, t.namespace, name or t.name, body,
                                                t.subresource, options, self.request.get(USER_KEY))
        self.warnings.extend(warnings)
        return code, out

    def reply(self, body: Any, code: int = 200) -> web.Response:
        return json_response(body, code, self.warnings)

    async def _target(self) -> Target:
        """What the path addresses; a custom resource whose definition this gateway has not seen yet is looked up."""
        try:
            return parse_path(self.request.path)
        except errors.NotFound:
            token = custom_candidate(self.request.path)
            if token is None or await self.request.app[CRDS].lookup(token) is None:
                raise
            return parse_path(self.request.path)

    async def dispatch(self) -> web.StreamResponse:
        t = await self._target()
        m = self.request.method
        if not t.res.stored and not (m == "POST" and t.collection):
            raise errors.method_not_allowed(f"{m} is not supported on {t.res.qualified}: it can only be created")
        if t.watch or (m == "GET" and t.collection and _flag(self.request, "watch")):
            if m != "GET":
                raise errors.method_not_allowed(f"{m} is not allowed on a watch")
            return await self.watch(t)
        if t.subresource and t.subresource not in t.res.subresources:
            raise errors.NotFound(404, f"the server could not find the requested resource "
                                       f"({t.res.plural}/{t.subresource})")
        if m == "GET":
            return await (self.list(t) if t.collection else self.get(t))
        if m == "POST":
            return await self.create(t)
        if m == "PUT" and not t.collection:
            return await self.update(t)
        if m == "PATCH" and not t.collection:
            return await self.patch(t)
        if m == "DELETE":
            return await (self.delete_collection(t) if t.collection else self.delete(t))
        raise errors.method_not_allowed(f"the server does not allow this method on the requested resource ({m})")

    # ---- reads -----------------------------------------------------------------------------------

    def _table_reply(self, t: Target, objs: list[dict], rv: str | None) -> web.Response:
        return json_response(tables.table(t.res, objs, rv, self._include), 200, self.warnings, TABLE_MEDIA)

    @property
    def _include(self) -> str:
        return _include_object(self.request)

    async def get(self, t: Target) -> web.Response:
        if t.subresource in (None, "status") and t.res.custom is None:
            obj = await self.client.read(t.res, t.name, t.namespace)  # authorized here: straight off KV, as lists
        else:
            _, obj = await self.call(t, "get")
        if wants_table(self.request) and not t.subresource:
            return self._table_reply(t, [obj], (obj.get("metadata") or {}).get("resourceVersion"))
        return self.reply(obj)

    async def list(self, t: Target) -> web.Response:
        q = self.request.query
        limit, token = listchunks.chunking(dict(q))
        more = None
        if limit or token:  # one chunk, from the first chunk's snapshot
            page = await self.client.list_chunk(t.res, t.namespace, limit, token, q.get("labelSelector") or None,
                                                q.get("fieldSelector") or None)
            items, rv, more = page["items"], page["metadata"]["resourceVersion"], page["metadata"].get("continue")
        else:
            items, rv = await self.client.list(t.res, t.namespace, q.get("labelSelector") or None,
                                               q.get("fieldSelector") or None)
        body = tables.table(t.res, items, str(rv), self._include) if wants_table(self.request) \
            else _list_body(t, items, rv)
        if more:
            body["metadata"]["continue"] = more
        return json_response(body, 200, self.warnings, TABLE_MEDIA if wants_table(self.request) else JSON)

    async def watch(self, t: Target) -> web.StreamResponse:
        table = wants_table(self.request)
        include = self._include
        return await watch.serve(self.request, self.client, t, table, include, TABLE_MEDIA if table else JSON)

    # ---- writes ----------------------------------------------------------------------------------

    async def create(self, t: Target) -> web.Response:
        body = await read_body(self.request, yaml_ok=True)
        if t.subresource in CREATE_SUBRESOURCES:
            code, out = await self.call(t, "create", body, _write_options(self.request))
            return self.reply(out, code)
        if not t.collection:
            raise errors.method_not_allowed("POST is allowed on a collection (or pods/binding, pods/eviction)")
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of a create must be a {t.res.kind} object")
        code, out = await self.call(t, "create", body, _write_options(self.request))
        return self.reply(out, code)

    async def update(self, t: Target) -> web.Response:
        body = await read_body(self.request, yaml_ok=True)
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of an update must be a {t.res.kind} object")
        code, out = await self.call(t, "update", body, _write_options(self.request))
        return self.reply(out, code)

    async def patch(self, t: Target) -> web.Response:
        ptype = media_type(self.request)
        if ptype not in PATCH_TYPES:
            raise errors.ApiError(415, f"the body of the request was in an unknown format - accepted media "
                                       f"types include: {', '.join(PATCH_TYPES)}", "UnsupportedMediaType")
        body = await read_body(self.request, yaml_ok=ptype == "application/apply-patch+yaml")
        if body is None:
            raise errors.bad_request("the patch is empty")
        opts = {**_write_options(self.request), "patchType": ptype,
                "force": True if _flag(self.request, "force") else None}
        code, out = await self.call(t, "patch", body, opts)
        return self.reply(out, code)

    async def delete(self, t: Target) -> web.Response:
        body = await read_body(self.request)
        code, out = await self.call(t, "delete", None, _delete_options(self.request, body))
        return self.reply(out, code)

    async def delete_collection(self, t: Target) -> web.Response:
        body = await read_body(self.request)
        opts = _delete_options(self.request, body)
        q = self.request.query
        opts.update(labelSelector=q.get("labelSelector") or None, fieldSelector=q.get("fieldSelector") or None)
        code, out = await self.call(t, "deletecollection", None, opts)
        return self.reply(out, code)


async def handle(request: web.Request) -> web.StreamResponse:
    rest = Rest(request)
    try:
        return await rest.dispatch()
    except errors.ApiError as e:
        return error_response(e, rest.warnings + list(getattr(e, "warnings", [])))
