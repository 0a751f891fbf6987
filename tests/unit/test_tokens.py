"""ServiceAccount tokens (``bus.tokens``): the key pair on disk, ES256 signing with Kubernetes' key id and bound-token
claims, and a verifier that refuses other algorithms, bad signatures, wrong times, issuers and audiences."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bus import tokens
from bus.meta import timestamp
from bus.tokens import (DEFAULT_AUDIENCES, DEFAULT_ISSUER, LEEWAY_SECONDS, Issuer, Verifier, key_id,
                        load_or_create_key_pair, public_key_path, sign, unverified_claims)

SA = {"metadata": {"name": "builder", "namespace": "ci", "uid": "sa-uid-1"}}
POD = {"kind": "Pod", "metadata": {"name": "web-0", "namespace": "ci", "uid": "pod-uid-1"},
       "spec": {"nodeName": "node-a", "serviceAccountName": "builder"}}
NODE = {"kind": "Node", "metadata": {"name": "node-a", "uid": "node-uid-1"}}
SECRET = {"kind": "Secret", "metadata": {"name": "builder-token", "namespace": "ci", "uid": "secret-uid-1"}}
NOW = 1_800_000_000


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict, dict, bytes]:
    head, body, sig = token.split(".")
    return json.loads(_unb64(head)), json.loads(_unb64(body)), _unb64(sig)


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def issued(key):
    token, expires = Issuer(key).issue(SA, DEFAULT_AUDIENCES, 3600, POD, node=NODE, now=NOW)
    return token, expires


def verifier(key, **kw) -> Verifier:
    return Verifier([key.public_key()], **kw)


# ---- the key pair on disk -------------------------------------------------------------------------------------


def test_key_pair_is_made_once_private_0600_in_a_0700_directory(tmp_path):
    path = tmp_path / "pki" / "sa.key"
    pair = load_or_create_key_pair(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert public_key_path(path) == tmp_path / "pki" / "sa.pub"
    pub = serialization.load_pem_public_key(public_key_path(path).read_bytes())
    assert key_id(pub) == pair.key_id
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # written through temporary files
    again = load_or_create_key_pair(path)  # the next start loads the same key
    assert again.key_id == pair.key_id and path.read_bytes() == path.read_bytes()
    assert isinstance(pair.private_key.curve, ec.SECP256R1)


def test_the_public_file_may_hold_older_keys_that_still_verify(tmp_path, key):
    path = tmp_path / "sa.key"
    pair = load_or_create_key_pair(path)
    old_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    public_key_path(path).write_bytes(public_key_path(path).read_bytes() + old_pem)
    pair = load_or_create_key_pair(path)
    assert [key_id(k) for k in pair.public_keys] == [pair.key_id, key_id(key.public_key())]
    old_token, _ = Issuer(key).issue(SA, DEFAULT_AUDIENCES, 3600, now=NOW)
    new_token, _ = Issuer(pair.private_key).issue(SA, DEFAULT_AUDIENCES, 3600, now=NOW)
    v = Verifier(pair.public_keys)
    assert v.verify(old_token, now=NOW).name == v.verify(new_token, now=NOW).name == "builder"


def test_a_key_that_is_not_p256_is_refused(tmp_path):
    path = tmp_path / "sa.key"
    other = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(ValueError, match="P-256"):
        load_or_create_key_pair(path)


# ---- signing ---------------------------------------------------------------------------------------------------


def test_header_has_es256_and_kubernetes_key_id(key, issued):
    header, _, sig = _parts(issued[0])
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert header == {"alg": "ES256", "kid": _b64(hashlib.sha256(der).digest())}
    assert key_id(key.public_key()) == header["kid"]
    # a JWS ES256 signature: r || s, 32 bytes each, over "<header>.<payload>"
    assert len(sig) == 64
    head, body, _ = issued[0].split(".")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    key.public_key().verify(encode_dss_signature(r, s), f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))


def test_claims_are_kubernetes_bound_token_claims(issued):
    token, expires = issued
    _, claims, _ = _parts(token)
    assert claims["iss"] == DEFAULT_ISSUER == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == "system:serviceaccount:ci:builder"
    assert claims["aud"] == [DEFAULT_ISSUER]
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW, NOW + 3600)
    assert uuid.UUID(claims["jti"])
    assert claims["kubernetes.io"] == {
        "namespace": "ci", "serviceaccount": {"name": "builder", "uid": "sa-uid-1"},
        "pod": {"name": "web-0", "uid": "pod-uid-1"}, "node": {"name": "node-a", "uid": "node-uid-1"}}
    assert timestamp(expires) == NOW + 3600 and expires.endswith("Z")
    assert unverified_claims(token) == claims


def test_secret_bound_and_unbound_tokens(key):
    token, _ = Issuer(key).issue(SA, ["a", "b"], 600, SECRET, now=NOW)
    private = _parts(token)[1]["kubernetes.io"]
    assert private["secret"] == {"name": "builder-token", "uid": "secret-uid-1"} and "pod" not in private
    token, _ = Issuer(key).issue(SA, ["a"], 600, now=NOW)
    assert set(_parts(token)[1]["kubernetes.io"]) == {"namespace", "serviceaccount"}
    with pytest.raises(ValueError):
        Issuer(key).issue(SA, ["a"], 600, {"kind": "ConfigMap", "metadata": {"name": "x"}}, now=NOW)
    assert len({_parts(Issuer(key).issue(SA, ["a"], 600, now=NOW)[0])[1]["jti"] for _ in range(3)}) == 3


# ---- verifying -------------------------------------------------------------------------------------------------


def test_a_good_token_verifies(key, issued):
    info = verifier(key).verify(issued[0], now=NOW + 10)
    assert (info.namespace, info.name, info.uid) == ("ci", "builder", "sa-uid-1")
    assert info.audiences == DEFAULT_AUDIENCES and info.expires == NOW + 3600
    assert info.pod == tokens.BoundObject("web-0", "pod-uid-1") and info.secret is None
    assert info.node == tokens.BoundObject("node-a", "node-uid-1")


def test_expired_tokens_are_refused_after_the_leeway(key, issued):
    v = verifier(key)
    exp = NOW + 3600
    assert v.verify(issued[0], now=exp + LEEWAY_SECONDS - 1).name == "builder"  # clocks may differ a little
    with pytest.raises(ValueError, match="Token has expired"):
        v.verify(issued[0], now=exp + LEEWAY_SECONDS + 1)


def test_tokens_not_valid_yet_are_refused(key):
    token = sign(key, {**tokens.service_account_claims(SA, DEFAULT_AUDIENCES, 3600, now=NOW), "nbf": NOW + 600})
    with pytest.raises(ValueError, match="not valid yet"):
        verifier(key).verify(token, now=NOW)
    assert verifier(key).verify(token, now=NOW + 600).name == "builder"
    future, _ = Issuer(key).issue(SA, DEFAULT_AUDIENCES, 3600, now=NOW + 3000)
    with pytest.raises(ValueError):
        verifier(key).verify(future, now=NOW)


def test_wrong_audience_is_refused_and_audiences_intersect(key):
    token, _ = Issuer(key).issue(SA, ["vault", "https://other"], 3600, now=NOW)
    with pytest.raises(ValueError) as e:
        verifier(key).verify(token, now=NOW)
    assert str(e.value) == (f'token audiences ["vault" "https://other"] is invalid for the target audiences '
                            f'["{DEFAULT_ISSUER}"]')
    assert verifier(key).verify(token, ["x", "vault"], now=NOW).audiences == ("vault",)
    assert verifier(key, audiences=["https://other"]).verify(token, now=NOW).audiences == ("https://other",)


def test_wrong_issuer_is_refused(key):
    token, _ = Issuer(key, issuer="https://evil.example").issue(SA, DEFAULT_AUDIENCES, 3600, now=NOW)
    with pytest.raises(ValueError, match='token issuer "https://evil.example" is invalid'):
        verifier(key).verify(token, now=NOW)
    assert verifier(key, issuers=["https://evil.example"]).verify(token, now=NOW).name == "builder"


def test_hs256_forged_with_the_public_key_as_hmac_secret_is_refused(key, issued):
    """The classic algorithm confusion: an attacker who knows the public key "signs" with it as an HMAC secret."""
    claims = _parts(issued[0])[1]
    claims["sub"], claims["kubernetes.io"]["serviceaccount"]["name"] = "system:serviceaccount:ci:admin", "admin"
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)):
        for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256", "kid": key_id(key.public_key())}):
            signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            with pytest.raises(ValueError, match="unexpected signing algorithm \"HS256\""):
                verifier(key).verify(f"{signing_input}.{_b64(mac)}", now=NOW)


def test_alg_none_and_other_algorithms_are_refused(key, issued):
    _, body, sig = issued[0].split(".")
    for alg in ("none", "None", "ES384", "RS256", None):
        head = _b64(json.dumps({"alg": alg}).encode())
        for signature in ("", sig):
            with pytest.raises(ValueError, match="unexpected signing algorithm"):
                verifier(key).verify(f"{head}.{body}.{signature}", now=NOW)


def test_tampered_or_foreign_tokens_are_refused(key, issued):
    head, body, sig = issued[0].split(".")
    claims = json.loads(_unb64(body))
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    with pytest.raises(ValueError, match="invalid signature"):
        verifier(key).verify(f"{head}.{_b64(json.dumps(claims).encode())}.{sig}", now=NOW)
    stranger = ec.generate_private_key(ec.SECP256R1())
    theirs, _ = Issuer(stranger).issue(SA, DEFAULT_AUDIENCES, 3600, now=NOW)
    with pytest.raises(ValueError, match="no keys found"):  # a kid we do not know
        verifier(key).verify(theirs, now=NOW)
    t_head, t_body, t_sig = theirs.split(".")
    no_kid = _b64(json.dumps({"alg": "ES256"}).encode())
    with pytest.raises(ValueError, match="invalid signature"):  # no kid: every key is tried, none fits
        verifier(key).verify(f"{no_kid}.{t_body}.{t_sig}", now=NOW)
    for bad in ("", "a.b", "a.b.c", "....", f"{head}.{body}", f"{head}.{body}.{sig}.x", f"{head}.{body}.{sig}=="):
        with pytest.raises(ValueError):
            verifier(key).verify(bad, now=NOW)


def test_kid_selects_among_several_keys(key):
    other = ec.generate_private_key(ec.SECP256R1())
    v = Verifier([key.public_key(), other.public_key()])
    for k in (key, other):
        token, _ = Issuer(k).issue(SA, DEFAULT_AUDIENCES, 3600, now=NOW)
        assert _parts(token)[0]["kid"] == key_id(k.public_key())
        assert v.verify(token, now=NOW).uid == "sa-uid-1"


def test_claims_must_name_the_account_consistently(key):
    base = tokens.service_account_claims(SA, DEFAULT_AUDIENCES, 3600, now=NOW)
    for change in ({"sub": "system:serviceaccount:ci:admin"}, {"kubernetes.io": {"namespace": "ci"}},
                   {"exp": None}, {"exp": "soon"}, {"aud": []}, {"aud": [1]}):
        token = sign(key, {k: v for k, v in {**base, **change}.items() if v is not None})
        with pytest.raises(ValueError):
            verifier(key).verify(token, now=NOW)
