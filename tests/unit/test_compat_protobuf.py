"""The protobuf bodies stock kubectl 1.32 sends for its ``create`` generators, captured from kubectl itself
(tests/unit/kubectl_protobuf/<command>.hex, each the whole HTTP body), decoded into the JSON object Kubernetes
would have received as JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus import errors
from master.gateway import protobuf

CAPTURED = Path(__file__).parent / "kubectl_protobuf"
RBAC = "rbac.authorization.k8s.io"


def body(command: str) -> dict:
    return protobuf.decode(bytes.fromhex((CAPTURED / f"{command}.hex").read_text().strip()))


def test_create_cronjob():  # kubectl create cronjob cj --image=busybox --schedule='*/1 * * * *' --restart=OnFailure -- date
    assert body("cronjob") == {
        "kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "cj", "namespace": "np"},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"metadata": {"name": "cj"}, "spec": {"template": {"spec": {
            "containers": [{"name": "cj", "image": "busybox", "command": ["date"]}], "restartPolicy": "OnFailure"}}}}}}


def test_create_job_from_cronjob():  # kubectl create job fromcj --from=cronjob/cj (the server's defaults included)
    job = body("job-from-cronjob")
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    (owner,) = job["metadata"]["ownerReferences"]
    assert {k: owner[k] for k in ("apiVersion", "kind", "name", "controller")} == {
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "cj", "controller": True}
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"] == [{"name": "cj", "image": "busybox", "command": ["date"],
                                   "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "Always",
                                   "terminationMessagePolicy": "File"}]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["enableServiceLinks"]) == ("OnFailure", "ClusterFirst", True)


def test_create_quota():  # kubectl create quota q --hard=cpu=1,memory=1G,pods=2,services=3 --scopes=BestEffort
    assert body("quota") == {"kind": "ResourceQuota", "apiVersion": "v1", "metadata": {"name": "q", "namespace": "np"},
                             "spec": {"hard": {"cpu": "1", "memory": "1G", "pods": "2", "services": "3"},
                                      "scopes": ["BestEffort"]}}


def test_create_priorityclass():  # --value=1000 --description='high priority' --preemption-policy=Never
    assert body("priorityclass") == {"kind": "PriorityClass", "apiVersion": "scheduling.k8s.io/v1",
                                     "metadata": {"name": "high"}, "value": 1000, "description": "high priority",
                                     "preemptionPolicy": "Never"}


def test_create_poddisruptionbudget_with_an_int_or_a_percentage():
    assert body("pdb-min-available")["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    assert body("pdb-max-unavailable")["spec"] == {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
    assert body("pdb-max-unavailable")["apiVersion"] == "policy/v1"


def test_create_ingress():  # --class=nginx --rule=foo.com/bar*=svc:8080,tls=secret1 --annotation=a=b --default-backend=defsvc:http
    assert body("ingress") == {
        "kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
        "metadata": {"name": "ing", "namespace": "np", "annotations": {"a": "b"}},
        "spec": {"defaultBackend": {"service": {"name": "defsvc", "port": {"name": "http"}}},
                 "tls": [{"hosts": ["foo.com"], "secretName": "secret1"}],
                 "rules": [{"host": "foo.com", "http": {"paths": [{
                     "path": "/bar", "pathType": "Prefix",
                     "backend": {"service": {"name": "svc", "port": {"number": 8080}}}}]}}],
                 "ingressClassName": "nginx"}}


def test_create_role_and_bindings():
    assert body("role")["rules"] == [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"],
                                      "resourceNames": ["a"]}]
    assert body("clusterrole")["rules"] == [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
                                            {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]
    assert body("clusterrole-aggregated")["aggregationRule"] == {
        "clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]}
    rb = body("rolebinding")
    assert rb["subjects"] == [{"kind": "User", "apiGroup": RBAC, "name": "alice"},
                              {"kind": "Group", "apiGroup": RBAC, "name": "devs"},
                              {"kind": "ServiceAccount", "name": "default", "namespace": "np"}]
    assert rb["roleRef"] == {"apiGroup": RBAC, "kind": "Role", "name": "pod-reader"}
    assert body("clusterrolebinding")["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "pod-reader-c"}


def test_create_token():  # kubectl create token sa1 --duration=10m --audience=aud1
    assert body("token") == {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                             "spec": {"audiences": ["aud1"], "expirationSeconds": 600}}


def test_a_field_not_read_is_refused_not_dropped():
    raw = bytearray(bytes.fromhex((CAPTURED / "priorityclass.hex").read_text().strip()))
    # append field 9 (varint 1) to the PriorityClass message: runtime.Unknown's raw (field 2) grows by two bytes
    i = raw.index(b"\x12", 4 + 2 + raw[5])  # the raw field after the TypeMeta
    length = raw[i + 1]
    raw[i + 1] = length + 2
    raw[i + 2 + length:i + 2 + length] = b"\x48\x01"
    with pytest.raises(errors.ApiError) as e:
        protobuf.decode(bytes(raw))
    assert e.value.code == 415 and "field 9 of PriorityClass" in e.value.message
