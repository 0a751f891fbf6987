"""Key and certificate rotation against a real nats-server, two API servers (one in this process, one in its own)
and the gateway: ``k8n certs rotate-sa-key`` while they run (tokens issued before stay valid, new ones carry the
new kid, the JWKS lists both; a pruned key's tokens are refused), and ``k8n certs check-expiration`` / ``renew`` on
the certificate a running gateway serves."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from typer.testing import CliRunner

from bus import pki, roles, tokens
from bus.cli.main import app as cli
from bus.client import ApiClient, resource_of
from bus.proc import die_with_parent
from bus.roles import Identity
from master.gateway import oidc
from master.gateway.app import make_app
from tests.conftest import start_apiserver_process, wait_for_api
from tests.waiting import eventually

SA_RES = resource_of("serviceaccounts")
REVIEWS = resource_of("tokenreviews")


@pytest.fixture
def key_file(nats_server) -> Path:
    """The API servers' signing key (``tests/conftest.py`` names it in ``$K8N_SERVICE_ACCOUNT_KEY_FILE``)."""
    return Path(os.environ["K8N_SERVICE_ACCOUNT_KEY_FILE"])


@pytest.fixture
async def second_apiserver(nats_server, client, tmp_path):
    """Another API server replica, in its own process, reading the same key files."""
    proc = start_apiserver_process(nats_server.url, tmp_path / "apiserver-2.log")
    try:
        await wait_for_api(nats_server.url)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def certs(*args: str) -> str:
    out = CliRunner().invoke(cli, ["certs", *args])
    assert out.exit_code == 0, out.output
    return out.output


async def token_for(client, name="builder") -> str:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    code, out, _ = await client.call(SA_RES, "create", "default", name, body, "token")
    assert code == 201, out
    return out["status"]["token"]


async def review(client, token) -> dict:
    code, out, _ = await client.call(REVIEWS, "create", None, None, {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert code == 201, out
    return out["status"]


def kid(token: str) -> str:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]


async def test_tokens_stay_valid_across_a_signing_key_rotation_until_the_key_is_dropped(
        nats_server, client, second_apiserver, key_file):
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": "builder", "namespace": "default"}})
    old_kid = tokens.load_or_create_key_pair(key_file).key_id
    before = await token_for(client)
    assert kid(before) == old_kid

    out = certs("rotate-sa-key", "--key-file", str(key_file))
    new_kid = tokens.load_or_create_key_pair(key_file).key_id
    assert f"{old_kid} -> {new_kid}" in out and new_kid != old_kid
    for _ in range(6):  # requests go to either replica: each picked up the new key without a restart
        after = await token_for(client)
        assert kid(after) == new_kid
        assert (await review(client, before))["authenticated"] is True
        status = await review(client, after)
        assert status["authenticated"] is True, status
        assert status["user"]["username"] == "system:serviceaccount:default:builder"

    # the issuer discovery document lists both keys, for a ServiceAccount (system:service-account-issuer-discovery)
    gateway = await ApiClient.connect(nats_server.url, Identity(roles.GATEWAY))
    app = make_app(nats_server.url, {}, client=gateway)
    app[oidc.KEYS_PATH] = tokens.public_key_path(key_file)
    http = TestClient(TestServer(app))
    await http.start_server()
    try:
        auth = {"Authorization": f"Bearer {after}"}
        r = await http.get("/openid/v1/jwks", headers=auth)
        assert r.status == 200, await r.text()
        assert [k["kid"] for k in (await r.json())["keys"]] == [new_kid, old_kid]
        r = await http.get("/.well-known/openid-configuration", headers=auth)
        assert r.status == 200 and (await r.json())["jwks_uri"].endswith("/openid/v1/jwks")
        assert (await http.get("/openid/v1/jwks")).status == 401

        # the old key retired two hours ago, tokens live at most one hour: pruned, and its tokens refused
        retired = tokens.retired_path(key_file)
        retired.write_text(json.dumps({old_kid: time.time() - 7200}))
        out = certs("prune-sa-keys", "--key-file", str(key_file), "--max-token-lifetime", "3600")
        assert f"dropped former key {old_kid}" in out
        for _ in range(4):
            status = await review(client, before)
            assert status["authenticated"] is False and "no keys found" in status["error"]
            assert (await review(client, await token_for(client)))["authenticated"] is True
        r = await http.get("/openid/v1/jwks", headers={"Authorization": f"Bearer {after}"})
        assert [k["kid"] for k in (await r.json())["keys"]] == [new_kid]
    finally:
        await http.close()
        await gateway.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def served_certificate(port: int) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE

    async def fetch():
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der)

    return await eventually(fetch, 30, "the gateway to serve TLS", interval=0.2, ignore=(OSError,))


def start_gateway(url: str, port: int, cert_dir, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "master.gateway", "--server", url, "--port", str(port),
                             "--cert-dir", str(cert_dir), "--log-level", "WARNING"],
                            stdout=log, stderr=log, preexec_fn=die_with_parent)


def sans(cert: x509.Certificate) -> list[str]:
    return sorted(str(v) for v in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


async def test_check_expiration_and_renew_of_the_certificate_the_gateway_serves(nats_server, client, tmp_path):
    ddir = tmp_path / "k8n"
    pki.ensure(ddir / "pki", ("127.0.0.1", "10.96.0.1"))
    port = free_port()
    log = open(tmp_path / "gateway.log", "ab")
    gw = start_gateway(nats_server.url, port, ddir / "pki", log)
    try:
        served = await served_certificate(port)
        row = next(ln for ln in certs("check-expiration", "--data-dir", str(ddir)).splitlines()
                   if ln.startswith("apiserver "))
        assert served.not_valid_after_utc.strftime("%b %d, %Y %H:%M UTC") in row
        out = certs("renew", "apiserver", "--data-dir", str(ddir))
        assert "restart the gateway" in out
        gw.terminate()
        gw.wait(10)
        gw = start_gateway(nats_server.url, port, ddir / "pki", log)
        renewed = await served_certificate(port)
        assert renewed.serial_number != served.serial_number
        assert sans(renewed) == sans(served) and renewed.subject == served.subject
        renewed.verify_directly_issued_by(x509.load_pem_x509_certificate((ddir / "pki" / "ca.crt").read_bytes()))
    finally:
        gw.terminate()
        gw.wait(10)
        log.close()
