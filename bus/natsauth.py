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

Signing-key rotation (``k8n certs rotate-bus-key``): :meth:`ClusterAuth.rotate_signing_key` makes a new signing key
and keeps the former one's public key in ``account-signing-former.json``; the account JWT lists the current and the
former keys in ``signing_keys``, so a server that has it accepts user JWTs issued by either. Once no connection
authenticated with a former key's JWT is left, :meth:`ClusterAuth.drop_former_signing_keys` forgets them: from the
next account JWT on, the servers refuse those JWTs at connect ("Authorization Violation"), and nats-server 2.15
closes the connections still made with them as soon as that account JWT arrives (its closed-connection reason:
"Authentication Failure"; tests/integration/test_bus_key_rotation.py). A client whose credentials file was minted
again meanwhile just reconnects with it. Only the current key's seed is kept: a former key signs nothing any more.

Files (``<auth dir>``, 0700; files 0600): ``operator.nk``, ``account.nk``, ``account-signing.nk``, ``system.nk``
(nkey seeds), ``account-signing-former.json`` (the former signing keys' public keys, while a rotation is not
finished), ``revocations.json``. Credentials (``<creds dir>/<identity file>.creds``, 0600) are NATS' standard
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
#: the former account signing keys (public keys and when each was retired) until a rotation is finished
FORMER_SIGNING_FILE = "account-signing-former.json"
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
_SIGNING_FILES = (_SEED_FILES["signing"][0], FORMER_SIGNING_FILE)


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


def _is_public_key(key: object, prefix: int) -> bool:
    """Whether ``key`` is an nkey public key of the kind ``prefix`` says (56 characters, its checksum right)."""
    if not isinstance(key, str) or len(key) != 56:
        return False
    try:
        raw = base64.b32decode(key)
    except ValueError:
        return False
    return raw[0] == prefix and nkeys.crc16_checksum(raw[:-2]) == raw[-2:]


def is_user_public_key(key: str) -> bool:
    """Whether ``key`` is an nkey user public key (``U…``, 56 characters, its checksum right)."""
    return _is_public_key(key, nkeys.PREFIX_BYTE_USER)


def key_files_stamp(directory: str | os.PathLike, names: tuple[str, ...] | None = None) -> tuple:
    """The identity (inode, mtime, size) of the key files in an auth dir (``names``, default all of them): it
    changes when one is replaced (a rotation or its finish writes a new file and renames it into place)."""
    out = []
    for name in names or (*(f for f, _ in _SEED_FILES.values()), FORMER_SIGNING_FILE):
        try:
            st = (Path(directory) / name).stat()
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


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
        #: the former signing keys' public keys -> when each was retired (unix seconds), oldest first
        self.former_signing: dict[str, int] = {}
        self._signing_stamp: tuple | None = None  # of the signing key files when they were read

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
        auth._refresh_signing()
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
        auth._refresh_signing()
        return auth

    # ---- the account's signing keys ----

    def _read_former(self) -> dict[str, int]:
        path = self.dir / FORMER_SIGNING_FILE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise AuthError(f"cannot read the bus's former signing keys {path}: {e}") from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list) or not all(
                isinstance(k, dict) and _is_public_key(k.get("publicKey"), nkeys.PREFIX_BYTE_ACCOUNT) for k in keys):
            raise AuthError(f"{path} is not a list of former signing keys")
        current = self.keys["signing"].public if "signing" in self.keys else None
        return {k["publicKey"]: int(k.get("retiredAt") or 0) for k in keys if k["publicKey"] != current}

    def _write_former(self, former: dict[str, int]) -> None:
        path = self.dir / FORMER_SIGNING_FILE
        if not former:
            path.unlink(missing_ok=True)
            return
        doc = {"keys": [{"publicKey": k, "retiredAt": at} for k, at in former.items()]}
        write_private(path, json.dumps(doc, indent=1) + "\n")

    def _refresh_signing(self) -> None:
        """Read the signing key and the former ones again when their files changed since they were read: a
        long-lived holder (the API server, ``k8n up``'s NatsServer rendering a config at a restart) follows a
        rotation made by ``k8n certs rotate-bus-key`` instead of signing, or preloading an account JWT, with what it
        read at start. Nothing to read (no seed file: keys made in memory) leaves them as they are."""
        stamp = key_files_stamp(self.dir, _SIGNING_FILES)
        if stamp == self._signing_stamp:
            return
        path = self.dir / _SEED_FILES["signing"][0]
        try:
            seed = path.read_bytes().strip()
        except FileNotFoundError:
            self._signing_stamp = stamp
            return
        except OSError as e:
            raise AuthError(f"cannot read the bus's signing key {path}: {e.strerror or e}") from None
        self.keys["signing"] = Key(seed)
        self.former_signing = self._read_former()
        self._signing_stamp = stamp  # taken before reading: a change meanwhile is read at the next call

    @contextmanager
    def _signing_lock(self) -> Iterator[None]:
        """Excludes another rotation (or finish) on this auth dir meanwhile; the keys are read again under it, so
        each works on what the other left."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / ".account-signing.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._signing_stamp = None
            self._refresh_signing()
            yield
            self._signing_stamp = None  # our own writes: read back at the next use

    def signing_keys(self) -> list[str]:
        """The public keys the account JWT lists as its signing keys: the current one first, then the former ones
        (of a rotation not finished yet), the latest retired first."""
        self._refresh_signing()
        return [self.keys["signing"].public, *reversed(self.former_signing)]

    def signing_key_since(self) -> float | None:
        """When the current signing key was made (its seed file's mtime, unix seconds); None when unknown."""
        try:
            return (self.dir / _SEED_FILES["signing"][0]).stat().st_mtime
        except OSError:
            return None

    def rotate_signing_key(self) -> tuple[str, str]:
        """A new account signing key signs every user JWT from now on; the former one stays in the account JWT's
        signing keys (its users keep connecting) until :meth:`drop_former_signing_keys`. ``(former, new)`` public
        keys. The former key is recorded before the new seed replaces it: a crash between the two leaves the old key
        current (and listed as former too, which changes nothing)."""
        with self._signing_lock():
            old = self.keys["signing"]
            new = Key.generate(nkeys.PREFIX_BYTE_ACCOUNT)
            former = {k: at for k, at in self.former_signing.items() if k != old.public}
            former[old.public] = int(time.time())
            self._write_former(former)
            write_private(self.dir / _SEED_FILES["signing"][0], new.seed)
            self.keys["signing"], self.former_signing = new, former
        return old.public, new.public

    def drop_former_signing_keys(self) -> list[str]:
        """Forget the former signing keys (the public keys dropped): user JWTs they issued are refused from the
        next account JWT on, and nats-server closes the connections made with them when it arrives."""
        with self._signing_lock():
            dropped = list(reversed(self.former_signing))  # the latest retired first
            self._write_former({})
            self.former_signing = {}
        return dropped

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
                      "signing_keys": self.signing_keys(),
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
        self._refresh_signing()
        return encode_jwt(claims, self.keys["signing"])

    def write_creds(self, identity: Identity, creds_dir: str | os.PathLike) -> Path:
        """Mint credentials for ``identity`` into ``<creds_dir>/<identity file>.creds`` (0600); the path."""
        path = Path(creds_dir) / (identity.file_name + CREDS_SUFFIX)
        write_private(path, self.mint(identity))
        return path

    def ensure_creds(self, identity: Identity, creds_dir: str | os.PathLike) -> Path:
        """The credentials file of ``identity``, minted when it is missing, was minted by another cluster or by a
        signing key the account no longer lists."""
        path = Path(creds_dir) / (identity.file_name + CREDS_SUFFIX)
        try:
            text = path.read_text()
            m = _JWT_BLOCK.search(text)
            claims = decode_jwt(m.group(1)) if m else {}
            if (claims.get("nats") or {}).get("issuer_account") == self.account_public \
                    and claims.get("name") == identity.token and claims.get("iss") in self.signing_keys():
                return path
        except (OSError, AuthError):
            pass
        return self.write_creds(identity, creds_dir)

    def remint_creds(self, creds_dir: str | os.PathLike) -> tuple[list[Path], list[str]]:
        """Mint every ``<creds_dir>/*.creds`` of this cluster again with the current signing key: the same
        identity, a new user key pair, the same expiry (none, as minted by k8n, or the one it had); each file
        replaced atomically (0600). Left alone, each with the reason in the second list: files that are not NATS
        credentials or belong to another cluster's account, and users whose key is revoked (minting them anew would
        give a revoked identity a key that is not). ``(files re-minted, reasons for the others)``."""
        revoked = self.revocations()
        done: list[Path] = []
        skipped: list[str] = []
        for path in sorted(Path(creds_dir).glob("*" + CREDS_SUFFIX)):
            try:
                creds = Credentials.load(path)
                m = _JWT_BLOCK.search(path.read_text())
                claims = decode_jwt(m.group(1)) if m else {}
            except (AuthError, OSError, UnicodeDecodeError) as e:
                skipped.append(f"{path}: {e}")
                continue
            if (claims.get("nats") or {}).get("issuer_account") != self.account_public:
                skipped.append(f"{path}: not a user of this cluster's account")
                continue
            if creds.user_public in revoked:
                skipped.append(f"{path}: its user key {creds.user_public} is revoked")
                continue
            exp = claims.get("exp")
            write_private(path, self.mint(creds.identity, int(exp) if isinstance(exp, (int, float)) else None))
            done.append(path)
        return done, skipped
