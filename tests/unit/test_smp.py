"""Strategic merge patch against Kubernetes' documented behaviour: the examples of sig-api-machinery's
strategic-merge-patch.md, apimachinery's strategicpatch test cases (mergingList → containers, mergingIntList →
finalizers, nonMergingList → tolerations) and a patch as kubectl 1.32 ``apply`` computes it."""

from __future__ import annotations

import copy

import pytest

from bus import errors
from master.apiserver.patch import apply_patch
from master.apiserver.smp import PatchError, strategic_merge_patch


def smp(original: dict, patch: dict, kind: str = "Pod") -> dict:
    before_o, before_p = copy.deepcopy(original), copy.deepcopy(patch)
    out = strategic_merge_patch(original, patch, kind)
    assert original == before_o and patch == before_p, "inputs must not be modified"
    return out


def pod_containers(*containers: dict) -> dict:
    return {"spec": {"containers": list(containers)}}


# ---- the documented examples (strategic-merge-patch.md) ----------------------------------------


def test_background_containers_merge_by_name() -> None:
    out = smp(pod_containers({"name": "nginx", "image": "nginx-1.0"}),
              pod_containers({"name": "log-tailer", "image": "log-tailer-1.0"}))
    # a merge patch would have replaced the list; new items come first, as apimachinery orders them
    assert out["spec"]["containers"] == [{"name": "log-tailer", "image": "log-tailer-1.0"},
                                         {"name": "nginx", "image": "nginx-1.0"}]


def test_replace_directive_on_a_map() -> None:
    original = {"spec": {"containers": [{"name": "a", "image": "a"}], "nodeName": "n1"}}
    out = smp(original, {"spec": {"$patch": "replace", "containers": [{"name": "nginx", "image": "nginx-1.0"}]}})
    assert out == {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}}


def test_replace_directive_on_a_list_of_maps() -> None:
    original = pod_containers({"name": "a", "image": "a"}, {"name": "nginx", "image": "old"})
    out = smp(original, pod_containers({"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}))
    assert out["spec"]["containers"] == [{"name": "nginx", "image": "nginx-1.0"}]


def test_delete_directive_in_a_list_of_maps_deletes_every_match() -> None:
    original = pod_containers({"name": "nginx", "image": "n"}, {"name": "log-tailer", "image": "l"},
                              {"name": "log-tailer", "image": "dup"})
    out = smp(original, pod_containers({"name": "nginx", "image": "nginx-1.0"},
                                       {"$patch": "delete", "name": "log-tailer"}))
    assert out["spec"]["containers"] == [{"name": "nginx", "image": "nginx-1.0"}]


def test_delete_directive_on_a_map_and_null_are_equivalent() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    by_directive = smp(original, {"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}, "Deployment")
    by_null = smp(original, {"spec": {"strategy": {"rollingUpdate": None}}}, "Deployment")
    assert by_directive == by_null == {"spec": {"strategy": {"type": "RollingUpdate"}}}


def test_delete_from_primitive_list() -> None:
    out = smp({"metadata": {"finalizers": ["a", "b", "c"]}},
              {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}})
    assert out["metadata"]["finalizers"] == ["a"]


def test_set_element_order_of_primitives_and_of_maps() -> None:
    out = smp({"metadata": {"finalizers": ["a", "b", "c"]}},
              {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}})
    assert out["metadata"]["finalizers"] == ["b", "c", "a"]
    original = pod_containers({"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"})
    out = smp(original, {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "c", "a"]
    assert out["spec"]["containers"][0] == {"name": "b", "image": "2"}


def test_retain_keys_clears_the_other_members_of_a_union() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert smp(original, patch, "Deployment") == {"spec": {"strategy": {"type": "Recreate"}}}
    # volumes are merge,retainKeys: the source of a volume is a union
    original = {"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "x"}}]}}
    patch = {"spec": {"volumes": [{"$retainKeys": ["hostPath", "name"], "name": "data", "hostPath": {"path": "/d"}}]}}
    out = smp(original, patch)
    assert {v["name"]: v for v in out["spec"]["volumes"]} == {
        "data": {"name": "data", "hostPath": {"path": "/d"}}, "cfg": {"name": "cfg", "configMap": {"name": "x"}}}


# ---- apimachinery strategicpatch test cases -------------------------------------------------------


def test_unique_scalars_when_merging_lists() -> None:
    out = smp({"metadata": {"finalizers": ["1", "2"]}}, {"metadata": {"finalizers": ["2", "3"]}})
    assert sorted(out["metadata"]["finalizers"]) == ["1", "2", "3"]


def test_delete_all_items_from_merging_list_with_replace() -> None:
    out = smp(pod_containers({"name": "1"}, {"name": "2"}), pod_containers({"$patch": "replace"}))
    assert out["spec"]["containers"] == []


def test_delete_all_keys_from_map_and_add_one() -> None:
    assert smp({"metadata": {"labels": {"name": "1", "value": "1"}}},
               {"metadata": {"labels": {"other": "a", "$patch": "replace"}}}) == \
        {"metadata": {"labels": {"other": "a"}}}


def test_preserve_the_order_from_the_patch_in_a_merging_list() -> None:
    original = pod_containers({"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"})
    out = smp(original, pod_containers({"name": "3", "image": "c"}, {"name": "1", "image": "a"},
                                       {"name": "2", "imagePullPolicy": "x"}))
    assert out["spec"]["containers"] == [{"name": "3", "image": "c"}, {"name": "1", "image": "a"},
                                         {"name": "2", "image": "b", "imagePullPolicy": "x"}]
    out = smp(original, pod_containers({"name": "3", "image": "c"}, {"name": "1", "image": "a"}))
    assert out["spec"]["containers"] == [{"name": "2", "image": "b"}, {"name": "3", "image": "c"},
                                         {"name": "1", "image": "a"}]


def test_preserve_the_order_from_the_patch_in_a_merging_scalar_list() -> None:
    out = smp({"metadata": {"finalizers": ["1", "2", "3"]}}, {"metadata": {"finalizers": ["3", "1"]}})
    assert out["metadata"]["finalizers"] == ["2", "3", "1"]


def test_set_element_order_with_an_item_missing_from_the_list() -> None:
    out = smp(pod_containers({"name": "1"}, {"name": "3"}),
              {"spec": {"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                        "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}})
    assert out["spec"]["containers"] == [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]


def test_merge_lists_of_maps_with_set_element_order() -> None:
    current = pod_containers({"name": "1", "tty": True}, {"name": "2", "image": "2", "stdin": True})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
                      "containers": [{"name": "4", "image": "4"}, {"name": "3", "image": "3"}]}}
    assert smp(current, patch)["spec"]["containers"] == [
        {"name": "4", "image": "4"}, {"name": "1", "tty": True}, {"name": "2", "image": "2", "stdin": True},
        {"name": "3", "image": "3"}]


def test_nested_patch_with_a_delete_of_a_missing_item() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "hello"}, {"name": "doesntexist"}],
                      "containers": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]}}
    out = smp({"metadata": {"name": "hi"}, "spec": {"containers": [{"name": "hello2"}]}}, patch)
    assert out == {"metadata": {"name": "hi"}, "spec": {"containers": [{"name": "hello"}, {"name": "hello2"}]}}


def test_add_and_delete_items_in_lists_of_scalars() -> None:
    patch = {"metadata": {"$setElementOrder/finalizers": ["1", "2", "4"], "$deleteFromPrimitiveList/finalizers": ["3"],
                          "finalizers": ["4"]}}
    assert smp({"metadata": {"finalizers": ["1", "2", "3", "3"]}}, patch)["metadata"]["finalizers"] == ["1", "2", "4"]
    # deleting what is not there adds nothing, also from a list that does not exist
    assert smp({"metadata": {"finalizers": ["1"]}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["3"]}}) == \
        {"metadata": {"finalizers": ["1"]}}
    assert smp({"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["3"]}}) == {"metadata": {}}


def test_non_merging_lists_are_replaced_and_nulls_delete() -> None:
    original = {"spec": {"tolerations": [{"key": "a"}, {"key": "b"}], "nodeName": "n", "hostname": "h"}}
    out = smp(original, {"spec": {"tolerations": [{"key": "c"}], "nodeName": None, "missing": None}})
    assert out == {"spec": {"tolerations": [{"key": "c"}], "hostname": "h"}}


def test_set_element_order_that_does_not_match_the_patch_list_is_a_bad_request() -> None:
    with pytest.raises(PatchError, match="doesn't match") as e:
        smp(pod_containers({"name": "1"}, {"name": "3"}, {"name": "2"}),
            {"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                      "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}})
    assert e.value.code == 400


def test_missing_merge_key_is_an_error_with_the_field_path() -> None:
    with pytest.raises(errors.Invalid) as e:
        apply_patch(pod_containers({"name": "1", "image": "a"}), pod_containers({"image": "b"}),
                    "application/strategic-merge-patch+json", "Pod")
    assert e.value.code == 422
    assert e.value.causes[0]["field"] == "spec.containers[0]"
    assert "does not contain declared merge key: name" in e.value.causes[0]["message"]


def test_bad_directive_is_an_error_not_a_crash() -> None:
    with pytest.raises(errors.Invalid) as e:
        apply_patch({"spec": {}}, {"spec": {"$patch": "explode"}}, "strategic", "Pod")
    assert e.value.causes[0]["field"] == "spec.$patch"
    with pytest.raises(errors.BadRequest):
        apply_patch({"spec": {}}, {"metadata": {"$retainKeys": "type"}}, "strategic", "Pod")
    with pytest.raises(errors.BadRequest):
        apply_patch({"spec": {}}, ["not", "a", "map"], "strategic", "Pod")


# ---- Kubernetes merge keys ----------------------------------------------------------------------


def test_kubernetes_merge_keys_per_kind() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = smp(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service")
    assert {p["port"]: p.get("targetPort") for p in out["spec"]["ports"]} == {80: 9090, 443: None}
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}
    out = smp(pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert {c["type"]: c["status"] for c in out["status"]["conditions"]} == {"Ready": "True", "PodScheduled": "True"}
    c = {"name": "web", "ports": [{"containerPort": 80}], "volumeMounts": [{"mountPath": "/a", "name": "a"}],
         "env": [{"name": "A", "value": "1"}]}
    out = smp({"spec": {"template": {"spec": {"containers": [c]}}}},
              {"spec": {"template": {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 81}],
                                                              "volumeMounts": [{"mountPath": "/a", "readOnly": True}],
                                                              "env": [{"name": "B", "value": "2"}]}]}}}}, "Deployment")
    web = out["spec"]["template"]["spec"]["containers"][0]
    assert sorted(p["containerPort"] for p in web["ports"]) == [80, 81]
    assert web["volumeMounts"] == [{"mountPath": "/a", "name": "a", "readOnly": True}]
    assert sorted(e["name"] for e in web["env"]) == ["A", "B"]
    # a list with no patch strategy in Kubernetes' types (args) is replaced
    out = smp(pod_containers({"name": "w", "args": ["a", "b"]}), pod_containers({"name": "w", "args": ["c"]}))
    assert out["spec"]["containers"][0]["args"] == ["c"]


def test_kubectl_apply_patch_changing_an_image_and_adding_an_env_var() -> None:
    """The patch kubectl 1.32 ``apply`` sends (CreateThreeWayMergePatch) when the manifest's container
    image changes and an env var is added: keys sorted, $setElementOrder for both lists."""
    live = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
             "env": [{"name": "MODE", "value": "a"}]},
            {"name": "sidecar", "image": "busybox:1.36"}]}}},
    }
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}\n"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"$setElementOrder/env": [{"name": "MODE"}, {"name": "LEVEL"}],
                            "env": [{"name": "LEVEL", "value": "debug"}], "image": "busybox:latest", "name": "web"}]}}},
    }
    out = smp(live, patch, "Deployment")
    web, sidecar = out["spec"]["template"]["spec"]["containers"]
    assert web == {"name": "web", "image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
                   "env": [{"name": "MODE", "value": "a"}, {"name": "LEVEL", "value": "debug"}]}
    assert sidecar == {"name": "sidecar", "image": "busybox:1.36"}
    assert out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == "{\"new\":1}\n"
    assert out["spec"]["replicas"] == 2


def test_kubectl_apply_patch_removing_a_container_and_a_finalizer() -> None:
    live = {"metadata": {"finalizers": ["a", "b"]},
            "spec": {"containers": [{"name": "web", "image": "x"}, {"name": "old", "image": "y"}]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "$setElementOrder/finalizers": ["a"]},
             "spec": {"$setElementOrder/containers": [{"name": "web"}],
                      "containers": [{"$patch": "delete", "name": "old"}]}}
    out = smp(live, patch)
    assert out == {"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "web", "image": "x"}]}}


def test_patch_type_names() -> None:
    for ptype in ("strategic", "application/strategic-merge-patch+json"):
        out = apply_patch(pod_containers({"name": "a", "image": "1"}), pod_containers({"name": "b", "image": "2"}),
                          ptype, "Pod")
        assert [c["name"] for c in out["spec"]["containers"]] == ["b", "a"]
    with pytest.raises(errors.ApiError) as e:
        apply_patch({}, {}, "application/yaml", "Pod")
    assert e.value.code == 415
