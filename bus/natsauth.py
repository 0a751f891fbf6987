"""The bus's identities: NATS operator/JWT mode, with keys and credentials kept in the data directory.

One operator signs two accounts: ``K8N`` (everything k8n does, JetStream enabled) and ``SYS`` (nats-server's system
account). Every component connects as a user of ``K8N`` whose JWT carries its own permissions (the role table,
:mod:`bus.roles`), signed by the account's signing key. The server is told only the operator and the accounts, never
the users: a node that joins or a role that changes needs a new user JWT, not a server config rewrite. Anonymous
connections are refused (nats-server in operator mode has no anonymous user).

Revocation: the servers keep the account JWTs with NATS' own ``full`` account resolver (a directory per server,
:meth:`ClusterAuth.server_config`), which accepts signed account updates while running and shares them between the
servers of a cluster. :meth:`ClusterAuth.revoke` records a user's public key (``revocations.json``); the account JWT
then carries it in ``nats.revocations`` (``{user key: unix time}``: every JWT of that user issued at or before that
time is refused, and nats-server closes that user's connections when the update arrives). Each account JWT is issued
later (``iat``) than any before it, since a server keeps the newer of its stored JWT and its config's preload: a
restart with an old config does not roll a revocation back. :mod:`bus.natsrevoke` pushes the update to running
servers as a user of the ``SYS`` account (:meth:`ClusterAuth.mint_system_user`).

Files (``<auth dir>``, 0700; files 0600): ``operator.nk``, ``account.nk``, ``account-signing.nk``, ``system.nk``
(nkey seeds), ``revocations.json``. Credentials (``<creds dir>/<identity file>.creds``, 0600) are NATS' standard
``.creds`` format, so any NATS client (``nats --creds``, nats.py's ``user_credentials``) can use them.

JWTs are encoded here (header ``{"typ":"JWT","alg":"ed25519-nkey"}``, claims with ``jti`` = base32 SHA-512/256 of
the claims, an Ed25519 signature by the issuer's nkey) — the one maintained Python JWT library for NATS calls itself
experimental and untested, and the format is small; nkeys come from the NATS project's ``nkeys`` package. The
real nats-server is the judge: tests/integration/test_bus_auth.py connects with what this module makes.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import nkeys

from bus import subjects
from bus.files import write_private
from bus.roles import Identity, Permissions, permissions_for

JWT_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
ACCOUNT_NAME = "K8N"
SYSTEM_ACCOUNT_NAME = "SYS"
OPERATOR_NAME = "k8n"
UNLIMITED = -1
CREDS_SUFFIX = ".creds"
REVOCATIONS_FILE = "revocations.json"
#: the name in the JWT of the ``SYS`` account user that pushes account updates (no role: see bus.natsrevoke)
SYSTEM_USER_NAME = "account-updater"
SYSTEM_USER_TTL = 300  # seconds a system user's JWT is valid: it is minted for one push
#: how often a server compares its account JWTs with the other servers' (a server that was down when an update was
#: pushed gets it then)
RESOLVER_SYNC_INTERVAL = "2m"
_SEED_FILES = {"operator": ("operator.nk", nkeys.PREFIX_BYTE_OPERATOR),
               "account": ("account.nk", nkeys.PREFIX_BYTE_ACCOUNT),
               "signing": ("account-signing.nk", nkeys.PREFIX_BYTE_ACCOUNT),
               "system": ("system.nk", nkeys.PREFIX_BYTE_ACCOUNT)}


class AuthError(Exception):
    """Credentials that are missing, unreadable or malformed (the message says which file)."""


# ---- files ----------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---- keys and JWTs --------------------------------------------------------------------------------------


class Key:
    """An nkey pair from its seed."""

    def __init__(self, seed: bytes) -> None:
        self.seed = bytes(seed)
        self._kp = nkeys.from_seed(bytearray(self.seed))
        self.public = self._kp.public_key.decode()

    @classmethod
    def generate(cls, prefix: int) -> "Key":
        return cls(nkeys.encode_seed(os.urandom(32), prefix))

    def sign(self, data: bytes) -> bytes:
        return self._kp.sign(data)


def encode_jwt(claims: dict, issuer: Key, issued_at: int | None = None) -> str:
    """A NATS JWT: ``claims`` (without ``iss``/``jti``/``iat``, which are set here) signed by ``issuer``, issued
    ``issued_at`` (unix seconds, default now)."""
    body = {**claims, "iat": int(time.time()) if issued_at is None else int(issued_at), "iss": issuer.public,
            "jti": ""}
    body.pop("jti")
    digest = hashlib.new("sha512_256", json.dumps(body, separators=(",", ":"), sort_keys=True).encode()).digest()
    body["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = _b64(json.dumps(JWT_HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    sig = issuer.sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{_b64(sig)}"


def decode_jwt(token: str) -> dict:
    """The claims of a JWT, without checking its signature (the server checks it; this reads a name)."""
    try:
        return json.loads(_unb64(token.split(".")[1]))
    except (IndexError, ValueError) as e:
        raise AuthError(f"not a JWT: {e}") from None


def is_user_public_key(key: str) -> bool:
    """Whether ``key`` is an nkey user public key (``U…``, 56 characters, its checksum right)."""
    if not isinstance(key, str) or len(key) != 56 or not key.startswith("U"):
        return False
    try:
        raw = base64.b32decode(key)
    except ValueError:
        return False
    return raw[0] == nkeys.PREFIX_BYTE_USER and nkeys.crc16_checksum(raw[:-2]) == raw[-2:]


def user_public_key(text: str) -> str:
    """The user public key (the JWT's ``sub``) of a user JWT or of ``.creds`` text: what :meth:`ClusterAuth.revoke`
    takes. AuthError when ``text`` is neither."""
    m = _JWT_BLOCK.search(text)
    claims = decode_jwt(m.group(1) if m else text.strip())
    key = claims.get("sub")
    if (claims.get("nats") or {}).get("type") != "user" or not is_user_public_key(key):
        raise AuthError("not a NATS user JWT (no user public key in it)")
    return key


def _account_limits(jetstream: bool) -> dict:
    limits = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
              "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED}
    if jetstream:
        limits.update({"mem_storage": UNLIMITED, "disk_storage": UNLIMITED, "streams": UNLIMITED,
                       "consumer": UNLIMITED})
    return limits


def user_claims(identity: Identity, user_public: str, account_public: str, perms: Permissions,
                expires: int | None = None) -> dict:
    nats: dict = {"type": "user", "version": 2, "issuer_account": account_public,
                  "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED,
                  "pub": {k: v for k, v in (("allow", list(perms.pub_allow)), ("deny", list(perms.pub_deny))) if v},
                  "sub": {k: v for k, v in (("allow", list(perms.sub_allow)), ("deny", list(perms.sub_deny))) if v}}
    if perms.responses:
        nats["resp"] = {"max": perms.responses, "ttl": 0}
    claims = {"name": identity.token, "sub": user_public, "nats": nats}
    if expires:
        claims["exp"] = int(expires)
    return claims


def creds_text(jwt: str, seed: bytes) -> str:
    """NATS' ``.creds`` file format (what ``nsc`` writes and every NATS client reads)."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed.decode()}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


_JWT_BLOCK = re.compile(r"-{3,}BEGIN NATS USER JWT-{3,}\s*\n\s*(\S+)\s*\n")


@dataclass(frozen=True)
class Credentials:
    """A ``.creds`` file and the identity it names."""

    path: Path
    identity: Identity
    user_public: str = ""  # the user's public key (what ClusterAuth.revoke takes)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Credentials":
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise AuthError(f"cannot read NATS credentials {p}: {e.strerror or e}") from None
        m = _JWT_BLOCK.search(text)
        if not m or "BEGIN USER NKEY SEED" not in text:
            raise AuthError(f"{p} is not a NATS credentials file (no user JWT and seed)")
        claims = decode_jwt(m.group(1))
        try:
            identity = Identity.parse(str(claims.get("name")))
        except ValueError as e:
            raise AuthError(f"{p}: {e}") from None
        return cls(p, identity, str(claims.get("sub") or ""))


# ---- the cluster's operator and account -----------------------------------------------------------------


class ClusterAuth:
    """The operator, the accounts and the signing key of one cluster, kept in ``directory``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.keys: dict[str, Key] = {}

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike) -> "ClusterAuth":
        auth = cls(directory)
        auth.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(auth.dir, 0o700)
        for role, (fname, prefix) in _SEED_FILES.items():
            path = auth.dir / fname
            if path.exists():
                auth.keys[role] = Key(path.read_bytes().strip())
            else:
                key = Key.generate(prefix)
                write_private(path, key.seed)
                auth.keys[role] = key
        return auth

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "ClusterAuth":
        """The keys of an existing cluster (AuthError if they are not there)."""
        auth = cls(directory)
        for role, (fname, _) in _SEED_FILES.items():
            path = auth.dir / fname
            try:
                auth.keys[role] = Key(path.read_bytes().strip())
            except OSError as e:
                raise AuthError(f"cannot read the bus's {role} key {path}: {e.strerror or e}") from None
        return auth

    @property
    def account_public(self) -> str:
        return self.keys["account"].public

    def operator_jwt(self) -> str:
        op = self.keys["operator"]
        return encode_jwt({"name": OPERATOR_NAME, "sub": op.public,
                           "nats": {"type": "operator", "version": 2,
                                    "system_account": self.keys["system"].public}}, op)

    # ---- revocations ----

    @contextmanager
    def _revocation_state(self, write: bool) -> Iterator[dict]:
        """``revocations.json`` (``{"revocations": {key: time}, "issuedAt": last account JWT's iat}``), under an
        exclusive lock for a read-modify-write (``write``: saved atomically, 0600, when the block ends)."""
        path = self.dir / REVOCATIONS_FILE
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / f".{REVOCATIONS_FILE}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                state = json.loads(path.read_text())
            except FileNotFoundError:
                state = {}
            except (OSError, ValueError) as e:
                raise AuthError(f"cannot read the bus's revocations {path}: {e}") from None
            state.setdefault("revocations", {})
            state.setdefault("issuedAt", 0)
            before = json.dumps(state, sort_keys=True)
            yield state
            if write and json.dumps(state, sort_keys=True) != before:
                write_private(path, json.dumps(state, indent=1, sort_keys=True) + "\n")

    def revocations(self) -> dict[str, int]:
        """The revoked user public keys and the time (unix seconds) up to which their JWTs are refused."""
        with self._revocation_state(write=False) as state:
            return dict(state["revocations"])

    def revoke(self, user_public_key: str, at: int | None = None) -> bool:
        """Refuse every JWT of this user issued at or before ``at`` (default now) from the next account JWT on
        (:meth:`account_jwt`; :func:`bus.natsrevoke.push_account` brings it to running servers). Idempotent: a
        key already revoked keeps its time unless ``at`` is later. Whether anything changed; ValueError for what
        is not a user public key."""
        if not is_user_public_key(user_public_key):
            raise ValueError(f"not a NATS user public key: {user_public_key!r}")
        with self._revocation_state(write=True) as state:
            revs = state["revocations"]
            old = revs.get(user_public_key)
            when = int(time.time()) if at is None else int(at)
            if old is not None and (at is None or old >= when):
                return False
            revs[user_public_key] = when
            return True

    def account_jwt(self) -> str:
        """The ``K8N`` account's JWT with the current revocations, issued later than any account JWT before it."""
        with self._revocation_state(write=True) as state:
            iat = state["issuedAt"] = max(int(time.time()), int(state["issuedAt"]) + 1)
            revocations = dict(state["revocations"])
        nats: dict = {"type": "account", "version": 2, "limits": _account_limits(True),
                      "signing_keys": [self.keys["signing"].public],
                      "default_permissions": {"pub": {}, "sub": {}}}
        if revocations:
            nats["revocations"] = revocations
        return encode_jwt({"name": ACCOUNT_NAME, "sub": self.account_public, "nats": nats}, self.keys["operator"],
                          issued_at=iat)

    def system_jwt(self) -> str:
        return encode_jwt({"name": SYSTEM_ACCOUNT_NAME, "sub": self.keys["system"].public,
                           "nats": {"type": "account", "version": 2, "limits": _account_limits(False),
                                    "default_permissions": {"pub": {}, "sub": {}}}}, self.keys["operator"])

    def server_config(self, resolver_dir: str | os.PathLike, interval: str = RESOLVER_SYNC_INTERVAL) -> str:
        """The lines of a nats-server config that turn on operator mode with this cluster's accounts: NATS' ``full``
        account resolver keeping the account JWTs in ``resolver_dir`` (one per server; updates pushed to a running
        server are stored there, and compared with the cluster's other servers every ``interval``), preloaded with
        the current JWTs (a server keeps the newer, by ``iat``, of a preload and what it has stored)."""
        return (
            f'operator: "{self.operator_jwt()}"\n'
            f'system_account: "{self.keys["system"].public}"\n'
            "resolver: {\n"
            "  type: full\n"
            f'  dir: "{Path(resolver_dir)}"\n'
            "  allow_delete: false\n"
            f'  interval: "{interval}"\n'
            "}\n"
            "resolver_preload: {\n"
            f'  {self.account_public}: "{self.account_jwt()}"\n'
            f'  {self.keys["system"].public}: "{self.system_jwt()}"\n'
            "}\n"
        )

    def mint_system_user(self, ttl: int = SYSTEM_USER_TTL, allow: tuple[str, ...] = (subjects.SYS_CLAIMS_UPDATE,)) \
            -> str:
        """``.creds`` text for a short-lived user of the ``SYS`` account that may only publish ``allow`` (by default:
        push account JWTs, ``$SYS.REQ.CLAIMS.UPDATE``) and read the answers on its own inbox. Not a role of the role
        table: the API server's tool for revocation (bus.natsrevoke) and for listing connections (bus.natsconns),
        never handed to a component."""
        user = Key.generate(nkeys.PREFIX_BYTE_USER)
        nats = {"type": "user", "version": 2, "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED,
                "pub": {"allow": list(allow)},
                "sub": {"allow": [f"{subjects.inbox_prefix(SYSTEM_USER_NAME)}.>"]}}
        claims = {"name": SYSTEM_USER_NAME, "sub": user.public, "nats": nats, "exp": int(time.time()) + ttl}
        return creds_text(encode_jwt(claims, self.keys["system"]), user.seed)

    def mint(self, identity: Identity, expires: int | None = None) -> str:
        """``.creds`` text for a new user with ``identity``'s permissions from the role table."""
        user = Key.generate(nkeys.PREFIX_BYTE_USER)
        return creds_text(self.sign_user(identity, user.public, expires), user.seed)

    def sign_user(self, identity: Identity, user_public: str, expires: int | None = None) -> str:
        """The user JWT of ``identity`` (its permissions from the role table) for the key pair whose public key is
        ``user_public`` (a joining node makes its pair itself and sends only that)."""
        claims = user_claims(identity, user_public, self.account_public, permissions_for(identity), expires)
        return encode_jwt(claims, self.keys["signing"])

    def write_creds(self, identity: Identity, creds_dir: str | os.PathLike) -> Path:
        """Mint credentials for ``identity`` into ``<creds_dir>/<identity file>.creds`` (0600); the path."""
        path = Path(creds_dir) / (identity.file_name + CREDS_SUFFIX)
        write_private(path, self.mint(identity))
        return path

    def ensure_creds(self, identity: Identity, creds_dir: str | os.PathLike) -> Path:
        """The credentials file of ``identity``, minted when it is missing or was minted by another cluster."""
        path = Path(creds_dir) / (identity.file_name + CREDS_SUFFIX)
        try:
            text = path.read_text()
            m = _JWT_BLOCK.search(text)
            claims = decode_jwt(m.group(1)) if m else {}
            if (claims.get("nats") or {}).get("issuer_account") == self.account_public \
                    and claims.get("name") == identity.token:
                return path
        except (OSError, AuthError):
            pass
        return self.write_creds(identity, creds_dir)
