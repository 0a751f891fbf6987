"""Models: upstream manifests load unchanged, Kubernetes defaults are applied, unknown fields are kept and named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bus.models import (
    DaemonSet, Deployment, HorizontalPodAutoscaler, Job, Pod, ReplicationController, Service, k8s_alias,
    model_for_kind, to_dict, unknown_fields,
)
from bus.resources import RESOURCES, by_kind
from bus.validation import validate_object

MANIFESTS = Path(__file__).parent / "manifests"


def load_all() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            out.append((f"{path.name}#{i}", doc))
    return out


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / name).read_text())


def assert_contains(written: Any, out: Any, path: str = "") -> None:
    """Everything the user wrote is in the output, unchanged (the output may add defaults)."""
    if isinstance(written, dict):
        assert isinstance(out, dict), path
        for k, v in written.items():
            assert k in out, f"{path}.{k} dropped"
            assert_contains(v, out[k], f"{path}.{k}")
    elif isinstance(written, list):
        assert isinstance(out, list) and len(out) == len(written), path
        for i, (a, b) in enumerate(zip(written, out)):
            assert_contains(a, b, f"{path}[{i}]")
    else:
        assert out == written and type(out) is type(written), f"{path}: {written!r} became {out!r}"


@pytest.mark.parametrize("name,doc", load_all(), ids=[n for n, _ in load_all()])
def test_upstream_manifest_loads_validates_and_round_trips(name: str, doc: dict[str, Any]) -> None:
    res = by_kind(doc["kind"], doc["apiVersion"])
    assert res is not None
    model, causes = validate_object(res, doc)
    assert causes == [], causes
    out = to_dict(model)
    assert_contains(doc, out)
    # a second pass is a fixed point: defaulting is idempotent
    assert to_dict(model_for_kind(res.kind).model_validate(out)) == out


def test_every_served_kind_has_a_model_with_its_api_version_and_kind() -> None:
    for res in RESOURCES:
        obj = to_dict(res.model()())
        assert (obj["apiVersion"], obj["kind"]) == (res.api_version, res.kind)
    for kind, api_version in (("Scale", "autoscaling/v1"), ("Binding", "v1"), ("Status", "v1"),
                              ("Eviction", "policy/v1")):
        assert to_dict(model_for_kind(kind)())["apiVersion"] == api_version


def test_aliases_follow_kubernetes_spelling() -> None:
    assert k8s_alias("host_ip") == "hostIP"
    assert k8s_alias("pod_cidrs") == "podCIDRs"
    assert k8s_alias("system_uuid") == "systemUUID"
    assert k8s_alias("continue_") == "continue"
    pod = Pod.model_validate({"status": {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "hostIP": "1.2.3.4"}})
    assert pod.status.pod_ip == "10.244.0.5"
    assert to_dict(pod)["status"] == {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "hostIP": "1.2.3.4"}


def test_deployment_defaults() -> None:
    out = to_dict(Deployment.model_validate(load("nginx-deployment.yaml")))
    spec = out["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"], spec["minReadySeconds"]) == (10, 600, 0)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["dnsPolicy"] == "ClusterFirst"
    assert pod["schedulerName"] == "default-scheduler"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == {}
    c = pod["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    # no replicas -> 1; Recreate gets no rollingUpdate
    d = Deployment.model_validate({"spec": {"strategy": {"type": "Recreate"}}})
    assert d.spec.replicas == 1 and d.spec.strategy.rolling_update is None


@pytest.mark.parametrize("image,policy", [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("localhost:5000/nginx", "Always"), ("localhost:5000/nginx:1.0", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_defaults_by_tag(image: str, policy: str) -> None:
    pod = Pod.model_validate({"spec": {"containers": [{"name": "c", "image": image}]}})
    assert pod.spec.containers[0].image_pull_policy == policy
    explicit = Pod.model_validate({"spec": {"containers": [{"name": "c", "image": image, "imagePullPolicy": "Never"}]}})
    assert explicit.spec.containers[0].image_pull_policy == "Never"


def test_pod_defaults_probes_volumes_and_service_account() -> None:
    pod = Pod.model_validate(load("pod-probes.yaml"))
    c = pod.spec.containers[0]
    live = to_dict(c.liveness_probe)
    assert live["periodSeconds"] == 3 and live["timeoutSeconds"] == 1
    assert live["successThreshold"] == 1 and live["failureThreshold"] == 3
    assert live["httpGet"]["scheme"] == "HTTP" and live["httpGet"]["port"] == "http"
    assert c.readiness_probe.tcp_socket.port == 8080 and c.readiness_probe.period_seconds == 10
    vols = {v.name: v for v in pod.spec.volumes}
    assert vols["config"].config_map.default_mode == 420
    assert vols["certs"].secret.default_mode == 0o400
    assert vols["data"].sources() == ["persistentVolumeClaim"]
    assert c.env[1].value_from.field_ref.api_version == "v1"
    assert pod.spec.service_account == "web"  # deprecated field kept in step
    assert pod.spec.tolerations[0].operator == "Exists"
    old_style = Pod.model_validate({"spec": {"serviceAccount": "legacy", "tolerations": [{"key": "k", "value": "v"}]}})
    assert old_style.spec.service_account_name == "legacy"
    assert old_style.spec.tolerations[0].operator == "Equal"


def test_pod_limits_default_requests_but_templates_do_not() -> None:
    c = {"name": "c", "image": "x", "resources": {"limits": {"cpu": "500m", "memory": 1073741824}}}
    pod = Pod.model_validate({"spec": {"containers": [c]}})
    assert pod.spec.containers[0].resources.requests == {"cpu": "500m", "memory": 1073741824}
    d = Deployment.model_validate({"spec": {"template": {"spec": {"containers": [c]}}}})
    assert d.spec.template.spec.containers[0].resources.requests is None


def test_service_defaults_target_port_to_port() -> None:
    out = to_dict(Service.model_validate(load("service-named-port.yaml")))
    assert out["spec"]["ports"] == [
        {"name": "name-of-service-port", "protocol": "TCP", "port": 80, "targetPort": "http-web-svc"},
        {"name": "metrics", "protocol": "TCP", "port": 9100, "targetPort": 9100},
    ]
    assert out["spec"]["type"] == "ClusterIP"
    assert out["spec"]["sessionAffinity"] == "None"
    assert out["spec"]["internalTrafficPolicy"] == "Cluster"
    np = Service.model_validate({"spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    assert np.spec.external_traffic_policy == "Cluster"


def test_daemonset_job_hpa_rc_defaults() -> None:
    ds = to_dict(DaemonSet.model_validate(load("fluentd-daemonset.yaml")))
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    job = Job.model_validate(load("pi-job.yaml"))
    assert (job.spec.parallelism, job.spec.completions, job.spec.backoff_limit) == (1, 1, 4)
    assert job.spec.completion_mode == "NonIndexed" and job.spec.suspend is False
    queue = Job.model_validate({"spec": {"parallelism": 5}})
    assert (queue.spec.parallelism, queue.spec.completions, queue.spec.backoff_limit) == (5, None, 6)
    hpa = HorizontalPodAutoscaler.model_validate({"spec": {"maxReplicas": 3}})
    assert hpa.spec.min_replicas == 1
    assert to_dict(hpa)["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    ]
    rc = ReplicationController.model_validate(load("nginx-rc.yaml"))
    assert rc.spec.selector == {"app": "nginx"}  # defaulted from the template labels
    assert rc.metadata.labels == {"app": "nginx"}
    assert rc.spec.template.spec.containers[0].image_pull_policy == "Always"


def test_unknown_fields_are_kept_and_reported_with_paths() -> None:
    doc = load("nginx-deployment.yaml")
    doc["spec"]["template"]["spec"]["containers"][0]["resizePolicy"] = [{"resourceName": "cpu"}]
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["futureField"] = True
    doc["spec"]["template"]["spec"]["os"] = {"name": "linux"}
    doc["metadata"]["annotations"] = {"not.a.field/really": "x"}
    doc["spec"]["template"]["spec"]["volumes"] = [{"name": "n", "nfs": {"server": "s", "path": "/p"}}]
    doc["status"] = {"someNewCounter": 3}
    model = Deployment.model_validate(doc)
    assert sorted(unknown_fields(model)) == [
        "spec.template.spec.containers[0].ports[0].futureField",
        "spec.template.spec.containers[0].resizePolicy",
        "spec.template.spec.os",
        "spec.template.spec.volumes[0].nfs",
        "status.someNewCounter",
    ]
    out = to_dict(model)
    assert out["spec"]["template"]["spec"]["os"] == {"name": "linux"}
    assert out["spec"]["template"]["spec"]["containers"][0]["resizePolicy"] == [{"resourceName": "cpu"}]
    assert out["spec"]["template"]["spec"]["volumes"][0]["nfs"] == {"server": "s", "path": "/p"}
    assert out["status"] == {"someNewCounter": 3}
    assert unknown_fields(Deployment.model_validate(load("nginx-deployment.yaml"))) == []


def test_loosely_typed_fields_round_trip_exactly() -> None:
    pod = load("pod-probes.yaml")
    out = to_dict(Pod.model_validate(pod))
    assert out["spec"]["affinity"]["podAntiAffinity"] == pod["spec"]["affinity"]["podAntiAffinity"]
    assert out["spec"]["containers"][0]["lifecycle"] == pod["spec"]["containers"][0]["lifecycle"]
    meta = {"name": "x", "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u",
                                 "controller": True, "blockOwnerDeletion": True}],
            "creationTimestamp": "2026-11-26T19:00:00Z", "finalizers": ["example.com/f"], "generation": 2}
    assert to_dict(Pod.model_validate({"metadata": meta}))["metadata"] == meta


def test_model_for_unknown_kind_raises_key_error() -> None:
    with pytest.raises(KeyError):
        model_for_kind("CustomThing")
