"""A second control-plane machine joins, kubeadm's way (``--control-plane --certificate-key``): on a rig of two
machines, ``cp1`` runs ``k8n up --nats-servers 3``; ``k8n token create --control-plane`` uploads the control plane's
keys sealed with a new key and prints the join command; ``cp2`` runs it and becomes a member: its NATS server joins
the cluster's routes, its API server replica, standby controllers, gateway, agent and ingress controller run, and the
token and the sealed keys are gone afterwards."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.harness import NEEDS_DOCKER
from tests.rig import K8N, Rig
from tests.waiting import eventually_sync

JOIN_LINE = re.compile(r"k8n join (\S+) --token (\S+) --ca-hash (\S+)")

pytestmark = NEEDS_DOCKER


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp("cpjoin"))
    try:
        yield r
    finally:
        left = r.cleanup()
        assert not left, left


def test_a_machine_joins_the_control_plane(rig):
    lan = rig.lan(host_address=True)
    cp1, cp2 = rig.machine("cp1", lan), rig.machine("cp2", lan)
    cp = rig.start_control_plane(cp1, "--nats-servers", "3", "--no-agent")
    env = {"K8N_DATA_DIR": str(cp.data)}

    def k8n(*args: str) -> subprocess.CompletedProcess:
        return cp1.run([K8N, *args], env=env)

    made = k8n("token", "create", "--control-plane")
    assert made.returncode == 0, made.stderr
    line = made.stdout.strip()
    m = re.fullmatch(r"k8n join (\S+) --token (\S+) --ca-hash (\S+) --control-plane --certificate-key ([0-9a-f]{64})",
                     line)
    assert m, line
    token = m.group(2)
    sealed = k8n("get", "secret", "k8n-control-plane-certs", "-n", "kube-system", "-o", "json")
    assert sealed.returncode == 0 and b"BEGIN" not in sealed.stdout.encode()  # no key in the clear
    assert json.loads(sealed.stdout)["metadata"]["ownerReferences"][0]["name"] == f"bootstrap-token-{token[:6]}"

    data2 = cp2.dir / "k8n"
    # a worker's token may not read the control plane's keys, even with the right certificate key
    plain = JOIN_LINE.fullmatch(k8n("token", "create", "--print-join-command").stdout.strip())
    assert plain, "no join command"
    refused = cp2.run([K8N, "join", plain.group(1), "--token", plain.group(2), "--ca-hash", plain.group(3),
                       "--control-plane", "--certificate-key", m.group(4), "--data-dir", str(data2)])
    assert refused.returncode == 1 and "this token may not fetch the control plane's keys" in refused.stderr, \
        refused.stderr
    assert not (data2 / "pki").exists()
    wrong = cp2.run([K8N, *line.split()[1:-1], "0" * 64, "--data-dir", str(data2)])
    assert wrong.returncode == 1 and "the certificate key does not open" in wrong.stderr, wrong.stderr

    log = cp2.dir / "join.log"
    proc = cp2.popen([K8N, *line.split()[1:], "--data-dir", str(data2)], log=log)
    eventually_sync(lambda: "joined the control plane" in log.read_text() or proc.poll() is not None, 120,
                    "cp2 to join the control plane")
    assert proc.poll() is None, log.read_text()
    assert (data2 / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (data2 / "nats-auth" / "account-signing.nk").stat().st_mode & 0o777 == 0o600

    # its NATS server is a fourth member of the cluster, and cluster-info tells the next machines so
    info = json.loads(k8n("get", "configmap", "cluster-info", "-n", "kube-public", "-o", "json").stdout)["data"]
    assert f"tls://{cp2.ip}:4222" in info["nats-servers"].split(",")
    assert len(info["nats-routes"].split(",")) == 4
    # ... serving JetStream: the admin reads the cluster's objects through cp2's NATS server alone
    through = k8n("get", "namespace", "kube-system", "-o", "name", "--server", f"tls://{cp2.ip}:4222")
    assert through.returncode == 0 and through.stdout.strip() == "namespace/kube-system", through.stderr

    # the node, and the API through cp2's own gateway (the admin's kubeconfig pointed at cp2)
    nodes = eventually_sync(lambda: [n.split()[0] for n in k8n("get", "nodes").stdout.splitlines()[1:]
                                     if " Ready " in n], 60, "cp2's node Ready")
    assert nodes == [cp2.hostname]
    kubeconfig = cp.kubeconfig.read_text().replace(cp.info["gateway"], f"https://{cp2.ip}:6443")
    (cp2.dir / "kubeconfig").write_text(kubeconfig)
    via_cp2 = subprocess.run(["kubectl", "--kubeconfig", str(cp2.dir / "kubeconfig"), "get", "nodes"],
                             capture_output=True, text=True, timeout=30)
    assert via_cp2.returncode == 0 and cp2.name in via_cp2.stdout, via_cp2.stderr
    # its ingress controller serves too: its presence Lease names cp2's address
    lease = f"k8n-ingress-{cp2.hostname}"
    eventually_sync(lambda: cp2.ip in k8n("get", "lease", lease, "-n", "kube-system", "-o", "json").stdout, 60,
                    lambda: f"cp2's ingress controller's Lease {lease}\n{(data2 / 'logs' / 'ingress.log').read_text()}")

    # the token is used up, and the sealed keys it owned went with it (garbage collector)
    assert token[:6] not in k8n("token", "list").stdout
    eventually_sync(lambda: k8n("get", "secret", "k8n-control-plane-certs", "-n", "kube-system").returncode != 0,
                    30, "the sealed control-plane keys to be deleted with their token")
    rig.stop(proc)
