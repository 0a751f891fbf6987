"""EndpointSlices against a real nats-server and API server, kept by the EndpointSlice controller
(the controller manager's ``endpointslice`` module; ``endpoints`` and the garbage collector run
beside it): created for a selector Service with the pods' addresses, conditions and resolved ports,
listed by the label kubectl's ``describe service`` uses, rewritten only when something changes,
removed with the Service (by the controller, and by the garbage collector through the ownerReference)."""

from __future__ import annotations

import asyncio

import pytest

from bus.informer import SharedInformerFactory
from master.controllers import endpoints, endpointslice, garbagecollector
from master.controllers.manager import Context
from tests.builders import service
from tests.harness import get_or_none, make_pod, set_status
from tests.waiting import eventually, stays

SERVICE_NAME = "kubernetes.io/service-name"


class Manager:
    """The Endpoints and EndpointSlice controllers and the garbage collector, as the controller manager runs them."""

    def __init__(self, client) -> None:
        self.ctx = Context(client, SharedInformerFactory(client))
        self.endpoints = endpoints.setup(self.ctx) + endpointslice.setup(self.ctx)
        self.gc = garbagecollector.setup(self.ctx)
        self.tasks: dict = {}

    async def start(self) -> None:
        await self.ctx.informers.start()
        self.tasks = {r: asyncio.create_task(r.run()) for r in self.endpoints + self.gc}

    async def stop(self, runnables) -> None:
        for r in runnables:
            r.shutdown()
        await asyncio.gather(*(self.tasks.pop(r) for r in runnables if r in self.tasks), return_exceptions=True)


@pytest.fixture
async def manager(client):
    m = Manager(client)
    await m.start()
    yield m
    await m.stop(list(m.tasks))
    await m.ctx.informers.stop()


def svc(name: str, ports=None) -> dict:
    """A Service labelled ``tier: front`` selecting the pods ``app: <name>``, port 80 unless ``ports``."""
    return service(name, labels={"tier": "front"}, selector={"app": name},
                   ports=[{"port": 80}] if ports is None else ports)


async def slices_of(client, service: str) -> list[dict]:
    """What kubectl 1.32's describer lists: the namespace's slices labelled with the Service's name."""
    items, _ = await client.list("endpointslices", "default", label_selector=f"{SERVICE_NAME}={service}")
    return sorted(items, key=lambda s: s["metadata"]["name"])


def endpoint(p: dict, ready: bool, serving: bool | None = None, terminating: bool = False) -> dict:
    m = p["metadata"]
    return {"addresses": [p["status"]["podIP"]],
            "conditions": {"ready": ready, "serving": ready if serving is None else serving,
                           "terminating": terminating},
            "nodeName": p["spec"]["nodeName"],
            "targetRef": {"kind": "Pod", "namespace": "default", "name": m["name"], "uid": m["uid"]}}


async def the_endpoints(client, service: str, want: list[dict]) -> dict | None:
    """The Service's one slice once its endpoints are ``want`` (any order), else None."""
    slices = await slices_of(client, service)
    if len(slices) != 1:
        return None
    got = sorted(slices[0].get("endpoints") or [], key=lambda e: e["addresses"])
    return slices[0] if got == sorted(want, key=lambda e: e["addresses"]) else None


async def test_slice_follows_pods_and_goes_with_the_service(client, manager):
    http = [{"name": "http", "containerPort": 8080}]
    p1 = await make_pod(client, "p1", "10.244.1.1", True, ports=http)
    p2 = await make_pod(client, "p2", "10.244.1.2", False, ports=http)
    await make_pod(client, "other", "10.244.1.9", True, labels={"app": "db"}, ports=http)
    web = await client.create(svc("web", ports=[{"name": "http", "port": 80, "targetPort": "http",
                                                 "appProtocol": "http"}]))
    es = await eventually(lambda: the_endpoints(client, "web", [endpoint(p1, True), endpoint(p2, False)]), 10,
                          "slice of web")
    name = es["metadata"]["name"]
    assert name.startswith("web-") and len(name) == len("web-") + 5
    assert es["apiVersion"] == "discovery.k8s.io/v1" and es["kind"] == "EndpointSlice"
    assert es["addressType"] == "IPv4"
    assert es["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
    assert es["metadata"]["labels"] == {"tier": "front", SERVICE_NAME: "web",
                                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    (owner,) = es["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": web["metadata"]["uid"],
                     "controller": True, "blockOwnerDeletion": True}
    # the Endpoints are still written as before
    ep = await client.get("endpoints", "web")
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == ["10.244.1.1"]
    assert [a["ip"] for a in ep["subsets"][0]["notReadyAddresses"]] == ["10.244.1.2"]

    # p2 turns ready: the same slice is updated
    p2 = await set_status(client, p2, "10.244.1.2", True)
    es = await eventually(lambda: the_endpoints(client, "web", [endpoint(p1, True), endpoint(p2, True)]), 10,
                          "p2 ready in the slice")
    assert es["metadata"]["name"] == name
    # changes that do not matter write nothing
    rv = es["metadata"]["resourceVersion"]
    await client.patch("pods", "p1", {"metadata": {"annotations": {"note": "irrelevant"}}})
    await client.patch("services", "web", {"metadata": {"annotations": {"note": "irrelevant"}}})

    async def unwritten():
        return [s["metadata"]["resourceVersion"] for s in await slices_of(client, "web")] == [rv]

    await stays(unwritten, 1.0, "the slice not rewritten")
    # a terminating pod (a finalizer holds it) stays listed, not ready but serving, terminating
    await client.patch("pods", "p1", {"metadata": {"finalizers": ["example.com/hold"]}})
    await client.delete("pods", "p1", grace_period_seconds=0)
    await eventually(lambda: the_endpoints(client, "web", [endpoint(p1, False, serving=True, terminating=True),
                                                           endpoint(p2, True)]), 10, "p1 terminating")
    await client.patch("pods", "p1", {"metadata": {"finalizers": None}})
    await eventually(lambda: the_endpoints(client, "web", [endpoint(p2, True)]), 10, "p1 gone")
    # a slice edited by someone else is put back
    cur = (await slices_of(client, "web"))[0]
    cur["endpoints"] = []
    await client.update(cur)
    await eventually(lambda: the_endpoints(client, "web", [endpoint(p2, True)]), 10, "slice repaired")

    # the slice goes with the Service
    await client.delete("services", "web")
    await eventually(lambda: _no_slices(client, "web"), 10, "slice deleted with the service")
    assert await get_or_none(client, "endpointslices", name, "default") is None


async def test_placeholder_selector_loss_and_garbage_collection(client, manager):
    await client.create(svc("api"))
    es = await eventually(lambda: the_endpoints(client, "api", []), 10, "placeholder slice")
    assert es["endpoints"] == [] and es.get("ports", []) == []
    a = await make_pod(client, "a", "10.244.2.1", True, labels={"app": "api"})
    es = await eventually(lambda: the_endpoints(client, "api", [endpoint(a, True)]), 10, "pod a in the slice")
    assert es["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]  # kubectl reads the name: always set

    # losing its selector removes the Service's slice (and leaves its Endpoints alone)
    cur = await client.get("services", "api")
    cur["spec"]["selector"] = None
    await client.update(cur)
    await eventually(lambda: _no_slices(client, "api"), 10, "slice deleted with the selector")
    assert await get_or_none(client, "endpoints", "api") is not None

    # with the endpoints controllers stopped, the garbage collector removes a slice whose Service is gone
    await client.create(svc("db"))
    await make_pod(client, "d", "10.244.3.1", True, labels={"app": "db"})
    await eventually(lambda: _slices_with_endpoints(client, "db"), 10, "slice of db")
    await manager.stop(manager.endpoints)
    await client.delete("services", "db")
    await eventually(lambda: _no_slices(client, "db"), 15, "slice collected through its ownerReference")


async def _no_slices(client, service: str) -> bool:
    return await slices_of(client, service) == []


async def _slices_with_endpoints(client, service: str) -> bool:
    return any(s.get("endpoints") for s in await slices_of(client, service))
