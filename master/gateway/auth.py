"""Bearer-token authentication.

- Static tokens from a token file in kube-apiserver's ``--token-auth-file`` format
  (``token,user,uid[,"group1,group2"]`` per line); ``k8n up`` writes one with an admin token.
- ServiceAccount tokens: the JWTs the serviceaccount controller puts in ``<sa>-token-xxxxx`` Secrets,
  accepted when the signature checks out against the cluster key and the ServiceAccount still exists
  with the UID the token names.

``/version``, ``/healthz``, ``/readyz`` and ``/livez`` stay open, as in Kubernetes.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

from bus import errors
from bus import tokens as sa_tokens
from bus.client import ApiClient

log = logging.getLogger(__name__)

OPEN_PATHS = ("/version", "/healthz", "/readyz", "/livez")
SA_CACHE_SECONDS = 5.0  # how long a checked ServiceAccount token stays valid without a new check


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)


USER_KEY = web.RequestKey("user", User)  # the authenticated User of a request


def read_token_file(path: Path) -> dict[str, User]:
    out: dict[str, User] = {}
    for row in csv.reader(io.StringIO(path.read_text())):
        if len(row) < 2 or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        token, name = row[0].strip(), row[1].strip()
        uid = row[2].strip() if len(row) > 2 else name
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        out[token] = User(name, uid, groups)
    return out


def unauthorized() -> errors.ApiError:
    return errors.ApiError(401, "Unauthorized", "Unauthorized")


class Authenticator:
    def __init__(self, client: ApiClient, tokens: dict[str, User]) -> None:
        self.client = client
        self.tokens = tokens
        self._key: bytes | None = None
        self._checked: dict[str, tuple[float, User]] = {}

    async def _signing_key(self, refresh: bool = False) -> bytes | None:
        if self._key is None or refresh:
            try:
                s = await self.client.get("secrets", sa_tokens.SIGNING_KEY_SECRET, sa_tokens.SIGNING_KEY_NAMESPACE)
                self._key = sa_tokens.key_of(s)
            except (errors.NotFound, KeyError, TypeError, ValueError):
                return None
        return self._key

    async def _service_account(self, token: str) -> User | None:
        hit = self._checked.get(token)
        now = time.monotonic()
        if hit and now - hit[0] < SA_CACHE_SECONDS:
            return hit[1]
        claims = None
        for refresh in (False, True):
            key = await self._signing_key(refresh)
            if key is None:
                return None
            try:
                claims = sa_tokens.verify_token(key, token)
                break
            except ValueError:
                continue
        if not isinstance(claims, dict):
            return None
        ns = claims.get(sa_tokens.NAMESPACE_CLAIM)
        name = claims.get(sa_tokens.NAME_CLAIM)
        uid = claims.get(sa_tokens.UID_CLAIM)
        if not isinstance(ns, str) or not isinstance(name, str):
            return None
        try:
            sa = await self.client.get("serviceaccounts", name, ns)
        except errors.ApiError:
            return None
        if uid and (sa.get("metadata") or {}).get("uid") != uid:
            return None  # recreated: the old account's tokens are void
        user = User(f"system:serviceaccount:{ns}:{name}", str(uid or ""),
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"))
        if len(self._checked) > 10000:
            self._checked.clear()
        self._checked[token] = (now, user)
        return user

    async def authenticate(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        user = self.tokens.get(token)
        if user is not None:
            return user
        if token.count(".") == 2:
            return await self._service_account(token)
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
    user = await request.app[AUTHN].authenticate(request)
    if user is None:
        return error_response(unauthorized())
    request[USER_KEY] = user
    return await handler(request)

