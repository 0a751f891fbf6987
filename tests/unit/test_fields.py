import pytest

from bus.fields import parse_field_selector, supported_fields, validate_field_selector

POD = {"metadata": {"name": "web", "namespace": "default"},
       "spec": {"nodeName": "node-1", "restartPolicy": "Always"}, "status": {"phase": "Running"}}
PENDING = {"metadata": {"name": "queued", "namespace": "default"}, "spec": {}, "status": {"phase": "Pending"}}


def test_equality_inequality_and_conjunction():
    assert parse_field_selector("spec.nodeName=node-1").matches(POD)
    assert parse_field_selector("spec.nodeName==node-1").matches(POD)
    assert not parse_field_selector("spec.nodeName!=node-1").matches(POD)
    sel = parse_field_selector("status.phase!=Succeeded,status.phase!=Failed,metadata.namespace=default")
    assert sel.matches(POD) and sel.matches(PENDING)
    assert not parse_field_selector("metadata.name=web,status.phase=Pending").matches(POD)


def test_missing_field_compares_as_empty_string():
    unscheduled = parse_field_selector("spec.nodeName=")
    assert unscheduled.matches(PENDING) and not unscheduled.matches(POD)
    assert parse_field_selector("spec.nodeName!=").matches(POD)
    assert unscheduled.value_of("spec.nodeName") == ""


def test_bools_and_event_source():
    node = {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}
    assert parse_field_selector("spec.unschedulable=true").matches(node)
    assert parse_field_selector("spec.unschedulable!=true").matches({"metadata": {"name": "m"}, "spec": {}})
    ev = {"involvedObject": {"kind": "Pod", "name": "web"}, "source": {"component": "kubelet"}, "type": "Warning"}
    assert parse_field_selector("involvedObject.kind=Pod,involvedObject.name=web,source=kubelet,type=Warning").matches(ev)
    assert parse_field_selector("status.successful=2").matches({"status": {"succeeded": 2}})


def test_empty_selector_matches_everything():
    sel = parse_field_selector("")
    assert sel.empty and sel.matches(POD)


@pytest.mark.parametrize("bad", ["spec.nodeName", "a=b,,c=d", "=x", "a<b", ",", "a!b"])
def test_bad_syntax(bad):
    with pytest.raises(ValueError):
        parse_field_selector(bad)


def test_supported_fields_per_kind():
    assert {"metadata.name", "metadata.namespace"} <= supported_fields("Deployment")
    assert {"spec.nodeName", "status.phase", "status.podIP", "spec.schedulerName"} <= supported_fields("Pod")
    assert "involvedObject.uid" in supported_fields("Event") and "type" in supported_fields("Secret")
    assert validate_field_selector("Pod", parse_field_selector("spec.nodeName=a,status.phase=Running")) is None
    assert validate_field_selector("Deployment", parse_field_selector("spec.replicas=3")) == \
        "field label not supported: spec.replicas"
    assert validate_field_selector("Node", parse_field_selector("spec.unschedulable=false")) is None
