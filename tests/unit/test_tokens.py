"""ServiceAccount tokens (``bus.tokens``): HS256 signing and verification, the claims naming the account,
and the signing key held by a Secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from bus import errors
from bus.tokens import (NAME_CLAIM, NAMESPACE_CLAIM, SIGNING_KEY_NAMESPACE, SIGNING_KEY_SECRET, UID_CLAIM, key_of,
                        sign_token, signing_key, token_claims, verify_token)

SA = {"metadata": {"name": "builder", "namespace": "ci", "uid": "1234"}}


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_token_is_a_standard_hs256_jwt():
    key = b"k" * 32
    token = sign_token(key, token_claims(SA))
    head, body, sig = token.split(".")
    assert json.loads(_b64url(head)) == {"alg": "HS256", "typ": "JWT"}
    assert _b64url(sig) == hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    claims = json.loads(_b64url(body))
    assert claims["iss"] == "k8n"
    assert claims["sub"] == "system:serviceaccount:ci:builder"
    assert claims["kubernetes.io/serviceaccount/namespace"] == "ci"
    assert claims["kubernetes.io/serviceaccount/service-account.name"] == "builder"
    assert claims["kubernetes.io/serviceaccount/service-account.uid"] == "1234"
    assert verify_token(key, token) == claims


def test_forged_or_malformed_tokens_are_rejected():
    token = sign_token(b"right", {"sub": "a"})
    with pytest.raises(ValueError):
        verify_token(b"wrong", token)
    head, _, sig = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"admin"}').rstrip(b"=").decode()
    with pytest.raises(ValueError):
        verify_token(b"right", f"{head}.{forged}.{sig}")
    for bad in ("", "a.b", "not.a.jwt", "...."):
        with pytest.raises(ValueError):
            verify_token(b"right", bad)


def test_claims_use_kubernetes_legacy_token_names():
    assert (NAMESPACE_CLAIM, NAME_CLAIM, UID_CLAIM) == (
        "kubernetes.io/serviceaccount/namespace", "kubernetes.io/serviceaccount/service-account.name",
        "kubernetes.io/serviceaccount/service-account.uid")
    claims = token_claims({"metadata": {"name": "anon", "namespace": "x"}})
    assert claims[UID_CLAIM] == "" and claims["sub"] == "system:serviceaccount:x:anon"


def plural_of(obj):
    return obj["kind"].lower() + "s"


class FakeSecrets:
    """Secrets by (namespace, name), as the API client's get/create see them."""

    def __init__(self):
        self.objs: dict[tuple[str, str], dict] = {}
        self.creates = 0

    async def get(self, plural, name, namespace):
        if (namespace, name) not in self.objs:
            raise errors.not_found(plural, name)
        return self.objs[(namespace, name)]

    async def create(self, obj):
        meta = obj["metadata"]
        if (meta["namespace"], meta["name"]) in self.objs:
            raise errors.already_exists(plural_of(obj), meta["name"])
        self.creates += 1
        self.objs[(meta["namespace"], meta["name"])] = obj
        return obj


async def test_signing_key_is_made_once_and_then_read():
    client = FakeSecrets()
    key = await signing_key(client)
    assert len(key) == 32 and client.creates == 1
    secret = client.objs[(SIGNING_KEY_NAMESPACE, SIGNING_KEY_SECRET)]
    assert (SIGNING_KEY_NAMESPACE, SIGNING_KEY_SECRET) == ("kube-system", "k8n-signing-key")
    assert key_of(secret) == key
    assert await signing_key(client) == key and client.creates == 1
    assert verify_token(key_of(secret), sign_token(key, {"sub": "a"})) == {"sub": "a"}


def test_key_of_a_secret_without_a_key_raises():
    for bad in ({}, {"data": {}}, {"data": None}, {"data": {"key": "a"}}):
        with pytest.raises((KeyError, TypeError, ValueError)):
            key_of(bad)
