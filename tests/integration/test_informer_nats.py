"""Informers against a real nats-server (JetStream KV), writes straight to the store."""

import pytest

from bus import roles
from bus.client import ApiClient
from bus.roles import Identity
from bus.informer import BY_NODE, Informer
from bus.resources import by_plural
from tests.builders import pod
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio

PODS = by_plural("pods")


def rv(obj):
    return int(obj["metadata"]["resourceVersion"])


@pytest.fixture
async def bus(nats_server):
    """An API server's identity: these tests write the store directly (nobody else may)."""
    c = await ApiClient.connect(nats_server.url, Identity(roles.APISERVER))
    await c.store.ensure_buckets((PODS,))
    yield c
    await c.close()


class Events:
    def __init__(self, inf):
        self.items = []
        inf.add_handler(on_add=lambda o: self.items.append(("add", o["metadata"]["name"])),
                        on_update=lambda old, new: self.items.append(("update", new["metadata"]["name"])),
                        on_delete=lambda o: self.items.append(("delete", o["metadata"]["name"], o["status"]["phase"])))


async def test_informer_syncs_then_sees_creates_updates_and_deletes(bus):
    store = bus.store
    a = await store.create(PODS, "default", "a", pod("a", node="n1", phase="Pending"))
    await store.create(PODS, "default", "b", pod("b", phase="Pending"))
    inf = Informer(bus, "pods")
    ev = Events(inf)
    try:
        assert await inf.start(timeout=4)
        assert sorted(inf.keys()) == ["default.a", "default.b"]
        assert inf.get("default", "a")["metadata"]["resourceVersion"] == a["metadata"]["resourceVersion"]
        assert [o["metadata"]["name"] for o in inf.by_index(BY_NODE, "n1")] == ["a"]
        assert sorted(ev.items) == [("add", "a"), ("add", "b")]
        ev.items.clear()

        c = await store.create(PODS, "default", "c", pod("c", phase="Pending"))
        a2 = await store.update(PODS, "default", "a", pod("a", node="n1", phase="Running"), rv(a))
        await store.delete(PODS, "default", "b", pod("b", phase="Succeeded"),
                           rv(inf.get("default", "b")))
        await eventually(lambda: len(ev.items) == 3, 4, "3 events")
        assert ev.items == [("add", "c"), ("update", "a"), ("delete", "b", "Succeeded")]
        assert sorted(inf.keys()) == ["default.a", "default.c"]
        assert inf.get("default", "a")["status"]["phase"] == "Running"
        assert inf.last_revision > rv(a2) and inf.last_revision > rv(c)
    finally:
        await inf.stop()


async def test_label_selected_informer_sees_object_leave_and_enter_selection(bus):
    store = bus.store
    a = await store.create(PODS, "default", "a", pod("a", labels={"app": "web"}, phase="Pending"))
    b = await store.create(PODS, "default", "b", pod("b", labels={"app": "db"}, phase="Pending"))
    inf = Informer(bus, "pods", namespace="default", label_selector="app=web")
    ev = Events(inf)
    try:
        assert await inf.start(timeout=4)
        assert inf.keys() == ["default.a"]
        ev.items.clear()
        await store.update(PODS, "default", "a", pod("a", labels={"app": "other"}, phase="Running"), rv(a))
        await eventually(lambda: ev.items, 4, "an event")
        assert ev.items == [("delete", "a", "Running")]
        assert inf.keys() == []
        await store.update(PODS, "default", "b", pod("b", labels={"app": "web"}, phase="Pending"), rv(b))
        await eventually(lambda: len(ev.items) == 2, 4, "2 events")
        assert ev.items[1] == ("add", "b") and inf.keys() == ["default.b"]
    finally:
        await inf.stop()


async def test_informer_resumes_after_nats_server_restart(bus, nats_server):
    store = bus.store
    a = await store.create(PODS, "default", "a", pod("a", phase="Pending"))
    inf = Informer(bus, "pods")
    ev = Events(inf)
    try:
        assert await inf.start(timeout=4)
        ev.items.clear()

        nats_server.stop()
        await eventually(lambda: not bus.nc.is_connected, 4, "the client disconnected")
        nats_server.start()  # same store_dir and port: the bucket survives
        await eventually(lambda: bus.nc.is_connected, 4, "the client reconnected")

        async def updated():
            await store.update(PODS, "default", "a", pod("a", phase="Running"), rv(a))
            return True

        # JetStream may need a moment after the restart
        await eventually(updated, 3, "the update after the restart", ignore=(Exception,))
        await store.create(PODS, "default", "b", pod("b", phase="Pending"))

        await eventually(lambda: inf.get("default", "b") is not None, 4, "b in the cache")
        assert inf.get("default", "a")["status"]["phase"] == "Running"
        assert ev.items == [("update", "a"), ("add", "b")]
    finally:
        await inf.stop()
