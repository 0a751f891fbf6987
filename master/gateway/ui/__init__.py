"""The web view at ``/ui/``: static pages (plain HTML, CSS and ES modules in ``static/``, no build step) that read
the cluster through the gateway's own API, as the user who logged in.

- ``GET /ui/login`` is the login page (open): the user pastes a bearer token (the admin token of ``k8n up``'s
  kubeconfig, a static token, a ServiceAccount token from ``kubectl create token``); ``/ui/login#token=…`` submits
  it by itself (the fragment never reaches a server or a log). Its script posts the token to ``POST /ui/login``
  with the web view's header; the gateway checks it with its authenticator and answers with an HttpOnly, Secure,
  SameSite=Strict cookie holding it (``master/gateway/auth.py`` says when the API accepts that cookie), or 401.
- ``GET /ui/`` and its scripts need that cookie: without a valid one a page is redirected to the login page, a
  script is refused with 401. ``GET /ui/session`` answers who is logged in; ``POST /ui/logout`` clears the cookie.
Every API call the page makes is authenticated by the cookie and authorized by RBAC as its user.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from aiohttp import web

from bus import errors
from bus import tokens as sa_tokens
from bus.authn import UserInfo
from master.gateway.auth import AUTHN, SESSION_COOKIE, UI_HEADER, UI_PATH, unauthorized
from master.gateway.respond import error_response, json_response

STATIC = Path(__file__).with_name("static")
PUBLIC = frozenset({"login.html", "login.js", "style.css"})  # what the login page needs
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
FILES = {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES}  # nothing else is served (no paths from URLs)
SESSION_SECONDS = 8 * 3600  # the cookie's lifetime (shorter when the token expires sooner)
MAX_TOKEN = 16 * 1024
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
}


def _file(name: str) -> web.Response:
    path = FILES.get(name)
    if path is None:
        raise errors.NotFound(404, "the server could not find the requested resource")
    return web.Response(body=path.read_bytes(), content_type=TYPES[path.suffix], headers=HEADERS,
                        charset="utf-8" if path.suffix != ".svg" else None)


async def _session_user(request: web.Request) -> UserInfo | None:
    return await request.app[AUTHN].authenticate_token(request.cookies.get(SESSION_COOKIE))


def _require_ui_header(request: web.Request) -> None:
    if UI_HEADER not in request.headers:  # a form or page of another site cannot send it
        raise errors.ApiError(403, f"the web view's requests carry the {UI_HEADER} header", "Forbidden")


async def page(request: web.Request) -> web.StreamResponse:
    """``/ui/`` and its files: served with a valid session; else the login page (pages) or 401 (scripts)."""
    name = request.match_info.get("name") or "index.html"
    if name in PUBLIC:
        return _file(name)
    if name not in FILES:
        raise errors.NotFound(404, "the server could not find the requested resource")
    if await _session_user(request) is None:
        if name.endswith(".html"):
            raise web.HTTPSeeOther(f"{UI_PATH}/login")  # the browser keeps a #token= fragment across it
        return error_response(unauthorized())
    return _file(name)


async def login_page(_request: web.Request) -> web.Response:
    return _file("login.html")


def _max_age(token: str) -> int:
    try:
        exp = sa_tokens.unverified_claims(token).get("exp")  # verified by the authenticator just now
    except ValueError:
        exp = None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return max(1, min(SESSION_SECONDS, int(exp - time.time())))
    return SESSION_SECONDS


async def login(request: web.Request) -> web.Response:
    """``{"token": "…"}`` → the session cookie and ``{"username": …}``; 401 for a token the gateway refuses."""
    _require_ui_header(request)
    raw = await request.content.read(MAX_TOKEN + 1)
    try:
        token = orjson.loads(raw).get("token") if len(raw) <= MAX_TOKEN else None
    except (orjson.JSONDecodeError, AttributeError):
        token = None
    if not isinstance(token, str) or not token.strip():
        raise errors.bad_request('the body must be {"token": "<bearer token>"}')
    token = token.strip()
    user = await request.app[AUTHN].authenticate_token(token)
    if user is None:
        return error_response(unauthorized())
    resp = json_response({"username": user.name, "groups": list(user.groups)})
    resp.set_cookie(SESSION_COOKIE, token, max_age=_max_age(token), path="/", secure=True, httponly=True,
                    samesite="Strict")
    return resp


async def logout(request: web.Request) -> web.Response:
    _require_ui_header(request)
    resp = json_response({})
    resp.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return resp


async def session(request: web.Request) -> web.Response:
    """Who the session is (the page shows it); 401 without a valid session and the web view's header."""
    _require_ui_header(request)
    user = await _session_user(request)
    if user is None:
        return error_response(unauthorized())
    return json_response({"username": user.name, "groups": list(user.groups)})


async def _to_index(_request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(f"{UI_PATH}/")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(UI_PATH, _to_index)
    r.add_get(f"{UI_PATH}/login", login_page)
    r.add_post(f"{UI_PATH}/login", login)
    r.add_post(f"{UI_PATH}/logout", logout)
    r.add_get(f"{UI_PATH}/session", session)
    r.add_get(f"{UI_PATH}/", page)
    r.add_get(UI_PATH + "/{name:[A-Za-z0-9_.-]+}", page)
