"""Two of three nats-servers down (issue 13): a real ``k8n up --nats-servers 3 --replicas 2`` with a node agent; two
servers are stopped with SIGSTOP (a machine that hangs: its connections stay open, and ``k8n up`` does not restart a
stopped process). Writes then fail fast with a 503 that says the cluster lost its quorum, the agent keeps its pods
running, and after SIGCONT everything resumes with nothing restarted: writes succeed and a Deployment scaled as the
servers stopped converges."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.builders import IMAGE
from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = [*NEEDS_DOCKER, pytest.mark.timeout(420)]

DEPLOY = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: web, image: "{IMAGE}", command: ["sleep", "3600"]}}
"""


@pytest.fixture
def cluster(tmp_path):
    c = UpCluster(tmp_path)
    stopped: list[int] = []
    c.stopped = stopped
    try:
        c.start(flags=("--nats-servers", "3", "--replicas", "2"))
        logs = c.data / "logs"
        eventually_sync(lambda: all("apiserver serving" in (logs / f"apiserver-{i}.log").read_text()
                                    for i in (1, 2)), 60, "both API servers serving")
        yield c
    finally:
        for pid in stopped:  # never leave a stopped server behind (k8n up could not stop it)
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        c.stop()


def running_containers(c: UpCluster) -> set[str]:
    import subprocess

    return set(subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label=io.k8n.node={c.node}"],
                              capture_output=True, text=True).stdout.split())


def create_configmap(c: UpCluster, name: str):
    """``kubectl create -f -`` (its error names the Status' reason, as ``kubectl create configmap``'s does not)."""
    return c.kubectl("create", "-f", "-", "--request-timeout=8s", check=False, timeout=20,
                     input=f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\n")


def available(c: UpCluster) -> str:
    return c.kubectl("get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}", check=False,
                     timeout=10).stdout


def test_quorum_loss_fails_fast_keeps_pods_and_resumes(cluster):
    c = cluster
    c.kubectl("apply", "-f", "-", input=DEPLOY)
    eventually_sync(lambda: available(c) == "1", 90, "deployment web available")
    before = running_containers(c)
    assert before, "the pod's containers run"

    c.kubectl("scale", "deploy/web", "--replicas", "2")
    pids = [int((c.data / "logs" / f"nats-{n}.pid").read_text()) for n in (2, 3)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
        c.stopped.append(pid)
    stopped_at = time.monotonic()

    answers: list[tuple[float, str]] = []

    def refused_fast() -> bool:
        t = time.monotonic()
        r = create_configmap(c, f"during-{len(answers)}")
        answers.append((time.monotonic() - t, r.stderr.strip()))
        print(f"{time.monotonic() - stopped_at:5.1f}s into the outage: {answers[-1][0]:.2f}s, {answers[-1][1][:150]}")
        return r.returncode != 0 and "lost its quorum" in r.stderr and answers[-1][0] < 2.0

    eventually_sync(refused_fast, 120, lambda: f"a create refused fast for the lost quorum; answers: {answers[-3:]}")
    took, err = answers[-1]
    assert "Error from server (ServiceUnavailable)" in err, err
    print(f"refused {took:.2f}s after it was sent, {time.monotonic() - stopped_at:.1f}s into the outage: {err}")
    again = time.monotonic()
    r = create_configmap(c, "during-again")
    assert r.returncode != 0 and "lost its quorum" in r.stderr and time.monotonic() - again < 2.0, r.stderr

    time.sleep(5)  # the agent keeps its pods while the bus cannot take its writes
    assert before <= running_containers(c), "the agent stopped pods while the NATS cluster had no quorum"

    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    c.stopped.clear()
    resumed_at = time.monotonic()
    eventually_sync(lambda: create_configmap(c, "after").returncode == 0, 90, "writes accepted again")
    print(f"writes accepted {time.monotonic() - resumed_at:.1f}s after the servers continued")
    eventually_sync(lambda: available(c) == "2", 120, "the Deployment scaled during the outage converges")
    assert before <= running_containers(c), "the first pod's container was restarted or stopped"
    assert "lost its quorum" not in c.kubectl("get", "configmap", "after").stderr
