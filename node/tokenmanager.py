"""The node's ServiceAccount tokens, kept as the kubelet's token manager keeps them
(``pkg/kubelet/token/token_manager.go``).

Tokens come from the TokenRequest API (``serviceaccounts/<name>/token``) and are cached by what was asked
(account, audiences, lifetime, bound object). A cached token is used until it is older than 80 % of its lifetime
or older than 24 hours (less a jitter of up to 10 s, so that a node's pods do not all ask at once); then a new one
is asked for. When that fails the old token is still used while it has not expired, and the caller hears of the
failure only once the old token is expired too. The tokens of a pod are dropped when the pod goes.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Awaitable, Callable

from bus.meta import timestamp

log = logging.getLogger(__name__)

MAX_TTL_SECONDS = 24 * 60 * 60  # a token older than this is replaced, whatever its lifetime
MAX_JITTER_SECONDS = 10.0
REFRESH_FRACTION = 0.8  # replaced once older than 80 % of its lifetime

#: ``(namespace, account, TokenRequest) -> TokenRequest`` with ``status.token`` (the API call)
RequestToken = Callable[[str, str, dict], Awaitable[dict]]


class TokenError(Exception):
    """No token can be had (none cached that is still valid, and the API refused or did not answer)."""


def cache_key(namespace: str, name: str, request: dict) -> tuple:
    spec = request.get("spec") or {}
    ref = spec.get("boundObjectRef") or {}
    return (namespace, name, tuple(spec.get("audiences") or ()), spec.get("expirationSeconds"),
            ref.get("kind"), ref.get("name"), ref.get("uid"))


def expires_at(tr: dict) -> float:
    """``status.expirationTimestamp`` in epoch seconds (0 when missing: expired)."""
    return timestamp(((tr.get("status") or {}).get("expirationTimestamp")), 0.0)


def refresh_at(tr: dict) -> float:
    """When the kubelet replaces ``tr``'s token (without the jitter): at 80 % of its lifetime, at most 24 h
    after it was issued. A token whose lifetime is not known is never refreshed early."""
    exp = expires_at(tr)
    ttl = (tr.get("spec") or {}).get("expirationSeconds")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        return exp
    issued = exp - ttl
    return min(issued + MAX_TTL_SECONDS, exp - ttl * (1 - REFRESH_FRACTION))


class TokenManager:
    def __init__(self, request: RequestToken, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random) -> None:
        self._request = request
        self.clock = clock
        self._jitter = jitter
        self._cache: dict[tuple, dict] = {}

    def requires_refresh(self, tr: dict) -> bool:
        return self.clock() > refresh_at(tr) - self._jitter() * MAX_JITTER_SECONDS

    def expired(self, tr: dict) -> bool:
        return self.clock() > expires_at(tr)

    async def get(self, namespace: str, name: str, request: dict) -> dict:
        """The TokenRequest (``status.token``, ``status.expirationTimestamp``) for ``request``: the cached one while
        it is fresh, else a new one. TokenError when there is none to give."""
        key = cache_key(namespace, name, request)
        cached = self._cache.get(key)
        if cached is not None and not self.requires_refresh(cached):
            return cached
        try:
            fresh = await self._request(namespace, name, request)
            if not ((fresh or {}).get("status") or {}).get("token") or not expires_at(fresh):
                raise TokenError("the TokenRequest came back without a token")
        except Exception as e:
            if cached is None:
                raise TokenError(f"failed to fetch token: {e}") from e
            if self.expired(cached):
                raise TokenError(f"token expired and refresh failed: {e}") from e
            log.warning("could not renew a token of serviceaccount %s/%s (the current one stays): %s",
                        namespace, name, e)
            return cached
        self._cache[key] = fresh
        return fresh

    def delete_pod(self, pod_uid: str) -> None:
        """Forget the tokens bound to the pod ``pod_uid`` (the pod is gone)."""
        for k in [k for k in self._cache if k[4] == "Pod" and k[6] == pod_uid]:
            del self._cache[k]

    def cleanup(self) -> None:
        """Forget expired tokens."""
        for k in [k for k, tr in self._cache.items() if self.expired(tr)]:
            del self._cache[k]
