"""The resource metrics API (metrics.k8s.io/v1beta1) against ``k8n up`` with a real agent and a running pod, as users
read it: ``kubectl top nodes|pods [-A] [--containers]``, the official Python client's CustomObjectsApi, and RBAC
(a ServiceAccount without rights is refused; bound to ``view`` it reads its namespace's pod metrics)."""

from __future__ import annotations

import json
import re

import pytest
from kubernetes import client, config

from tests.builders import container, pod
from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "mt"
ROBOT = f"system:serviceaccount:{NS}:robot"


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("metrics"))
    try:
        c.start(agent=True)  # its agent publishes metrics every second
        c.kubectl("create", "namespace", NS)
        c.kubectl("create", "-f", "-", input=json.dumps(pod("top", NS, containers=[container("main", "sleep 3600")],
                                                              labels={"app": "top"}, grace=1)))
        c.kubectl("wait", "--for=condition=Ready", "pod/top", "-n", NS, "--timeout=60s", timeout=90)
        yield c
    finally:
        c.stop()


def top(k: UpCluster, *args: str) -> list[list[str]]:
    """The rows (header first) of ``kubectl top ARGS`` once it answers (a new pod has metrics after two samples)."""
    def answered():
        r = k.kubectl("top", *args, check=False)
        return r.stdout if r.returncode == 0 and len(r.stdout.strip().splitlines()) > 1 else None

    out = eventually_sync(answered, 30, f"kubectl top {' '.join(args)}")
    return [line.split() for line in out.strip().splitlines()]


CPU, MEM, PCT = re.compile(r"\d+m"), re.compile(r"\d+Mi"), re.compile(r"\d+%")


def test_kubectl_top_nodes(k):
    rows = top(k, "nodes")
    assert rows[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    row = next(r for r in rows[1:] if r[0] == k.node)
    assert CPU.fullmatch(row[1]) and PCT.fullmatch(row[2]) and MEM.fullmatch(row[3]) and PCT.fullmatch(row[4]), row
    assert int(row[3][:-2]) > 0  # the host's memory in use


def test_kubectl_top_pods_in_a_namespace_everywhere_and_by_container(k):
    rows = top(k, "pods", "-n", NS)
    assert rows[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert rows[1][0] == "top" and CPU.fullmatch(rows[1][1]) and MEM.fullmatch(rows[1][2]), rows
    rows = top(k, "pods", "-A")
    assert rows[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert [NS, "top"] in [r[:2] for r in rows[1:]]
    rows = top(k, "pod", "top", "-n", NS, "--containers")
    assert rows[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"] and rows[1][:2] == ["top", "main"], rows
    rows = top(k, "pods", "-n", NS, "-l", "app=top")
    assert [r[0] for r in rows[1:]] == ["top"]


def test_the_python_clients_custom_objects_api(k):
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(k.kubeconfig)))
    nodes = api.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
    assert nodes["kind"] == "NodeMetricsList"
    mine = next(n for n in nodes["items"] if n["metadata"]["name"] == k.node)
    assert mine["usage"]["cpu"].endswith("n") and mine["usage"]["memory"].endswith("Ki") and mine["window"]
    pods = api.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods")
    assert [(p["metadata"]["name"], [c["name"] for c in p["containers"]]) for p in pods["items"]] == [
        ("top", ["main"])]
    one = api.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods", "top")
    assert one["kind"] == "PodMetrics" and one["metadata"]["labels"] == {"app": "top"}


def test_a_serviceaccount_needs_rbac_to_read_metrics(k):
    k.kubectl("create", "serviceaccount", "robot", "-n", NS)
    r = k.kubectl("--as", ROBOT, "top", "pods", "-n", NS, check=False)
    assert r.returncode == 1 and r.stderr.strip() == (
        f'Error from server (Forbidden): pods.metrics.k8s.io is forbidden: User "{ROBOT}" cannot list resource '
        f'"pods" in API group "metrics.k8s.io" in the namespace "{NS}"')
    k.kubectl("create", "rolebinding", "robot-view", "-n", NS, "--clusterrole", "view", "--serviceaccount",
              f"{NS}:robot")
    rows = top(k, "--as", ROBOT, "pods", "-n", NS)  # kubectl's global flag goes anywhere
    assert rows[1][0] == "top"
    r = k.kubectl("--as", ROBOT, "top", "nodes", check=False)  # view in a namespace reads no node's metrics
    assert r.returncode == 1 and "Forbidden" in r.stderr
