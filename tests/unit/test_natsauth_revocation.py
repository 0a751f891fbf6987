"""Revocations in the account JWT (bus/natsauth.py) and the answers to an account push (bus/natsrevoke.py), read off
the claims; the real nats-server judges them in tests/integration/test_bus_revocation.py."""

from __future__ import annotations

import json
import time

import nkeys
import pytest

from bus import roles, subjects
from bus.natsauth import (REVOCATIONS_FILE, SYSTEM_USER_NAME, AuthError, ClusterAuth, Credentials, decode_jwt,
                          is_user_public_key, user_public_key)
from bus.natsrevoke import AccountPushError, check_update_reply
from bus.roles import Identity


@pytest.fixture
def auth(tmp_path):
    return ClusterAuth.load_or_create(tmp_path / "auth")


def key_of(auth: ClusterAuth, node: str = "w1") -> str:
    return user_public_key(auth.mint(Identity.node(node)))


def test_the_account_jwt_carries_revocations_in_nats_format(auth):
    assert "revocations" not in decode_jwt(auth.account_jwt())["nats"]
    k1, k2 = key_of(auth, "w1"), key_of(auth, "w2")
    before = int(time.time())
    assert auth.revoke(k1) is True
    assert auth.revoke(k2, at=1_700_000_000) is True
    claims = decode_jwt(auth.account_jwt())
    revs = claims["nats"]["revocations"]
    assert set(revs) == {k1, k2} and before <= revs[k1] <= int(time.time()) and revs[k2] == 1_700_000_000
    assert claims["sub"] == auth.account_public and claims["iss"] == auth.keys["operator"].public
    assert claims["nats"]["signing_keys"] == [auth.keys["signing"].public]  # the rest of the account unchanged


def test_revoking_again_is_idempotent_and_a_later_time_extends_it(auth):
    k = key_of(auth)
    auth.revoke(k, at=100)
    assert auth.revoke(k) is False and auth.revocations() == {k: 100}  # no time: already revoked
    assert auth.revoke(k, at=50) is False and auth.revocations() == {k: 100}  # never shortened
    assert auth.revoke(k, at=200) is True and auth.revocations() == {k: 200}


def test_revocations_are_kept_privately_and_read_by_another_instance(auth, tmp_path):
    k = key_of(auth)
    auth.revoke(k, at=123)
    path = auth.dir / REVOCATIONS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["revocations"] == {k: 123}
    again = ClusterAuth.load(auth.dir)
    assert decode_jwt(again.account_jwt())["nats"]["revocations"] == {k: 123}
    assert not [p for p in auth.dir.iterdir() if p.name.endswith(".tmp")]


def test_every_account_jwt_is_issued_later_than_the_one_before(auth):
    iats = [decode_jwt(auth.account_jwt())["iat"] for _ in range(5)]  # well within one second
    assert iats == sorted(set(iats)) and len(iats) == 5
    assert decode_jwt(ClusterAuth.load(auth.dir).account_jwt())["iat"] > iats[-1]  # also across processes
    assert iats[0] >= int(time.time()) - 1


def test_only_user_public_keys_can_be_revoked(auth):
    user = key_of(auth)
    for bad in ("", "nobody", user[:-1], user[:-1] + ("A" if user[-1] != "A" else "B"), auth.account_public,
                auth.keys["operator"].public):
        assert not is_user_public_key(bad)
        with pytest.raises(ValueError):
            auth.revoke(bad)
    assert auth.revocations() == {}


def test_the_user_key_of_a_credential_is_the_one_in_its_jwt(auth, tmp_path):
    path = auth.write_creds(Identity.node("w1"), tmp_path / "creds")
    text = path.read_text()
    jwt = text.split("-----BEGIN NATS USER JWT-----\n")[1].split("\n")[0]
    creds = Credentials.load(path)
    assert creds.user_public == user_public_key(text) == user_public_key(jwt) == decode_jwt(jwt)["sub"]
    assert creds.user_public.startswith("U") and is_user_public_key(creds.user_public)
    assert user_public_key(auth.mint(Identity.node("w1"))) != creds.user_public  # every mint: a new user key
    with pytest.raises(AuthError):
        user_public_key(auth.account_jwt())  # an account JWT names no user


def test_the_system_user_may_only_push_account_updates_for_a_short_while(auth):
    text = auth.mint_system_user()
    claims = decode_jwt(text.split("-----BEGIN NATS USER JWT-----\n")[1].split("\n")[0])
    assert claims["iss"] == auth.keys["system"].public and "issuer_account" not in claims["nats"]
    assert claims["nats"]["pub"] == {"allow": [subjects.SYS_CLAIMS_UPDATE]}
    assert claims["nats"]["sub"] == {"allow": [subjects.inbox_prefix(SYSTEM_USER_NAME) + ".>"]}
    assert 0 < claims["exp"] - time.time() <= 300
    assert claims["name"] not in roles.ROLES  # not a role of the table
    with pytest.raises(ValueError):
        Identity.parse(claims["name"])
    nkeys.from_seed(bytearray(text.split("-----BEGIN USER NKEY SEED-----\n")[1].split("\n")[0].encode()))


def test_the_server_config_uses_the_full_resolver_in_the_given_directory(auth, tmp_path):
    text = auth.server_config(tmp_path / "jwt")
    assert "resolver: {\n  type: full\n" in text and f'dir: "{tmp_path / "jwt"}"' in text
    assert "allow_delete: false" in text and 'interval: "2m"' in text
    assert f"{auth.account_public}: " in text and f'{auth.keys["system"].public}: ' in text
    assert "MEMORY" not in text


def test_an_update_reply_is_accepted_only_when_the_server_stored_it():
    ok = {"server": {"name": "nats-1"}, "data": {"account": "A", "code": 200, "message": "jwt updated"}}
    assert check_update_reply(json.dumps(ok).encode())["message"] == "jwt updated"
    bad = {"server": {"name": "nats-2"}, "error": {"account": "A", "code": 500,
                                                   "description": "jwt validation failed - bad"}}
    with pytest.raises(AccountPushError, match="nats-2 refused the account update: jwt validation failed"):
        check_update_reply(json.dumps(bad).encode())
    with pytest.raises(AccountPushError, match="unexpected answer"):
        check_update_reply(b"not json")
