"""``GET /metrics`` through the real gateway (in process, on its own bus identity, authentication and RBAC on) in
front of a real control plane (``python -m master``: API server, controller manager, scheduler) publishing its
telemetry on the bus every second: the scrape parses as Prometheus text, carries families of several components
labelled by component, counts the pods created, and is refused to a ServiceAccount without ``get /metrics``."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bus import roles
from bus.client import ApiClient, resource_of
from bus.proc import stop_process
from bus.roles import Identity
from master.gateway.app import make_app
from master.gateway.auth import User
from tests.builders import pod
from tests.conftest import wait_for_api
from tests.harness import Cluster
from tests.waiting import eventually

ADMIN_TOKEN = "admin-token"
NS = "watchers"


@pytest.fixture
async def cluster(nats_server, tmp_path, monkeypatch):
    monkeypatch.setenv("K8N_TELEMETRY_SECONDS", "1")  # the gateway in this process, and the control plane's
    c = Cluster(nats_server, tmp_path, "none", "10.244.0.0/24")
    c.start_control("apiserver,controllers,scheduler", {"K8N_TELEMETRY_SECONDS": "1"})
    admin = nats_server.credentials(Identity(roles.ADMIN))
    try:
        await wait_for_api(nats_server.url, creds=admin)
        client = await ApiClient.connect(nats_server.url, creds=admin)
        gateway = await ApiClient.connect(nats_server.url, Identity(roles.GATEWAY))
        app = make_app(nats_server.url, {ADMIN_TOKEN: User("admin", "admin", ("system:masters",
                                                                               "system:authenticated"))},
                       client=gateway)
        http = TestClient(TestServer(app))
        await http.start_server()
        yield client, http
        await http.close()
        await gateway.close()
        await client.close()
    finally:
        stop_process(c.control)


async def scrape(http, token: str = ADMIN_TOKEN) -> dict:
    r = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(await r.text())}


def total(families: dict, family: str, sample: str, **labels: str) -> float:
    f = families.get(family)
    return sum(s.value for s in (f.samples if f else []) if s.name == sample
               and all(s.labels.get(k) == v for k, v in labels.items()))


def components(families: dict, family: str) -> set[str]:
    f = families.get(family)
    return {s.labels.get("component") for s in (f.samples if f else [])}


POD_CREATES = {"verb": "POST", "resource": "pods", "code": "201", "component": "apiserver"}


async def test_metrics_of_every_component_and_pod_creates_counted(cluster):
    client, http = cluster
    for i in range(2):  # unschedulable (no nodes): the scheduler counts its attempts
        await client.create(pod(f"warmup-{i}"))

    async def all_there():
        fams = await scrape(http)
        return ("apiserver" in components(fams, "apiserver_request")
                and "controller-manager" in components(fams, "workqueue_adds")
                and "scheduler" in components(fams, "scheduler_schedule_attempts")
                and "gateway" in components(fams, "gateway_http_requests")
                and total(fams, "nats_jetstream_streams", "nats_jetstream_streams", component="apiserver") > 0
                and total(fams, "apiserver_request", "apiserver_request_total", **POD_CREATES) >= 2)

    await eventually(all_there, 30, "families of the API server, controller manager, scheduler and gateway")
    fams = await scrape(http)
    assert fams["apiserver_request"].type == "counter"
    assert fams["apiserver_request_duration_seconds"].type == "histogram"
    assert fams["workqueue_depth"].type == "gauge"
    assert {s.labels["name"] for s in fams["workqueue_adds"].samples} >= {"replicaset", "deployment"}
    before = total(fams, "apiserver_request", "apiserver_request_total", **POD_CREATES)

    for i in range(5):
        await client.create(pod(f"counted-{i}"))

    async def counted():
        now = await scrape(http)
        return total(now, "apiserver_request", "apiserver_request_total", **POD_CREATES) >= before + 5

    await eventually(counted, 15, "five more pods/create counted by the API server")
    after = await scrape(http)
    timed = total(after, "apiserver_request_duration_seconds", "apiserver_request_duration_seconds_count",
                  verb="POST", resource="pods", component="apiserver")
    assert timed >= before + 5


async def test_metrics_need_get_on_the_nonresource_url(cluster):
    client, http = cluster
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default",
                                                                                     "namespace": NS}})
    token = (await client.request(resource_of("serviceaccounts"), "create", NS, "default", subresource="token",
                                  body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": {}}))["status"]["token"]
    r = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 403
    status = await r.json()
    assert status["kind"] == "Status" and status["reason"] == "Forbidden"
    assert "/metrics" in status["message"]
    assert (await http.get("/metrics")).status == 401

    # system:monitoring grants it, as in Kubernetes
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                         "metadata": {"name": "watchers-monitoring"},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                     "name": "system:monitoring"},
                         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]})

    async def allowed():
        return (await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})).status == 200

    await eventually(allowed, 10, "the ServiceAccount bound to system:monitoring scrapes /metrics")
