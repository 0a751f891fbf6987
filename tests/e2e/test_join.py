"""Joining, as kubeadm users know it: ``k8n up --listen ADDR`` prints a ``k8n join`` command; the joining side pins
the cluster CA by its hash, trades a bootstrap token (used once) for the node's own NATS credentials, and those
credentials stop working when the Node is deleted. The real ``k8n up`` and ``k8n join`` processes, stock kubectl;
ADDR is an address the test adds to ``lo`` (no node agent: the machines rig runs joined agents)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time

import nats
import nkeys
import pytest

from bus import errors, nodecsr
from bus.client import ApiClient
from bus.connect import connect, tls_context
from bus.natsauth import Credentials, Key
from tests.e2e.upcluster import K8N, UpCluster
from tests.harness import NEEDS_DOCKER, address_on_lo
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

JOIN = re.compile(r"k8n join (\S+) --token (\S+) --ca-hash (\S+)")


@pytest.fixture(scope="module")
def address():
    with address_on_lo() as ip:
        yield ip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, address):
    c = UpCluster(tmp_path_factory.mktemp("join"))
    try:
        c.start(agent=False, listen=address)
        yield c
    finally:
        c.stop()


def k8n(c: UpCluster, *args: str, data: str | None = None) -> subprocess.CompletedProcess:
    env = dict(c.env)
    if data:
        env["K8N_DATA_DIR"] = data
    return subprocess.run([K8N, *args], capture_output=True, text=True, env=env, timeout=60)


def join(c: UpCluster, tmp, server: str, token: str, ca_hash: str, name: str) -> subprocess.CompletedProcess:
    return k8n(c, "join", server, "--token", token, "--ca-hash", ca_hash, "--name", name, "--no-run",
               data=str(tmp / name))


def test_up_prints_a_join_command_that_enrols_a_node_once(cluster, address, tmp_path):
    # printed just after the files k8n up writes when it is up: a moment later on a busy machine
    printed = eventually_sync(lambda: JOIN.search(cluster.log()), 30, lambda: f"the join line:\n{cluster.log()}")
    server, token, ca_hash = printed.groups()
    assert server.startswith(f"{address}:") and re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)
    # the CA hash is kubeadm's: sha256 of the CA certificate's public key (DER), as openssl computes it
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(cluster.data / "pki" / "ca.crt")],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-r"], input=der, capture_output=True,
                            check=True).stdout.split()[0].decode()
    assert ca_hash == f"sha256:{digest}"

    wrong_hash = join(cluster, tmp_path, server, token, "sha256:" + "0" * 64, "w1")
    assert wrong_hash.returncode == 1
    assert f"has CA public key hash {ca_hash}, not --ca-hash sha256:{'0' * 64}: refusing to join" in wrong_hash.stderr
    wrong_token = join(cluster, tmp_path, server, token[:7] + "0" * 16, ca_hash, "w1")
    assert wrong_token.returncode == 1 and "the cluster refused the token" in wrong_token.stderr
    bad_form = join(cluster, tmp_path, server, "nope", ca_hash, "w1")
    assert bad_form.returncode == 1 and 'was not of the form' in bad_form.stderr
    assert not (tmp_path / "w1" / "creds").exists()  # nothing written by a refused join

    ok = join(cluster, tmp_path, server, token, ca_hash, "w1")
    assert ok.returncode == 0, ok.stderr
    creds = tmp_path / "w1" / "creds" / "node-w1.creds"
    assert creds.stat().st_mode & 0o777 == 0o600 and Credentials.load(creds).identity.token == "node:w1"
    ingress = tmp_path / "w1" / "creds" / "ingress.creds"  # its ingress controller's, from the same request
    assert ingress.stat().st_mode & 0o777 == 0o600 and Credentials.load(ingress).identity.token == "ingress"
    assert Credentials.load(ingress).user_public != Credentials.load(creds).user_public
    assert (tmp_path / "w1" / "creds" / "nats-ca.crt").read_bytes() == (cluster.data / "pki" / "ca.crt").read_bytes()
    csrs = cluster.kubectl("get", "csr").stdout
    assert re.search(rf"node-csr-\S+\s+\S+\s+k8n.io/bus-node\s+system:bootstrap:{token[:6]}\s+<none>\s+"
                     r"Approved,Issued", csrs), csrs

    used = join(cluster, tmp_path, server, token, ca_hash, "w2")  # the token is used up
    assert used.returncode == 1 and "the cluster refused the token" in used.stderr
    assert token[:6] not in k8n(cluster, "token", "list").stdout + k8n(cluster, "token", "list").stderr


def test_expired_and_deleted_tokens_cannot_enrol(cluster, tmp_path):
    server, _, ca_hash = JOIN.search(cluster.log()).groups()
    short = k8n(cluster, "token", "create", "--ttl", "1s")
    assert short.returncode == 0, short.stderr
    deleted = k8n(cluster, "token", "create", "--description", "to delete").stdout.strip()
    listed = k8n(cluster, "token", "list").stdout
    assert deleted in listed and "to delete" in listed and "system:bootstrappers:k8n:default-node-token" in listed
    assert k8n(cluster, "token", "delete", deleted[:6]).stdout.strip() == f'bootstrap token "{deleted[:6]}" deleted'
    time.sleep(1.5)
    for token in (short.stdout.strip(), deleted):
        r = join(cluster, tmp_path, server, token, ca_hash, "w3")
        assert r.returncode == 1 and "the cluster refused the token" in r.stderr, (token, r.stderr)
    # the token cleaner deletes the expired token's Secret, as kube-controller-manager's does
    eventually_sync(lambda: short.stdout.strip()[:6] not in k8n(cluster, "token", "list").stdout, 20,
                    "the expired token to be cleaned up")


def test_a_joined_node_connects_as_itself_until_its_node_is_deleted(cluster, tmp_path):
    line = k8n(cluster, "token", "create", "--print-join-command")
    assert line.returncode == 0, line.stderr
    server, token, ca_hash = JOIN.search(line.stdout).groups()
    assert join(cluster, tmp_path, server, token, ca_hash, "w4").returncode == 0
    creds = Credentials.load(tmp_path / "w4" / "creds" / "node-w4.creds")
    ingress = Credentials.load(tmp_path / "w4" / "creds" / "ingress.creds")
    url = cluster.info["server"]

    async def scenario():
        nc, inc = await connect(url, creds), await connect(url, ingress)
        assert nc.is_connected and inc.is_connected
        await nc.subscribe("k8n.node.w4.probe")  # its own node's subject: allowed
        await nc.flush()
        reader = await ApiClient.connect(url, creds=str(ingress.path))  # reads what the ingress controller reads
        try:
            assert {"k8n", "nginx"} <= {c["metadata"]["name"] for c in (await reader.list("ingressclasses"))[0]}
        finally:
            await reader.close()
        # even where nodes may renew their credentials themselves (create CSRs, as Kubernetes' system:node role
        # lets them), a node may not give itself an ingress controller's, which read every Secret
        cluster.kubectl("create", "clusterrolebinding", "w4-renews", "--clusterrole=system:node-bootstrapper",
                        "--user=system:node:w4")
        node = await ApiClient.connect(url, creds=str(creds.path))
        try:
            ask = nodecsr.request_object("w4", Key.generate(nkeys.PREFIX_BYTE_USER).public,
                                         Key.generate(nkeys.PREFIX_BYTE_USER).public)
            with pytest.raises(errors.ApiError) as refused:
                await node.create(ask)
            assert refused.value.code == 403
            assert 'user "system:node:w4" may not create certificatesigningrequests/ingressclient' in str(refused.value)
        finally:
            await node.close()
            cluster.kubectl("delete", "clusterrolebinding", "w4-renews")
        # the cluster registers nodes as their agents do; here the admin makes the Node, then deletes it
        cluster.kubectl("create", "-f", "-", input='{"apiVersion":"v1","kind":"Node","metadata":{"name":"w4"}}')
        cluster.kubectl("delete", "node", "w4")
        for _ in range(50):  # both connections are closed by the server...
            if not nc.is_connected and not inc.is_connected:
                break
            await asyncio.sleep(0.1)
        assert not nc.is_connected, "the revoked node stayed connected"
        assert not inc.is_connected, "the revoked node's ingress controller stayed connected"
        await nc.close()
        await inc.close()
        for c in (creds, ingress):  # ...and neither can come back
            with pytest.raises(Exception) as refused:
                await nats.connect(url, user_credentials=str(c.path), tls=tls_context(c),
                                   allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
            assert "authorization" in str(refused.value).lower() or "revoked" in str(refused.value).lower()

    asyncio.run(scenario())
    # its signed requests went with it; another node's stays
    left = cluster.kubectl("get", "csr", "-l", "k8n.io/node", "-o",
                           "jsonpath={.items[*].metadata.labels.k8n\\.io/node}").stdout.split()
    assert "w4" not in left and "w1" in left, left


def test_the_official_client_reads_the_signed_requests(cluster):
    """certificates.k8s.io/v1 as a typed client reads it (it refuses what kube-apiserver would never send)."""
    import base64

    from kubernetes import client, config

    api = client.CertificatesV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    signed = [c for c in api.list_certificate_signing_request().items
              if (c.metadata.labels or {}).get("k8n.io/node") == "w1"]
    assert len(signed) == 1, [c.metadata.name for c in signed]
    csr = api.read_certificate_signing_request(signed[0].metadata.name)
    assert csr.spec.signer_name == "k8n.io/bus-node" and csr.spec.usages == ["client auth"]
    assert csr.spec.username.startswith("system:bootstrap:") and "system:bootstrappers" in csr.spec.groups
    assert [(c.type, c.status, c.reason) for c in csr.status.conditions] == [("Approved", "True", "AutoApproved")]
    jwt = base64.b64decode(csr.status.certificate).decode()
    assert jwt.count(".") == 2  # the node's NATS user JWT, nothing secret
    assert csr.metadata.annotations["k8n.io/bus-user"].startswith("U")


def test_anonymous_callers_read_cluster_info_and_nothing_else(cluster):
    import ssl
    import urllib.error
    import urllib.request

    server = JOIN.search(cluster.log()).group(1)
    ctx = ssl.create_default_context(cafile=str(cluster.data / "pki" / "ca.crt"))

    def get(path: str) -> int:
        try:
            with urllib.request.urlopen(f"https://{server}{path}", context=ctx, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert get("/api/v1/namespaces/kube-public/configmaps/cluster-info") == 200
    for path in ("/api/v1/namespaces/kube-public/configmaps", "/api/v1/namespaces/kube-system/configmaps/cluster-info",
                 "/api/v1/namespaces/kube-system/secrets", "/apis/certificates.k8s.io/v1/certificatesigningrequests"):
        assert get(path) == 401, path


def test_only_a_bootstrap_token_or_the_node_itself_may_ask_for_its_credentials(cluster):
    csr = nodecsr.request_object("w9", Key.generate(nkeys.PREFIX_BYTE_USER).public)
    csr["metadata"] = {"name": "by-admin"}
    r = cluster.kubectl("create", "-f", "-", input=json.dumps(csr), check=False)
    assert r.returncode == 1
    assert ('certificatesigningrequests.certificates.k8s.io "by-admin" is forbidden: only a bootstrap token or node '
            'w9 itself may request bus credentials for node w9') in r.stderr
    assert "by-admin" not in cluster.kubectl("get", "csr").stdout
