"""metrics.k8s.io/v1beta1 through the gateway against a real nats-server and API server: metrics published on the bus
by a node's own identity (as its agent does), read back as metrics-server answers — lists, gets, selectors, 404s,
405s, Tables — and authorized by RBAC (view reads a namespace's pod metrics; nobody else reads anything)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bus import codec, roles, subjects
from bus.authn import AUTHENTICATED
from bus.client import ApiClient
from bus.roles import Identity
from master.gateway.app import make_app
from master.gateway.auth import User
from tests.builders import node, pod
from tests.conftest import connect_as
from tests.waiting import eventually

BASE = "/apis/metrics.k8s.io/v1beta1"
USERS = {"admin-token": User("admin", "admin", ("system:masters",)),
         "viewer-token": User("viewer", "", (AUTHENTICATED,)), "nobody-token": User("nobody", "", (AUTHENTICATED,))}


def auth(user: str) -> dict:
    return {"Authorization": f"Bearer {user}-token"}


def node_doc(name: str, cpu: str) -> dict:
    return {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {"name": name},
            "timestamp": "2026-12-03T10:00:00Z", "window": "10s", "usage": {"cpu": cpu, "memory": "4096Ki"}}


def pod_doc(name: str, cpu: str) -> dict:
    return {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": name, "namespace": "default"}, "timestamp": "2026-12-03T10:00:00Z", "window": "10s",
            "containers": [{"name": "main", "usage": {"cpu": cpu, "memory": "1024Ki"}}]}


@pytest.fixture
async def http(nats_server, client):
    gateway = await ApiClient.connect(nats_server.url, Identity(roles.GATEWAY))
    tc = TestClient(TestServer(make_app(nats_server.url, USERS, client=gateway)))
    await tc.start_server()
    yield tc
    await tc.close()
    await gateway.close()


@pytest.fixture
async def published(nats_server, client, http):
    """Nodes n1 (with metrics) and n2 (without), pods web and db on n1 and idle (no metrics) on n2; the viewer bound
    to ``view`` in default; n1's agent identity publishing, and n2's trying to speak for n1's pod."""
    for n in ("n1", "n2"):
        await client.create(node(n, labels={"pool": "a" if n == "n1" else "b"}))
    for name, n in (("web", "n1"), ("db", "n1"), ("idle", "n2")):
        await client.create(pod(name, node=n, labels={"app": name}))
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "viewer", "namespace": "default"},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}]})
    n1 = await connect_as(nats_server, Identity.node("n1"))
    n2 = await connect_as(nats_server, Identity.node("n2"))

    async def served():  # published again on every try, as an agent does every period
        await n1.publish(subjects.node_metrics("n1"), codec.pack(node_doc("n1", "250000000n")))
        for name, cpu in (("web", "5000000n"), ("db", "1000000n")):
            await n1.publish(subjects.pod_metrics("n1", "default", name), codec.pack(pod_doc(name, cpu)))
        await n2.publish(subjects.pod_metrics("n2", "default", "db"), codec.pack(pod_doc("db", "999999999n")))
        await n1.flush()
        await n2.flush()
        r = await http.get(f"{BASE}/namespaces/default/pods", headers=auth("admin"))
        return r.status == 200 and len((await r.json())["items"]) == 2

    await eventually(served, 10, "the published pod metrics served")
    yield
    await n1.close()
    await n2.close()


async def test_nodes_list_get_and_not_found(http, published):
    r = await http.get(f"{BASE}/nodes", headers=auth("admin"))
    body = await r.json()
    assert r.status == 200 and body["kind"] == "NodeMetricsList" and body["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert [(i["metadata"]["name"], i["usage"]["cpu"], i["window"]) for i in body["items"]] == [
        ("n1", "250000000n", "10s")]
    assert body["items"][0]["metadata"]["labels"] == {"pool": "a"}
    r = await http.get(f"{BASE}/nodes/n1", headers=auth("admin"))
    assert (await r.json())["kind"] == "NodeMetrics"
    r = await http.get(f"{BASE}/nodes/n2", headers=auth("admin"))
    body = await r.json()
    assert r.status == 404 and body["message"] == 'nodemetrics.metrics.k8s.io "n2" not found'
    r = await http.get(f"{BASE}/nodes/gone", headers=auth("admin"))
    assert r.status == 404 and (await r.json())["message"] == 'node "gone" not found'
    r = await http.get(f"{BASE}/nodes?labelSelector=pool%3Db", headers=auth("admin"))
    assert (await r.json())["items"] == []


async def test_pods_selectors_other_nodes_claims_and_tables(http, published):
    r = await http.get(f"{BASE}/pods", headers=auth("admin"))
    body = await r.json()
    # db's sample from n2 (which does not run it) was not believed; idle has none
    assert [(i["metadata"]["name"], i["containers"][0]["usage"]["cpu"]) for i in body["items"]] == [
        ("db", "1000000n"), ("web", "5000000n")]
    r = await http.get(f"{BASE}/namespaces/default/pods?labelSelector=app%3Dweb", headers=auth("admin"))
    assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["web"]
    r = await http.get(f"{BASE}/namespaces/default/pods?fieldSelector=metadata.name%3Ddb", headers=auth("admin"))
    assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["db"]
    r = await http.get(f"{BASE}/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn1", headers=auth("admin"))
    assert r.status == 400 and (await r.json())["message"] == "field label not supported: spec.nodeName"
    r = await http.get(f"{BASE}/namespaces/default/pods/idle", headers=auth("admin"))
    assert r.status == 404 and (await r.json())["message"] == 'podmetrics.metrics.k8s.io "default/idle" not found'
    r = await http.get(f"{BASE}/namespaces/default/pods/nope", headers=auth("admin"))
    assert r.status == 404 and (await r.json())["message"] == 'pods "nope" not found'
    r = await http.get(f"{BASE}/namespaces/default/pods/web",
                       headers={**auth("admin"), "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    t = await r.json()
    assert t["kind"] == "Table" and t["rows"][0]["cells"] == ["web", "5m", "1Mi", "10s"]
    r = await http.get(f"{BASE}/nodes?watch=true", headers=auth("admin"))
    assert r.status == 405
    r = await http.delete(f"{BASE}/namespaces/default/pods/web", headers=auth("admin"))
    assert r.status == 405 and (await r.json())["reason"] == "MethodNotAllowed"


async def test_rbac_view_reads_its_namespaces_pod_metrics_and_nobody_reads_anything(http, published):
    r = await http.get(f"{BASE}/namespaces/default/pods", headers=auth("viewer"))
    assert r.status == 200 and len((await r.json())["items"]) == 2
    r = await http.get(f"{BASE}/nodes", headers=auth("viewer"))
    body = await r.json()
    assert r.status == 403 and body["message"] == ('nodes.metrics.k8s.io is forbidden: User "viewer" cannot list '
                                                   'resource "nodes" in API group "metrics.k8s.io" at the cluster '
                                                   'scope')
    r = await http.get(f"{BASE}/pods", headers=auth("viewer"))
    assert r.status == 403
    r = await http.get(f"{BASE}/namespaces/default/pods/web", headers=auth("nobody"))
    assert r.status == 403 and (await r.json())["reason"] == "Forbidden"


async def test_discovery_lists_the_group(http):
    r = await http.get("/apis", headers=auth("nobody"))
    assert "metrics.k8s.io" in [g["name"] for g in (await r.json())["groups"]]
    r = await http.get(BASE, headers=auth("nobody"))
    assert [x["name"] for x in (await r.json())["resources"]] == ["nodes", "pods"]
