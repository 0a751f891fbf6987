"""Garbage-collector decisions: what happens to a dependent given its owners, what a terminating
owner needs, and how owners are judged gone (by uid, confirmed with the API when the cache misses)."""

from __future__ import annotations

from bus import errors
from bus.informer import Informer
from master.controllers.garbagecollector import (DANGLING, SOLID, WAITING, GarbageCollector, blocks, decide,
                                                 owner_action)


def obj(kind: str, name: str, uid: str, owners=(), finalizers=(), deleting=False, ns: str | None = "default"):
    meta = {"name": name, "uid": uid, "resourceVersion": "1", "ownerReferences": list(owners)}
    if ns:
        meta["namespace"] = ns
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": kind, "metadata": meta}


def ref(owner: dict, block: bool = False) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block}


def test_dependent_of_live_owners_is_kept():
    assert decide({"a": SOLID, "b": SOLID}, has_dependents=False) == ("keep", None)


def test_dependent_with_another_live_owner_only_drops_the_gone_ones():
    assert decide({"a": DANGLING, "b": SOLID, "c": WAITING}, has_dependents=True) == ("unlink", ["a", "c"])


def test_dependent_whose_owners_are_all_gone_is_deleted_in_the_background():
    assert decide({"a": DANGLING, "b": DANGLING}, has_dependents=True) == ("delete", "Background")


def test_dependent_of_a_foreground_owner_waits_for_its_own_dependents_unless_it_is_a_pod():
    assert decide({"a": WAITING}, has_dependents=True) == ("delete", "Foreground")
    assert decide({"a": WAITING}, has_dependents=False) == ("delete", "Background")
    assert decide({"a": WAITING}, has_dependents=True, is_pod=True) == ("delete", "Background")


def test_owner_actions():
    owner = obj("ConfigMap", "o", "u1")
    blocking = obj("ConfigMap", "d1", "d1", [ref(owner, block=True)])
    loose = obj("ConfigMap", "d2", "d2", [ref(owner, block=False)])
    assert blocks(blocking, "u1") and not blocks(loose, "u1") and not blocks(blocking, "other")
    assert owner_action(owner, [blocking]) is None, "not being deleted"
    fg = obj("ConfigMap", "o", "u1", finalizers=["foregroundDeletion"], deleting=True)
    assert owner_action(fg, [blocking, loose]) == "wait"
    assert owner_action(fg, [loose]) == "finish"
    orphan = obj("ConfigMap", "o", "u1", finalizers=["orphan"], deleting=True)
    assert owner_action(orphan, [blocking]) == "orphan"
    assert owner_action(obj("ConfigMap", "o", "u1", deleting=True), []) is None, "plain deletion: not ours"


class FakeApi:
    def __init__(self, objects: list[dict]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.gets = 0

    async def get(self, ref, name, namespace=None):  # as ApiClient.get: a Resource or a name
        self.gets += 1
        plural = getattr(ref, "plural", ref)
        kind = {"configmaps": "ConfigMap", "nodes": "Node"}[plural]
        if (kind, name) not in self.objects:
            raise errors.NotFound(404, f"{plural} {name} not found")
        return self.objects[(kind, name)]


def gc_with(cached: list[dict], live: list[dict]) -> tuple[GarbageCollector, FakeApi]:
    infs = {"configmaps": Informer(object(), "configmaps"), "nodes": Informer(object(), "nodes")}
    infs["configmaps"]._replace([o for o in cached if o["kind"] == "ConfigMap"], 1)
    infs["nodes"]._replace([o for o in cached if o["kind"] == "Node"], 1)
    api = FakeApi(live)
    return GarbageCollector(api, infs), api


async def test_owner_missing_from_a_lagging_cache_is_confirmed_with_the_api():
    owner = obj("ConfigMap", "o", "u1")
    dep = obj("ConfigMap", "d", "d", [ref(owner)])
    gc, api = gc_with([dep], [owner])
    assert await gc.owner_state(dep, ref(owner)) == SOLID
    assert api.gets == 1


async def test_owner_is_checked_by_uid_and_absence_is_remembered():
    old = obj("ConfigMap", "o", "old-uid")
    new = obj("ConfigMap", "o", "new-uid")
    dep = obj("ConfigMap", "d", "d", [ref(old)])
    gc, api = gc_with([new, dep], [new])
    assert await gc.owner_state(dep, ref(old)) == DANGLING, "same name, other uid: the owner is gone"
    assert await gc.owner_state(dep, ref(old)) == DANGLING
    assert api.gets == 1, "a uid known to be gone is not looked up again"


async def test_owner_states_foreground_unknown_kinds_and_cluster_scoped_owners():
    fg = obj("ConfigMap", "o", "u1", finalizers=["foregroundDeletion"], deleting=True)
    node = obj("Node", "n1", "node-uid", ns=None)
    dep = obj("ConfigMap", "d", "d", [ref(fg), ref(node)])
    gc, api = gc_with([fg, node, dep], [])
    assert await gc.owner_state(dep, ref(fg)) == WAITING
    assert await gc.owner_state(dep, ref(node)) == SOLID, "a namespaced dependent may have a cluster-scoped owner"
    weird = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w"}
    assert await gc.owner_state(dep, weird) == SOLID, "kinds the GC cannot look up are never judged gone"
    assert api.gets == 0
    assert [d["metadata"]["name"] for _, d in gc.dependents("u1")] == ["d"]
