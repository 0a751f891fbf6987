"""The aiohttp application: routes, the bus client's lifetime, authentication and error handling."""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Awaitable, Callable

from aiohttp import web

from bus import errors, roles
from bus.client import ApiClient
from bus.history import Auditor
from bus.roles import Identity
from bus.version import version_info
from master.gateway import authz as gateway_authz
from master.gateway import discovery, endpoint, history, metricsapi, openapi, rest
from master.gateway import portforward, ui
from master.gateway import oidc, promscrape
from master.gateway.auth import AUTHN, Authenticator, User, middleware as auth_middleware
from bus.crd import CrdRegistry
from master.gateway.context import CLIENT, CRDS
from master.gateway.paths import parse_path
from master.gateway.respond import JSON, error_response, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
POD = "/api/v1/namespaces/{namespace}/pods/{name}"


# ---- version, health ------------------------------------------------------------------------------

def version() -> dict:
    info = version_info()
    return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-k8n", "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "", "goVersion": f"python{info.get('pythonVersion', '')}", "compiler": "cpython",
            "platform": info.get("platform", ""), "k8nVersion": info.get("k8nVersion", "")}


async def get_version(_request: web.Request) -> web.Response:
    return json_response(version())


async def health(request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    if request.path.startswith("/readyz") and not client.nc.is_connected:
        return web.Response(status=503, text="[-]nats failed: not connected\nreadyz check failed",
                            content_type="text/plain")
    return web.Response(text="ok", content_type="text/plain")


# ---- discovery, openapi ---------------------------------------------------------------------------

def _discovery(core: bool, classic) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        v = discovery.wanted_aggregated(request.headers.get("Accept", ""))
        if v is not None:
            return json_response(discovery.aggregated(core, v),
                                 content_type=discovery.AGGREGATED.format(v=v))
        return json_response(classic())
    return handler


async def api_group(request: web.Request) -> web.Response:
    doc = discovery.api_group(request.match_info["group"])
    if doc is None:
        raise errors.NotFound(404, "the server could not find the requested resource")
    return json_response(doc)


async def core_resources(_request: web.Request) -> web.Response:
    return json_response(discovery.api_resource_list("", "v1"))


async def group_resources(request: web.Request) -> web.Response:
    doc = discovery.api_resource_list(request.match_info["group"], request.match_info["version"])
    if doc is None:
        raise errors.NotFound(404, "the server could not find the requested resource")
    return json_response(doc)


async def openapi_index(_request: web.Request) -> web.Response:
    return json_response(openapi.index())


async def openapi_gv(request: web.Request) -> web.Response:
    parts = request.match_info["path"].strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        body = openapi.gv_document_bytes("", parts[1])
    elif parts[:1] == ["apis"] and len(parts) == 3:
        body = openapi.gv_document_bytes(parts[1], parts[2])
    else:
        body = None
    if body is None:
        raise errors.NotFound(404, "the server could not find the requested resource")
    return web.Response(body=body, content_type=JSON,
                        headers={"Cache-Control": "public, immutable" if "hash" in request.query else "no-cache"})


# ---- pod streams (log, exec): master/gateway/podstreams.py, when it exists ---------------------------

def _pod_stream(fn: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        parse_path(request.path)  # the namespace and name as on every path (authorization skips a bad one)
        try:
            mod = importlib.import_module("master.gateway.podstreams")
        except ImportError:
            raise errors.NotFound(404, f"pods/{fn.removeprefix('pod_')} is not served yet") from None
        return await getattr(mod, fn)(request)
    return handler


async def _portforward(request: web.Request) -> web.StreamResponse:
    parse_path(request.path)
    return await portforward.pod_portforward(request)


# ---- errors ---------------------------------------------------------------------------------------

@web.middleware
async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a Kubernetes Status: ours, aiohttp's (404 route, 405), and crashes (500)."""
    try:
        return await handler(request)
    except errors.ApiError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(errors.ApiError(e.status, e.reason if e.status != 404 else
                                              "the server could not find the requested resource"))
    except Exception as e:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(errors.internal(f"{type(e).__name__}: {e}"))


# ---- the application --------------------------------------------------------------------------------

def make_app(server_url: str, tokens: dict[str, User], client: ApiClient | None = None,
             advertise: tuple[str, int] | None = None, authorize: bool = True) -> web.Application:
    """The gateway app; it connects to NATS at startup unless given a ``client``. ``advertise``: the address and
    port pods reach it at, kept as the endpoint of the ``kubernetes`` Service (``master/gateway/endpoint.py``)."""
    app = web.Application(client_max_size=3 * 1024 * 1024 + 1024)
    app[gateway_authz.ENABLED] = authorize
    async def lifetime(app: web.Application):
        own = client is None
        c = client or await ApiClient.connect(server_url, Identity(roles.GATEWAY))
        app[CLIENT] = c
        app[AUTHN] = Authenticator(c, tokens)
        app[gateway_authz.AUTHZ] = authz = await gateway_authz.start(c)
        app[gateway_authz.AUDIT] = auditor = Auditor(c.nc)
        app[metricsapi.CACHE] = metrics = await metricsapi.start(c)
        app[CRDS] = crds = CrdRegistry(c)
        await crds.start()
        scrapes = await promscrape.start(app, c.nc)
        publisher = asyncio.create_task(endpoint.keep(c, *advertise)) if advertise else None
        yield
        if publisher is not None:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
        await metrics.stop()
        await promscrape.stop(scrapes)
        await crds.stop()
        await authz.factory.stop()
        auditor.flush()
        if own:
            await c.close()

    app.cleanup_ctx.append(lifetime)
    app.middlewares.extend([status_errors, auth_middleware, gateway_authz.middleware])
    r = app.router
    r.add_get("/version", get_version)
    for p in ("/healthz", "/readyz", "/livez"):
        r.add_get(p, health)
        r.add_get(p + "/{check:.*}", health)
    r.add_get("/api", _discovery(True, discovery.api_versions))
    r.add_get("/apis", _discovery(False, discovery.api_group_list))
    r.add_get("/api/v1", core_resources)
    r.add_get("/apis/{group}", api_group)
    r.add_get("/apis/{group}/{version}", group_resources)
    r.add_get("/openapi/v3", openapi_index)
    r.add_get("/openapi/v3/{path:.+}", openapi_gv)
    r.add_get(POD + "/log", _pod_stream("pod_log"))
    r.add_route("GET", POD + "/exec", _pod_stream("pod_exec"))
    r.add_route("POST", POD + "/exec", _pod_stream("pod_exec"))
    r.add_route("GET", POD + "/portforward", _portforward)
    r.add_route("POST", POD + "/portforward", _portforward)
    metricsapi.add_routes(app)
    history.add_routes(app)  # <object>/history, before the resource routes
    promscrape.add_routes(app)  # /metrics: every component's Prometheus metrics
    ui.add_routes(app)  # the web view at /ui/
    oidc.add_routes(app)  # /openid/v1/jwks, /.well-known/openid-configuration (keys: app[oidc.KEYS_PATH])
    r.add_route("*", "/api/v1/{tail:.+}", rest.handle)
    r.add_route("*", "/apis/{group}/{version}/{tail:.+}", rest.handle)
    return app
