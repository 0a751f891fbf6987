"""The bus's identities: NATS operator/JWT mode, with keys and credentials kept in the data directory.

One operator signs two accounts: ``K8N`` (everything k8n does, JetStream enabled) and ``SYS`` (nats-server's system
account). Every component connects as a user of ``K8N`` whose JWT carries its own permissions (the role table,
:mod:`bus.roles`), signed by the account's signing key. The server is told only the operator and the accounts
(``resolver: MEMORY``), never the users: a node that joins or a role that changes needs a new user JWT, not a server
config rewrite. Anonymous connections are refused (nats-server in operator mode has no anonymous user).

Files (``<auth dir>``, 0700; keys 0600): ``operator.nk``, ``account.nk``, ``account-signing.nk``, ``system.nk``
(nkey seeds). Credentials (``<creds dir>/<identity file>.creds``, 0600) are NATS' standard ``.creds`` format, so any
NATS client (``nats --creds``, nats.py's ``user_credentials``) can use them.

JWTs are encoded here (header ``{"typ":"JWT","alg":"ed25519-nkey"}``, claims with ``jti`` = base32 SHA-512/256 of
the claims, an Ed25519 signature by the issuer's nkey) — the one maintained Python JWT library for NATS calls itself
experimental and untested, and the format is small; nkeys come from the NATS project's ``nkeys`` package. The
real nats-server is the judge: tests/integration/test_bus_auth.py connects with what this module makes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nkeys

from bus.files import write_private
from bus.roles import Identity, Permissions, permissions_for

JWT_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
ACCOUNT_NAME = "K8N"
SYSTEM_ACCOUNT_NAME = "SYS"
OPERATOR_NAME = "k8n"
UNLIMITED = -1
CREDS_SUFFIX = ".creds"
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


def encode_jwt(claims: dict, issuer: Key) -> str:
    """A NATS JWT: ``claims`` (without ``iss``/``jti``/``iat``, which are set here) signed by ``issuer``."""
    body = {**claims, "iat": int(time.time()), "iss": issuer.public, "jti": ""}
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
        name = decode_jwt(m.group(1)).get("name")
        try:
            identity = Identity.parse(str(name))
        except ValueError as e:
            raise AuthError(f"{p}: {e}") from None
        return cls(p, identity)


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

    def account_jwt(self) -> str:
        return encode_jwt({"name": ACCOUNT_NAME, "sub": self.account_public,
                           "nats": {"type": "account", "version": 2, "limits": _account_limits(True),
                                    "signing_keys": [self.keys["signing"].public],
                                    "default_permissions": {"pub": {}, "sub": {}}}}, self.keys["operator"])

    def system_jwt(self) -> str:
        return encode_jwt({"name": SYSTEM_ACCOUNT_NAME, "sub": self.keys["system"].public,
                           "nats": {"type": "account", "version": 2, "limits": _account_limits(False),
                                    "default_permissions": {"pub": {}, "sub": {}}}}, self.keys["operator"])

    def server_config(self) -> str:
        """The lines of a nats-server config that turn on operator mode with this cluster's accounts."""
        return (
            f'operator: "{self.operator_jwt()}"\n'
            f'system_account: "{self.keys["system"].public}"\n'
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f'  {self.account_public}: "{self.account_jwt()}"\n'
            f'  {self.keys["system"].public}: "{self.system_jwt()}"\n'
            "}\n"
        )

    def mint(self, identity: Identity, expires: int | None = None) -> str:
        """``.creds`` text for a new user with ``identity``'s permissions from the role table."""
        user = Key.generate(nkeys.PREFIX_BYTE_USER)
        claims = user_claims(identity, user.public, self.account_public, permissions_for(identity), expires)
        return creds_text(encode_jwt(claims, self.keys["signing"]), user.seed)

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
