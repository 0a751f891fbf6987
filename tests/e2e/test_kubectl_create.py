"""Clients against ``k8n up`` as users run them: stock kubectl's ``create`` generators (protobuf bodies) and
chunked lists, and the official Python client's exec with stdin written as text. One cluster (one node agent, for
the exec) serves the module."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import config
from kubernetes.client import CoreV1Api
from kubernetes.stream import stream

from tests.builders import IMAGE
from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "kc"


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("kcreate"))
    try:
        c.start(agent=True)
        c.kubectl("create", "namespace", NS)
        yield c
    finally:
        c.stop()


def get_json(k: UpCluster, *args: str) -> dict:
    return json.loads(k.kubectl("get", *args, "-o", "json").stdout)


def test_create_role_rolebinding_clusterrole_and_bindings(k):
    assert k.kubectl("create", "role", "reader", "--verb=get,list", "--resource=pods,configmaps",
                     "-n", NS).stdout.strip() == "role.rbac.authorization.k8s.io/reader created"
    assert get_json(k, "role", "reader", "-n", NS)["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}]
    k.kubectl("create", "rolebinding", "reader", "--role=reader", "--user=alice", f"--serviceaccount={NS}:default",
              "-n", NS)
    rb = get_json(k, "rolebinding", "reader", "-n", NS)
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert {s["kind"] for s in rb["subjects"]} == {"User", "ServiceAccount"}
    k.kubectl("create", "clusterrole", "kc-logs", "--verb=get", "--non-resource-url=/logs/*")
    assert get_json(k, "clusterrole", "kc-logs")["rules"] == [{"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}]
    k.kubectl("create", "clusterrolebinding", "kc-logs", "--clusterrole=kc-logs", "--group=devs")
    assert get_json(k, "clusterrolebinding", "kc-logs")["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}]
    # what the binding grants is what the role says
    can = k.kubectl("auth", "can-i", "list", "configmaps", "-n", NS, f"--as=system:serviceaccount:{NS}:default",
                    check=False)
    assert can.stdout.strip() == "yes"


def test_create_token(k):
    eventually_sync(lambda: k.kubectl("get", "serviceaccount", "default", "-n", NS, check=False).returncode == 0,
                    30, "the namespace's default ServiceAccount")
    token = k.kubectl("create", "token", "default", "-n", NS, "--audience=kc-aud", "--duration=10m").stdout.strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{NS}:default" and claims["aud"] == ["kc-aud"]
    assert 590 <= claims["exp"] - claims["iat"] <= 600


def test_get_with_small_chunks_shows_every_item_once(k):
    for i in range(5):
        k.kubectl("create", "configmap", f"chunk-{i}", f"--from-literal=i={i}", "-n", NS)
    names = k.kubectl("get", "configmaps", "-n", NS, "--chunk-size=2", "-o", "name").stdout.split()
    assert [n for n in names if n.startswith("configmap/chunk-")] == [f"configmap/chunk-{i}" for i in range(5)]
    assert len(names) == len(set(names))
    table = k.kubectl("get", "configmaps", "-n", NS, "--chunk-size=2").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "DATA"] and sum(1 for line in table if line.startswith("NAME")) == 1
    assert [line.split()[0] for line in table if line.startswith("chunk-")] == [f"chunk-{i}" for i in range(5)]


def test_python_client_exec_writes_stdin_as_text(k):
    k.kubectl("run", "reader", f"--image={IMAGE}", "--restart=Never", "-n", NS, "--", "sleep", "3600")
    k.kubectl("wait", "--for=condition=Ready", "pod/reader", "-n", NS, "--timeout=60s", timeout=70)
    core = CoreV1Api(config.new_client_from_config(config_file=str(k.kubeconfig)))
    resp = stream(core.connect_get_namespaced_pod_exec, "reader", NS, command=["sh", "-c", "read l; echo got:$l"],
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    try:
        resp.write_stdin("hello from text\n")  # a TEXT frame: "\x00hello from text\n"
        resp.run_forever(timeout=20)
        out = resp.read_stdout()
    finally:
        resp.close()
    assert out == "got:hello from text\n"
    assert resp.returncode == 0


def test_server_side_apply_after_client_side_apply_and_an_empty_map_filled_later(k):
    def cm(data: str) -> str:
        return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-up\n  namespace: {NS}\ndata: {data}\n"

    k.kubectl("apply", "-f", "-", input=cm("{a: '1'}"))  # client-side: kubectl-client-side-apply owns data.a
    out = k.kubectl("apply", "--server-side", "-f", "-", input=cm("{a: '2'}"))  # kubectl upgrades without conflict
    assert out.stdout.strip() == "configmap/ssa-up serverside-applied"
    got = get_json(k, "configmap", "ssa-up", "-n", NS)
    assert got["data"] == {"a": "2"}
    assert json.loads(got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])["data"] \
        == {"a": "2"}
    k.kubectl("apply", "--server-side", "--field-manager=filler", "-f", "-", input=cm("{}").replace("ssa-up", "fill"))
    k.kubectl("apply", "--server-side", "--field-manager=filler", "-f", "-",
              input=cm("{b: '3'}").replace("ssa-up", "fill"))
    assert get_json(k, "configmap", "fill", "-n", NS)["data"] == {"b": "3"}


def test_python_client_reads_typed_statuses_and_kubernetes_error_bodies(k):
    from kubernetes.client import AppsV1Api, V1ReplicationController
    from kubernetes.client.exceptions import ApiException

    api = config.new_client_from_config(config_file=str(k.kubeconfig))
    core = CoreV1Api(api)
    rc = core.create_namespaced_replication_controller(NS, {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "py-rc"},
        "spec": {"replicas": 0, "selector": {"app": "py-rc"}, "template": {
            "metadata": {"labels": {"app": "py-rc"}}, "spec": {"containers": [{"name": "c", "image": IMAGE}]}}}})
    assert isinstance(rc, V1ReplicationController) and rc.status.replicas == 0
    ds = AppsV1Api(api).create_namespaced_daemon_set(NS, {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "py-ds"},
        "spec": {"selector": {"matchLabels": {"app": "py-ds"}}, "template": {
            "metadata": {"labels": {"app": "py-ds"}},
            "spec": {"nodeSelector": {"no": "such-node"}, "containers": [{"name": "c", "image": IMAGE}]}}}})
    assert (ds.status.current_number_scheduled, ds.status.number_misscheduled) == (0, 0)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("missing", NS)
    assert e.value.status == 404
    assert e.value.body == ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                            '"message":"configmaps \\"missing\\" not found","reason":"NotFound",'
                            '"details":{"name":"missing","kind":"configmaps"},"code":404}\n')
