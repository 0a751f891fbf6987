"""ResourceQuota, LimitRange and PriorityClass through stock kubectl and the official Python client against
``k8n up``, as a user drives them: ``kubectl create quota`` (kubectl's protobuf body), ``get quota`` and ``describe
quota`` showing used/hard, a pod over the quota refused with Kubernetes' message, ``create priorityclass``, a
LimitRange's defaults on a created pod, and the Python client reading the quota's status.

One ``k8n up`` without a node agent serves the module: quota counts pods whether or not they run."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from tests.builders import IMAGE
from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "qt"


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("quota"))
    try:
        c.start(agent=False)
        c.kubectl("create", "namespace", NS)
        yield c
    finally:
        c.stop()


def pod_yaml(name: str, cpu: str = "100m", **spec: str) -> str:
    extra = "".join(f"  {k}: {v}\n" for k, v in spec.items())
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NS}
spec:
{extra}  containers:
  - name: app
    image: {IMAGE}
    command: ["sleep", "3600"]
    resources:
      requests:
        cpu: "{cpu}"
"""


def table(out: str) -> list[list[str]]:
    return [ln.split() for ln in out.strip().splitlines()]


def test_create_quota_get_describe_and_a_refused_pod(k):
    assert k.kubectl("create", "quota", "q", "--hard=pods=2,requests.cpu=1", "-n", NS).stdout.strip() == \
        "resourcequota/q created"
    eventually_sync(lambda: k.kubectl("get", "quota", "q", "-n", NS, "-o", "jsonpath={.status.used.pods}").stdout
                    == "0", 30, "the controller to compute the quota's usage")
    for name in ("p1", "p2"):
        k.kubectl("apply", "-f", "-", input=pod_yaml(name))
    r = k.kubectl("apply", "-f", "-", input=pod_yaml("p3"), check=False)
    assert r.returncode == 1
    assert ('pods "p3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
            in r.stderr), r.stderr

    rows = table(k.kubectl("get", "quota", "-n", NS).stdout)
    assert rows[0] == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert rows[1][0] == "q" and " ".join(rows[1][2:]) == "pods: 2/2, requests.cpu: 200m/1"
    described = table(k.kubectl("describe", "quota", "q", "-n", NS).stdout)
    assert ["pods", "2", "2"] in described and ["requests.cpu", "200m", "1"] in described

    config.load_kube_config(config_file=str(k.kubeconfig))
    rq = client.CoreV1Api().read_namespaced_resource_quota("q", NS)
    assert rq.status.hard == {"pods": "2", "requests.cpu": "1"}
    assert rq.status.used == {"pods": "2", "requests.cpu": "200m"}

    k.kubectl("delete", "pod", "p1", "-n", NS, "--grace-period=0", "--force")
    eventually_sync(lambda: k.kubectl("apply", "-f", "-", input=pod_yaml("p3"), check=False).returncode == 0, 30,
                    "the deleted pod's share released, so p3 fits")


def test_priorityclass_and_limitrange_defaults(k):
    assert k.kubectl("create", "priorityclass", "high", "--value=1000", "--description=important").stdout.strip() \
        == "priorityclass.scheduling.k8s.io/high created"
    rows = {r[0]: r for r in table(k.kubectl("get", "pc").stdout)}
    assert rows["NAME"] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    assert rows["high"][1:3] == ["1000", "false"] and rows["high"][4] == "PreemptLowerPriority"
    assert rows["system-node-critical"][1] == "2000001000"

    k.kubectl("apply", "-f", "-", input=f"""apiVersion: v1
kind: LimitRange
metadata:
  name: defaults
  namespace: {NS}
spec:
  limits:
  - type: Container
    default: {{memory: 64Mi}}
    max: {{cpu: "1"}}
""")
    assert table(k.kubectl("get", "limits", "-n", NS).stdout)[0] == ["NAME", "CREATED", "AT"]
    k.kubectl("delete", "quota", "q", "-n", NS)
    k.kubectl("apply", "-f", "-", input=pod_yaml("vip", priorityClassName="high"))
    got = k.kubectl("get", "pod", "vip", "-n", NS, "-o",
                    "jsonpath={.spec.priority} {.spec.containers[0].resources.limits}").stdout
    assert got == '1000 {"cpu":"1","memory":"64Mi"}'
    r = k.kubectl("apply", "-f", "-", input=pod_yaml("greedy", cpu="2"), check=False)
    assert r.returncode == 1  # its defaulted limit (the max) is below its request
    assert ('Pod "greedy" is invalid: spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less '
            'than or equal to cpu limit of 1') in r.stderr, r.stderr
