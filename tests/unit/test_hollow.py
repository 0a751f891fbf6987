"""Hollow nodes (node/hollow.py): one status write per pod start, none while the cache lags behind it,
another only when the node controller marked the pod not ready; a late lease makes the node post Ready again."""

from __future__ import annotations

from bus.informer import Informer
from node.hollow import HollowNodes
from tests import builders


class FakeClient:
    def __init__(self):
        self.statuses: list[dict] = []
        self.rv = 100

    async def update_status(self, obj):
        self.rv += 1
        self.statuses.append(obj)
        return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}


def hollow(client) -> HollowNodes:
    h = HollowNodes(client, 2)
    h.pods = Informer(object(), "pods")
    h.node_objects = Informer(object(), "nodes")
    return h


def bound(rv: str, **kw) -> dict:
    return builders.pod("web", uid="u1", rv=rv, node="hollow-0", **kw)


async def test_one_status_write_per_pod_start_and_none_while_the_cache_lags():
    client = FakeClient()
    h = hollow(client)
    h.pods._replace([bound("5", phase="Pending")], 5)
    await h._reconcile(("default", "web"))
    assert len(client.statuses) == 1
    st = client.statuses[0]["status"]
    assert st["phase"] == "Running" and st["podIP"].startswith("100.64.")
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    await h._reconcile(("default", "web"))  # the cache still shows the pod as it was before the write
    assert len(client.statuses) == 1, "no second write while the cache has not caught up"
    h.pods._replace([{**bound("101"), "status": st}], 101)
    await h._reconcile(("default", "web"))
    assert len(client.statuses) == 1, "a running, ready pod needs nothing"


async def test_a_pod_marked_not_ready_by_the_node_controller_is_made_ready_again():
    client = FakeClient()
    h = hollow(client)
    h.pods._replace([bound("7", phase="Running", ready=False)], 7)
    await h._reconcile(("default", "web"))
    assert len(client.statuses) == 1
    assert {c["type"]: c["status"] for c in client.statuses[0]["status"]["conditions"]}["Ready"] == "True"


async def test_a_node_marked_unknown_posts_ready_again_after_its_renewal():
    client = FakeClient()
    h = hollow(client)
    node = h.nodes["hollow-0"].node()
    node["metadata"]["resourceVersion"] = "3"
    node["status"]["conditions"][0].update(status="Unknown", reason="NodeStatusUnknown")
    h.node_objects._replace([node, {**h.nodes["hollow-1"].node(), "metadata": {"name": "hollow-1",
                                                                              "resourceVersion": "4"}}], 4)
    await h._post_ready(h.nodes["hollow-1"])
    assert not client.statuses, "a Ready node is left alone"
    await h._post_ready(h.nodes["hollow-0"])
    assert [c["status"] for c in client.statuses[0]["status"]["conditions"]] == ["True"]
