"""Bearer-token authentication.

- Static tokens from a token file in kube-apiserver's ``--token-auth-file`` format
  (``token,user,uid[,"group1,group2"]`` per line); ``k8n up`` writes one with an admin token.
- ServiceAccount tokens (JWTs): the gateway holds no keys. It asks the API server, with a TokenReview over the
  bus, as kube-apiserver's webhook token authenticator asks its webhook; the API server checks the signature,
  issuer, expiry and audience, and that the account and the pod or Secret the token is bound to still exist.
  An answer is cached, by the token's SHA-256: a yes for at most :data:`SA_CACHE_SECONDS` and never past the
  token's ``exp``, a no for at most :data:`NEGATIVE_CACHE_SECONDS`; a review that fails (the API server does
  not answer) is not cached. Concurrent requests with the same token share one review.

- Bootstrap tokens (``<id>.<secret>``, ``bus.bootstraptoken``) of machines that join: TokenReview too, never cached.

- The web view (``master/gateway/ui``): its login turns a token it has checked here into an HttpOnly, Secure,
  SameSite=Strict cookie (:data:`SESSION_COOKIE`) holding that token. The cookie authenticates an API request only
  when the request also carries the :data:`UI_HEADER` the page sends (a custom header another site's page cannot
  send without a CORS preflight, which the gateway never grants): a cross-site form or link gets 401. The token in
  the cookie is checked as a bearer token is, on every request, so RBAC applies to the page as to its user.

Users are :class:`bus.authn.UserInfo` (``User`` is kept as its alias). ``/version``, ``/healthz``, ``/readyz``
and ``/livez`` stay open, as in Kubernetes; ``GET`` of ``kube-public/cluster-info`` without a token is made as
``system:anonymous`` (RBAC lets it read that ConfigMap only).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import logging
import time
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

from bus import bootstraptoken, clusterinfo, errors
from bus import tokens as sa_tokens
from bus import authn
from bus.authn import UserInfo
from bus.client import ApiClient, resource_of

log = logging.getLogger(__name__)

OPEN_PATHS = ("/version", "/healthz", "/readyz", "/livez")
UI_PATH = "/ui"  # the web view: its handlers authenticate its pages themselves (master/gateway/ui)
SESSION_COOKIE = "__Host-k8n-session"  # the web view's session: the token its user logged in with
UI_HEADER = "X-K8n-UI"  # sent by the web view on every API call; without it the session cookie is ignored
SA_CACHE_SECONDS = 10.0  # how long a token the API server accepted is taken without asking again
NEGATIVE_CACHE_SECONDS = 1.0  # how long a refused token is refused without asking again
CACHE_LIMIT = 10000  # entries kept (expired ones are dropped first when it is reached)

User = UserInfo  # the authenticated user of a request (the name other gateway modules import)
#: who reads ``kube-public/cluster-info`` without a token (the one path anonymous requests may take, as with
#: Kubernetes' AnonymousAuthConfigurableEndpoints); RBAC grants it that one object
ANONYMOUS = UserInfo(authn.ANONYMOUS, "", (authn.UNAUTHENTICATED,))

USER_KEY = web.RequestKey("user", UserInfo)  # the authenticated User of a request


def read_token_file(path: Path) -> dict[str, UserInfo]:
    out: dict[str, UserInfo] = {}
    for row in csv.reader(io.StringIO(path.read_text())):
        if len(row) < 2 or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        token, name = row[0].strip(), row[1].strip()
        uid = row[2].strip() if len(row) > 2 else name
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        out[token] = UserInfo(name, uid, groups)
    return out


def unauthorized() -> errors.ApiError:
    return errors.ApiError(401, "Unauthorized", "Unauthorized")


def _seconds_left(token: str) -> float | None:
    """Seconds until the token's ``exp`` (read, not verified: the API server has just verified it)."""
    try:
        exp = sa_tokens.unverified_claims(token).get("exp")
    except ValueError:
        return None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return exp - time.time()


class Authenticator:
    def __init__(self, client: ApiClient, tokens: dict[str, UserInfo]) -> None:
        self.client = client
        self.tokens = tokens
        self._cache: dict[bytes, tuple[float, UserInfo | None]] = {}  # sha256(token) -> (until, user or refused)
        self._inflight: dict[bytes, asyncio.Task] = {}

    def _remember(self, key: bytes, seconds: float, user: UserInfo | None) -> None:
        if seconds <= 0:
            return
        now = time.monotonic()
        if len(self._cache) >= CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
        self._cache[key] = (now + seconds, user)

    async def _review(self, key: bytes, token: str) -> UserInfo | None:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            out = await self.client.request(resource_of("tokenreviews"), "create", body=body)
            status = (out or {}).get("status") or {}
        except Exception as e:  # the API server cannot say now: refuse this request, ask again for the next
            log.warning("could not review a ServiceAccount token: %s", e)
            return None
        if status.get("authenticated") is not True:
            self._remember(key, NEGATIVE_CACHE_SECONDS, None)
            return None
        try:
            user = UserInfo.from_dict(status.get("user"))
        except ValueError as e:
            log.warning("the TokenReview's user is malformed: %s", e)
            return None
        left = _seconds_left(token)
        if left is not None:
            self._remember(key, min(SA_CACHE_SECONDS, left), user)
        return user

    async def _service_account(self, token: str) -> UserInfo | None:
        key = hashlib.sha256(token.encode()).digest()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._review(key, token))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None))
        return await asyncio.shield(task)  # a caller that goes away does not cancel the others' review

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        return await self.authenticate_token(request_token(request))

    async def authenticate_token(self, token: str | None) -> UserInfo | None:
        """The user a bearer token stands for; None for no token or one that is not accepted."""
        if not token:
            return None
        user = self.tokens.get(token)
        if user is not None:
            return user
        if token.count(".") == 2 or bootstraptoken.TOKEN_RE.match(token):
            return await self._service_account(token)  # a ServiceAccount JWT or a bootstrap token: TokenReview
        return None


def request_token(request: web.Request) -> str | None:
    """The bearer token of a request: its ``Authorization: Bearer`` header, else the web view's session cookie
    when the request carries the web view's header too."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None
    if UI_HEADER in request.headers:
        return request.cookies.get(SESSION_COOKIE) or None
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


AUTHN = web.AppKey("authn", Authenticator)
_OPEN_PREFIXES = tuple(p + "/" for p in OPEN_PATHS)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 Unauthorized for a request with no valid bearer token (except the open paths)."""
    from master.gateway.respond import error_response

    if request.path in OPEN_PATHS or request.path.startswith(_OPEN_PREFIXES):
        return await handler(request)
    if request.path == UI_PATH or request.path.startswith(UI_PATH + "/"):
        return await handler(request)  # the web view's pages: its login page is open, the rest check the cookie
    if request.path == clusterinfo.PATH and request.method == "GET" and "Authorization" not in request.headers:
        request[USER_KEY] = ANONYMOUS  # machines that join read it before they hold any credential (RBAC decides)
        return await handler(request)
    user = await request.app[AUTHN].authenticate(request)
    if user is None:
        return error_response(unauthorized())
    request[USER_KEY] = user
    return await handler(request)
