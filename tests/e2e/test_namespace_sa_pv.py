"""Namespaces, service accounts and persistent volumes on a real cluster (control plane process,
a node agent running pods in Docker)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from bus import nodeclient
from bus.client import resource_of
from tests import builders
from tests.builders import configmap, container, deployment, pod
from tests.harness import NEEDS_DOCKER, get_or_none, in_namespace, start_cluster, stop_cluster
from tests.waiting import eventually

pytestmark = list(NEEDS_DOCKER)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture
async def cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path)
    yield c
    await stop_cluster(c)


async def _running(client, name, ns="default"):
    p = await get_or_none(client, "pods", name, ns)
    return p if p and p["status"].get("phase") == "Running" else None


def containers_in(namespace: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.pod.namespace={namespace}"],
                          capture_output=True, text=True).stdout.split()


async def test_deleting_a_namespace_removes_its_deployment_pods_and_containers(cluster):
    c, ns = cluster.client, f"shop-{uuid.uuid4().hex[:6]}"
    await c.create(builders.namespace(ns))
    await c.create(deployment("web", ns, replicas=3, grace=1, script="sleep 3600"))
    await c.create(configmap("settings", ns))

    async def three_running():
        pods = await in_namespace(c, "pods", ns)
        return len([p for p in pods if p["status"].get("phase") == "Running"]) == 3

    await eventually(three_running, 40, "3 pods of the deployment Running")
    assert len(containers_in(ns)) >= 6  # a sandbox and an app container per pod

    await c.delete("namespaces", ns)
    try:
        await eventually(lambda: _gone(c, "namespaces", ns), 40, "namespace removed")
    except AssertionError:
        left = await get_or_none(c, "namespaces", ns)
        raise AssertionError(f"namespace not removed: {left}") from None
    for res in ("deployments", "replicasets", "pods", "configmaps", "serviceaccounts", "secrets"):
        assert await in_namespace(c, res, ns) == [], res
    assert containers_in(ns) == []


async def _gone(client, res, name, ns=None):
    return await get_or_none(client, res, name, ns) is None


async def test_pods_run_as_the_default_account_and_read_its_token(cluster):
    c = cluster.client
    await c.create(pod("whoami", grace=1,
                       script=f"cat {SA_DIR}/token; echo; cat {SA_DIR}/namespace; echo; ls {SA_DIR}; sleep 3600"))
    await c.create(pod("no-token", grace=1, script=f"ls {SA_DIR} 2>&1; sleep 3600", automountServiceAccountToken=False))
    p = await eventually(lambda: _running(c, "whoami"), 40, "pod Running")
    assert p["spec"]["serviceAccountName"] == "default"
    await eventually(lambda: _running(c, "no-token"), 40, "pod without a token Running")


    async def logs(name):
        return b"".join([chunk async for chunk in nodeclient.logs(c, "default", name, "main")]).decode()

    async def printed():
        out = await logs("whoami")
        return out if "ca.crt" in out else None

    out = (await eventually(printed, 20, "the pod printing its token")).split()
    # a token bound to this pod, which the API server accepts (TokenRequest by the agent, not a Secret)
    review = await c.request(resource_of("tokenreviews"), "create", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": out[0]}})
    assert review["status"]["authenticated"] is True, review["status"]
    user = review["status"]["user"]
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [p["metadata"]["uid"]]
    assert out[1] == "default"
    assert {"token", "namespace", "ca.crt"} <= set(out[2:])
    assert "No such file or directory" in await eventually(lambda: logs("no-token"), 20, "no-token output")


async def test_a_pod_with_a_claim_waits_until_it_is_bound_then_writes_to_the_volume(cluster, tmp_path):
    c = cluster.client
    data = tmp_path / "pv-data"
    await c.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "store", "namespace": "default"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    await c.create(pod("writer", grace=1, volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "store"}}],
                       containers=[container("main", "echo written-by-pod > /data/out.txt; sleep 3600",
                                             volumeMounts=[{"name": "data", "mountPath": "/data"}])]))

    async def failed_mount():
        evs = await in_namespace(c, "events", "default")
        return [e for e in evs if e["involvedObject"].get("name") == "writer" and e["reason"] == "FailedMount"
                and "is not bound" in e["message"]]

    await eventually(failed_mount, 30, "a FailedMount event for the unbound claim")
    assert (await c.get("pods", "writer"))["status"]["phase"] == "Pending"

    await c.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{uuid.uuid4().hex[:6]}"},
                    "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                             "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(data)}}})
    await eventually(lambda: _running(c, "writer"), 40, "pod Running once the claim is bound")
    assert (await c.get("persistentvolumeclaims", "store", "default"))["status"]["phase"] == "Bound"
    await eventually(lambda: (data / "out.txt").exists(), 10, "the file in the volume's hostPath")
    assert (data / "out.txt").read_text().strip() == "written-by-pod"
