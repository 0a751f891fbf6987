"""StatefulSets (and DaemonSet history) on ``k8n up`` with one node agent, driven by stock kubectl 1.32 and the
official Python client as users do: ordered pods with stable names, per-pod DNS through the headless Service, one
claim per ordinal kept across a pod's deletion, a partitioned rolling update, ``kubectl rollout
status|history|undo`` for a StatefulSet and a DaemonSet, ``kubectl scale``. The tests run in file order on one
cluster."""

from __future__ import annotations

import json
import re

import pytest
from kubernetes import client as kclient, config as kconfig

from tests.builders import IMAGE
from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "sts"
REV = "controller-revision-hash"


def manifest(tmp) -> str:
    pvs = "".join(f"""
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: sts-e2e-pv{i}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {tmp}/pv{i}}}""" for i in range(3))
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{port: 80, name: web}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: {NS}}}
spec:
  serviceName: web
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        command: ["sh", "-c", "hostname >> /data/who; exec sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: dnsclient, namespace: {NS}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: {IMAGE}, command: ["sleep", "3600"]}}
{pvs}
"""


DAEMONSET = f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agentd, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: agentd}}}}
  template:
    metadata: {{labels: {{app: agentd}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: main, image: {IMAGE}, command: ["sleep", "3600"]}}
"""


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sts")
    c = UpCluster(tmp)
    try:
        c.start(agent=True)
        c.kubectl("apply", "-f", "-", input=manifest(tmp))
        yield c
    finally:
        c.stop()


def get(k: UpCluster, *what: str) -> dict:
    return json.loads(k.kubectl("get", "-n", NS, *what, "-o", "json").stdout)


def ready_pod(k: UpCluster, name: str) -> dict | None:
    r = k.kubectl("get", "-n", NS, "pod", name, "-o", "json", check=False)
    if r.returncode:
        return None
    p = json.loads(r.stdout)
    ok = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    return p if ok and not p["metadata"].get("deletionTimestamp") else None


def ready_since(p: dict) -> str:
    return next(c["lastTransitionTime"] for c in p["status"]["conditions"] if c["type"] == "Ready")


def sh(k: UpCluster, pod: str, *cmd: str, check: bool = True) -> str:
    return k.kubectl("exec", "-n", NS, pod, "--", *cmd, check=check, timeout=30).stdout


def test_pods_start_in_order_with_their_own_claims_and_dns_names(k):
    p0 = eventually_sync(lambda: ready_pod(k, "web-0"), 60, "web-0 Ready")
    p1 = eventually_sync(lambda: ready_pod(k, "web-1"), 60, "web-1 Ready")
    assert p1["metadata"]["creationTimestamp"] >= ready_since(p0)  # web-1 only once web-0 was Ready
    assert p0["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-web-0"
    assert p0["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-0"
    claims = get(k, "pvc")["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == [
        ("data-web-0", "Bound"), ("data-web-1", "Bound")]
    out = k.kubectl("get", "-n", NS, "sts").stdout
    assert re.match(r"NAME\s+READY\s+AGE\nweb\s+2/2\s+", out), out
    eventually_sync(lambda: ready_pod(k, "dnsclient"), 60, "the DNS client pod Ready")

    def resolves():
        out = sh(k, "dnsclient", "nslookup", f"web-0.web.{NS}.svc.cluster.local", check=False)
        return p0["status"]["podIP"] in re.findall(r"^Address: ([0-9.]+)$", out, re.M)

    eventually_sync(resolves, 30, "web-0.web resolving to web-0's IP")


def test_a_deleted_pod_comes_back_with_its_name_and_its_claim(k):
    claim_uid = get(k, "pvc", "data-web-0")["metadata"]["uid"]
    old = get(k, "pod", "web-0")["metadata"]["uid"]
    k.kubectl("delete", "-n", NS, "pod", "web-0")
    p = eventually_sync(lambda: (p := ready_pod(k, "web-0")) and p["metadata"]["uid"] != old and p, 60,
                        "web-0 back")
    assert p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-web-0"
    assert get(k, "pvc", "data-web-0")["metadata"]["uid"] == claim_uid
    assert sh(k, "web-0", "cat", "/data/who").split() == ["web-0", "web-0"]  # the same volume, written twice


def test_partitioned_rolling_update_then_rollout_status_history_and_undo(k):
    k.kubectl("patch", "-n", NS, "sts", "web", "-p", json.dumps({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"metadata": {"annotations": {"rev": "2"}}}}}))
    out = k.kubectl("rollout", "status", "-n", NS, "sts/web", "--timeout=90s", timeout=100).stdout
    assert "partitioned roll out complete: 1 new pods have been updated" in out, out
    st = get(k, "sts", "web")["status"]
    assert st["currentRevision"] != st["updateRevision"]
    labels = {n: get(k, "pod", n)["metadata"]["labels"][REV] for n in ("web-0", "web-1")}
    assert labels == {"web-0": st["currentRevision"], "web-1": st["updateRevision"]}

    k.kubectl("patch", "-n", NS, "sts", "web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    out = k.kubectl("rollout", "status", "-n", NS, "sts/web", "--timeout=90s", timeout=100).stdout
    assert "partitioned roll out complete: 2 new pods have been updated" in out, out
    eventually_sync(lambda: (s := get(k, "sts", "web")["status"])["currentRevision"] == s["updateRevision"], 30,
                    "currentRevision = updateRevision")

    out = k.kubectl("rollout", "history", "-n", NS, "sts/web").stdout
    assert re.search(r"^1\s", out, re.M) and re.search(r"^2\s", out, re.M), out
    out = k.kubectl("rollout", "history", "-n", NS, "sts/web", "--revision=2").stdout  # kubectl applies its patch
    assert "rev: 2" in out and IMAGE in out, out
    out = k.kubectl("describe", "-n", NS, "sts", "web").stdout
    assert re.search(r"Pods Status:\s+2 Running", out), out
    revs = k.kubectl("get", "-n", NS, "controllerrevisions").stdout
    assert re.match(r"NAME\s+CONTROLLER\s+REVISION\s+AGE\n", revs) and "statefulset.apps/web" in revs, revs
    assert "rolled back" in k.kubectl("rollout", "undo", "-n", NS, "sts/web").stdout
    assert "rev" not in (get(k, "sts", "web")["spec"]["template"]["metadata"].get("annotations") or {})

    def back():
        pods = [ready_pod(k, n) for n in ("web-0", "web-1")]  # None while a pod is being replaced
        st = get(k, "sts", "web")["status"]
        return (all(p and not (p["metadata"].get("annotations") or {}).get("rev") and p["metadata"]["labels"][REV]
                    == st["updateRevision"] for p in pods) and st.get("readyReplicas") == 2)

    eventually_sync(back, 90, "both pods back on the first template")
    out = k.kubectl("rollout", "history", "-n", NS, "sts/web").stdout
    assert re.search(r"^2\s", out, re.M) and re.search(r"^3\s", out, re.M) and not re.search(r"^1\s", out, re.M), out


def test_kubectl_scale_adds_the_next_ordinal_with_its_claim(k):
    k.kubectl("scale", "-n", NS, "sts/web", "--replicas=3")
    eventually_sync(lambda: ready_pod(k, "web-2"), 60, "web-2 Ready")
    assert get(k, "pvc", "data-web-2")["status"]["phase"] == "Bound"
    eventually_sync(lambda: get(k, "sts", "web")["status"]["readyReplicas"] == 3, 20, "3 ready replicas")


def test_daemonset_rollout_history_and_undo(k):
    k.kubectl("apply", "-f", "-", input=DAEMONSET)
    k.kubectl("rollout", "status", "-n", NS, "ds/agentd", "--timeout=60s", timeout=70)
    k.kubectl("patch", "-n", NS, "ds", "agentd", "-p", '{"spec":{"template":{"metadata":{"annotations":{"v":"2"}}}}}')
    k.kubectl("rollout", "status", "-n", NS, "ds/agentd", "--timeout=60s", timeout=70)
    out = k.kubectl("rollout", "history", "-n", NS, "ds/agentd").stdout
    assert re.search(r"^1\s", out, re.M) and re.search(r"^2\s", out, re.M), out
    pod = get(k, "pods", "-l", "app=agentd")["items"][0]
    revs = get(k, "controllerrevisions", "-l", "app=agentd")["items"]
    assert {r["metadata"]["name"] for r in revs} >= {f"agentd-{pod['metadata']['labels'][REV]}"}
    assert "rolled back" in k.kubectl("rollout", "undo", "-n", NS, "ds/agentd").stdout
    k.kubectl("rollout", "status", "-n", NS, "ds/agentd", "--timeout=60s", timeout=70)

    def undone():
        pods = [p for p in get(k, "pods", "-l", "app=agentd")["items"] if not p["metadata"].get("deletionTimestamp")]
        return len(pods) == 1 and not (pods[0]["metadata"].get("annotations") or {}).get("v")

    eventually_sync(undone, 60, "the daemon pod back on the first template")


def test_python_client_creates_and_reads_a_statefulset(k):
    api = kclient.AppsV1Api(kconfig.new_client_from_config(config_file=str(k.kubeconfig)))
    body = kclient.V1StatefulSet(
        metadata=kclient.V1ObjectMeta(name="py"),
        spec=kclient.V1StatefulSetSpec(
            replicas=0, service_name="py", selector=kclient.V1LabelSelector(match_labels={"app": "py"}),
            template=kclient.V1PodTemplateSpec(
                metadata=kclient.V1ObjectMeta(labels={"app": "py"}),
                spec=kclient.V1PodSpec(containers=[kclient.V1Container(name="c", image=IMAGE)]))))
    made = api.create_namespaced_stateful_set(NS, body)
    assert made.spec.pod_management_policy == "OrderedReady" and made.spec.update_strategy.type == "RollingUpdate"
    assert made.status.replicas == 0
    read = api.read_namespaced_stateful_set("py", NS)
    assert read.spec.persistent_volume_claim_retention_policy.when_deleted == "Retain"
    eventually_sync(lambda: api.read_namespaced_stateful_set("py", NS).status.update_revision, 20,
                    "the controller recording the update revision")
    revs = api.list_namespaced_controller_revision(NS, label_selector="app=py").items
    assert [r.revision for r in revs] == [1] and revs[0].metadata.owner_references[0].name == "py"
