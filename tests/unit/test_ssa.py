"""Server-side apply and managedFields bookkeeping (master/apiserver/ssa.py) on plain objects."""

from __future__ import annotations

import copy

import pytest

from bus import errors
from bus.resources import by_kind
from master.apiserver import ssa
from tests import builders
from tests.builders import container

DEPLOY = by_kind("Deployment")
CM = by_kind("ConfigMap")


def deployment(replicas: int | None = 2, image: str = "busybox:1", env: list | None = None, labels=None) -> dict:
    c = container("web", image=image, pull=None, **({"env": env} if env is not None else {}))
    return builders.deployment("web", None, replicas=replicas, labels=labels or None, containers=[c])


def apply(live, cfg, manager="kubectl", force=False, res=DEPLOY):
    before = copy.deepcopy(live)
    out = ssa.apply(res, live, cfg, manager, force, cfg["metadata"]["name"], "default")
    assert live == before, "the live object must not be modified"
    return out


def managers(obj: dict) -> dict[tuple[str, str], set[str]]:
    """(manager, operation) -> the owned paths, printed as structured-merge-diff prints them."""
    return {(e["manager"], e["operation"]): {ssa.path_string(p) for p in ssa.decode_fields(e["fieldsV1"])}
            for e in obj["metadata"].get("managedFields", [])}


def update(live: dict, change, manager: str | None, res=DEPLOY, subresource=None) -> dict:
    new = copy.deepcopy(live)
    change(new)
    ssa.track_write(res, live, new, {"fieldManager": manager} if manager else {}, subresource)
    return new


def set_replicas(n):
    def change(o):
        o["spec"]["replicas"] = n
    return change


def test_apply_creates_with_an_apply_entry_listing_the_applied_fields() -> None:
    obj = apply(None, deployment(env=[{"name": "A", "value": "1"}]))
    (entry,) = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["fieldsType"]) == \
        ("kubectl", "Apply", "apps/v1", "FieldsV1")
    assert entry["time"].endswith("Z")
    spec = entry["fieldsV1"]["f:spec"]
    assert spec["f:replicas"] == {} and spec["f:selector"] == {}  # the selector is atomic
    web = spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web == {".": {}, "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
                   "f:image": {}, "f:name": {}}
    assert "f:name" not in entry["fieldsV1"].get("f:metadata", {})  # server-owned metadata is never tracked


def test_apply_twice_changes_nothing_the_second_time() -> None:
    first = apply(None, deployment())
    again = apply(first, deployment())
    assert again == first  # same fields, same time: the apiserver sees an unchanged object


def test_apply_changes_a_value_and_removes_what_it_no_longer_applies() -> None:
    live = apply(None, deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], labels={"x": "1"}))
    out = apply(live, deployment(image="busybox:2", env=[{"name": "A", "value": "1"}]))
    web = out["spec"]["template"]["spec"]["containers"][0]
    assert web["image"] == "busybox:2"
    assert web["env"] == [{"name": "A", "value": "1"}]
    assert "labels" not in out["metadata"]  # the label went, and so did the map it emptied
    owned = managers(out)[("kubectl", "Apply")]
    assert '.spec.template.spec.containers[name="web"].env[name="B"]' not in owned
    assert ".metadata.labels.x" not in owned


def test_a_field_set_by_another_manager_is_a_conflict_naming_it() -> None:
    live = apply(None, deployment(replicas=2))
    live = update(live, set_replicas(5), "kubectl-client-side-apply")
    assert managers(live)[("kubectl-client-side-apply", "Update")] == {".spec.replicas"}
    assert ".spec.replicas" not in managers(live)[("kubectl", "Apply")]  # the update took it over
    with pytest.raises(errors.Conflict) as e:
        apply(live, deployment(replicas=3))
    assert e.value.code == 409 and e.value.reason == "Conflict"
    assert e.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                               'using apps/v1: .spec.replicas')
    assert e.value.causes == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                               "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}]


def test_several_conflicts_are_listed_per_manager() -> None:
    live = apply(None, deployment(replicas=2))
    live = update(live, set_replicas(5), "scaler")

    def image(o):
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:9"
    live = update(live, image, "editor")
    with pytest.raises(errors.Conflict) as e:
        apply(live, deployment(replicas=3, image="busybox:3"))
    assert e.value.message == (
        'Apply failed with 2 conflicts: conflicts with "editor" using apps/v1:\n'
        '- .spec.template.spec.containers[name="web"].image\n'
        'conflicts with "scaler" using apps/v1:\n- .spec.replicas')
    assert sorted(c["field"] for c in e.value.causes) == [
        ".spec.replicas", '.spec.template.spec.containers[name="web"].image']


def test_force_takes_ownership() -> None:
    live = update(apply(None, deployment(replicas=2)), set_replicas(5), "scaler")
    out = apply(live, deployment(replicas=3), force=True)
    assert out["spec"]["replicas"] == 3
    m = managers(out)
    assert ".spec.replicas" in m[("kubectl", "Apply")]
    assert ("scaler", "Update") not in m  # it owned nothing else, so its entry is gone


def test_two_managers_applying_the_same_value_share_the_field() -> None:
    live = apply(None, deployment(replicas=2))
    shared = apply(live, deployment(replicas=2), manager="other")  # same value: no conflict
    m = managers(shared)
    assert ".spec.replicas" in m[("kubectl", "Apply")] and ".spec.replicas" in m[("other", "Apply")]
    # the first manager stops applying replicas: the other still owns it, so it stays
    out = apply(shared, deployment(replicas=None))
    assert out["spec"]["replicas"] == 2
    assert ".spec.replicas" not in managers(out)[("kubectl", "Apply")]
    # a different value from either is now a conflict with the remaining owner only
    with pytest.raises(errors.Conflict, match='conflict with "other": .spec.replicas'):
        apply(out, deployment(replicas=4))


def test_managers_own_separate_items_of_an_associative_list() -> None:
    live = apply(None, deployment(env=[{"name": "A", "value": "1"}]))
    cfg = deployment(env=[{"name": "B", "value": "2"}])
    del cfg["spec"]["replicas"]
    both = apply(live, cfg, manager="sidecar-injector")
    env = both["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    # kubectl drops its env var A; B belongs to the other manager and survives
    mine = apply(both, deployment(env=[]))
    assert mine["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]


def test_object_without_managed_fields_is_owned_before_first_apply() -> None:
    live = deployment(replicas=4)
    live["metadata"].update(uid="u", resourceVersion="7")
    with pytest.raises(errors.Conflict, match='conflict with "before-first-apply" using apps/v1: .spec.replicas'):
        apply(live, deployment(replicas=1))
    out = apply(live, deployment(replicas=4))  # same value: shared
    assert set(managers(out)) == {("before-first-apply", "Update"), ("kubectl", "Apply")}


def test_updates_record_what_they_change_and_cheap_path_without_manager() -> None:
    plain = deployment()
    new = update(plain, set_replicas(7), None)
    assert "managedFields" not in new["metadata"]  # no manager, nothing tracked: nothing computed
    new = update(plain, set_replicas(7), "kubectl-edit")
    assert managers(new) == {("kubectl-edit", "Update"): {".spec.replicas"}}
    before = new["metadata"]["managedFields"]
    same = update(new, lambda o: None, "kubectl-edit")
    assert same["metadata"]["managedFields"] == before  # nothing changed: time kept too
    # without a manager, an object that tracks ownership still gets its changes recorded
    later = update(new, set_replicas(8), None)
    assert managers(later) == {("k8n", "Update"): {".spec.replicas"}}  # kubectl-edit owned nothing else


def test_create_with_field_manager_owns_its_fields() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "uid": "u"},
           "data": {"a": "1", "b": "2"}}
    ssa.track_create(CM, obj, {"fieldManager": "kubectl-create"})
    assert managers(obj) == {("kubectl-create", "Update"): {".data.a", ".data.b"}}


def test_status_subresource_updates_are_scoped_to_status() -> None:
    live = apply(None, deployment())

    def status(o):
        o["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    out = update(live, status, "deployment-controller", subresource="status")
    entry = [e for e in out["metadata"]["managedFields"] if e["manager"] == "deployment-controller"][0]
    assert entry["subresource"] == "status"
    assert ssa.decode_fields(entry["fieldsV1"]) == {
        ("f:status", "f:replicas"), ("f:status", "f:conditions", 'k:{"type":"Available"}'),
        ("f:status", "f:conditions", 'k:{"type":"Available"}', "f:type"),
        ("f:status", "f:conditions", 'k:{"type":"Available"}', "f:status")}


def test_fields_v1_round_trip_and_paths() -> None:
    paths = {("f:spec", "f:replicas"), ("f:metadata", "f:finalizers", 'v:"a"'),
             ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}'),
             ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:port")}
    enc = ssa.encode_fields(paths)
    assert enc["f:spec"]["f:ports"]['k:{"port":80,"protocol":"TCP"}'] == {".": {}, "f:port": {}}
    assert ssa.decode_fields(enc) == paths
    assert ssa.path_string(("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:port")) == \
        '.spec.ports[port=80,protocol="TCP"].port'
    assert ssa.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'


def test_port_keys_use_the_protocol_default() -> None:
    live = apply(None, deployment())
    live["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "name": "http"}]
    out = apply(live, cfg)
    assert out["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}]  # merged into the same item, not duplicated


def test_bad_apply_requests_are_status_errors() -> None:
    with pytest.raises(errors.Invalid) as e:
        ssa.apply_options({})
    assert e.value.code == 422 and e.value.causes[0]["field"] == "fieldManager"
    assert "fieldManager is required for apply requests" in e.value.message
    with pytest.raises(errors.Invalid):
        ssa.apply_options({"fieldManager": "x" * 200})
    with pytest.raises(errors.BadRequest, match="managedFields must be nil"):
        cfg = deployment()
        cfg["metadata"]["managedFields"] = []
        apply(None, cfg)
    with pytest.raises(errors.BadRequest, match="does not match the name"):
        ssa.apply(DEPLOY, None, deployment(), "m", False, "other", "default")
    with pytest.raises(errors.BadRequest, match="Kind"):
        ssa.apply(DEPLOY, None, {"metadata": {"name": "web"}}, "m", False, "web", "default")
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"].append({"image": "no-name"})
    with pytest.raises(errors.Invalid) as e:
        apply(None, cfg)
    assert e.value.causes[0]["field"] == "spec.template.spec.containers[1]"


def test_an_item_another_manager_still_owns_fields_of_keeps_its_key() -> None:
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "extra", "image": "busybox:1"})
    live = apply(None, cfg)

    def add_env(o):
        o["spec"]["template"]["spec"]["containers"][1]["env"] = [{"name": "X", "value": "1"}]
    live = update(live, add_env, "injector")
    out = apply(live, deployment())  # kubectl no longer applies the extra container
    extra = out["spec"]["template"]["spec"]["containers"][1]
    assert extra == {"name": "extra", "env": [{"name": "X", "value": "1"}]}  # kubectl's image went, the key stays
