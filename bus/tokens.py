"""ServiceAccount tokens as Kubernetes makes them: ES256 (ECDSA P-256, SHA-256) JWTs with bound-token claims.

- **Keys.** One key pair: the private key (PEM, PKCS#8, mode 0600, in a 0700 directory) lives only on the API
  server's disk; the public key (PEM) sits beside it (``sa.key`` → ``sa.pub``, as kubeadm names them).
  :func:`load_or_create_key_pair` loads the pair, or makes it on first start (atomically: several API servers
  starting together end up with the same key). The public file may hold more public keys (one PEM block each),
  which are accepted for verification too: that is where an old key goes when the signing key is rotated
  (:func:`rotate_key`, ``k8n certs rotate-sa-key``), until every token it signed has expired (:func:`prune_keys`;
  its retirement time is kept in ``sa.retired.json``).
- **Header.** ``{"alg": "ES256", "kid": <key id>}``; the key id is Kubernetes' (``keyIDFromPublicKey``):
  base64url (unpadded) of the SHA-256 of the public key's DER SubjectPublicKeyInfo.
- **Claims** (``pkg/serviceaccount/claims.go``): ``iss``, ``sub`` (``system:serviceaccount:<ns>:<name>``), ``aud``
  (a list), ``exp``, ``iat``, ``nbf``, ``jti`` (a UUID) and the private claim ``kubernetes.io``:
  ``{namespace, serviceaccount: {name, uid}}`` plus ``pod: {name, uid}`` (and the pod's ``node: {name[, uid]}``)
  or ``secret: {name, uid}`` for a token bound to that object.
- **Checking** (:class:`Verifier`, ``pkg/serviceaccount/jwt.go``): only ES256 is accepted (``none``, HS256 — e.g.
  a token "signed" with the public key as an HMAC secret — and everything else are refused), the signature must
  check out against a known public key (picked by ``kid``), the issuer must be ours, ``exp``/``nbf``/``iat`` must
  hold with :data:`LEEWAY_SECONDS` of leeway (go-jose's), and the token's audiences must intersect the accepted
  ones. Every refusal is a ``ValueError`` whose message says why. Whether the account and the bound object still
  exist is the API server's question (``master/apiserver/tokenrequest.py``), not this module's.

Defaults are Kubernetes': the issuer ``https://kubernetes.default.svc.cluster.local`` and, as kube-apiserver's
``--api-audiences`` defaults to the issuer, the same single audience.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from bus.files import write_atomic
from bus.meta import format_time

log = logging.getLogger(__name__)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCES: tuple[str, ...] = (DEFAULT_ISSUER,)  # kube-apiserver's --api-audiences defaults to the issuer
ALGORITHM = "ES256"
LEEWAY_SECONDS = 60  # go-jose's jwt.DefaultLeeway: clocks of the issuer and the checker may differ this much
SUBJECT_PREFIX = "system:serviceaccount:"
PRIVATE_CLAIM = "kubernetes.io"
PUBLIC_SUFFIX = ".pub"
_COORDINATE_BYTES = 32  # P-256: r and s are 32 bytes each in a JWS signature


# ---- encoding ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict unpadded base64url (RFC 7515 §2); ValueError for anything else."""
    if not isinstance(text, str) or "=" in text or not text.isascii():
        raise ValueError("malformed token: not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("malformed token: not base64url") from None


def _json_part(text: str, what: str) -> dict:
    try:
        value = json.loads(_unb64(text))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"malformed token: the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"malformed token: the {what} is not a JSON object")
    return value


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def unverified_claims(token: str) -> dict:
    """The claims of ``token`` WITHOUT checking anything (to read ``exp`` of a token someone else already checked,
    e.g. for how long to cache it). ValueError if it is not a JWS in compact form."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ValueError("malformed token: not a JWT in compact form")
    return _json_part(parts[1], "payload")


# ---- keys ----------------------------------------------------------------------------------------


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Kubernetes' key id: base64url of the SHA-256 of the DER (SubjectPublicKeyInfo) public key."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def public_key_path(private_path: str | os.PathLike) -> Path:
    """Where the public key of ``private_path`` lives: beside it, suffix ``.pub`` (``sa.key`` → ``sa.pub``)."""
    return Path(private_path).with_suffix(PUBLIC_SUFFIX)


def _public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _is_p256(key: Any) -> bool:
    return isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and \
        isinstance(key.curve, ec.SECP256R1)


def parse_public_keys(pem: bytes) -> list[ec.EllipticCurvePublicKey]:
    """Every P-256 public key in ``pem`` (one ``PUBLIC KEY`` block each); other blocks are skipped with a warning."""
    out = []
    begin, end = b"-----BEGIN PUBLIC KEY-----", b"-----END PUBLIC KEY-----"
    rest = pem
    while (start := rest.find(begin)) >= 0:
        stop = rest.find(end, start)
        if stop < 0:
            break
        block, rest = rest[start:stop + len(end)], rest[stop + len(end):]
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as e:
            log.warning("skipping a public key that does not load: %s", e)
            continue
        if _is_p256(key):
            out.append(key)
        else:
            log.warning("skipping a %s public key: ServiceAccount tokens are ES256 (P-256) only", type(key).__name__)
    return out


def _create_private_key(path: Path) -> None:
    """Make a new P-256 key at ``path`` (0600) unless one appears there first: the key is written to a temporary
    file and hard-linked into place, which fails if another process got there before us (then theirs is used)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if write_atomic(path, pem, 0o600, exclusive=True):  # else another API server made it first: use that one
        log.info("made the ServiceAccount token signing key %s", path)


@dataclass(frozen=True)
class KeyPair:
    """The signing key and every public key tokens are checked against (the signing key's own first)."""

    private_key: ec.EllipticCurvePrivateKey
    public_keys: tuple[ec.EllipticCurvePublicKey, ...]

    @property
    def key_id(self) -> str:
        return key_id(self.private_key.public_key())


def load_or_create_key_pair(private_path: str | os.PathLike) -> KeyPair:
    """The key pair at ``private_path`` (and its ``.pub`` beside it), made first when there is no private key. The
    public file is (re)written when it lacks the signing key's public key; any other P-256 public keys in it are kept
    and accepted for verification. ValueError when the private key is not a P-256 key."""
    path = Path(private_path).expanduser()
    if not path.exists():
        _create_private_key(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("the ServiceAccount signing key %s is readable by others (mode %o); it should be 0600", path, mode)
    private = serialization.load_pem_private_key(path.read_bytes(), None)
    if not _is_p256(private):
        raise ValueError(f"{path}: the ServiceAccount signing key must be an EC P-256 private key (ES256)")
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    own = private.public_key()
    pub_path = public_key_path(path)
    try:
        others = parse_public_keys(pub_path.read_bytes())
    except FileNotFoundError:
        others = []
    if key_id(own) not in {key_id(k) for k in others}:
        others = [own, *others]
        write_atomic(pub_path, b"".join(_public_pem(k) for k in others), 0o644)
    keys: dict[str, ec.EllipticCurvePublicKey] = {key_id(own): own}
    for k in others:
        keys.setdefault(key_id(k), k)
    return KeyPair(private, tuple(keys.values()))


# ---- rotation ------------------------------------------------------------------------------------

RETIRED_SUFFIX = ".retired.json"  # sa.key -> sa.retired.json: {kid: epoch seconds the key stopped signing}


def retired_path(private_path: str | os.PathLike) -> Path:
    """Where the retirement times of former signing keys are kept (``sa.key`` → ``sa.retired.json``)."""
    p = Path(private_path)
    return p.with_name(p.stem + RETIRED_SUFFIX)


def read_retired(private_path: str | os.PathLike) -> dict[str, float]:
    try:
        data = json.loads(retired_path(private_path).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) \
        else {}


def key_set_version(private_path: str | os.PathLike) -> tuple:
    """What changes when the key set on disk changes (a rotation, a pruning): the files' mtimes and sizes."""
    out = []
    for p in (Path(private_path), public_key_path(private_path)):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def rotate_key(private_path: str | os.PathLike, now: float | None = None) -> tuple[str, str]:
    """Make a new signing key at ``private_path``; the former one's public key stays in the ``.pub`` file (tokens
    it signed keep validating) and its retirement time is recorded (:func:`prune_keys`). The public file is
    written first, so no token signed with the new key is ever checked against a set without it. ``(old kid,
    new kid)``."""
    path = Path(private_path).expanduser()
    cur = load_or_create_key_pair(path)
    new = ec.generate_private_key(ec.SECP256R1())
    retired = read_retired(path)
    retired[cur.key_id] = float(time.time() if now is None else now)
    write_atomic(retired_path(path), json.dumps(retired, indent=1, sort_keys=True) + "\n", 0o644)
    write_atomic(public_key_path(path), b"".join(_public_pem(k) for k in (new.public_key(), *cur.public_keys)),
                 0o644)
    write_atomic(path, new.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), 0o600)
    log.info("rotated the ServiceAccount signing key %s: %s -> %s", path, cur.key_id, key_id(new.public_key()))
    return cur.key_id, key_id(new.public_key())


def prune_keys(private_path: str | os.PathLike, max_token_seconds: float, now: float | None = None) -> list[str]:
    """Drop from the ``.pub`` file the former signing keys retired more than ``max_token_seconds`` (the longest a
    token may live) plus :data:`LEEWAY_SECONDS` ago: every token they signed has expired. Public keys without a
    retirement record (put there by hand) and the signing key stay. The kids dropped."""
    path = Path(private_path).expanduser()
    pair = load_or_create_key_pair(path)
    t = time.time() if now is None else now
    retired = read_retired(path)
    gone = [kid for kid, at in retired.items() if kid != pair.key_id and at + max_token_seconds + LEEWAY_SECONDS < t]
    if not gone:
        return []
    keep = [k for k in pair.public_keys if key_id(k) not in gone]
    write_atomic(public_key_path(path), b"".join(_public_pem(k) for k in keep), 0o644)
    write_atomic(retired_path(path), json.dumps({k: v for k, v in retired.items() if k not in gone}, indent=1,
                                                sort_keys=True) + "\n", 0o644)
    return gone


def jwks(public_keys: Iterable[ec.EllipticCurvePublicKey]) -> dict:
    """The JSON Web Key Set of ``public_keys`` as kube-apiserver serves it at ``/openid/v1/jwks``."""
    out = []
    for k in public_keys:
        n = k.public_numbers()
        x, y = (_b64(c.to_bytes(_COORDINATE_BYTES, "big")) for c in (n.x, n.y))
        out.append({"use": "sig", "kty": "EC", "kid": key_id(k), "crv": "P-256", "alg": ALGORITHM, "x": x, "y": y})
    return {"keys": out}


# ---- issuing -------------------------------------------------------------------------------------


def _ref(obj: Mapping | None) -> dict | None:
    meta = (obj or {}).get("metadata") or {}
    return {"name": str(meta.get("name") or ""), "uid": str(meta.get("uid") or "")} if obj else None


def service_account_claims(sa_obj: Mapping, audiences: Iterable[str], expiration_seconds: int,
                           bound: Mapping | None = None, node: Mapping | None = None, now: int | None = None,
                           issuer: str = DEFAULT_ISSUER) -> dict:
    """The claims of a token for the ServiceAccount ``sa_obj`` (``pkg/serviceaccount/claims.go``). ``bound``: the
    Pod or Secret object the token is bound to (by its ``kind``); for a pod, its node (``spec.nodeName``) is named
    too, with the uid of ``node`` (the Node object) when given."""
    meta = sa_obj.get("metadata") or {}
    ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    now = int(time.time()) if now is None else int(now)
    private: dict[str, Any] = {"namespace": ns, "serviceaccount": {"name": name, "uid": str(meta.get("uid") or "")}}
    if bound is not None:
        kind = bound.get("kind")
        if kind == "Pod":
            private["pod"] = _ref(bound)
            node_name = (bound.get("spec") or {}).get("nodeName")
            if node_name:
                private["node"] = {"name": str(node_name)}
                node_uid = ((node or {}).get("metadata") or {}).get("uid")
                if node_uid:
                    private["node"]["uid"] = str(node_uid)
        elif kind == "Secret":
            private["secret"] = _ref(bound)
        else:
            raise ValueError(f"cannot bind a token to a {kind!r}")
    return {"iss": issuer, "sub": f"{SUBJECT_PREFIX}{ns}:{name}", "aud": list(audiences),
            "exp": now + int(expiration_seconds), "iat": now, "nbf": now, "jti": str(uuid.uuid4()),
            PRIVATE_CLAIM: private}


def sign(private_key: ec.EllipticCurvePrivateKey, claims: Mapping) -> str:
    """``claims`` as an ES256 JWS in compact form, with the key's id in the header."""
    header = {"alg": ALGORITHM, "kid": key_id(private_key.public_key())}
    signing_input = f"{_b64(_compact(header))}.{_b64(_compact(dict(claims)))}"
    r, s = decode_dss_signature(private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")
    return f"{signing_input}.{_b64(sig)}"


class Issuer:
    """Mints ServiceAccount tokens with one private key (only the API server holds one)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, issuer: str = DEFAULT_ISSUER) -> None:
        if not _is_p256(private_key):
            raise ValueError("the signing key must be an EC P-256 private key (ES256)")
        self.private_key = private_key
        self.issuer = issuer
        self.key_id = key_id(private_key.public_key())

    def issue(self, sa_obj: Mapping, audiences: Iterable[str], expiration_seconds: int,
              bound: Mapping | None = None, *, node: Mapping | None = None,
              now: float | None = None) -> tuple[str, str]:
        """``(token, expirationTimestamp)`` — the expiration as RFC 3339 (``metav1.Time``, seconds) — for the
        ServiceAccount ``sa_obj``, bound to the Pod or Secret object ``bound`` when given (see
        :func:`service_account_claims`)."""
        t = int(time.time() if now is None else now)
        claims = service_account_claims(sa_obj, audiences, expiration_seconds, bound, node, t, self.issuer)
        return sign(self.private_key, claims), format_time(claims["exp"])


# ---- checking ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundObject:
    name: str
    uid: str = ""


@dataclass(frozen=True)
class TokenInfo:
    """What a verified token says (its signature, issuer, times and audience already checked)."""

    namespace: str
    name: str  # the ServiceAccount's
    uid: str  # the ServiceAccount's
    audiences: tuple[str, ...]  # the token's audiences that were accepted (the intersection)
    expires: int  # exp, epoch seconds
    jti: str = ""
    pod: BoundObject | None = None
    secret: BoundObject | None = None
    node: BoundObject | None = None
    claims: dict = field(default_factory=dict, compare=False, repr=False)


def _go_quote(items: Iterable[str]) -> str:
    """A list of strings as Go's ``%q`` prints a ``[]string`` (what Kubernetes' messages show)."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def _ref_claim(private: Mapping, key: str, need_uid: bool = True) -> BoundObject | None:
    value = private.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"] or \
            not isinstance(value.get("uid", ""), str) or (need_uid and not value.get("uid")):
        raise ValueError(f"malformed token: the {PRIVATE_CLAIM} {key} claim is not a name and uid")
    return BoundObject(value["name"], value.get("uid", ""))


class Verifier:
    """Checks ServiceAccount tokens against a set of public keys (by ``kid``: several may be valid at once while
    the signing key is rotated), one or more accepted issuers and the audiences a token must name one of."""

    def __init__(self, public_keys: Iterable[ec.EllipticCurvePublicKey], issuers: Iterable[str] = (DEFAULT_ISSUER,),
                 audiences: Iterable[str] = DEFAULT_AUDIENCES, leeway: float = LEEWAY_SECONDS) -> None:
        self.keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for k in public_keys:
            if not _is_p256(k):
                raise ValueError("verification keys must be EC P-256 public keys (ES256)")
            self.keys.setdefault(key_id(k), k)
        self.issuers = frozenset(issuers)
        self.audiences = tuple(audiences)
        self.leeway = leeway

    def verify(self, token: str, audiences: Iterable[str] | None = None, now: float | None = None) -> TokenInfo:
        """The :class:`TokenInfo` of ``token`` when it checks out for one of ``audiences`` (default: the verifier's);
        ValueError naming the reason otherwise."""
        parts = token.strip().split(".") if isinstance(token, str) else []
        if len(parts) != 3 or not all(parts[:2]):
            raise ValueError("malformed token: not a JWT in compact form")
        header = _json_part(parts[0], "header")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise ValueError(f"unexpected signing algorithm {json.dumps(alg)}: only {ALGORITHM} is accepted")
        if "crit" in header:
            raise ValueError("the token names critical header parameters this server does not understand")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ValueError("malformed token: kid is not a string")
        keys = [self.keys[kid]] if kid in self.keys else [] if kid else list(self.keys.values())
        if not keys:
            raise ValueError("invalid signature, no keys found")
        sig = _unb64(parts[2])
        if len(sig) != 2 * _COORDINATE_BYTES:
            raise ValueError("invalid signature")
        der = encode_dss_signature(int.from_bytes(sig[:_COORDINATE_BYTES], "big"),
                                   int.from_bytes(sig[_COORDINATE_BYTES:], "big"))
        signed = f"{parts[0]}.{parts[1]}".encode()
        for key in keys:
            try:
                key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
                break
            except InvalidSignature:
                continue
        else:
            raise ValueError("invalid signature")
        claims = _json_part(parts[1], "payload")
        return self._check_claims(claims, audiences, time.time() if now is None else now)

    def _check_claims(self, claims: dict, audiences: Iterable[str] | None, now: float) -> TokenInfo:
        iss = claims.get("iss")
        if iss not in self.issuers:
            raise ValueError(f"token issuer {json.dumps(iss)} is invalid")
        times = {}
        for name in ("exp", "iat", "nbf"):
            v = claims.get(name)
            if v is None and name == "exp":
                raise ValueError("the token has no expiry (exp)")
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"malformed token: {name} is not a number")
            times[name] = v
        if now - self.leeway > times["exp"]:
            raise ValueError("Token has expired.")
        if times["nbf"] is not None and now + self.leeway < times["nbf"]:
            raise ValueError("Token is not valid yet (nbf).")
        if times["iat"] is not None and now + self.leeway < times["iat"]:
            raise ValueError("Token was issued in the future (iat).")
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not token_auds or not all(isinstance(a, str) for a in token_auds):
            raise ValueError("the token names no audience (aud)")
        wanted = list(self.audiences if audiences is None else audiences)
        accepted = tuple(a for a in token_auds if a in wanted)
        if not accepted:
            raise ValueError(f"token audiences {_go_quote(token_auds)} is invalid for the target audiences "
                             f"{_go_quote(wanted)}")
        private = claims.get(PRIVATE_CLAIM)
        if not isinstance(private, dict):
            raise ValueError(f"malformed token: no {PRIVATE_CLAIM} claim")
        ns, sa = private.get("namespace"), private.get("serviceaccount")
        if not isinstance(ns, str) or not ns or not isinstance(sa, dict):
            raise ValueError(f"malformed token: the {PRIVATE_CLAIM} claim names no ServiceAccount")
        account = _ref_claim(private, "serviceaccount")
        assert account is not None
        if claims.get("sub") != f"{SUBJECT_PREFIX}{ns}:{account.name}":
            raise ValueError("malformed token: sub does not name the ServiceAccount of the token")
        jti = claims.get("jti", "")
        return TokenInfo(ns, account.name, account.uid, accepted, int(times["exp"]),
                         jti if isinstance(jti, str) else "", _ref_claim(private, "pod"),
                         _ref_claim(private, "secret"), _ref_claim(private, "node", need_uid=False), claims)
