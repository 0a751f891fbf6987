"""An object's history over HTTP (``bus.history``): ``GET <object path>/history`` answers the API server's
``ObjectHistory`` for the user the request authenticated (authorized as reading the object, ``bus.rbac``);
``GET <collection path>/-/history`` the final states of the kind's deleted objects there (``-`` is no valid name;
the API server authorizes it as listing the kind)."""

from __future__ import annotations

from aiohttp import web

from bus import errors
from bus.history import HISTORY
from master.gateway import busreq
from master.gateway.auth import USER_KEY
from master.gateway.context import CLIENT, CRDS
from master.gateway.paths import Target, custom_candidate, parse_path
from master.gateway.respond import json_response

DELETED = "-"  # in place of a name: the deleted objects of the collection

PATHS = ("/api/v1/namespaces/{namespace}/{resource}/{name}/" + HISTORY,
         "/api/v1/{resource}/{name}/" + HISTORY,
         "/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}/" + HISTORY,
         "/apis/{group}/{version}/{resource}/{name}/" + HISTORY)


async def _target(request: web.Request) -> Target:
    try:
        return parse_path(request.path)
    except errors.NotFound:  # a custom resource this gateway has not seen yet
        token = custom_candidate(request.path)
        if token is None or await request.app[CRDS].lookup(token) is None:
            raise
        return parse_path(request.path)


async def object_history(request: web.Request) -> web.Response:
    t = await _target(request)
    if t.subresource != HISTORY or t.name is None or t.watch:
        raise errors.NotFound(404, "the server could not find the requested resource")
    verb, name = ("list", None) if t.name == DELETED else ("get", t.name)
    _, body, warnings = await busreq.call(request.app[CLIENT], t.res, verb, t.namespace, name,
                                          subresource=HISTORY, user=request.get(USER_KEY))
    return json_response(body, 200, warnings)


def add_routes(app: web.Application) -> None:
    """Before the catch-all resource routes."""
    for p in PATHS:
        app.router.add_get(p, object_history)
