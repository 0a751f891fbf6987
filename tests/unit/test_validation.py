"""Validation reports what the Kubernetes apiserver would, with the same field paths, and never raises."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.errors import invalid
from bus.models import to_dict
from bus.resources import RESOURCES, by_kind
from bus.validation import (
    is_dns1123_label, is_dns1123_subdomain, validate_name, validate_object, validate_update,
)

MANIFESTS = Path(__file__).parent / "manifests"


def manifest(name: str, index: int = 0) -> dict:
    return list(yaml.safe_load_all((MANIFESTS / name).read_text()))[index]


def causes_of(kind: str, data: dict, **kw) -> dict[str, str]:
    _, causes = validate_object(by_kind(kind), data, **kw)
    return {c.field: c.message for c in causes}


def reasons_of(kind: str, data: dict) -> dict[str, str]:
    _, causes = validate_object(by_kind(kind), data)
    return {c.field: c.reason for c in causes}


def deployment() -> dict:
    return manifest("nginx-deployment.yaml")


def pod_of(d: dict) -> dict:
    return d["spec"]["template"]["spec"]


def test_missing_image():
    d = deployment()
    del pod_of(d)["containers"][0]["image"]
    assert causes_of("Deployment", d) == {"spec.template.spec.containers[0].image": "Required value"}
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    assert causes_of("Pod", pod) == {"spec.containers[0].image": "Required value"}
    assert reasons_of("Pod", pod) == {"spec.containers[0].image": "FieldValueRequired"}


def test_negative_replicas():
    d = deployment()
    d["spec"]["replicas"] = -1
    assert causes_of("Deployment", d) == {"spec.replicas": "Invalid value: -1: must be greater than or equal to 0"}


def test_wrong_types_become_causes():
    d = deployment()
    d["spec"]["replicas"] = "three"
    pod_of(d)["containers"][0]["ports"][0]["containerPort"] = "eighty"
    pod_of(d)["containers"][0]["image"] = ["nginx"]
    d["metadata"]["labels"] = "app=nginx"
    got = causes_of("Deployment", d)
    assert got["spec.replicas"] == 'Invalid value: "three": must be of type integer'
    assert got["spec.template.spec.containers[0].ports[0].containerPort"] == \
        'Invalid value: "eighty": must be of type integer'
    assert got["spec.template.spec.containers[0].image"] == 'Invalid value: ["nginx"]: must be of type string'
    assert got["metadata.labels"] == 'Invalid value: "app=nginx": must be of type object'
    assert len(got) == 4  # a value dropped for its type is not reported again as missing
    assert reasons_of("Deployment", d)["spec.replicas"] == "FieldValueTypeInvalid"
    d["spec"]["replicas"] = True
    assert causes_of("Deployment", d)["spec.replicas"] == "Invalid value: true: must be of type integer"


def test_selector_must_match_template_labels():
    d = deployment()
    d["spec"]["selector"]["matchLabels"] = {"app": "web"}
    assert causes_of("Deployment", d) == {
        "spec.template.metadata.labels":
            'Invalid value: {"app": "nginx"}: `selector` does not match template `labels`'}
    del d["spec"]["selector"]
    assert causes_of("Deployment", d) == {"spec.selector": "Required value"}
    d["spec"]["selector"] = {}
    assert "empty selector is invalid" in causes_of("Deployment", d)["spec.selector"]


def test_bad_label_value_and_key():
    d = deployment()
    d["metadata"]["labels"]["version"] = "-v1"
    d["metadata"]["labels"]["bad key"] = "x"
    _, causes = validate_object(by_kind("Deployment"), d)
    assert [c.field for c in causes] == ["metadata.labels", "metadata.labels"]
    assert causes[0].message.startswith('Invalid value: "-v1": a valid label must be an empty string')
    assert causes[1].message.startswith('Invalid value: "bad key": name part must consist of')


def test_duplicate_container_names_across_init_and_app_containers():
    pod = manifest("pod-probes.yaml")
    pod["spec"]["containers"].append({"name": "web", "image": "nginx"})
    pod["spec"]["containers"].append({"name": "init-config", "image": "nginx"})
    got = reasons_of("Pod", pod)
    assert got == {"spec.containers[1].name": "FieldValueDuplicate", "spec.containers[2].name": "FieldValueDuplicate"}
    assert causes_of("Pod", pod)["spec.containers[1].name"] == 'Duplicate value: "web"'


def test_restart_policy_per_kind():
    pod = {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "i"}]}}
    assert causes_of("Pod", pod) == {
        "spec.restartPolicy": 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'}
    job = manifest("pi-job.yaml")
    del job["spec"]["template"]["spec"]["restartPolicy"]  # defaults to Always, which a Job may not use
    assert causes_of("Job", job) == {
        "spec.template.spec.restartPolicy": 'Unsupported value: "Always": supported values: "OnFailure", "Never"'}
    d = deployment()
    pod_of(d)["restartPolicy"] = "Never"
    assert causes_of("Deployment", d) == {
        "spec.template.spec.restartPolicy": 'Unsupported value: "Never": supported values: "Always"'}


def test_pod_spec_checks():
    pod = manifest("pod-probes.yaml")
    c = pod["spec"]["containers"][0]
    c["ports"][0]["containerPort"] = 70000
    c["ports"].append({"name": "much-too-long-port-name", "containerPort": 81})
    c["volumeMounts"].append({"name": "nope", "mountPath": "/nope"})
    c["resources"]["requests"]["cpu"] = "2"
    c["env"].append({"name": "1BAD", "value": "x"})
    c["livenessProbe"]["exec"] = {"command": ["true"]}
    c["readinessProbe"] = {"periodSeconds": 5}
    c["resources"]["limits"]["memory"] = "lots"
    pod["spec"]["volumes"].append({"name": "config", "emptyDir": {}, "hostPath": {"path": "/x"}})
    pod["spec"]["volumes"].append({"name": "nothing"})
    pod["spec"]["tolerations"].append({"key": "k", "operator": "Maybe"})
    pod["spec"]["dnsPolicy"] = "Google"
    got = causes_of("Pod", pod)
    assert got == {
        "spec.containers[0].ports[0].containerPort": "Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].name": 'Invalid value: "much-too-long-port-name": must be no more than 15 characters',
        "spec.containers[0].volumeMounts[4].name": 'Not found: "nope"',
        "spec.containers[0].resources.requests[cpu]": 'Invalid value: "2": must be less than or equal to cpu limit of 1',
        "spec.containers[0].resources.limits[memory]":
            "Invalid value: \"lots\": quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        "spec.containers[0].env[5].name": got["spec.containers[0].env[5].name"],
        "spec.containers[0].livenessProbe.httpGet": "Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].readinessProbe": "Required value: must specify a handler type",
        "spec.volumes[5].name": 'Duplicate value: "config"',
        "spec.volumes[5].hostPath": "Forbidden: may not specify more than 1 volume type",
        "spec.volumes[6]": "Required value: must specify a volume type",
        "spec.tolerations[1].operator": 'Unsupported value: "Maybe": supported values: "Equal", "Exists"',
        "spec.dnsPolicy": 'Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", '
                          '"ClusterFirst", "Default", "None"',
    }
    assert "a valid environment variable name" in got["spec.containers[0].env[5].name"]
    assert causes_of("Pod", {"metadata": {"name": "p"}, "spec": {}}) == {"spec.containers": "Required value"}


def test_metadata_names():
    d = deployment()
    del d["metadata"]["name"]
    assert causes_of("Deployment", d) == {"metadata.name": "Required value: name or generateName is required"}
    assert causes_of("Deployment", d, name_optional=True) == {}
    d["metadata"]["generateName"] = "nginx-"
    assert causes_of("Deployment", d) == {}
    d["metadata"]["name"] = "Nginx_Deployment"
    assert causes_of("Deployment", d)["metadata.name"].startswith(
        'Invalid value: "Nginx_Deployment": a lowercase RFC 1123 subdomain')
    d["metadata"]["name"] = "web"
    d["metadata"]["namespace"] = "my.ns"
    assert "RFC 1123 label" in causes_of("Deployment", d)["metadata.namespace"]
    assert "RFC 1123 label" in causes_of("Namespace", {"metadata": {"name": "a.b"}})["metadata.name"]
    assert "DNS-1035" in causes_of("Service", {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}})[
        "metadata.name"]
    assert causes_of("Node", {"metadata": {"name": "n", "namespace": "default"}}) == {
        "metadata.namespace": "Forbidden: not allowed on this type"}
    assert validate_name("ConfigMap", "a.b-c") == [] and validate_name("Namespace", "a.b") != []
    assert validate_name("Pod", "x" * 254) == ["must be no more than 253 characters"]
    assert is_dns1123_label("web-1") and not is_dns1123_label("Web") and not is_dns1123_label("a" * 64)
    assert is_dns1123_subdomain("a.b.c") and not is_dns1123_subdomain("a..b")


def test_rolling_update_parameters():
    d = deployment()
    d["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    assert causes_of("Deployment", d) == {
        "spec.strategy.rollingUpdate.maxUnavailable": 'Invalid value: "0%": may not be 0 when `maxSurge` is 0'}
    d["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": "abc", "maxUnavailable": "150%"}}
    got = causes_of("Deployment", d)
    assert "a valid percent string" in got["spec.strategy.rollingUpdate.maxSurge"]
    assert got["spec.strategy.rollingUpdate.maxUnavailable"] == 'Invalid value: "150%": must not be greater than 100%'
    d["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 1.5}}
    assert "must be an integer or a string" in causes_of("Deployment", d)["spec.strategy.rollingUpdate.maxSurge"]


def test_service_checks():
    svc = manifest("service-named-port.yaml")
    del svc["spec"]["ports"][1]["name"]
    svc["spec"]["ports"].append({"name": "name-of-service-port", "port": 0, "protocol": "HTTP"})
    svc["spec"]["type"] = "Internal"
    svc["spec"]["sessionAffinity"] = "Sticky"
    got = causes_of("Service", svc)
    assert got == {
        "spec.type": 'Unsupported value: "Internal": supported values: "ClusterIP", "NodePort", "LoadBalancer", '
                     '"ExternalName"',
        "spec.ports[1].name": "Required value",
        "spec.ports[2].name": 'Duplicate value: "name-of-service-port"',
        "spec.ports[2].port": "Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[2].targetPort": "Invalid value: 0: must be between 1 and 65535, inclusive",  # defaulted to port
        "spec.ports[2].protocol": 'Unsupported value: "HTTP": supported values: "TCP", "UDP", "SCTP"',
        "spec.sessionAffinity": 'Unsupported value: "Sticky": supported values: "ClientIP", "None"',
    }
    assert causes_of("Service", {"metadata": {"name": "s"}, "spec": {"selector": {"a": "b"}}}) == {
        "spec.ports": "Required value"}
    assert causes_of("Service", {"metadata": {"name": "s"},
                                 "spec": {"type": "ExternalName", "externalName": "db.example.com"}}) == {}


def test_workload_kinds():
    job = manifest("pi-job.yaml")
    job["spec"]["parallelism"] = -2
    job["spec"]["backoffLimit"] = -1
    assert causes_of("Job", job) == {
        "spec.parallelism": "Invalid value: -2: must be greater than or equal to 0",
        "spec.backoffLimit": "Invalid value: -1: must be greater than or equal to 0"}
    hpa = manifest("php-apache-hpa.yaml")
    hpa["spec"]["minReplicas"] = 5
    hpa["spec"]["maxReplicas"] = 2
    del hpa["spec"]["scaleTargetRef"]["name"]
    assert causes_of("HorizontalPodAutoscaler", hpa) == {
        "spec.maxReplicas": "Invalid value: 2: must be greater than or equal to `minReplicas`",
        "spec.scaleTargetRef.name": "Required value"}
    hpa["spec"].update(minReplicas=0, maxReplicas=3)
    assert causes_of("HorizontalPodAutoscaler", hpa)["spec.minReplicas"] == \
        "Invalid value: 0: must be greater than or equal to 1"
    rc = manifest("nginx-rc.yaml")
    rc["spec"]["selector"] = {"app": "other"}
    assert list(causes_of("ReplicationController", rc)) == ["spec.template.metadata.labels"]
    ds = manifest("fluentd-daemonset.yaml")
    ds["spec"]["updateStrategy"] = {"type": "Sometimes"}
    assert list(causes_of("DaemonSet", ds)) == ["spec.updateStrategy.type"]


def test_storage_config_and_events():
    pv, pvc = manifest("pv-pvc.yaml", 0), manifest("pv-pvc.yaml", 1)
    del pv["spec"]["capacity"], pv["spec"]["accessModes"]
    pv["spec"]["nfs"] = {"server": "nfs", "path": "/"}
    assert causes_of("PersistentVolume", pv) == {
        "spec.capacity": "Required value", "spec.accessModes": "Required value",
        "spec.nfs": "Forbidden: may not specify more than 1 volume type"}
    del pvc["spec"]["resources"]
    pvc["spec"]["accessModes"] = ["ReadWriteSometimes"]
    assert causes_of("PersistentVolumeClaim", pvc) == {
        "spec.accessModes[0]": 'Unsupported value: "ReadWriteSometimes": supported values: "ReadWriteOnce", '
                               '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"',
        "spec.resources[storage]": "Required value"}
    secret = manifest("secret.yaml")
    secret["data"]["bad key"] = "!!!notbase64"
    got = causes_of("Secret", secret)
    assert list(got) == ["data[bad key]"] and len(validate_object(by_kind("Secret"), secret)[1]) == 2
    assert "notbase64" not in str(got)  # secret contents are never echoed
    cm = manifest("configmap.yaml")
    cm["data"]["logo.png"] = "dup"
    assert causes_of("ConfigMap", cm) == {"data[logo.png]": 'Invalid value: "logo.png": duplicate of key present in binaryData'}
    ev = manifest("event.yaml")
    del ev["involvedObject"]
    assert causes_of("Event", ev) == {"involvedObject": "Required value"}


def test_causes_make_a_kubernetes_invalid_status():
    d = deployment()
    del pod_of(d)["containers"][0]["image"]
    _, causes = validate_object(by_kind("Deployment"), d)
    err = invalid("Deployment", "nginx-deployment", causes, "apps")
    assert err.message == ('Deployment.apps "nginx-deployment" is invalid: '
                           "spec.template.spec.containers[0].image: Required value")


def test_not_a_dict():
    for bad in (None, [], "x", 3):
        model, causes = validate_object(by_kind("Pod"), bad)
        assert model is None and len(causes) == 1 and causes[0].field == ""


# --- updates -------------------------------------------------------------------------------------------------------


def stored(kind: str, data: dict) -> dict:
    model, causes = validate_object(by_kind(kind), data)
    assert not causes
    return to_dict(model)


def update_causes(kind: str, old: dict, new: dict) -> dict[str, str]:
    model, causes = validate_object(by_kind(kind), new)
    assert not causes, causes
    return {c.field: c.message for c in validate_update(by_kind(kind), old, model)}


def test_pod_update_may_change_only_images_deadline_and_add_tolerations():
    old = stored("Pod", manifest("pod-probes.yaml"))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    new["spec"]["initContainers"][0]["image"] = "busybox:1.37"
    new["spec"]["tolerations"].append({"key": "x", "operator": "Exists"})
    new["spec"]["activeDeadlineSeconds"] = 60
    assert update_causes("Pod", old, new) == {}
    new["spec"]["containers"][0]["args"] = ["--port=9090"]
    got = update_causes("Pod", old, new)
    assert list(got) == ["spec"] and got["spec"].startswith("Forbidden: pod updates may not change fields other than")
    removed = copy.deepcopy(old)
    removed["spec"]["tolerations"] = []
    assert list(update_causes("Pod", old, removed)) == ["spec"]
    # the stored (defaulted) form and the user's manifest compare equal
    assert update_causes("Pod", old, manifest("pod-probes.yaml")) == {}
    # the apiserver may pass the new object as its dict form
    assert [c.field for c in validate_update(by_kind("Pod"), old, new)] == ["spec"]


def test_immutable_fields_on_update():
    old = stored("Deployment", deployment())
    new = deployment()
    new["spec"]["selector"]["matchLabels"]["tier"] = "web"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "web"  # labels must still match the selector
    new["metadata"]["uid"] = "other"
    old["metadata"]["uid"] = "abc"
    assert update_causes("Deployment", old, new) == {
        "metadata.uid": 'Invalid value: "other": field is immutable',
        "spec.selector": 'Invalid value: {"matchLabels": {"app": "nginx", "tier": "web"}}: field is immutable'}
    job = stored("Job", manifest("pi-job.yaml"))
    changed = manifest("pi-job.yaml")
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5.36"
    assert list(update_causes("Job", job, changed)) == ["spec.template"]
    svc = stored("Service", manifest("service-named-port.yaml"))
    svc["spec"]["clusterIP"] = "10.96.0.10"
    moved = manifest("service-named-port.yaml")
    moved["spec"]["clusterIP"] = "10.96.0.11"
    assert update_causes("Service", svc, moved) == {"spec.clusterIP": 'Invalid value: "10.96.0.11": field is immutable'}
    assert update_causes("Service", svc, manifest("service-named-port.yaml")) == {}
    pvc = stored("PersistentVolumeClaim", manifest("pv-pvc.yaml", 1))
    grown = manifest("pv-pvc.yaml", 1)
    grown["spec"]["resources"]["requests"]["storage"] = "5Gi"
    assert update_causes("PersistentVolumeClaim", pvc, grown) == {}
    grown["spec"]["storageClassName"] = "fast"
    assert list(update_causes("PersistentVolumeClaim", pvc, grown)) == ["spec"]
    cm = stored("ConfigMap", {**manifest("configmap.yaml"), "immutable": True})
    edited = {**manifest("configmap.yaml"), "immutable": True}
    edited["data"] = {"x": "y"}
    assert update_causes("ConfigMap", cm, edited) == {
        "data": "Forbidden: field is immutable when `immutable` is set"}


# --- robustness ----------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def place(obj, path, value):
    if not path:
        return value
    obj = copy.deepcopy(obj)
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


ALL_DOCS = [(by_kind(d["kind"]), d) for f in sorted(MANIFESTS.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), value=json_values)
def test_validate_object_never_raises(data, value):
    res, doc = data.draw(st.sampled_from(ALL_DOCS))
    path = data.draw(st.sampled_from(list(paths(doc))))
    obj = place(doc, path, value)
    model, causes = validate_object(res, obj)
    assert model is not None or causes
    if model is not None:
        to_dict(model)


@settings(max_examples=100, deadline=None)
@given(value=json_values)
def test_any_kind_with_garbage_never_raises(value):
    for res in RESOURCES:
        validate_object(res, {"metadata": value, "spec": value, "status": value, "data": value})


def test_deep_nesting_and_huge_strings_do_not_raise():
    deep: object = "x"
    for _ in range(5000):
        deep = [deep]
    d = deployment()
    pod_of(d)["containers"][0]["unknownDeep"] = deep
    pod_of(d)["containers"][0]["image"] = "x" * 5_000_000
    d["metadata"]["labels"]["k"] = "v" * 1_000_000
    d["metadata"]["name"] = "n" * 1_000_000
    model, causes = validate_object(by_kind("Deployment"), d)
    assert {c.field for c in causes} == {"metadata.labels", "metadata.name"}
    assert all(len(c.message) < 2000 for c in causes)
