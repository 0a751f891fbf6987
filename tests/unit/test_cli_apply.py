"""The three-way merge patch of ``k8n apply`` (kubectl's client-side apply semantics)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


# ---- manifests a user gets wrong: one line naming the file and the document, exit 1, no traceback -------------

REPO = Path(__file__).resolve().parents[2]

BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("content, line", [
    (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n",
     "error: m.yaml: document 2: missing apiVersion"),
    (b"apiVersion: v1\nmetadata: {name: a}\n", "error: m.yaml: document 1: missing kind"),
    (b"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata:\n  k: !!binary \"a\"\n",
     "error: m.yaml: document 1: line 5, column 6: failed to decode base64 data: Invalid base64-encoded string: "
     "number of data characters (1) cannot be 1 more than a multiple of 4"),
    (b"apiVersion: v1\nkind: ConfigMap\n---\nmetadata:\n  name: \xff\n",
     "error: m.yaml: document 2: invalid UTF-8 at byte 53"),
    (b"a: [1,\n", "error: m.yaml: document 1: line 2, column 1: while parsing a flow node; expected the node "
     "content, but found '<stream end>'"),
    (BOMB.encode(), "error: m.yaml: document 1: document contains excessive aliasing (more than 10000 nodes "
     "through aliases)"),
    (b"[" * 5000 + b"]" * 5000, "error: m.yaml: document 1: nested deeper than 100 levels"),
    (b"a: " + b"[" * 5000 + b"]" * 5000, "error: m.yaml: document 1: document is nested deeper than 100 levels"),
])
def test_bad_manifests_are_one_line_errors_before_connecting(tmp_path, content, line):
    (tmp_path / "m.yaml").write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "bus.cli", "apply", "-f", "m.yaml", "-s", "nats://127.0.0.1:9"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (out.returncode, out.stderr, out.stdout) == (1, line + "\n", "")
