"""Services against a real nats-server and API server: ClusterIP/NodePort allocation (never twice,
even through two apiservers; requested values honoured or a 422; released on every kind of delete
and on type changes) and the Endpoints controller (pods' status written as a kubelet would)."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from bus import roles
from bus.roles import Identity
from tests.conftest import connect_as
import pytest

from bus import errors
from bus.client import ApiClient
from bus.informer import SharedInformerFactory
from bus.resources import SERVICE_ALLOCATIONS, by_plural
from bus.tables import service_ports
from master.apiserver.server import ApiServer
from master.apiserver import service_alloc
from master.apiserver.service_alloc import held
from master.controllers import endpoints, namespace
from master.controllers.manager import Context
from tests.builders import service
from tests.harness import get_or_none, make_pod, running_controllers, set_status
from tests.waiting import eventually, stays

SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")


def svc(name: str, ns: str = "default", ports=None, **spec) -> dict:
    """A Service selecting the pods ``app: <name>`` (unless ``selector=``), port 80 unless ``ports``."""
    return service(name, ns, **{"selector": {"app": name}, "ports": [{"port": 80}] if ports is None else ports,
                                **spec})


def invalid_cause(exc: pytest.ExceptionInfo) -> tuple[str, str]:
    assert exc.value.code == 422, exc.value
    (cause,) = exc.value.causes
    return cause["field"], cause["message"]


async def claims(client) -> set[tuple[str, str]]:
    """The allocation records in the store, as (kind, value)."""
    items, _ = await client.store.list(SERVICE_ALLOCATIONS)
    return {(o["kind"], str(o["value"])) for o in items}


async def held_by_services(client) -> set[tuple[str, str]]:
    items, _ = await client.list("services")
    return {c for s in items for c in held(s)}


async def test_kubernetes_service_exists_from_bootstrap(client):
    k = await client.get("services", "kubernetes", "default")
    assert k["spec"]["clusterIP"] == "10.96.0.1" and k["spec"]["clusterIPs"] == ["10.96.0.1"]
    assert k["spec"]["ports"] == [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 6443}]
    assert k["spec"]["type"] == "ClusterIP" and not k["spec"].get("selector")
    assert k["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    assert await claims(client) == {("clusterip", "10.96.0.1")}


async def test_cluster_ip_allocated_honoured_refused_and_released(client):
    a = await client.create(svc("a"))
    ip = a["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in SERVICE_NET and ip not in ("10.96.0.0", "10.96.0.1")
    assert a["spec"]["clusterIPs"] == [ip]
    assert a["spec"]["ipFamilies"] == ["IPv4"] and a["spec"]["ipFamilyPolicy"] == "SingleStack"

    b = await client.create(svc("b", clusterIP="10.96.0.50"))
    assert b["spec"]["clusterIP"] == "10.96.0.50"
    with pytest.raises(errors.Invalid) as taken:
        await client.create(svc("c", clusterIP="10.96.0.50"))
    assert invalid_cause(taken) == (
        "spec.clusterIPs",
        'Invalid value: ["10.96.0.50"]: failed to allocate IP 10.96.0.50: provided IP is already allocated')
    with pytest.raises(errors.Invalid) as outside:
        await client.create(svc("c", clusterIP="10.200.0.1"))
    field, msg = invalid_cause(outside)
    assert field == "spec.clusterIPs" and "is not in the valid range. The range of valid IPs is 10.96.0.0/12" in msg
    with pytest.raises(errors.Invalid) as garbage:
        await client.create(svc("c", clusterIP="10.96.0.300"))
    assert invalid_cause(garbage)[0] == "spec.clusterIPs[0]"
    assert await get_or_none(client, "services", "c") is None
    with pytest.raises(errors.AlreadyExists):  # the store write fails: what was claimed goes back
        await client.create(svc("a", type="NodePort"))
    assert await claims(client) == {("clusterip", "10.96.0.1"), ("clusterip", ip), ("clusterip", "10.96.0.50")}

    # an update that leaves clusterIP out keeps it (kubectl replace); changing it is refused
    replaced = await client.update(svc("b"))
    assert replaced["spec"]["clusterIP"] == "10.96.0.50" and replaced["spec"]["clusterIPs"] == ["10.96.0.50"]
    with pytest.raises(errors.Invalid) as moved:
        await client.update(svc("b", clusterIP="10.96.0.51"))
    assert invalid_cause(moved) == ("spec.clusterIP", 'Invalid value: "10.96.0.51": field is immutable')

    # released on delete: the same address can be asked for again
    await client.delete("services", "b")
    c = await client.create(svc("c", clusterIP="10.96.0.50"))
    assert c["spec"]["clusterIP"] == "10.96.0.50"
    assert await claims(client) == await held_by_services(client) == {
        ("clusterip", "10.96.0.1"), ("clusterip", ip), ("clusterip", "10.96.0.50")}


async def test_headless_and_external_name_get_no_address(client):
    h = await client.create(svc("h", clusterIP="None", ports=[]))
    assert h["spec"]["clusterIP"] == "None" and h["spec"]["clusterIPs"] == ["None"]
    x = await client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                             "spec": {"type": "ExternalName", "externalName": "db.example.com"}})
    assert "clusterIP" not in x["spec"] and "clusterIPs" not in x["spec"]
    with pytest.raises(errors.Invalid) as np_headless:
        await client.create(svc("hn", clusterIP="None", type="NodePort"))
    assert invalid_cause(np_headless)[0] == "spec.clusterIPs[0]"
    assert await claims(client) == {("clusterip", "10.96.0.1")}

    # ClusterIP -> ExternalName releases the address; back to ClusterIP allocates one
    s = await client.create(svc("s"))
    ip = s["spec"]["clusterIP"]
    s = await client.update({**svc("s", type="ExternalName", externalName="db.example.com"),
                             "spec": {**s["spec"], "type": "ExternalName", "externalName": "db.example.com"}})
    assert "clusterIP" not in s["spec"]
    assert ("clusterip", ip) not in await claims(client)
    s = await client.update(svc("s"))
    assert ipaddress.ip_address(s["spec"]["clusterIP"]) in SERVICE_NET
    assert await claims(client) == await held_by_services(client)


async def test_node_ports_allocated_honoured_and_released_on_type_change(client):
    auto = await client.create(svc("auto", type="NodePort"))
    port = auto["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    fixed = await client.create(svc("fixed", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}]))
    assert service_ports(fixed) == "80:30080/TCP"
    with pytest.raises(errors.Invalid) as taken:
        await client.create(svc("other", type="NodePort", ports=[{"port": 81, "nodePort": 30080}]))
    assert invalid_cause(taken) == ("spec.ports[0].nodePort",
                                    "Invalid value: 30080: provided port is already allocated")
    with pytest.raises(errors.Invalid) as low:
        await client.create(svc("other", type="NodePort", ports=[{"port": 81, "nodePort": 8080}]))
    assert invalid_cause(low) == ("spec.ports[0].nodePort", "Invalid value: 8080: provided port is not in the valid "
                                                            "range. The range of valid ports is 30000-32767")
    with pytest.raises(errors.Invalid) as wrong_type:
        await client.create(svc("other", ports=[{"port": 81, "nodePort": 30081}]))
    assert invalid_cause(wrong_type) == ("spec.ports[0].nodePort",
                                         "Forbidden: may not be used when `type` is 'ClusterIP'")
    # a failed create leaks nothing: its auto-allocated ClusterIP went back
    assert await claims(client) == await held_by_services(client)

    # replace without nodePort keeps it (ports matched by name); a second port gets its own
    two = await client.update(svc("fixed", type="NodePort", ports=[{"name": "http", "port": 80},
                                                                   {"name": "dns", "port": 53, "protocol": "UDP"}]))
    ports = {p["name"]: p["nodePort"] for p in two["spec"]["ports"]}
    assert ports["http"] == 30080 and 30000 <= ports["dns"] <= 32767 and ports["dns"] != 30080
    # NodePort -> ClusterIP (nodePorts left as they were) releases the ports; another Service can take 30080
    back = await client.update({**two, "spec": {**two["spec"], "type": "ClusterIP"}})
    assert all("nodePort" not in p for p in back["spec"]["ports"])
    assert back["spec"]["clusterIP"] == two["spec"]["clusterIP"]
    other = await client.create(svc("other", type="NodePort", ports=[{"port": 81, "nodePort": 30080}]))
    assert other["spec"]["ports"][0]["nodePort"] == 30080
    # ClusterIP -> NodePort allocates
    up = await client.patch("services", "fixed", {"spec": {"type": "NodePort"}})
    assert all(30000 <= p["nodePort"] <= 32767 for p in up["spec"]["ports"])
    assert await claims(client) == await held_by_services(client)
    assert len([c for c in await claims(client) if c[0] == "nodeport"]) == 4


async def test_every_way_of_deleting_releases(client):
    await client.create(svc("fin", clusterIP="10.96.0.60", finalizers=["example.com/hold"]))
    await client.delete("services", "fin")
    assert ("clusterip", "10.96.0.60") in await claims(client)  # still terminating: still held
    await client.patch("services", "fin", {"metadata": {"finalizers": None}})
    assert await get_or_none(client, "services", "fin") is None
    assert ("clusterip", "10.96.0.60") not in await claims(client)

    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "many"}})
    for i in range(5):
        await client.create(svc(f"s{i}", ns="many", type="NodePort"))
    assert len(await claims(client)) == 1 + 5 * 2
    await client.request(by_plural("services"), "deletecollection", "many")
    assert await claims(client) == {("clusterip", "10.96.0.1")}


async def test_deleting_the_namespace_releases_its_services(client):
    ctx = Context(client, SharedInformerFactory(client))
    runnables = namespace.setup(ctx)
    await ctx.informers.start()
    tasks = [asyncio.create_task(r.run()) for r in runnables]
    try:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        await client.create(svc("web", ns="shop", type="NodePort", ports=[{"port": 80, "nodePort": 30090}],
                                clusterIP="10.96.0.90"))
        await client.delete("namespaces", "shop")
        await eventually(lambda: _ns_gone(client, "shop"), 15, "namespace shop removed")
        assert await claims(client) == {("clusterip", "10.96.0.1")}
        again = await client.create(svc("web", type="NodePort", ports=[{"port": 80, "nodePort": 30090}],
                                        clusterIP="10.96.0.90"))
        assert service_ports(again) == "80:30090/TCP" and again["spec"]["clusterIP"] == "10.96.0.90"
    finally:
        for r in runnables:
            r.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.informers.stop()


async def _ns_gone(client, name: str) -> bool:
    return await get_or_none(client, "namespaces", name) is None


async def test_a_claim_left_by_a_dead_apiserver_is_taken_over_once_stale(apiserver, client, monkeypatch):
    # an apiserver that claimed 10.96.0.70 for "ghost" and died before writing the Service (only API servers write)
    await apiserver.store.create(SERVICE_ALLOCATIONS, "clusterip", "10.96.0.70", {
        "kind": "clusterip", "value": "10.96.0.70", "namespace": "default", "name": "ghost", "uid": "u1",
        "time": time.time()})
    monkeypatch.setattr(service_alloc, "STALE_AFTER", 3600.0)
    await client.create(svc("ghost"))  # the same name, but not the Service that claimed it (another uid)
    with pytest.raises(errors.Invalid):
        await client.create(svc("live", clusterIP="10.96.0.70"))
    monkeypatch.setattr(service_alloc, "STALE_AFTER", 0.0)
    live = await client.create(svc("live", clusterIP="10.96.0.70"))
    assert live["spec"]["clusterIP"] == "10.96.0.70"
    assert await claims(client) == await held_by_services(client)


async def test_a_full_range_is_an_error_until_an_address_is_freed(client, monkeypatch):
    monkeypatch.setenv("K8N_SERVICE_CIDR", "10.100.0.0/29")  # 6 addresses: .1 to .6
    made = [await client.create(svc(f"f{i}")) for i in range(6)]
    assert sorted(s["spec"]["clusterIP"] for s in made) == [f"10.100.0.{i}" for i in range(1, 7)]
    with pytest.raises(errors.ApiError) as full:
        await client.create(svc("f6"))
    assert full.value.code == 500 and "failed to allocate a serviceIP: range is full" in full.value.message
    await client.delete("services", "f3")
    assert (await client.create(svc("f6")))["spec"]["clusterIP"] == made[3]["spec"]["clusterIP"]


async def test_two_apiservers_never_hand_out_one_address_twice(nats_server):
    servers, conns = [], []
    for _ in range(2):
        nc = await connect_as(nats_server, Identity(roles.APISERVER))
        api = ApiServer(nc)
        await api.start()
        servers.append(api)
        conns.append(nc)
    client = await ApiClient.connect(nats_server.url)
    try:
        made = await asyncio.gather(*(client.create(svc(f"c{i}", type="NodePort")) for i in range(50)))
        ips = {s["spec"]["clusterIP"] for s in made}
        ports = {s["spec"]["ports"][0]["nodePort"] for s in made}
        assert len(ips) == 50 and len(ports) == 50 and "10.96.0.1" not in ips

        # ten ask for the same address at once: exactly one gets it
        results = await asyncio.gather(*(client.create(svc(f"same{i}", clusterIP="10.96.1.1")) for i in range(10)),
                                       return_exceptions=True)
        assert sum(isinstance(r, dict) for r in results) == 1
        assert all(isinstance(r, errors.Invalid) for r in results if not isinstance(r, dict))
        assert await claims(client) == await held_by_services(client)
        assert len(await claims(client)) == 1 + 50 * 2 + 1
    finally:
        await client.close()
        for api, nc in zip(servers, conns):
            await api.stop()
            await nc.close()


# ---- the Endpoints controller ------------------------------------------------------------------------


@pytest.fixture
async def controller(client):
    ctx = Context(client, SharedInformerFactory(client))
    async with running_controllers(ctx, endpoints):
        yield ctx


def ref(p: dict) -> dict:
    m = p["metadata"]
    return {"kind": "Pod", "namespace": "default", "name": m["name"], "uid": m["uid"]}


def addr(p: dict, **extra) -> dict:
    return {"ip": p["status"]["podIP"], **extra, "nodeName": p["spec"]["nodeName"], "targetRef": ref(p)}


async def subsets_of(client, name: str):
    ep = await get_or_none(client, "endpoints", name)
    return ep.get("subsets") or [] if ep is not None else None


async def test_endpoints_list_ready_and_not_ready_pods_with_ports_resolved_per_pod(client, controller):
    http = [{"name": "http", "containerPort": 8080}]
    p1 = await make_pod(client, "p1", "10.244.1.1", True, ports=http)
    p2 = await make_pod(client, "p2", "10.244.1.2", False, ports=http)
    p3 = await make_pod(client, "p3", "10.244.1.3", True, ports=[{"name": "web", "containerPort": 9000}])
    await make_pod(client, "no-ip", None, False, ports=http)
    await make_pod(client, "other", "10.244.1.9", True, labels={"app": "db"}, ports=http)
    await client.create(svc("web", ports=[{"name": "http", "port": 80, "targetPort": "http"},
                                          {"name": "metrics", "port": 9100}]))
    both = [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "TCP"}]
    metrics_only = [{"name": "metrics", "port": 9100, "protocol": "TCP"}]
    want = [{"addresses": [addr(p1)], "notReadyAddresses": [addr(p2)], "ports": both},
            {"addresses": [addr(p3)], "ports": metrics_only}]
    await eventually(lambda: _equal(client, "web", want), 10, "endpoints of web")
    ep = await client.get("endpoints", "web")
    assert ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"] == "endpoint-controller"

    # p2 turns ready: it moves to addresses
    p2 = await set_status(client, p2, "10.244.1.2", True)
    want[0] = {"addresses": [addr(p1), addr(p2)], "ports": both}
    await eventually(lambda: _equal(client, "web", want), 10, "p2 ready")
    # changes that do not matter write nothing
    rv = (await client.get("endpoints", "web"))["metadata"]["resourceVersion"]
    await client.patch("pods", "p1", {"metadata": {"annotations": {"note": "irrelevant"}}})
    await client.patch("services", "web", {"metadata": {"annotations": {"note": "irrelevant"}}})

    async def unwritten():
        return (await client.get("endpoints", "web"))["metadata"]["resourceVersion"] == rv

    await stays(unwritten, 1.0, "the endpoints not rewritten")
    # scale down: p1 deleted, p3 terminating (deletionTimestamp set, a finalizer keeps it)
    await client.patch("pods", "p3", {"metadata": {"finalizers": ["example.com/hold"]}})
    await client.delete("pods", "p1", grace_period_seconds=0)
    await client.delete("pods", "p3")
    await eventually(lambda: _equal(client, "web", [{"addresses": [addr(p2)], "ports": both}]), 10, "scale down")
    await client.patch("pods", "p3", {"metadata": {"finalizers": None}})

    # the Endpoints go with the Service
    await client.delete("services", "web")
    await eventually(lambda: _gone(client, "web"), 10, "endpoints deleted with the service")


async def test_publish_not_ready_headless_hostnames_and_hand_written_endpoints(client, controller):
    a = await make_pod(client, "a", "10.244.2.1", False, hostname="a", subdomain="db")
    await client.create(svc("db", clusterIP="None", ports=[], selector={"app": "web"}))
    await eventually(lambda: _equal(client, "db", [{"notReadyAddresses": [addr(a, hostname="a")]}]), 10, "headless")
    ep = await client.get("endpoints", "db")
    assert ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    await client.create(svc("pub", selector={"app": "web"}, publishNotReadyAddresses=True))
    await eventually(lambda: _equal(client, "pub", [{"addresses": [addr(a)], "ports": [
        {"port": 80, "protocol": "TCP"}]}]), 10, "not-ready pod published")

    # a Service without a selector keeps what was written by hand
    hand = await client.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
                                "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]})
    await client.create(service("ext", ports=[{"port": 5432}]))
    await client.patch("services", "ext", {"metadata": {"labels": {"touched": "yes"}}})
    b = await make_pod(client, "b", "10.244.2.2", True)  # the controller has seen what came after "ext"
    await eventually(lambda: _equal(client, "pub", [{"addresses": [addr(a), addr(b)], "ports": [
        {"port": 80, "protocol": "TCP"}]}]), 10, "pod b published")

    async def kept():
        return await client.get("endpoints", "ext") == hand

    await stays(kept, 1.0, "the hand-written endpoints kept")


async def _equal(client, name: str, want: list[dict]) -> bool:
    return await subsets_of(client, name) == endpoints.canonical(want)


async def _gone(client, name: str) -> bool:
    return await get_or_none(client, "endpoints", name) is None
