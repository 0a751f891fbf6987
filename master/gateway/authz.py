"""Authorization at the gateway: every authenticated HTTP request is authorized here, with the same authorizer as the
API servers (``bus.nodeauthz.ClusterAuthorizer``: the Node authorizer then RBAC, over the gateway's own informer
caches and the node view), before the gateway reads anything for it (lists and watches come straight off the bus) or forwards it (to
the API server, which authorizes it again, or to a node: logs, exec). Non-resource URLs (discovery, OpenAPI,
``/metrics``) are authorized by path, as Kubernetes does.

Impersonation (``Impersonate-User``, ``-Uid``, ``-Group``, ``-Extra-<key>``, as kubectl ``--as``/``--as-group``
sends) replaces the user when the authenticated user may ``impersonate`` each of them; the request then goes on as
the impersonated user.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from bus import errors, history, resources
from bus.authn import ANONYMOUS, AUTHENTICATED, SERVICEACCOUNT_USER_PREFIX, UserInfo, service_account_user
from bus.client import MUTATING_VERBS
from bus.informer import SharedInformerFactory
from bus.nodeauthz import ClusterAuthorizer
from bus.rbac import Attributes, forbidden_error
from master.gateway.auth import OPEN_PATHS, USER_KEY
from master.gateway.context import CRDS
from master.gateway.paths import Target, custom_candidate, parse_path

AUTHZ = web.AppKey("authz", ClusterAuthorizer)
AUDIT = web.AppKey("audit", history.Auditor)  # what is refused here never reaches an API server's audit
ENABLED = web.AppKey("authorization", bool)  # False only with --authorization-mode AlwaysAllow (a benchmark)
SYNC_TIMEOUT = 30.0
IMPERSONATE_USER, IMPERSONATE_UID, IMPERSONATE_GROUP = "Impersonate-User", "Impersonate-Uid", "Impersonate-Group"
IMPERSONATE_EXTRA = "Impersonate-Extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"
_OPEN_PREFIXES = tuple(p + "/" for p in OPEN_PATHS)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def start(client) -> ClusterAuthorizer:
    """The gateway's authorizer, its caches synced."""
    factory = SharedInformerFactory(client)
    authz = ClusterAuthorizer(factory)
    await factory.start()
    if not await factory.wait_for_cache_sync(SYNC_TIMEOUT):
        raise RuntimeError("the gateway's authorization caches (RBAC, volumes) did not sync")
    return authz


# ---- what a request asks -----------------------------------------------------------------------------------


def _resource_verb(method: str, t: Target, watch_query: bool) -> str:
    if t.subresource in ("exec", "portforward"):  # a WebSocket upgrade is a GET; Kubernetes authorizes as create
        return "create"
    if method in ("GET", "HEAD"):
        if t.watch or (watch_query and t.name is None):
            return "watch"
        return "get" if t.name is not None else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if t.name is not None else "deletecollection"
    return method.lower()


def request_attributes(request: web.Request, user: UserInfo) -> Attributes | None:
    """The authorizer's view of an HTTP request (Kubernetes' RequestInfo); None for a resource path that names no
    resource k8n serves (the handler answers 404 without reading anything)."""
    path = request.path
    parts = [p for p in path.split("/") if p]
    resource_path = (parts[:2] == ["api", "v1"] and len(parts) > 2) or (parts[:1] == ["apis"] and len(parts) > 3)
    if not resource_path:
        verb = "get" if request.method == "HEAD" else request.method.lower()
        return Attributes.for_path(user, verb, path)
    try:
        t = parse_path(path)
    except errors.ApiError:
        return None
    watch = request.query.get("watch", "").lower() in ("1", "true")
    verb = _resource_verb(request.method, t, watch)
    name = t.name if (verb != "create" or t.subresource) else ""
    return Attributes.for_resource(user, verb, t.res, t.namespace, name, t.subresource)


# ---- impersonation -------------------------------------------------------------------------------------------


def _check(authz: ClusterAuthorizer, attrs: Attributes) -> None:
    d = authz.authorize(attrs)
    if not d.allowed:
        raise forbidden_error(attrs, d.reason)


def impersonated(request: web.Request, user: UserInfo, authz: ClusterAuthorizer) -> UserInfo:
    """The user a request acts as: ``user``, or whom its Impersonate-* headers name when ``user`` may impersonate
    them (403 otherwise; 400 for groups, uid or extras without a user)."""
    h = request.headers
    name = h.get(IMPERSONATE_USER)
    groups = [g.strip() for v in h.getall(IMPERSONATE_GROUP, []) for g in v.split(",") if g.strip()]
    uid = h.get(IMPERSONATE_UID, "")
    extra: dict[str, list[str]] = {}
    for key in h:
        if key.lower().startswith(IMPERSONATE_EXTRA.lower()):
            k = unquote(key[len(IMPERSONATE_EXTRA):]).lower()
            extra.setdefault(k, []).extend(v.strip() for v in h.getall(key) if v.strip())
    if name is None:
        if groups or uid or extra:
            raise errors.bad_request("requested impersonation of groups, uid or extras without impersonating a user")
        return user
    name = name.strip()
    if not name:
        raise errors.bad_request("Impersonate-User must name a user")
    if name.startswith(SERVICEACCOUNT_USER_PREFIX):
        ns, _, sa = name[len(SERVICEACCOUNT_USER_PREFIX):].partition(":")
        _check(authz, Attributes(user, "impersonate", ns, "", "serviceaccounts", "", sa))
        base = service_account_user(ns, sa)
        all_groups = list(dict.fromkeys([*groups, *base.groups]))
    else:
        _check(authz, Attributes(user, "impersonate", "", "", "users", "", name))
        all_groups = list(groups)
    for g in groups:
        _check(authz, Attributes(user, "impersonate", "", "", "groups", "", g))
    if uid:
        _check(authz, Attributes(user, "impersonate", "", AUTHENTICATION_GROUP, "uids", "", uid))
    for k, values in extra.items():
        for v in values:
            _check(authz, Attributes(user, "impersonate", "", AUTHENTICATION_GROUP, "userextras", k, v))
    if name != ANONYMOUS and AUTHENTICATED not in all_groups:
        all_groups.append(AUTHENTICATED)
    return UserInfo(name, uid, tuple(all_groups), tuple((k, tuple(v)) for k, v in sorted(extra.items())))


# ---- the middleware --------------------------------------------------------------------------------------------


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 Forbidden (Kubernetes' wording) for what the request's user may not do; runs after authentication."""
    if request.path in OPEN_PATHS or request.path.startswith(_OPEN_PREFIXES):
        return await handler(request)
    user = request.get(USER_KEY)
    if user is None or not request.app[ENABLED]:  # authentication refused it already; or measuring (no authz)
        return await handler(request)
    authz = request.app[AUTHZ]
    user = impersonated(request, user, authz)
    request[USER_KEY] = user
    attrs = request_attributes(request, user)
    token = custom_candidate(request.path) if attrs is None else None
    if token is not None and await request.app[CRDS].lookup(token) is not None:
        attrs = request_attributes(request, user)  # a custom resource this gateway had not seen yet
    if attrs is not None:
        d = await authz.authorize_async(attrs)
        if not d.allowed:
            _audit_refusal(request, attrs)
            raise forbidden_error(attrs, d.reason)
    return await handler(request)


def _audit_refusal(request: web.Request, attrs: Attributes) -> None:
    """A refused mutating request is audited (403), as the API server audits what it refuses."""
    auditor = request.app.get(AUDIT)
    if auditor is None or not attrs.resource_request or attrs.verb not in MUTATING_VERBS:
        return
    res = resources.by_group_plural(attrs.api_group, attrs.resource)
    if res is not None:
        auditor.add(None, attrs.user, attrs.verb, res, attrs.namespace or None, attrs.name or None,
                    attrs.subresource or None, 403, time.time(), reason="Forbidden")
