"""The garbage collector with a real nats-server, API server and controller manager (no pods run):
ConfigMaps and Secrets owned by ConfigMaps, deleted in the background, the foreground and as orphans."""

from __future__ import annotations

import pytest

from bus import errors
from bus.client import ApiClient
from bus.proc import stop_process
from tests.conftest import wait_for_api
from tests.builders import configmap, owner_ref
from tests.harness import Cluster
from tests.waiting import eventually, stays


@pytest.fixture
async def api(nats_server, tmp_path):
    c = Cluster(nats_server, tmp_path, "none", "10.244.0.0/24")
    c.start_control("apiserver,controllers")
    await wait_for_api(nats_server.url)
    client = await ApiClient.connect(nats_server.url)
    yield client
    await client.close()
    stop_process(c.control)


def ref(owner: dict, block: bool = False, controller: bool = False) -> dict:
    return owner_ref(owner, controller=controller, block=block)


async def cm(client, name: str, owners: list[dict] = (), finalizers: list[str] = (), kind: str = "ConfigMap") -> dict:
    """A ConfigMap (or a Secret: ``kind``) owned by ``owners``."""
    obj = configmap(name, data={"k": "dg=="}, owners=list(owners), finalizers=list(finalizers) or None)
    return await client.create({**obj, "kind": kind})


async def exists(client, name: str, kind: str = "configmaps") -> dict | None:
    try:
        return await client.get(kind, name)
    except errors.NotFound:
        return None


async def gone(client, name: str, kind: str = "configmaps") -> bool:
    return await exists(client, name, kind) is None


async def test_background_deletes_dependents_of_every_kind_and_checks_owners_by_uid(api):
    owner = await cm(api, "owner")
    await cm(api, "dep-cm", [ref(owner)])
    await cm(api, "dep-secret", [ref(owner)], kind="Secret")
    other = await cm(api, "other-owner")
    await cm(api, "unrelated", [ref(other)])
    await api.delete("configmaps", "owner")  # default: background
    # an owner of the same name comes back at once: the dependents named the old uid, so they still go
    await cm(api, "owner")
    await eventually(lambda: gone(api, "dep-cm"), 15, "the ConfigMap dependent deleted")
    await eventually(lambda: gone(api, "dep-secret", "secrets"), 15, "the Secret dependent deleted")
    assert await exists(api, "owner") is not None, "the new owner of the same name is not a dependent"
    await stays(lambda: exists(api, "unrelated"), 0.5, "a dependent of a live owner stays")


async def test_dependent_with_two_owners_goes_only_when_both_are_gone(api):
    a, b = await cm(api, "owner-a"), await cm(api, "owner-b")
    await cm(api, "shared", [ref(a), ref(b)])
    await api.delete("configmaps", "owner-a")

    async def only_b_left():
        d = await exists(api, "shared")
        return d is not None and [r["name"] for r in d["metadata"].get("ownerReferences") or []] == ["owner-b"]

    await eventually(only_b_left, 15, "the reference to the deleted owner removed, the dependent kept")
    await api.delete("configmaps", "owner-b")
    await eventually(lambda: gone(api, "shared"), 15, "the dependent deleted with its last owner")


async def test_foreground_waits_for_blocking_dependents(api):
    owner = await cm(api, "fg-owner")
    await cm(api, "blocker", [ref(owner, block=True)], finalizers=["example.com/hold"])
    await cm(api, "non-blocker", [ref(owner, block=False)])
    await api.delete("configmaps", "fg-owner", propagation_policy="Foreground")

    async def blocker_terminating():
        d = await exists(api, "blocker")
        return d is not None and d["metadata"].get("deletionTimestamp")

    await eventually(blocker_terminating, 15, "the blocking dependent being deleted")

    async def owner_waits():
        o = await exists(api, "fg-owner")
        return o is not None and o["metadata"].get("deletionTimestamp") and \
            "foregroundDeletion" in o["metadata"]["finalizers"]

    await stays(owner_waits, 1.0, "the owner waiting (foregroundDeletion) for its blocking dependent")
    await api.patch("configmaps", "blocker", {"metadata": {"finalizers": []}})
    await eventually(lambda: gone(api, "fg-owner"), 15, "the owner removed once its blocking dependent is gone")
    await eventually(lambda: gone(api, "non-blocker"), 15, "the non-blocking dependent deleted too")


async def test_orphan_keeps_dependents_and_removes_their_references(api):
    owner = await cm(api, "orphan-owner")
    keeper = await cm(api, "keeper")
    await cm(api, "dep1", [ref(owner, block=True, controller=True)])
    await cm(api, "dep2", [ref(owner), ref(keeper)], kind="Secret")
    await api.delete("configmaps", "orphan-owner", propagation_policy="Orphan")
    await eventually(lambda: gone(api, "orphan-owner"), 15, "the owner removed")
    d1, d2 = await exists(api, "dep1"), await exists(api, "dep2", "secrets")
    assert d1 is not None and not d1["metadata"].get("ownerReferences")
    assert d2 is not None and [r["name"] for r in d2["metadata"]["ownerReferences"]] == ["keeper"]

    async def both_kept():
        return await exists(api, "dep1") is not None and await exists(api, "dep2", "secrets") is not None

    await stays(both_kept, 1.0, "the orphaned dependents kept")


async def test_chains_foreground_removes_bottom_up_and_background_cascades(api):
    top = await cm(api, "top")
    mid = await cm(api, "mid", [ref(top, block=True, controller=True)])
    await cm(api, "leaf", [ref(mid, block=True, controller=True)], finalizers=["example.com/hold"])
    await api.delete("configmaps", "top", propagation_policy="Foreground")

    async def leaf_terminating():
        d = await exists(api, "leaf")
        return d is not None and d["metadata"].get("deletionTimestamp")

    await eventually(leaf_terminating, 15, "the leaf being deleted")

    async def upper_levels_wait():
        return await exists(api, "top") is not None and await exists(api, "mid") is not None

    await stays(upper_levels_wait, 1.0, "each level waiting for the one below")
    await api.patch("configmaps", "leaf", {"metadata": {"finalizers": []}})
    await eventually(lambda: gone(api, "top"), 15, "the top of the chain removed last")
    assert await gone(api, "mid") and await gone(api, "leaf")

    top = await cm(api, "top2")
    mid = await cm(api, "mid2", [ref(top, controller=True)])
    await cm(api, "leaf2", [ref(mid, controller=True)], kind="Secret")
    await api.delete("configmaps", "top2")
    await eventually(lambda: gone(api, "leaf2", "secrets"), 15, "the background cascade to reach the leaf")
    assert await gone(api, "mid2")
