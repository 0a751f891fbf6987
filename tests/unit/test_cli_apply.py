"""The three-way merge patch of ``k8n apply`` (kubectl's client-side apply semantics)."""

import json

from bus.cli.apply import LAST_APPLIED, contains, three_way_patch, with_last_applied
from tests import builders
from tests.builders import container


def deployment(replicas=2, **spec_extra):
    return builders.deployment("web", replicas=replicas, **spec_extra, containers=[
        container("c", image="nginx", pull=None, ports=[{"containerPort": 80}])])


def live_from(manifest):
    """What the server holds after applying ``manifest``: defaults, status, controller fields."""
    live = with_last_applied(manifest)
    live["metadata"].update(uid="u1", resourceVersion="7", generation=1)
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
    live["status"] = {"replicas": 2, "readyReplicas": 2}
    return live


def last_applied(obj):
    return json.loads(obj["metadata"]["annotations"][LAST_APPLIED])


def test_unchanged_manifest_gives_empty_patch():
    m = deployment()
    live = live_from(m)
    assert three_way_patch(last_applied(live), with_last_applied(m), live) == {}


def test_changed_scalar_is_set_and_controller_fields_preserved():
    live = live_from(deployment(2))
    new = with_last_applied(deployment(5))
    patch = three_way_patch(last_applied(live), new, live)
    assert patch["spec"] == {"replicas": 5}
    # status, defaults and the controller's annotation are not touched
    assert "status" not in patch and "strategy" not in patch["spec"]
    assert set(patch["metadata"]["annotations"]) == {LAST_APPLIED}
    assert last_applied(new)["spec"]["replicas"] == 5


def test_field_removed_from_manifest_becomes_null():
    live = live_from(deployment(2, minReadySeconds=10))
    patch = three_way_patch(last_applied(live), with_last_applied(deployment(2)), live)
    assert patch["spec"] == {"minReadySeconds": None}


def test_field_never_applied_is_kept_even_if_absent_from_manifest():
    live = live_from(deployment(2))
    live["spec"]["paused"] = True  # set by someone else, not by apply
    patch = three_way_patch(last_applied(live), with_last_applied(deployment(2)), live)
    assert patch == {}


def test_changed_list_is_replaced_whole():
    live = live_from(deployment(2))
    new = deployment(2)
    new["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    patch = three_way_patch(last_applied(live), with_last_applied(new), live)
    assert patch["spec"]["template"]["spec"]["containers"] == new["spec"]["template"]["spec"]["containers"]


def test_field_removed_inside_list_item_replaces_the_list():
    m = deployment(2)
    m["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    live = live_from(m)
    patch = three_way_patch(last_applied(live), with_last_applied(deployment(2)), live)
    assert "env" not in patch["spec"]["template"]["spec"]["containers"][0]


def test_list_changed_live_is_restored():
    live = live_from(deployment(2))
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "httpd"
    patch = three_way_patch(last_applied(live), with_last_applied(deployment(2)), live)
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"


def test_no_last_applied_sets_only_what_differs():
    live = live_from(deployment(2))
    del live["metadata"]["annotations"][LAST_APPLIED]
    patch = three_way_patch(None, with_last_applied(deployment(2)), live)
    assert list(patch) == ["metadata"] and LAST_APPLIED in patch["metadata"]["annotations"]


def test_last_applied_excludes_itself_and_is_compact():
    obj = with_last_applied(with_last_applied({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}))
    text = obj["metadata"]["annotations"][LAST_APPLIED]
    assert " " not in text and LAST_APPLIED not in text
    assert json.loads(text) == {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}


def test_contains():
    assert contains([{"port": 80, "protocol": "TCP"}], [{"port": 80}])
    assert not contains([{"port": 80}], [{"port": 80}, {"port": 81}])
    assert not contains({"a": 1}, {"a": 2})
