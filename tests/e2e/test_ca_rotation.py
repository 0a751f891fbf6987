"""The cluster CA rotated in two steps on a running ``k8n up`` that speaks TLS (``--listen`` an address beyond
loopback: NATS and the gateway both serve certificates from the cluster CA), as an operator does it:

``k8n certs rotate-ca`` -> restart -> every client that took the bundle (the kubeconfig, the bus clients'
``nats-ca.crt``, the pods' ``kube-root-ca.crt``) works while the servers present certificates of the new CA, which a
client trusting only the former CA refuses -> ``k8n certs rotate-ca --finish`` -> restart -> the new CA alone."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from cryptography import x509

from tests.e2e.upcluster import K8N, KUBECTL, UpCluster
from tests.harness import address_on_lo
from tests.waiting import eventually_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def served_issuer(host: str, port: int) -> str:
    pem = ssl.get_server_certificate((host, port))
    return x509.load_pem_x509_certificate(pem.encode()).issuer.rfc4514_string()


def cas_in(pem: str | bytes) -> list[str]:
    data = pem.encode() if isinstance(pem, str) else pem
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(data)]


def test_the_cluster_ca_is_rotated_with_both_trusted_until_the_rotation_is_finished(tmp_path):
    with address_on_lo() as ip:
        c = UpCluster(tmp_path).start(agent=False, listen=ip)
        try:
            def k8n(*args: str) -> subprocess.CompletedProcess:
                return subprocess.run([K8N, *args], capture_output=True, text=True, env=c.env, timeout=60)

            def root_ca() -> str:
                return c.kubectl("get", "configmap", "kube-root-ca.crt", "-n", "default", "-o",
                                 r"jsonpath={.data.ca\.crt}").stdout

            port = int(c.info["gateway"].rsplit(":", 1)[1])
            assert served_issuer(ip, port) == "CN=k8n-ca"
            old_kubeconfig = tmp_path / "kubeconfig-before"
            shutil.copy(c.kubeconfig, old_kubeconfig)

            r = k8n("certs", "rotate-ca")
            assert r.returncode == 0, r.stderr
            assert "restart k8n now" in r.stdout and "rotate-ca --finish" in r.stdout
            bundle = (c.data / "pki" / "ca.crt").read_bytes()
            new_ca = cas_in(bundle)[0]
            assert cas_in(bundle) == [new_ca, "CN=k8n-ca"] and new_ca.startswith("CN=k8n-ca-")
            again = k8n("certs", "rotate-ca")
            assert again.returncode == 1 and "a CA rotation is in progress" in again.stderr
            # until the restart the servers present the former certificates: every client still works
            c.kubectl("get", "namespaces")
            assert k8n("get", "namespaces").returncode == 0

            c.stop()
            c.start(agent=False, listen=ip)
            port = int(c.info["gateway"].rsplit(":", 1)[1])
            assert served_issuer(ip, port) == new_ca
            assert cas_in((c.data / "creds" / "nats-ca.crt").read_bytes()) == [new_ca, "CN=k8n-ca"]
            c.kubectl("get", "namespaces")  # the kubeconfig written at the start carries the bundle
            got = k8n("get", "namespaces")  # the bus over TLS, checked with the bundle
            assert got.returncode == 0 and "kube-system" in got.stdout, got.stderr
            eventually_sync(lambda: cas_in(root_ca()) == [new_ca, "CN=k8n-ca"], 30,
                            "pods' kube-root-ca.crt to carry both CAs")
            stale = subprocess.run([KUBECTL, "--kubeconfig", str(old_kubeconfig), "--server",
                                    c.info["gateway"], "get", "namespaces"], capture_output=True, text=True,
                                   env=c.env, timeout=60)
            assert stale.returncode != 0 and "certificate" in stale.stderr, stale.stderr

            done = k8n("certs", "rotate-ca", "--finish")
            assert done.returncode == 0, done.stderr
            assert cas_in((c.data / "pki" / "ca.crt").read_bytes()) == [new_ca]
            assert not (c.data / "pki" / "ca.crt.previous").exists()
            c.stop()
            c.start(agent=False, listen=ip)
            c.kubectl("get", "namespaces")
            assert k8n("get", "namespaces").returncode == 0
            eventually_sync(lambda: cas_in(root_ca()) == [new_ca], 30, "kube-root-ca.crt to carry the new CA alone")
            none = k8n("certs", "rotate-ca", "--finish")
            assert none.returncode == 1 and "no CA rotation is in progress" in none.stderr
        finally:
            c.stop()
