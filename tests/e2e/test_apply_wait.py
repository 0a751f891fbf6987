"""``k8n apply --wait`` against ``k8n up`` with a node agent, as a user runs it: the real ``k8n`` binary, its exit
code and what it prints. It returns once the Deployment rolled out and the Service has a ready endpoint (checked
with kubectl right after), and fails naming the object and the reason for a Job that fails and for a rollout that
cannot finish in time."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from tests import builders
from tests.builders import container
from tests.e2e.upcluster import K8N, UpCluster
from tests.harness import NEEDS_DOCKER

pytestmark = NEEDS_DOCKER

NS = "wait"


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("applywait"))
    try:
        c.start(agent=True)
        c.kubectl("create", "namespace", NS)
        yield c
        c.kubectl("delete", "deployments,jobs", "--all", "-n", NS, "--wait=false")  # or their pods come back
    finally:
        c.stop()


def apply_wait(k: UpCluster, objs: list[dict], *flags: str) -> tuple[subprocess.CompletedProcess, float]:
    path = k.tmp / f"m{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump_all(objs))
    start = time.monotonic()
    r = subprocess.run([K8N, "apply", "-f", str(path), "--wait", *flags], capture_output=True, text=True, env=k.env,
                       timeout=120)
    return r, time.monotonic() - start


WEB = [builders.deployment("web", NS, replicas=2, grace=1, containers=[container(
           "web", "mkdir -p /w && echo ok > /w/index.html && exec httpd -f -p 8080 -h /w",
           readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1})]),
       builders.service("web", NS, selector={"app": "web"})]


def test_wait_returns_once_the_rollout_is_done_and_the_service_has_an_endpoint(k):
    r, took = apply_wait(k, WEB, "--timeout", "90s")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert out[:2] == ["deployment.apps/web created", "service/web created"], out
    assert any(line.startswith('deployment.apps/web: deployment "web" successfully rolled out') for line in out), out
    assert any(line.startswith("service/web: ") and "ready endpoint" in line for line in out), out
    assert out[-1].startswith("2 objects ready after "), out
    assert "\x1b" not in r.stdout  # not a terminal: plain lines
    # ready means ready: at once, what kubectl shows
    d = json.loads(k.kubectl("get", "deploy", "web", "-n", NS, "-o", "json").stdout)
    assert d["status"].get("availableReplicas") == 2 and d["status"].get("updatedReplicas") == 2, d["status"]
    ep = json.loads(k.kubectl("get", "endpoints", "web", "-n", NS, "-o", "json").stdout)
    assert sum(len(s.get("addresses") or []) for s in ep.get("subsets") or []) >= 1, ep
    print(f"apply --wait of a Deployment (2 replicas) and its Service: {took:.1f}s")

    again, _ = apply_wait(k, WEB)  # nothing changed: ready at once
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[:2] == ["deployment.apps/web unchanged", "service/web unchanged"]


def test_a_failing_job_fails_the_wait_with_its_reason(k):
    job = builders.job("fails", NS, script="exit 3", backoffLimit=0)
    r, _ = apply_wait(k, [job], "--timeout", "90s")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "job.batch/fails created" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == ("error: job.batch/fails failed: BackoffLimitExceeded: Job has "
                                                 "reached the specified backoff limit"), r.stderr


def test_a_rollout_that_cannot_finish_times_out_naming_the_object_and_why(k):
    stuck = builders.deployment("stuck", NS, replicas=1, containers=[container("c", image="k8n/not-here:1")])
    r, took = apply_wait(k, [stuck], "--timeout", "5s")
    assert r.returncode == 1, r.stdout + r.stderr
    assert 5 <= took < 20, took
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("error: timed out after 5.0s waiting for deployment.apps/stuck: "), err
    assert "0 of 1 updated replicas are available" in err and "ErrImageNeverPull" in err, err
