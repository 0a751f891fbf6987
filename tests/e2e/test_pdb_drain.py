"""PodDisruptionBudgets as users meet them, against ``k8n up`` with one node agent: a Deployment of two pods under
a budget of ``minAvailable: 2``; ``kubectl get pdb`` shows kubectl's columns; the official Python client reads the
budget (PolicyV1Api) and its eviction (CoreV1Api) is refused with a 429; ``kubectl drain`` waits while the budget
forbids (kubectl retries the evictions answered 429 every 5 s) and finishes once the budget is relaxed."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.builders import container, deployment
from tests.e2e.upcluster import KUBECTL, UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync, stays_sync

pytestmark = list(NEEDS_DOCKER)

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
WEB = deployment("web", ns=None, replicas=2, grace=1, containers=[container("web", "sleep 3600")],
                 pod={"volumes": [{"name": "scratch", "emptyDir": {}}]})
PDB = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
       "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}


def pods(c: UpCluster) -> list[dict]:
    return json.loads(c.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]


def pdb_status(c: UpCluster) -> dict:
    return json.loads(c.kubectl("get", "pdb", "web", "-o", "json").stdout).get("status") or {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("pdb"))
    try:
        c.start()
        c.kubectl("apply", "-f", "-", input=json.dumps(WEB))
        c.kubectl("apply", "-f", "-", input=json.dumps(PDB))
        eventually_sync(lambda: (lambda ps: len(ps) == 2 and all(
            any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions") or [])
            for p in ps))(pods(c)), 60, "2 web pods Ready")
        eventually_sync(lambda: pdb_status(c).get("currentHealthy") == 2, 20, "the budget counting 2 healthy pods")
        yield c
    finally:
        c.stop()


def test_kubectl_get_pdb_columns(cluster):
    out = cluster.kubectl("get", "pdb").stdout.splitlines()
    assert re.split(r"\s{2,}", out[0].strip()) == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS",
                                                   "AGE"]
    assert re.split(r"\s{2,}", out[1].strip())[:4] == ["web", "2", "N/A", "0"]
    st = pdb_status(cluster)
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == (2, 2, 2, 0)
    assert [(c["type"], c["status"], c["reason"]) for c in st["conditions"]] == [
        ("DisruptionAllowed", "False", "InsufficientPods")]


def test_python_client_reads_the_budget_and_is_refused_the_eviction(cluster):
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        budget = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("web", "default")
        assert isinstance(budget, client.V1PodDisruptionBudget) and budget.spec.min_available == 2
        st = budget.status
        assert (st.expected_pods, st.desired_healthy, st.current_healthy, st.disruptions_allowed) == (2, 2, 2, 0)
        assert st.conditions[0].type == "DisruptionAllowed" and st.conditions[0].reason == "InsufficientPods"
        name = pods(cluster)[0]["metadata"]["name"]
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="default"))
        with pytest.raises(ApiException) as e:
            client.CoreV1Api(api).create_namespaced_pod_eviction(name, "default", body)
        assert e.value.status == 429
        status = json.loads(e.value.body)
        assert (status["reason"], status["message"]) == ("TooManyRequests", VIOLATION)
        assert status["details"]["causes"] == [{"reason": "DisruptionBudget", "message":
                                                "The disruption budget web needs 2 healthy pods and has 2 currently"}]
    finally:
        api.close()
    assert not any(p["metadata"].get("deletionTimestamp") for p in pods(cluster))


def test_drain_waits_for_the_budget_and_finishes_once_it_allows(cluster):
    before = {p["metadata"]["name"] for p in pods(cluster)}
    err = open(cluster.tmp / "drain.err", "w+")
    drain = subprocess.Popen([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "drain", cluster.node,
                              "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "120s"],
                             stdout=subprocess.PIPE, stderr=err, text=True, env=cluster.env)
    try:
        eventually_sync(lambda: VIOLATION in (cluster.tmp / "drain.err").read_text(), 20,
                        "kubectl drain told the eviction is refused")
        # kubectl retries every 5 s: through at least one retry, nothing is evicted and drain keeps waiting
        stays_sync(lambda: drain.poll() is None and not any(p["metadata"].get("deletionTimestamp")
                                                             for p in pods(cluster)), 6, "drain blocked")
        text = (cluster.tmp / "drain.err").read_text()
        assert text.count("(will retry after 5s)") >= 2, text

        cluster.kubectl("patch", "pdb", "web", "--type", "merge", "-p", '{"spec": {"minAvailable": 0}}')
        out, _ = drain.communicate(timeout=60)
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.wait()
        err.close()
    assert drain.returncode == 0, (cluster.tmp / "drain.err").read_text()
    for name in before:
        assert f"pod/{name} evicted" in out, out
    assert f"node/{cluster.node} drained" in out
    assert pdb_status(cluster)["desiredHealthy"] == 0
