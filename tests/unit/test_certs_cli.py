"""``k8n certs check-expiration`` and ``k8n certs renew`` on a data directory laid out as ``k8n up`` and
``k8n nats-config`` lay it out: kubeadm's tables with the real expiry of each certificate, renewal from the existing
CA with a new serial and the same SANs, the CA left alone, bus credentials with and without a JWT expiry."""

from __future__ import annotations

import datetime
import os
import stat

from cryptography import x509
from typer.testing import CliRunner

from bus import pki
from bus.cli import certs
from bus.cli.main import app
from bus.natsauth import ClusterAuth
from bus.roles import ADMIN, Identity

UTC = datetime.timezone.utc


def run(*args: str):
    return CliRunner().invoke(app, ["certs", *args])


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> list[str]:
    return sorted(str(v) for v in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def make_data_dir(tmp_path):
    ddir = tmp_path / "k8n"
    pki.ensure(ddir / "pki", ("127.0.0.1", "10.96.0.1", "192.0.2.7"))
    pki.ensure(ddir / "pki", ("127.0.0.1", "192.0.2.7"), name="nats", common_name="nats", client_auth=True)
    for srv in ("n1", "n2"):  # the copies k8n nats-config makes for each server of a NATS cluster
        d = ddir / "nats" / srv / "pki"
        d.mkdir(parents=True)
        for f in ("nats.crt", "nats.key", "ca.crt"):
            (d / f).write_bytes((ddir / "pki" / f).read_bytes())
    auth = ClusterAuth.load_or_create(ddir / "nats-auth")
    auth.write_creds(Identity(ADMIN), ddir / "creds")
    (ddir / "creds" / "short.creds").write_text(auth.mint(Identity(ADMIN), expires=4_102_444_800))
    return ddir


def test_residual_time_reads_as_kubeadm_prints_it():
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    after = [(30, "30s"), (600, "10m"), (47 * 3600, "47h"), (364 * 86400, "364d"), (3650 * 86400, "10y")]
    for seconds, text in after:
        assert certs.residual(now + datetime.timedelta(seconds=seconds), now) == text
    assert certs.residual(now - datetime.timedelta(seconds=5), now) == "<invalid>"
    assert certs.residual(None, now) == "<never>"


def test_check_expiration_lists_every_certificate_the_ca_and_the_bus_credentials(tmp_path):
    ddir = make_data_dir(tmp_path)
    out = run("check-expiration", "--data-dir", str(ddir))
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split() == ["CERTIFICATE", "EXPIRES", "RESIDUAL", "TIME", "CERTIFICATE", "AUTHORITY",
                                "EXTERNALLY", "MANAGED"]
    rows = {ln.split()[0]: ln for ln in lines if ln and not ln.isupper()}
    expires = load(ddir / "pki" / "apiserver.crt").not_valid_after_utc.strftime("%b %d, %Y %H:%M UTC")
    assert expires in rows["apiserver"] and rows["apiserver"].split()[-2:] == ["ca", "no"]
    for name in ("nats", "nats-n1", "nats-n2"):
        assert rows[name].split()[-2:] == ["ca", "no"], rows[name]
    assert "CERTIFICATE AUTHORITY   EXPIRES" in out.output and rows["ca"].split()[-1] == "no"
    assert "<never>" in rows["admin"]
    assert "Jan 01, 2100 00:00 UTC" in rows["short"]


def test_a_ca_without_its_key_is_externally_managed_and_nothing_is_renewed(tmp_path):
    ddir = make_data_dir(tmp_path)
    (ddir / "pki" / "ca.key").unlink()
    leaves, cas = certs.certificate_rows(ddir)
    assert all(r.external for r in leaves + cas)
    before = load(ddir / "pki" / "apiserver.crt").serial_number
    out = run("renew", "all", "--data-dir", str(ddir))
    assert out.exit_code == 1 and "externally managed" in out.output
    assert load(ddir / "pki" / "apiserver.crt").serial_number == before


def test_renew_reissues_from_the_same_ca_with_a_new_serial_and_the_same_sans(tmp_path):
    ddir = make_data_dir(tmp_path)
    ca_before = (ddir / "pki" / "ca.crt").read_bytes()
    old = {n: load(ddir / "pki" / f"{n}.crt") for n in ("apiserver", "nats")}
    out = run("renew", "all", "--data-dir", str(ddir))
    assert out.exit_code == 0, out.output
    assert "restart the gateway" in out.output and "nats-server --signal reload" in out.output
    ca = load(ddir / "pki" / "ca.crt")
    assert (ddir / "pki" / "ca.crt").read_bytes() == ca_before
    for n, before in old.items():
        after = load(ddir / "pki" / f"{n}.crt")
        assert after.serial_number != before.serial_number
        assert sans(after) == sans(before) and after.subject == before.subject
        assert after.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
            before.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        after.verify_directly_issued_by(ca)
        assert stat.S_IMODE(os.stat(ddir / "pki" / f"{n}.key").st_mode) == 0o600
    for srv in ("n1", "n2"):  # the cluster servers' copies follow
        assert (ddir / "nats" / srv / "pki" / "nats.crt").read_bytes() == (ddir / "pki" / "nats.crt").read_bytes()
        assert stat.S_IMODE(os.stat(ddir / "nats" / srv / "pki" / "nats.key").st_mode) == 0o600


def test_renew_refuses_the_ca_and_unknown_names(tmp_path):
    ddir = make_data_dir(tmp_path)
    out = run("renew", "ca", "--data-dir", str(ddir))
    assert out.exit_code == 1 and "CA is not renewed" in out.output
    out = run("renew", "etcd", "--data-dir", str(ddir))
    assert out.exit_code == 1 and "no certificate 'etcd'" in out.output
    out = run("renew", "apiserver", "--data-dir", str(ddir))
    assert out.exit_code == 0 and "apiserver renewed" in out.output and "nats" not in out.output


def test_rotate_sa_key_makes_a_new_signing_key_and_keeps_the_old_public_key(tmp_path, monkeypatch):
    from bus import tokens

    monkeypatch.delenv("K8N_SERVICE_ACCOUNT_KEY_FILE", raising=False)
    ddir = tmp_path / "k8n"
    first = tokens.load_or_create_key_pair(ddir / "pki" / "sa.key")
    out = run("rotate-sa-key", "--data-dir", str(ddir))
    assert out.exit_code == 0, out.output
    pair = tokens.load_or_create_key_pair(ddir / "pki" / "sa.key")
    assert pair.key_id != first.key_id and f"{first.key_id} -> {pair.key_id}" in out.output
    assert [tokens.key_id(k) for k in pair.public_keys] == [pair.key_id, first.key_id]
    out = run("prune-sa-keys", "--data-dir", str(ddir), "--max-token-lifetime", "0")
    assert out.exit_code == 0 and f"former key {first.key_id} accepted until" in out.output
