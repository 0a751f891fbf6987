"""CustomResourceDefinitions as users of stock kubectl 1.32, the official Python client and kopf see them, against
``k8n up``: a definition applied is served at once (discovery updates without a restart, short names, printer
columns, `kubectl scale`, an HPA's minimum through the scale subresource), the schema's errors are kubectl's, and an
operator written with kopf reconciles a custom resource (status, an owned ConfigMap, its finalizer on delete)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.e2e.upcluster import UpCluster
from tests.waiting import eventually_sync

NS = "crd-e2e"
KOPF_NS = "crd-kopf"
GROUP = "stable.example.com"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"crontabs.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                    "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                    "image": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 0, "default": 1},
                    "selector": {"type": "string"}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas",
                                                     "labelSelectorPath": ".spec.selector"}},
            "additionalPrinterColumns": [
                {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}]}}


def crontab(name: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": {"name": name, "namespace": NS},
            "spec": {"cronSpec": "* * * * */5", "image": "my-cron-image", **spec}}


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("crds"))
    try:
        c.start(agent=False)  # objects only
        c.kubectl("create", "namespace", NS)
        config.load_kube_config(config_file=str(c.kubeconfig))
        yield c
    finally:
        c.stop()


def apply(k: UpCluster, obj: dict, check: bool = True) -> subprocess.CompletedProcess:
    return k.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=check)


def test_a_definition_is_served_at_once_with_its_columns_and_short_name(k):
    k.kubectl("get", "pods", "-n", NS)  # kubectl's discovery cache is warm before the definition exists
    apply(k, CRD)
    k.kubectl("wait", "--for", "condition=established", f"crd/crontabs.{GROUP}", "--timeout=20s")
    apply(k, crontab("my-new-cron-object", junk="pruned"))
    out = k.kubectl("get", "crontabs", "-n", NS).stdout.splitlines()
    assert out[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert out[1].split()[:6] == ["my-new-cron-object", "*", "*", "*", "*", "*/5"] and out[1].split()[6] == "1"
    assert "my-new-cron-object" in k.kubectl("get", "ct", "-n", NS).stdout, "the short name"
    got = json.loads(k.kubectl("get", "crontab", "my-new-cron-object", "-n", NS, "-o", "json").stdout)
    assert "junk" not in got["spec"] and got["spec"]["replicas"] == 1, "unknown fields pruned, defaults set"
    assert "crontabs" in k.kubectl("api-resources", "--api-group", GROUP).stdout


def test_schema_errors_come_back_with_the_field_path(k):
    r = apply(k, crontab("bad", cronSpec="every minute", replicas=-1), check=False)
    assert r.returncode != 0
    assert 'The CronTab "bad" is invalid' in r.stderr
    assert "spec.cronSpec: Invalid value: \"every minute\": spec.cronSpec in body should match" in r.stderr
    assert "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0" in r.stderr


def test_rbac_governs_custom_resources_like_any_other(k):
    k.kubectl("create", "serviceaccount", "reader", "-n", NS)
    token = k.kubectl("create", "token", "reader", "-n", NS).stdout.strip()
    r = k.kubectl("get", "crontabs", "-n", NS, f"--token={token}", check=False)
    assert r.returncode != 0
    assert ('crontabs.stable.example.com is forbidden: User "system:serviceaccount:crd-e2e:reader" cannot list '
            'resource "crontabs" in API group "stable.example.com" in the namespace "crd-e2e"') in r.stderr
    k.kubectl("create", "role", "crontab-reader", "-n", NS, "--verb=get,list", f"--resource=crontabs.{GROUP}")
    k.kubectl("create", "rolebinding", "crontab-reader", "-n", NS, "--role=crontab-reader",
              f"--serviceaccount={NS}:reader")
    eventually_sync(lambda: k.kubectl("get", "crontabs", "-n", NS, f"--token={token}", check=False).returncode == 0,
                    10, "the Role to grant reading crontabs")
    r = k.kubectl("delete", "crontab", "my-new-cron-object", "-n", NS, f"--token={token}", check=False)
    assert r.returncode != 0 and "cannot delete resource" in r.stderr, "reading is all the Role grants"


def test_kubectl_scale_and_an_hpa_use_the_scale_subresource(k):
    apply(k, crontab("scaled", selector="app=scaled"))
    k.kubectl("scale", "crontab/scaled", "-n", NS, "--replicas=3")
    spec = json.loads(k.kubectl("get", "crontab", "scaled", "-n", NS, "-o", "json").stdout)["spec"]
    assert spec["replicas"] == 3
    apply(k, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
              "metadata": {"name": "scaled", "namespace": NS},
              "spec": {"scaleTargetRef": {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "name": "scaled"},
                       "minReplicas": 5, "maxReplicas": 8,
                       "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                           "type": "Utilization", "averageUtilization": 50}}}]}})

    def at_minimum() -> bool:
        out = k.kubectl("get", "crontab", "scaled", "-n", NS, "-o", "jsonpath={.spec.replicas}").stdout
        return out == "5"

    eventually_sync(at_minimum, 40, "the HPA to raise the custom resource to its minReplicas")


def test_the_python_client_reads_writes_and_watches_custom_objects(k):
    co = client.CustomObjectsApi()
    body = crontab("py-cron")
    made = co.create_namespaced_custom_object(GROUP, "v1", NS, "crontabs", body)
    assert made["metadata"]["uid"] and made["spec"]["replicas"] == 1
    listed = co.list_namespaced_custom_object(GROUP, "v1", NS, "crontabs")
    assert "py-cron" in [o["metadata"]["name"] for o in listed["items"]] and listed["kind"] == "CronTabList"
    co.patch_namespaced_custom_object(GROUP, "v1", NS, "crontabs", "py-cron", {"spec": {"image": "v2"}})
    co.patch_namespaced_custom_object_status(GROUP, "v1", NS, "crontabs", "py-cron",
                                             {"status": {"replicas": 1, "note": "kept"}})
    got = co.get_namespaced_custom_object(GROUP, "v1", NS, "crontabs", "py-cron")
    assert got["spec"]["image"] == "v2" and got["status"] == {"replicas": 1, "note": "kept"}
    defs = client.ApiextensionsV1Api().read_custom_resource_definition(f"crontabs.{GROUP}")
    assert defs.status.accepted_names.kind == "CronTab" and defs.status.stored_versions == ["v1"]
    assert {c.type: c.status for c in defs.status.conditions}["Established"] == "True"
    w = watch.Watch()
    seen = []
    rv = listed["metadata"]["resourceVersion"]
    co.delete_namespaced_custom_object(GROUP, "v1", NS, "crontabs", "py-cron")
    for ev in w.stream(co.list_namespaced_custom_object, GROUP, "v1", NS, "crontabs", resource_version=rv,
                       timeout_seconds=10):
        seen.append((ev["type"], ev["object"]["metadata"]["name"]))
        if ev["type"] == "DELETED":
            w.stop()
    assert ("DELETED", "py-cron") in seen
    with pytest.raises(ApiException) as e:
        co.get_namespaced_custom_object(GROUP, "v1", NS, "crontabs", "py-cron")
    assert e.value.status == 404


def test_a_kopf_operator_reconciles_a_custom_resource(k):
    # its own namespace: kopf puts its finalizer on every object it watches, and only a running operator removes it
    k.kubectl("create", "namespace", KOPF_NS)
    operator = Path(__file__).with_name("kopf_operator.py")
    env = {**k.env, "KUBECONFIG": str(k.kubeconfig)}
    log = open(k.tmp / "kopf.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", KOPF_NS,
                             str(operator)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=k.tmp)
    core = client.CoreV1Api()
    co = client.CustomObjectsApi()
    try:
        co.create_namespaced_custom_object(GROUP, "v1", KOPF_NS, "crontabs",
                                           {**crontab("kopf-cron"), "metadata": {"name": "kopf-cron"}})

        def mirrored():
            obj = co.get_namespaced_custom_object(GROUP, "v1", KOPF_NS, "crontabs", "kopf-cron")
            return obj if (obj.get("status") or {}).get("phase") == "Mirrored" else None

        obj = eventually_sync(mirrored, 60, lambda: "kopf to reconcile:\n" + _tail(k))
        assert obj["status"]["created"] == {"schedule": "* * * * */5"}, "the handler's result in status"
        assert "kopf.example.com/cleanup" in obj["metadata"]["finalizers"]
        cm = core.read_namespaced_config_map("kopf-cron-schedule", KOPF_NS)
        assert cm.data == {"schedule": "* * * * */5"}
        assert cm.metadata.owner_references[0].uid == obj["metadata"]["uid"]
        co.patch_namespaced_custom_object(GROUP, "v1", KOPF_NS, "crontabs", "kopf-cron",
                                          {"spec": {"cronSpec": "0 * * * *"}})
        eventually_sync(lambda: core.read_namespaced_config_map("kopf-cron-schedule", KOPF_NS).data["schedule"]
                        == "0 * * * *", 30, lambda: "kopf to mirror the update:\n" + _tail(k))
        co.delete_namespaced_custom_object(GROUP, "v1", KOPF_NS, "crontabs", "kopf-cron")
        eventually_sync(lambda: _absent(lambda: co.get_namespaced_custom_object(
            GROUP, "v1", KOPF_NS, "crontabs", "kopf-cron")), 30, lambda: "the finalizer to run:\n" + _tail(k))
        assert core.read_namespaced_config_map("kopf-cron-tombstone", KOPF_NS).data == {"gone": "yes"}
        eventually_sync(lambda: _absent(lambda: core.read_namespaced_config_map("kopf-cron-schedule", KOPF_NS)), 30,
                        "the owned ConfigMap collected with its owner")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _tail(k: UpCluster) -> str:
    return (k.tmp / "kopf.log").read_text(errors="replace")[-3000:]


def _absent(read) -> bool:
    try:
        read()
        return False
    except ApiException as e:
        return e.status == 404


def test_deleting_the_definition_deletes_its_objects_and_unserves_it(k):
    apply(k, crontab("doomed"))
    r = k.kubectl("delete", "crd", f"crontabs.{GROUP}", "--timeout=50s", check=False, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:] + k.kubectl("get", "crd", "-o", "yaml", check=False).stdout
    r = k.kubectl("get", "crontabs", "-n", NS, check=False)  # kubectl's discovery cache may still name it
    assert r.returncode != 0 and ('the server doesn\'t have a resource type "crontabs"' in r.stderr
                                  or "the server could not find the requested resource" in r.stderr), r.stderr
    apply(k, CRD)  # defined again: empty, nothing of the old objects comes back
    k.kubectl("wait", "--for", "condition=established", f"crd/crontabs.{GROUP}", "--timeout=20s")
    r = eventually_sync(lambda: (lambda r: r if r.returncode == 0 else None)(
        k.kubectl("get", "crontabs", "-n", NS, "-o", "name", check=False)), 20, "crontabs served again")
    assert r.stdout.strip() == "", "nothing of the old objects comes back"
