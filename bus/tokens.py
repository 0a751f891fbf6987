"""ServiceAccount tokens: signing (the serviceaccount controller) and checking (the gateway's authenticator).

Tokens are HS256 JWTs signed with a cluster key kept in the Secret ``k8n-signing-key`` in ``kube-system``
(made on first use by :func:`signing_key`); :func:`verify_token` checks one against that key. The claims
name the ServiceAccount as Kubernetes' legacy token claims do (``kubernetes.io/serviceaccount/...``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as pysecrets
import time

from bus import errors

SIGNING_KEY_SECRET, SIGNING_KEY_NAMESPACE = "k8n-signing-key", "kube-system"
ISSUER = "k8n"
NAMESPACE_CLAIM = "kubernetes.io/serviceaccount/namespace"
NAME_CLAIM = "kubernetes.io/serviceaccount/service-account.name"
UID_CLAIM = "kubernetes.io/serviceaccount/service-account.uid"


# ---- JWT (HS256) ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(key: bytes, claims: dict) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def verify_token(key: bytes, token: str) -> dict:
    """The claims of a token signed with ``key``; ValueError if it is malformed or forged."""
    try:
        head, body, sig = token.split(".")
        header = json.loads(_unb64(head))
        want = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if header.get("alg") != "HS256" or not hmac.compare_digest(want, _unb64(sig)):
            raise ValueError("invalid signature")
        return json.loads(_unb64(body))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"invalid token: {e}") from None


def token_claims(sa: dict) -> dict:
    """The claims of a token for the ServiceAccount ``sa``."""
    meta = sa["metadata"]
    ns, name = meta["namespace"], meta["name"]
    return {"iss": ISSUER, "iat": int(time.time()), "sub": f"system:serviceaccount:{ns}:{name}",
            NAMESPACE_CLAIM: ns, NAME_CLAIM: name, UID_CLAIM: meta.get("uid", "")}


# ---- the cluster's signing key -------------------------------------------------------------------


def key_of(secret: dict) -> bytes:
    """The signing key held by the ``k8n-signing-key`` Secret (KeyError/TypeError/ValueError if it holds none)."""
    return base64.b64decode(secret["data"]["key"])


async def signing_key(client) -> bytes:
    """The cluster's token signing key, made on first use."""
    for _ in range(3):
        try:
            s = await client.get("secrets", SIGNING_KEY_SECRET, SIGNING_KEY_NAMESPACE)
            return key_of(s)
        except errors.NotFound:
            pass
        try:
            await client.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                 "metadata": {"name": SIGNING_KEY_SECRET, "namespace": SIGNING_KEY_NAMESPACE},
                                 "data": {"key": base64.b64encode(pysecrets.token_bytes(32)).decode()}})
        except errors.AlreadyExists:
            pass
    raise RuntimeError("could not read or create the token signing key")
