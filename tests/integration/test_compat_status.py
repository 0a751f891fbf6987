"""Created and updated objects carry the status kube-apiserver answers, through a real nats-server, API server and
gateway, read by the official Python client's typed models (which reject ``status: {}`` for a
ReplicationController or a DaemonSet)."""

from __future__ import annotations

import asyncio

from kubernetes import client as k8s

from bus.resources import by_kind
from tests.builders import container, daemonset, replicaset
from tests.integration.test_gateway import TOKEN, http  # noqa: F401  (the gateway fixture)


def rc_body(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
            "spec": {"replicas": 0, "selector": {"app": name}, "template": {
                "metadata": {"labels": {"app": name}}, "spec": {"containers": [container("c")]}}}}


async def test_create_answers_the_zero_counts_and_status_writers_cannot_drop_them(client):
    rc = await client.create(rc_body("rc"))
    assert rc["status"] == {"replicas": 0}
    ds = await client.create(daemonset("ds"))
    assert ds["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                            "numberReady": 0}
    assert (await client.create(replicaset("rs", replicas=0)))["status"] == {"replicas": 0}
    # a controller writing a status that leaves zeros out
    ds["status"] = {"observedGeneration": 1, "numberReady": 0}
    out = await client.update(ds, subresource="status")
    assert out["status"] == {"observedGeneration": 1, "numberReady": 0, "currentNumberScheduled": 0,
                             "numberMisscheduled": 0, "desiredNumberScheduled": 0}
    assert (await client.get("daemonsets", "ds"))["status"] == out["status"]
    # a main-resource update keeps it too
    rc["spec"]["replicas"] = 0
    rc["metadata"]["labels"] = {"x": "y"}
    assert (await client.update(rc))["status"] == {"replicas": 0}
    assert by_kind("ReplicationController").has_status


async def test_the_python_clients_typed_models_read_them(http):
    cfg = k8s.Configuration()
    cfg.host = str(http.make_url("")).rstrip("/")
    cfg.api_key = {"authorization": f"Bearer {TOKEN}"}

    def use_client():
        api = k8s.ApiClient(cfg)
        core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        rc = core.create_namespaced_replication_controller("default", rc_body("py-rc"))
        ds = apps.create_namespaced_daemon_set("default", daemonset("py-ds"))
        return (rc.status.replicas, ds.status.desired_number_scheduled,
                core.read_namespaced_replication_controller_status("py-rc", "default").status.replicas)

    assert await asyncio.to_thread(use_client) == (0, 0, 0)
