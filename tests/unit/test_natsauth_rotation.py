"""Rotation of the bus credentials' signing key (bus.natsauth): the account JWT lists the current and the former
signing keys until the rotation is finished, user JWTs are issued (and verifiably signed) by the current key, the
keys persist in the auth dir (0600) and every holder of a ClusterAuth — the API server's signer among them — follows
a rotation made by another process; ``k8n certs`` shows and drives it on a data dir without a running cluster."""

from __future__ import annotations

import base64
import json
import os
import stat
import time

import nkeys
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typer.testing import CliRunner

from bus import natsconns
from bus.cli.main import app
from bus.natsauth import FORMER_SIGNING_FILE, _JWT_BLOCK, AuthError, ClusterAuth, Credentials, decode_jwt
from bus.roles import ADMIN, APISERVER, Identity
from master.apiserver.nodecredentials import NodeCredentialSigner


def verified_claims(jwt: str) -> dict:
    """The claims of ``jwt`` once its signature verifies with its issuer's public key (what nats-server checks)."""
    head, payload, sig = jwt.split(".")
    raw = base64.b32decode(decode_jwt(jwt)["iss"])[1:33]  # nkey public key: prefix byte, 32 bytes, checksum
    Ed25519PublicKey.from_public_bytes(raw).verify(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)),
                                                  f"{head}.{payload}".encode())
    return decode_jwt(jwt)


def creds_claims(path) -> dict:
    return verified_claims(_JWT_BLOCK.search(path.read_text()).group(1))


def signing_keys(auth: ClusterAuth) -> list[str]:
    claims = verified_claims(auth.account_jwt())
    assert claims["iss"] == auth.keys["operator"].public
    return claims["nats"]["signing_keys"]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_rotation_keeps_the_former_key_listed_and_signs_with_the_new_one_until_it_is_finished(tmp_path):
    auth = ClusterAuth.load_or_create(tmp_path / "auth")
    first = auth.keys["signing"].public
    assert signing_keys(auth) == [first] and not (tmp_path / "auth" / FORMER_SIGNING_FILE).exists()
    before = verified_claims(auth.sign_user(Identity(ADMIN), nkeys_user()))
    assert before["iss"] == first

    old, new = auth.rotate_signing_key()
    assert (old, new) == (first, auth.keys["signing"].public) and new != old
    assert signing_keys(auth) == [new, old]
    after = verified_claims(auth.sign_user(Identity(ADMIN), nkeys_user()))
    assert after["iss"] == new and after["nats"]["issuer_account"] == auth.account_public
    for f in ("account-signing.nk", FORMER_SIGNING_FILE):
        assert mode(tmp_path / "auth" / f) == 0o600
    assert (tmp_path / "auth" / "account-signing.nk").read_bytes().strip() == auth.keys["signing"].seed
    former = json.loads((tmp_path / "auth" / FORMER_SIGNING_FILE).read_text())["keys"]
    assert [k["publicKey"] for k in former] == [old] and abs(former[0]["retiredAt"] - time.time()) < 60
    assert "seed" not in json.dumps(former) and not any(k.startswith("SA") for k in json.dumps(former).split('"'))

    for loaded in (ClusterAuth.load(tmp_path / "auth"), ClusterAuth.load_or_create(tmp_path / "auth")):
        assert loaded.signing_keys() == [new, old] and loaded.former_signing == {old: former[0]["retiredAt"]}

    _, newer = auth.rotate_signing_key()  # a second rotation before the finish: both former keys stay
    assert signing_keys(auth) == [newer, new, old]

    assert auth.drop_former_signing_keys() == [new, old]
    assert signing_keys(auth) == [newer] and not (tmp_path / "auth" / FORMER_SIGNING_FILE).exists()
    assert ClusterAuth.load(tmp_path / "auth").signing_keys() == [newer]
    assert auth.drop_former_signing_keys() == []


def test_each_account_jwt_is_issued_later_than_the_one_before_across_a_rotation(tmp_path):
    auth = ClusterAuth.load_or_create(tmp_path / "auth")
    iats = [decode_jwt(auth.account_jwt())["iat"]]
    auth.rotate_signing_key()
    iats.append(decode_jwt(auth.account_jwt())["iat"])
    auth.drop_former_signing_keys()
    iats.append(decode_jwt(auth.account_jwt())["iat"])
    assert iats == sorted(set(iats))  # a server keeps the newer JWT: a later one always wins


def test_a_holder_loaded_before_the_rotation_follows_it(tmp_path):
    """k8n up's NatsServer and the API server hold a ClusterAuth for their lifetime; `k8n certs rotate-bus-key` is
    another process. The holder must preload (and push) an account JWT with the keys of now, and sign with the new
    key — an account JWT with the old key alone would cut every re-minted credential off."""
    holder = ClusterAuth.load_or_create(tmp_path / "auth")
    old = holder.keys["signing"].public
    rotator = ClusterAuth.load(tmp_path / "auth")
    _, new = rotator.rotate_signing_key()
    assert signing_keys(holder) == [new, old]
    assert verified_claims(holder.sign_user(Identity(ADMIN), nkeys_user()))["iss"] == new
    preload = holder.server_config(tmp_path / "jwt").split(f"{holder.account_public}: \"", 1)[1].split('"', 1)[0]
    assert verified_claims(preload)["nats"]["signing_keys"] == [new, old]
    rotator.drop_former_signing_keys()
    assert signing_keys(holder) == [new]


def test_the_api_servers_signer_reads_the_keys_again_when_they_change(tmp_path):
    ClusterAuth.load_or_create(tmp_path / "auth")
    signer = NodeCredentialSigner(store=None, auth_dir=tmp_path / "auth")
    first = signer.cluster_auth()
    assert signer.cluster_auth() is first  # unchanged files: the same keys, not read again
    _, new = ClusterAuth.load(tmp_path / "auth").rotate_signing_key()
    auth = signer.cluster_auth()
    assert auth is not first
    assert verified_claims(auth.sign_user(Identity.node("w9"), nkeys_user()))["iss"] == new
    assert signer.cluster_auth() is auth


def test_a_malformed_former_keys_file_is_named(tmp_path):
    ClusterAuth.load_or_create(tmp_path / "auth")
    (tmp_path / "auth" / FORMER_SIGNING_FILE).write_text('{"keys": [{"publicKey": "UNOTAKEY"}]}')
    with pytest.raises(AuthError, match=FORMER_SIGNING_FILE):
        ClusterAuth.load(tmp_path / "auth")


def test_minting_again_keeps_identities_and_expiry_with_a_new_key_pair_and_leaves_others_alone(tmp_path):
    auth = ClusterAuth.load_or_create(tmp_path / "auth")
    creds = tmp_path / "creds"
    admin = auth.write_creds(Identity(ADMIN), creds)
    node = auth.write_creds(Identity.node("w1"), creds)
    short = creds / "short.creds"
    short.write_text(auth.mint(Identity(APISERVER), expires=4_102_444_800))
    gone = auth.write_creds(Identity.node("gone"), creds)
    auth.revoke(Credentials.load(gone).user_public)
    other = ClusterAuth.load_or_create(tmp_path / "other").write_creds(Identity(ADMIN), tmp_path / "o")
    (creds / "other.creds").write_text(other.read_text())
    (creds / "junk.creds").write_text("not credentials")
    before = {p.name: Credentials.load(p) for p in (admin, node, short, gone)}
    gone_text = gone.read_text()

    _, new = auth.rotate_signing_key()
    done, skipped = auth.remint_creds(creds)

    assert sorted(p.name for p in done) == ["admin.creds", "node-w1.creds", "short.creds"]
    for p in done:
        claims = creds_claims(p)
        assert claims["iss"] == new and mode(p) == 0o600
        assert Credentials.load(p).identity == before[p.name].identity
        assert claims["sub"] != before[p.name].user_public  # a new user key pair
        assert p.read_text().count("BEGIN USER NKEY SEED") == 1
    assert creds_claims(admin)["name"] == "admin" and "exp" not in creds_claims(admin)
    assert creds_claims(node)["name"] == "node:w1"
    assert creds_claims(short)["exp"] == 4_102_444_800
    assert gone.read_text() == gone_text  # a revoked user is not given a key that is not revoked
    reasons = "\n".join(skipped)
    assert gone.name in reasons and "revoked" in reasons
    assert "other.creds" in reasons and "junk.creds" in reasons
    assert not list(creds.glob(".*.tmp"))


def test_ensure_creds_keeps_credentials_of_a_listed_key_and_mints_those_of_a_dropped_one(tmp_path):
    auth = ClusterAuth.load_or_create(tmp_path / "auth")
    path = auth.ensure_creds(Identity(ADMIN), tmp_path / "creds")
    text = path.read_text()
    auth.rotate_signing_key()
    assert auth.ensure_creds(Identity(ADMIN), tmp_path / "creds").read_text() == text  # former key: still good
    auth.drop_former_signing_keys()
    assert creds_claims(auth.ensure_creds(Identity(ADMIN), tmp_path / "creds"))["iss"] == auth.keys["signing"].public


def test_connz_answers_carry_the_issuer_of_each_connections_jwt(tmp_path):
    auth = ClusterAuth.load_or_create(tmp_path / "auth")
    jwt = auth.sign_user(Identity.node("w1"), nkeys_user())
    reply = {"server": {"name": "n1"}, "data": {"connections": [
        {"name": "node:w1 k8n/0.2.0", "ip": "10.0.0.5", "port": 4000, "kind": "Client", "jwt": jwt},
        {"name": "someone", "ip": "10.0.0.6", "port": 4001, "kind": "Client"}]}}
    with_jwt, without = natsconns.parse(reply)
    assert (with_jwt.identity, with_jwt.issuer) == ("node:w1", auth.keys["signing"].public)
    assert (without.identity, without.issuer) == ("someone", None)


def nkeys_user() -> str:
    from bus.natsauth import Key

    return Key.generate(nkeys.PREFIX_BYTE_USER).public


# ---- the command, on a data dir without a running cluster ----------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(app, ["certs", *args])


def test_rotate_bus_key_without_a_running_cluster_mints_again_and_check_expiration_shows_the_keys(tmp_path):
    ddir = tmp_path / "k8n"
    auth = ClusterAuth.load_or_create(ddir / "nats-auth")
    admin = auth.write_creds(Identity(ADMIN), ddir / "creds")
    (ddir / "pki").mkdir()
    old = auth.keys["signing"].public

    out = run("rotate-bus-key", "--data-dir", str(ddir))
    assert out.exit_code == 0, out.output
    new = ClusterAuth.load(ddir / "nats-auth").keys["signing"].public
    assert f"{old} -> {new}" in out.output and "next start" in out.output and str(admin) in out.output
    assert creds_claims(admin)["iss"] == new

    report = run("check-expiration", "--data-dir", str(ddir))
    assert report.exit_code == 0, report.output
    rows = {ln.split()[0]: ln.split() for ln in report.output.splitlines() if ln and not ln.isupper()}
    assert rows["admin"][-1] == "current"
    assert rows["current"][1] == new and rows["former"][1] == old and "retired" in rows["former"]

    assert run("rotate-bus-key", "--force", "--data-dir", str(ddir)).exit_code == 1
    out = run("rotate-bus-key", "--finish", "--data-dir", str(ddir))
    assert out.exit_code == 0, out.output
    assert f"former bus signing key dropped: {old}" in out.output
    assert ClusterAuth.load(ddir / "nats-auth").signing_keys() == [new]
    assert "former" not in run("check-expiration", "--data-dir", str(ddir)).output
    out = run("rotate-bus-key", "--finish", "--data-dir", str(ddir))
    assert out.exit_code == 0 and "nothing to drop" in out.output


def test_rotate_bus_key_needs_the_clusters_keys(tmp_path):
    out = run("rotate-bus-key", "--data-dir", str(tmp_path / "joined-node"))
    assert out.exit_code == 1 and "no bus keys" in out.output
