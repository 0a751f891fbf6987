"""The ServiceAccount signing key set: Kubernetes' key id, the ``kid`` in every token, verification by ``kid`` across
a rotation (old tokens valid, tokens of a dropped key refused, tokens without a kid tried against every key), the
JWKS, the API server's reload of a rotated key set, and the kubelet-like refresh at 80 % of a token's lifetime."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from bus import tokens
from node.tokenmanager import refresh_at

# generated with `openssl ecparam -name prime256v1 -genkey`; its kid with `openssl pkey -pubout -outform DER |
# openssl dgst -sha256 -binary | base64url`, its coordinates from `openssl ec -text`
FIXED_KEY = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9SsX6g1m/LRu9Jz3
iytycEwqM99gMa4yPccXZTu0+x6hRANCAARzuzjOGUmc/LeeTxZ5UqNaWXVsUPpX
aT10d1bRrIEfg+7xcQo+iqjuftwMlx7otArr3gPyVFD7GMsqqYIx+3mb
-----END PRIVATE KEY-----
"""
FIXED_KID = "JdIJg6wOxvlx9nmBo0XI872GsuYe-NQzM-NasWsx_KY"
FIXED_X, FIXED_Y = "c7s4zhlJnPy3nk8WeVKjWll1bFD6V2k9dHdW0ayBH4M", "7vFxCj6KqO5-3AyXHui0CuveA_JUUPsYyyqpgjH7eZs"
SA = {"metadata": {"name": "builder", "namespace": "default", "uid": "u-1"}}


def fixed_key():
    return serialization.load_pem_private_key(FIXED_KEY, None)


def header(token: str) -> dict:
    return tokens._json_part(token.split(".")[0], "header")


def mint(private_key, now=None, seconds=3600) -> str:
    return tokens.Issuer(private_key).issue(SA, tokens.DEFAULT_AUDIENCES, seconds, now=now)[0]


def test_the_key_id_is_kubernetes_base64url_sha256_of_the_der_public_key():
    key = fixed_key()
    assert tokens.key_id(key.public_key()) == FIXED_KID
    assert header(mint(key)) == {"alg": "ES256", "kid": FIXED_KID}


def test_the_jwks_publishes_every_key_with_its_kid_and_coordinates():
    from cryptography.hazmat.primitives.asymmetric import ec

    second = ec.generate_private_key(ec.SECP256R1()).public_key()
    doc = tokens.jwks([fixed_key().public_key(), second])
    assert doc["keys"][0] == {"use": "sig", "kty": "EC", "kid": FIXED_KID, "crv": "P-256", "alg": "ES256",
                              "x": FIXED_X, "y": FIXED_Y}
    assert [k["kid"] for k in doc["keys"]] == [FIXED_KID, tokens.key_id(second)]
    json.dumps(doc)


def test_a_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_a_new_kid(tmp_path):
    path = tmp_path / "pki" / "sa.key"
    before = tokens.load_or_create_key_pair(path)
    old_token = mint(before.private_key)
    old_kid, new_kid = tokens.rotate_key(path, now=1000)
    assert old_kid == before.key_id and new_kid != old_kid
    after = tokens.load_or_create_key_pair(path)
    assert after.key_id == new_kid
    assert [tokens.key_id(k) for k in after.public_keys] == [new_kid, old_kid]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert tokens.read_retired(path) == {old_kid: 1000.0}
    new_token = mint(after.private_key)
    assert header(new_token)["kid"] == new_kid
    v = tokens.Verifier(after.public_keys)
    assert v.verify(old_token).name == "builder"
    assert v.verify(new_token).name == "builder"


def test_verification_picks_the_key_by_kid_and_tries_every_key_without_one():
    from cryptography.hazmat.primitives.asymmetric import ec

    a, b = fixed_key(), ec.generate_private_key(ec.SECP256R1())
    v = tokens.Verifier([b.public_key(), a.public_key()])
    token = mint(a)
    # a token minted before kids existed: no kid in the header, signed by a; every key is tried
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    no_kid, payload = tokens._b64(tokens._compact({"alg": "ES256"})), token.split(".")[1]
    r, s = decode_dss_signature(a.sign(f"{no_kid}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
    sig = tokens._b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert v.verify(f"{no_kid}.{payload}.{sig}").name == "builder"
    assert v.verify(token).name == "builder"
    # a kid that names a key the set does not hold is refused without trying the others
    with pytest.raises(ValueError, match="no keys found"):
        tokens.Verifier([b.public_key()]).verify(token)


def test_pruning_drops_a_retired_key_only_once_its_tokens_have_all_expired(tmp_path):
    path = tmp_path / "sa.key"
    first = tokens.load_or_create_key_pair(path)
    old_token = mint(first.private_key, seconds=3600)
    old_kid, new_kid = tokens.rotate_key(path, now=10_000)
    assert tokens.prune_keys(path, 3600, now=10_000 + 3600) == []  # within lifetime + leeway: kept
    assert old_kid in {tokens.key_id(k) for k in tokens.load_or_create_key_pair(path).public_keys}
    assert tokens.prune_keys(path, 3600, now=10_000 + 3600 + tokens.LEEWAY_SECONDS + 1) == [old_kid]
    pair = tokens.load_or_create_key_pair(path)
    assert [tokens.key_id(k) for k in pair.public_keys] == [new_kid]
    assert tokens.read_retired(path) == {}
    with pytest.raises(ValueError, match="no keys found"):
        tokens.Verifier(pair.public_keys).verify(old_token)


def test_a_single_file_key_from_before_rotation_existed_still_loads(tmp_path):
    path = tmp_path / "sa.key"
    path.write_bytes(FIXED_KEY)
    os.chmod(path, 0o600)
    pair = tokens.load_or_create_key_pair(path)  # no sa.pub, no sa.retired.json: written/absent
    assert pair.key_id == FIXED_KID and tokens.read_retired(path) == {}
    assert tokens.public_key_path(path).exists()


def test_the_api_server_picks_up_a_rotated_key_set_without_restarting(tmp_path, monkeypatch):
    from master.apiserver import tokenrequest

    path = tmp_path / "sa.key"
    monkeypatch.setenv("K8N_SERVICE_ACCOUNT_KEY_FILE", str(path))
    first = tokenrequest.authority()
    assert tokenrequest.authority() is first  # unchanged files: the same authority
    old_token, _ = first.issuer.issue(SA, first.audiences, 3600)
    _, new_kid = tokens.rotate_key(path)
    second = tokenrequest.authority()
    assert second.issuer.key_id == new_kid
    assert second.verifier.verify(old_token).name == "builder"


def test_the_token_manager_refreshes_pod_tokens_at_80_percent_of_their_lifetime():
    tr = {"spec": {"expirationSeconds": 3600}, "status": {"expirationTimestamp": "2026-01-01T01:00:00Z"}}
    exp = 1767229200  # 2026-01-01T01:00:00Z
    assert refresh_at(tr) == exp - 720  # issued at exp - 3600, refreshed 2880 s later
