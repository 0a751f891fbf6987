"""Connecting to the bus as one identity.

Every process connects with credentials (a NATS ``.creds`` file, :mod:`bus.natsauth`) for its own identity
(:mod:`bus.roles`). Where they are found:

- an explicit file (``ApiClient.connect(creds=…)``; for a client with no identity of its own, ``$K8N_CREDS``);
- else ``<creds dir>/<identity>.creds``, the creds dir being ``--creds-dir``, else ``$K8N_CREDS_DIR``, else
  ``<data dir>/creds`` (``k8n up`` mints every component's credentials there).

The connection uses the identity's own inbox prefix (the only one it may subscribe to) and reports what the server
refuses — a missing permission is otherwise only a log line on the server and a timeout on the client — as an error
that names the identity, the credentials file and the subject.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS

from bus import config, skew
from bus.natsauth import AuthError, Credentials
from bus.roles import ADMIN, Identity

log = logging.getLogger(__name__)

CREDS_DIR_ENV = "K8N_CREDS_DIR"
CREDS_ENV = "K8N_CREDS"
CA_ENV = "K8N_NATS_CA"
CA_FILE = "nats-ca.crt"  # in the creds dir: the CA of the NATS servers' TLS certificates


def creds_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(CREDS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return config.data_dir(None) / "creds"


def creds_path(identity: Identity, directory: str | os.PathLike | None = None) -> Path:
    return creds_dir(directory) / f"{identity.file_name}.creds"


def find_credentials(identity: Identity | None = None, creds: str | os.PathLike | None = None,
                     directory: str | os.PathLike | None = None) -> Credentials:
    """The credentials to connect with: ``creds`` when given, else ``identity``'s file in the creds dir; with no
    identity (a client's default), ``$K8N_CREDS`` or else the admin's. AuthError names what is missing."""
    explicit = creds or (os.environ.get(CREDS_ENV) if identity is None else None)
    if explicit:
        return Credentials.load(explicit)
    ident = identity or Identity(ADMIN)
    path = creds_path(ident, directory)
    if not path.exists():
        raise AuthError(f"no NATS credentials for {ident.token} at {path} (k8n up mints them into <data dir>/creds; "
                        f"set --creds-dir/${CREDS_DIR_ENV} or --creds/${CREDS_ENV})")
    return Credentials.load(path)


def tls_context(creds: Credentials | None = None, directory: str | os.PathLike | None = None) -> ssl.SSLContext:
    """A client TLS context trusting the cluster's NATS CA: ``$K8N_NATS_CA``, else ``nats-ca.crt`` beside the
    credentials, else in the creds dir; AuthError when there is none."""
    candidates = [os.environ.get(CA_ENV)] + ([str(creds.path.parent / CA_FILE)] if creds else []) + [
        str(creds_dir(directory) / CA_FILE)]
    for ca in candidates:
        if ca and Path(ca).exists():
            return ssl.create_default_context(cafile=ca)
    raise AuthError(f"the NATS server speaks TLS but no CA to check it is here (set ${CA_ENV} or put {CA_FILE} "
                    "beside the credentials)")


class Refusals:
    """What the server refused this connection (permission violations), reported once each with the identity."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self.seen: list[str] = []

    def refused(self, e: Exception) -> bool:
        """Whether ``e`` is the server refusing something (recorded and logged once), not a connection error."""
        text = str(e).strip()
        low = text.lower()
        if "permissions violation" not in low and "authorization violation" not in low:
            return False
        if text not in self.seen:  # (the client says authorization violations when it connects)
            self.seen.append(text)
            if len(self.seen) > 100:
                del self.seen[:50]
            log.error("the bus refused %s (credentials %s): %s", self.creds.identity.token, self.creds.path, text)
        return True


#: whether a revoked identity stops this process (SIGTERM: a clean stop) — set by long-running entry points
#: (``bus.cmdline.run``); a library user decides for itself
STOP_WHEN_REVOKED = False


def revoked(creds: Credentials) -> None:
    """The server closed this identity's connection because its credentials were revoked (a deleted Node's): say
    so, and stop a long-running process, which cannot do its work any more (a supervisor restarting it then hears
    the refusal at connect)."""
    log.error("the bus revoked the credentials of %s (%s): this identity may no longer connect%s",
              creds.identity.token, creds.path, "; stopping" if STOP_WHEN_REVOKED else "")
    if STOP_WHEN_REVOKED:
        os.kill(os.getpid(), signal.SIGTERM)


async def connect(url: str, creds: Credentials, name: str | None = None, **kw: Any) -> NATS:
    """A NATS connection as ``creds``' identity that reconnects forever (unless ``kw`` says otherwise). AuthError
    when the server refuses the credentials."""
    refusals = Refusals(creds)
    user_error_cb = kw.pop("error_cb", None)

    user_closed_cb = kw.pop("closed_cb", None)
    holder: list[NATS] = []

    async def on_closed() -> None:
        # the server closes a revoked user's connection and nats-py gives up on it: its last error says why
        last = str(holder[0].last_error or "").lower() if holder else ""
        if "revoked" in last or "authorization violation" in last:
            revoked(creds)
        if user_closed_cb is not None:
            await user_closed_cb()

    async def on_error(e: Exception) -> None:
        refused = refusals.refused(e)
        if user_error_cb is not None:
            await user_error_cb(e)
        elif not refused:
            log.warning("bus connection (%s): %s", creds.identity.token, str(e) or type(e).__name__)

    # pings every 2s, 2 unanswered: a hung server (its machine stopped, its connections not closed) is left for
    # another one of the cluster within ~8s rather than nats-py's default of 4 minutes
    opts: dict[str, Any] = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.5, "ping_interval": 2,
                            "max_outstanding_pings": 2,
                            "name": skew.connection_name(name or creds.identity.token)}
    opts.update(kw)
    tls = opts.pop("tls", None) or (tls_context(creds) if "tls://" in url else None)
    if tls is not None:  # a NATS server listening beyond loopback speaks TLS only (bus.natsserver)
        opts["tls"] = tls
    try:
        servers = [u.strip() for u in url.split(",") if u.strip()]  # a cluster: any of its servers
        nc = await nats.connect(servers, user_credentials=str(creds.path), inbox_prefix=creds.identity.inbox_prefix,
                                error_cb=on_error, closed_cb=on_closed, **opts)
    except Exception as e:
        if "authorization violation" in " ".join([str(e), *refusals.seen]).lower():
            raise AuthError(f"the NATS server at {url} refused the credentials {creds.path} "
                            f"(identity {creds.identity.token}): authorization violation") from None
        raise
    nc._k8n_refusals = refusals  # type: ignore[attr-defined]
    holder.append(nc)
    if skew.CHECK_AT_CONNECT:  # a long-running component: stop now if the version-skew policy says so
        try:
            await skew.verify(nc, creds.identity.role)
        except skew.SkewError:
            await nc.close()
            raise
    return nc


def identity_of(nc: NATS) -> Identity:
    """The identity a connection made by :func:`connect` acts as."""
    refusals = getattr(nc, "_k8n_refusals", None)
    if refusals is None:
        raise AuthError("this NATS connection was not made by bus.connect (it has no identity)")
    return refusals.creds.identity


def refusals_of(nc: NATS) -> list[str]:
    """What the server refused on this connection so far (newest last)."""
    refusals = getattr(nc, "_k8n_refusals", None)
    return list(refusals.seen) if refusals is not None else []
