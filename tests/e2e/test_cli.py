"""The ``k8n`` CLI against a real all-in-one cluster (``k8n up``), checked as a user would:
what the real binary prints and its exit code."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.upcluster import K8N, launch_up, wait_up

pytestmark = pytest.mark.slow

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{{containerPort: 80}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 80}}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
  labels: {{tier: front}}
data: {{color: blue}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    data = tmp_path_factory.mktemp("k8n-data")
    log = open(data.parent / f"{data.name}-up.log", "wb")
    proc = launch_up(data, log, "--nats-port", "0", new_session=False)
    try:
        wait_up(proc, data, lambda: Path(log.name).read_text(errors="replace")[-2000:])
    except AssertionError:
        proc.kill()
        raise
    yield data
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def k8n(cluster):
    env = {**os.environ, "K8N_DATA_DIR": str(cluster)}
    for inherited in ("K8N_SERVER", "K8N_CREDS_DIR", "K8N_CREDS"):
        env.pop(inherited, None)

    def run(*args: str, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([K8N, *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout)

    run.env = env
    return run


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def app(k8n, tmp_path_factory):
    """The sample app applied once in namespace ``shop`` (tests read it)."""
    path = tmp_path_factory.mktemp("manifests") / "app.yaml"
    ok(k8n("apply", "-f", write(path, MANIFEST.format(ns="shop", replicas=2))))
    return path


def test_apply_creates_then_unchanged_then_configured(k8n, tmp_path):
    path = write(tmp_path / "app.yaml", MANIFEST.format(ns="apply-e2e", replicas=2))
    assert ok(k8n("apply", "-f", path)).splitlines() == [
        "namespace/apply-e2e created", "deployment.apps/web created", "service/web created",
        "configmap/settings created"]
    assert ok(k8n("apply", "-f", path)).splitlines() == [
        "namespace/apply-e2e unchanged", "deployment.apps/web unchanged", "service/web unchanged",
        "configmap/settings unchanged"]
    write(tmp_path / "app.yaml", MANIFEST.format(ns="apply-e2e", replicas=3))
    out = ok(k8n("apply", "-f", path)).splitlines()
    assert "deployment.apps/web configured" in out and "service/web unchanged" in out
    web = json.loads(ok(k8n("get", "deploy", "web", "-n", "apply-e2e", "-o", "json")))
    assert web["kind"] == "Deployment" and web["spec"]["replicas"] == 3
    applied = json.loads(web["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["spec"]["replicas"] == 3


def test_apply_from_stdin_and_directory_with_namespace_flag(k8n, tmp_path):
    ok(k8n("create", "-f", "-", stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: dir-e2e}\n"))
    (tmp_path / "b.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b2"}}]}))
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert ok(k8n("apply", "-n", "dir-e2e", "-f", str(tmp_path))).splitlines() == [
        "configmap/a created", "configmap/b1 created", "configmap/b2 created"]
    names = ok(k8n("get", "cm", "-n", "dir-e2e", "-o", "name")).split()
    # kube-root-ca.crt is every namespace's own (the ServiceAccount controller makes it, as in Kubernetes)
    assert [n for n in names if n != "configmap/kube-root-ca.crt"] == ["configmap/a", "configmap/b1", "configmap/b2"]


def test_get_tables(k8n, app):
    wide = ok(k8n("get", "deploy", "-n", "shop", "-o", "wide")).splitlines()
    assert wide[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[0] == "web" and wide[1].split()[-3:] == ["nginx", "nginx:1.25", "app=web"]
    everything = ok(k8n("get", "all", "-n", "shop"))
    assert "deployment.apps/web" in everything and "service/web" in everything
    assert "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE" in everything
    ns = ok(k8n("get", "ns")).splitlines()
    assert ns[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["shop", "Active"] for line in ns)
    everywhere = ok(k8n("get", "svc", "-A")).splitlines()
    assert everywhere[0].split()[:3] == ["NAMESPACE", "NAME", "TYPE"]
    assert any(line.split()[:2] == ["shop", "web"] for line in everywhere)


def test_get_missing_name_is_a_not_found_error(k8n, app):
    r = k8n("get", "pods", "nosuch")
    assert r.returncode == 1
    assert 'Error from server (NotFound): pods "nosuch" not found' in r.stderr
    both = k8n("get", "cm", "settings", "nosuch", "-n", "shop")
    assert both.returncode == 1 and "settings" in both.stdout and '"nosuch" not found' in both.stderr
    empty = k8n("get", "pods", "-n", "shop", "-l", "app=nothing")
    assert empty.returncode == 0 and "No resources found in shop namespace." in empty.stderr
    unknown = k8n("get", "foo")
    assert unknown.returncode == 1 and 'the server doesn\'t have a resource type "foo"' in unknown.stderr


def test_output_name_and_label_selector(k8n, app, tmp_path):
    ok(k8n("apply", "-n", "shop", "-f", write(tmp_path / "back.yaml", (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: backend, labels: {tier: back}}\n"))))
    assert ok(k8n("get", "deploy,svc", "-n", "shop", "-o", "name")).split() == ["deployment.apps/web", "service/web"]
    assert ok(k8n("get", "cm", "-n", "shop", "-l", "tier=front", "-o", "name")).split() == ["configmap/settings"]
    assert ok(k8n("get", "cm", "-n", "shop", "-l", "tier in (front,back)", "-o", "name")).split() == [
        "configmap/backend", "configmap/settings"]
    listed = json.loads(ok(k8n("get", "cm", "-n", "shop", "-l", "tier=back", "-o", "json")))
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["backend"]


def test_replace_with_stale_resource_version_conflicts(k8n, app, tmp_path):
    ok(k8n("apply", "-n", "shop", "-f", write(tmp_path / "r.yaml", "apiVersion: v1\nkind: ConfigMap\n"
                                              "metadata: {name: replaced}\ndata: {v: '1'}\n")))
    live = json.loads(ok(k8n("get", "cm", "replaced", "-n", "shop", "-o", "json")))
    live["data"]["v"] = "2"
    path = write(tmp_path / "live.json", json.dumps(live))
    assert ok(k8n("replace", "-f", path)).strip() == "configmap/replaced replaced"
    stale = k8n("replace", "-f", path)  # the same resourceVersion again: now stale
    assert stale.returncode == 1
    assert "Error from server (Conflict): " in stale.stderr and '"replaced"' in stale.stderr


def test_create_existing_is_already_exists(k8n, app):
    r = k8n("create", "-f", str(app))
    assert r.returncode == 1
    assert 'Error from server (AlreadyExists): deployments.apps "web" already exists' in r.stderr


def test_invalid_field_is_reported_with_its_path(k8n, tmp_path):
    bad = MANIFEST.format(ns="default", replicas=-1).split("---\n")[1].replace("name: web", "name: bad")
    r = k8n("apply", "-f", write(tmp_path / "bad.yaml", bad))
    assert r.returncode == 1
    assert 'The Deployment "bad" is invalid: ' in r.stderr and "spec.replicas" in r.stderr


def test_unknown_field_warns(k8n, tmp_path):
    r = k8n("apply", "-f", write(tmp_path / "w.yaml", "apiVersion: v1\nkind: ConfigMap\n"
                                 "metadata: {name: warned}\nbogusField: 1\n"))
    assert r.returncode == 0 and r.stdout.strip() == "configmap/warned created"
    assert "Warning: " in r.stderr and "bogusField" in r.stderr


def test_describe_deployment(k8n, app):
    out = ok(k8n("describe", "deploy", "web", "-n", "shop"))
    lines = out.splitlines()
    assert lines[0].split() == ["Name:", "web"]
    assert any(line.split()[:2] == ["Namespace:", "shop"] for line in lines)
    assert any(line.startswith("Replicas:") and "desired" in line for line in lines)
    events = lines.index(next(line for line in lines if line.startswith("Events:")))
    assert all(line.startswith("  ") for line in lines[events + 1:])  # the event rows, if any, end the output
    assert ok(k8n("describe", "svc/web", "-n", "shop")).splitlines()[0].split() == ["Name:", "web"]


def test_watch_prints_modified_event(k8n, tmp_path):
    path = write(tmp_path / "app.yaml", MANIFEST.format(ns="watch-e2e", replicas=1))
    ok(k8n("apply", "-f", path))
    proc = subprocess.Popen([K8N, "get", "deploy", "-n", "watch-e2e", "-w", "-o", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=k8n.env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()

    def next_event(deadline: float) -> dict:
        return json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic())))

    try:
        deadline = time.monotonic() + 20
        first = next_event(deadline)
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "web"
        write(tmp_path / "app.yaml", MANIFEST.format(ns="watch-e2e", replicas=4))
        ok(k8n("apply", "-f", path))
        while True:
            ev = next_event(deadline)
            if ev["type"] == "MODIFIED" and ev["object"]["spec"]["replicas"] == 4:
                break
    finally:
        proc.terminate()
        proc.wait(10)


def test_delete_from_file_and_by_name(k8n, tmp_path):
    path = write(tmp_path / "d.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d1}\n---\n"
                                      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d2}\n")
    ok(k8n("apply", "-f", path))
    assert ok(k8n("delete", "-f", path)).splitlines() == ['configmap "d1" deleted', 'configmap "d2" deleted']
    again = k8n("delete", "cm", "d1")
    assert again.returncode == 1 and 'Error from server (NotFound): configmaps "d1" not found' in again.stderr
    assert k8n("get", "cm", "d2").returncode == 1


def test_version(k8n):
    out = ok(k8n("version")).splitlines()
    assert out[0].startswith("Client Version: v") and out[1].startswith("Server Version: v")
    assert ok(k8n("version", "--client")).splitlines() == [out[0]]


def test_unreachable_cluster(k8n):
    r = k8n("get", "pods", "--server", "nats://127.0.0.1:1")
    assert r.returncode == 1 and r.stderr.startswith("error: cannot reach the k8n cluster at nats://127.0.0.1:1")
