"""Revoking bus credentials on running nats-servers: the API server's tool when a Node is deleted.

:meth:`bus.natsauth.ClusterAuth.revoke` records a user's public key; :func:`push_account` then sends the account JWT
that carries the revocations to the servers as a request on ``$SYS.REQ.CLAIMS.UPDATE``
(:data:`bus.subjects.SYS_CLAIMS_UPDATE`). Each server with NATS' ``full`` account resolver validates it, stores it in
its resolver directory, answers ``{"data": {"code": 200, "message": "jwt updated"}}`` (or ``{"error": {...}}``) and
closes the connections of the users it now revokes; the request reaches every server of a cluster over the routes,
and a server that was down catches up from the others (the resolver's ``interval``) or from its next config.

The request is sent by a short-lived user of nats-server's ``SYS`` account, minted here from the cluster's system
key (:meth:`~bus.natsauth.ClusterAuth.mint_system_user`), that may publish only that subject. It is deliberately not
a role of the role table (bus.roles): no component gets it, only a holder of the cluster's keys (the API server) can
make one.
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Iterable

import nats
import nats.errors
from nats.aio.client import RawCredentials

from bus import subjects
from bus.natsauth import SYSTEM_USER_NAME, AuthError, ClusterAuth

PUSH_TIMEOUT = 5.0


class AccountPushError(AuthError):
    """The servers did not take the account update (the message says what they answered)."""


def _tls(url: str, tls_ca: str | os.PathLike | ssl.SSLContext | None) -> ssl.SSLContext | None:
    if isinstance(tls_ca, ssl.SSLContext):
        return tls_ca
    if tls_ca is not None:
        return ssl.create_default_context(cafile=str(tls_ca))
    if "tls://" in url:
        from bus.connect import tls_context

        return tls_context()  # $K8N_NATS_CA or nats-ca.crt in the creds dir
    return None


async def push_account(url: str, auth: ClusterAuth, tls_ca: str | os.PathLike | ssl.SSLContext | None = None,
                       timeout: float = PUSH_TIMEOUT) -> None:
    """Send ``auth``'s current account JWT (with its revocations) to the nats-server(s) at ``url`` (a comma-separated
    list for a cluster: any one of them is enough). ``tls_ca``: the CA file (or a context) for ``tls://`` URLs,
    default as bus.connect finds it. AccountPushError when the server refuses the update or nothing answers."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    try:  # each server tried twice at most (nats.py: 0 attempts would mean forever)
        nc = await nats.connect(servers, user_credentials=RawCredentials(auth.mint_system_user()),
                                inbox_prefix=subjects.inbox_prefix(SYSTEM_USER_NAME), tls=_tls(url, tls_ca),
                                name=SYSTEM_USER_NAME, allow_reconnect=False, max_reconnect_attempts=1,
                                reconnect_time_wait=0.2, connect_timeout=timeout, error_cb=on_error)
    except Exception as e:
        why = errors[-1] if errors else e
        raise AccountPushError(f"cannot connect to the NATS server(s) {url} as the system account's user to push "
                               f"the account update: {str(why) or type(why).__name__}") from None
    try:
        try:
            msg = await nc.request(subjects.SYS_CLAIMS_UPDATE, auth.account_jwt().encode(), timeout=timeout)
        except nats.errors.NoRespondersError:
            raise AccountPushError(f"no NATS server at {url} takes account updates (its account resolver is not "
                                   "'full': render its config again)") from None
        except nats.errors.TimeoutError:
            raise AccountPushError(f"the NATS server(s) at {url} did not answer the account update in {timeout}s") \
                from None
    finally:
        await nc.close()
    check_update_reply(msg.data)


def check_update_reply(data: bytes) -> dict:
    """The ``data`` of a server's answer to an account update; AccountPushError unless it says it stored it."""
    try:
        reply = json.loads(data)
    except ValueError:
        raise AccountPushError(f"unexpected answer to the account update: {data[:200]!r}") from None
    ok = reply.get("data") if isinstance(reply, dict) else None
    if isinstance(ok, dict) and ok.get("code") == 200:
        return ok
    err = (reply.get("error") if isinstance(reply, dict) else None) or {}
    server = ((reply.get("server") if isinstance(reply, dict) else None) or {}).get("name", "the NATS server")
    raise AccountPushError(f"{server} refused the account update: "
                           f"{err.get('description') or err.get('message') or reply}")


async def revoke_users(url: str, auth: ClusterAuth, keys: Iterable[str],
                       tls_ca: str | os.PathLike | ssl.SSLContext | None = None,
                       timeout: float = PUSH_TIMEOUT) -> None:
    """Revoke every user public key in ``keys`` (:meth:`ClusterAuth.revoke`: recorded first, so a failed push is
    made good by the next push or server restart) and push the account update to the servers at ``url``; their
    connections are closed and they cannot connect again. Idempotent: revoking a revoked key again changes nothing
    (the update is pushed anyway)."""
    for key in keys:
        auth.revoke(key)
    await push_account(url, auth, tls_ca, timeout)
