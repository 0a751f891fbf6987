"""A CRD's openAPIV3Schema applied as kube-apiserver applies it: pruning, defaults, validation messages with field
paths; and the checks on a definition itself."""

from __future__ import annotations

from bus import crd, crdschema
from bus.resources import by_plural
from bus.validation import validate_custom, validate_object

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                "image": {"type": "string", "maxLength": 10},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "port": {"x-kubernetes-int-or-string": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
                "nested": {"type": "object", "default": {},
                           "properties": {"level": {"type": "string", "default": "info"}}},
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
    },
}


def cr(spec: dict, **extra) -> dict:
    return {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"}, "spec": spec,
            **extra}


def messages(causes) -> dict[str, str]:
    return {c.field: c.message for c in causes}


def test_unknown_fields_are_pruned_where_the_schema_does_not_preserve_them():
    obj, causes = crdschema.apply(cr({"cronSpec": "* * * * */5", "bogus": 1, "free": {"any": {"thing": [1]}}},
                                     extra=True), SCHEMA)
    assert causes == []
    assert "bogus" not in obj["spec"] and "extra" not in obj
    assert obj["spec"]["free"] == {"any": {"thing": [1]}}
    assert obj["metadata"] == {"name": "x"} and obj["kind"] == "CronTab"


def test_defaults_fill_missing_fields_parents_first():
    obj, causes = crdschema.apply(cr({"cronSpec": "* * * * */5"}), SCHEMA)
    assert causes == []
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["nested"] == {"level": "info"}


def test_validation_messages_and_paths_are_kubernetes():
    _, causes = crdschema.apply(cr({"cronSpec": "nope", "replicas": "3", "image": "a" * 11, "mode": "warp",
                                    "port": True, "tags": ["a", "b", "c"], "limits": {"cpu": "x"}}), SCHEMA)
    m = messages(causes)
    assert m["spec.replicas"] == ('Invalid value: "string": spec.replicas in body must be of type integer: '
                                  '"string"')
    assert m["spec.cronSpec"].startswith('Invalid value: "nope": spec.cronSpec in body should match')
    assert m["spec.image"] == "Too long: must have at most 10 bytes"
    assert m["spec.mode"] == 'Unsupported value: "warp": supported values: "fast", "slow"'
    assert m["spec.port"] == ('Invalid value: "boolean": spec.port in body must be of type integer,string: '
                              '"boolean"')
    assert m["spec.tags"] == "Too many: 3: must have at most 2 items"
    assert m["spec.limits.cpu"].endswith('must be of type integer: "string"')


def test_required_and_bounds():
    _, causes = crdschema.apply(cr({"replicas": 20}), SCHEMA)
    m = messages(causes)
    assert m["spec.cronSpec"] == "Required value"
    assert m["spec.replicas"] == "Invalid value: 20: spec.replicas in body should be less than or equal to 10"
    _, causes = crdschema.apply(cr({"cronSpec": "* * * * *", "replicas": 0}), SCHEMA)
    assert messages(causes)["spec.replicas"].endswith("should be greater than or equal to 1")


def test_int_or_string_takes_both():
    for port in (80, "http"):
        _, causes = crdschema.apply(cr({"cronSpec": "* * * * *", "port": port}), SCHEMA)
        assert causes == []


def definition(**over) -> dict:
    d = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": "crontabs.stable.example.com"},
         "spec": {"group": "stable.example.com", "scope": "Namespaced",
                  "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                  "versions": [{"name": "v1", "served": True, "storage": True,
                                "schema": {"openAPIV3Schema": SCHEMA},
                                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                                         "statusReplicasPath": ".status.replicas"}},
                                "additionalPrinterColumns": [
                                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]}]}}
    for k, v in over.items():
        d["spec"][k] = v
    return d


def test_a_good_definition_passes_and_serves_its_resource():
    _, causes = validate_object(by_plural("customresourcedefinitions"), definition())
    assert causes == []
    res = crd.resource_from_crd(definition())
    assert (res.kind, res.plural, res.group, res.version, res.namespaced) == ("CronTab", "crontabs",
                                                                               "stable.example.com", "v1", True)
    assert res.bus_name == "crontabs_stable_example_com"
    assert res.subresources == ("status", "scale")


def test_definition_errors_name_the_field():
    bad = definition(group="example", scope="Galaxy", versions=[
        {"name": "v1", "served": True, "storage": False, "schema": {"openAPIV3Schema": {"type": "object",
                                                                                         "properties": {"a": {}}}}}])
    bad["metadata"]["name"] = "wrong.name.com"
    _, causes = validate_object(by_plural("customresourcedefinitions"), bad)
    m = messages(causes)
    assert m["spec.group"] == 'Invalid value: "example": should be a domain with at least one dot'
    assert m["spec.scope"] == 'Unsupported value: "Galaxy": supported values: "Cluster", "Namespaced"'
    assert "must have exactly one version marked as storage version" in m["spec.versions"]
    assert m["spec.versions[0].schema.openAPIV3Schema.properties[a].type"].startswith("Required value")


def test_protected_groups_need_the_approval_annotation():
    d = definition(group="widgets.k8s.io")
    d["metadata"]["name"] = "crontabs.widgets.k8s.io"
    _, causes = validate_object(by_plural("customresourcedefinitions"), d)
    assert any(c.field == "metadata.annotations[api-approved.kubernetes.io]" for c in causes)


def test_printer_columns_and_scale_from_the_definition():
    res = crd.resource_from_crd(definition())
    obj = cr({"cronSpec": "* * * * *", "replicas": 3}, status={"replicas": 2})
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert [c["name"] for c in crd.column_definitions(res)] == ["Name", "Spec", "Replicas"]
    assert crd.cells(res, obj) == ["x", "* * * * *", 3]
    scale = crd.scale_of(res, obj)
    assert scale["spec"] == {"replicas": 3} and scale["status"]["replicas"] == 2


def test_a_custom_resource_is_validated_at_the_version_named():
    res = crd.resource_from_crd(definition())
    obj, causes = validate_custom(res, cr({"cronSpec": "* * * * *", "junk": 1}))
    assert causes == [] and "junk" not in obj["spec"] and obj["spec"]["replicas"] == 1
    _, causes = validate_custom(res, {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
                                      "metadata": {"name": "Bad_Name"}, "spec": {"cronSpec": "* * * * *"}})
    assert [c.field for c in causes] == ["metadata.name"]
