"""The StatefulSet controller with the real node lifecycle, pod GC and garbage collector against a real nats-server
and API server (controllers in this process). The test plays scheduler and kubelet of a registered Node whose
Lease it renews, then stops renewing: at most one pod per identity, a lost node's pod is replaced only once the
node is confirmed gone."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bus import errors
from bus.informer import SharedInformerFactory
from bus.meta import micro_now
from master.controllers import garbagecollector, nodelifecycle, podgc, statefulset
from master.controllers.manager import Context
from master.controllers.settings import ControllerManagerSettings
from node import nodeinfo
from tests import builders
from tests.harness import get_or_none, running_controllers, set_status
from tests.waiting import eventually, stays

NODE, OTHER, BYSTANDER = "sts-n1", "sts-n2", "sts-n3"
OUT_OF_SERVICE = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}


@pytest.fixture
async def controllers(client):
    settings = ControllerManagerSettings(node_monitor_grace_period=2.0, default_toleration_seconds=0.5,
                                         podgc_period=0.5, podgc_orphan_quarantine=0.5)
    ctx = Context(client, SharedInformerFactory(client), settings)
    async with running_controllers(ctx, statefulset, nodelifecycle, podgc, garbagecollector):
        yield ctx


@contextlib.asynccontextmanager
async def heartbeat(client, node: str):
    """Register ``node`` (Ready) and renew its Lease every 0.3 s until the block ends."""
    await client.create(builders.node(node, ready=True))
    with contextlib.suppress(errors.AlreadyExists):
        await client.create(builders.namespace("kube-node-lease"))
    lease = await client.create(nodeinfo.lease_object(node, micro_now()))

    async def renew():
        nonlocal lease
        while True:
            await asyncio.sleep(0.3)
            lease["spec"]["renewTime"] = micro_now()
            lease = await client.update(lease)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_on(client, name: str, node: str) -> dict:
    """Bind pod ``name`` to ``node`` and report it Running and Ready, as scheduler and kubelet would."""
    pod = await eventually(lambda: get_or_none(client, "pods", name), 10, f"pod {name} created")
    await client.bind(name, node, uid=pod["metadata"]["uid"])
    return await set_status(client, pod, "10.244.9.9", True)


def web(name: str = "web", replicas: int = 2) -> dict:
    return builders.statefulset(name, replicas=replicas, serviceName=name, grace=1)


async def test_ordered_pods_and_a_lost_node_pod_replaced_only_once_the_node_is_out_of_service(client, controllers):
    async with heartbeat(client, BYSTANDER):  # a healthy node: one lost node out of two is no full disruption
        await _lose_a_node(client)


async def _lose_a_node(client) -> None:
    async with heartbeat(client, NODE):
        await client.create(web())
        await run_on(client, "web-0", NODE)
        # web-1 only once web-0 is Running and Ready
        p1 = await eventually(lambda: get_or_none(client, "pods", "web-1"), 10, "web-1 created")
        assert p1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
        assert p1["spec"]["hostname"] == "web-1" and p1["spec"]["subdomain"] == "web"
        await run_on(client, "web-1", NODE)

        async def ready(n):
            st = (await client.get("statefulsets", "web")).get("status") or {}
            return st if st.get("readyReplicas") == n and st.get("currentRevision") == st.get("updateRevision") \
                else None

        st = await eventually(lambda: ready(2), 10, "the StatefulSet reporting 2 ready replicas")
        rev = await client.get("controllerrevisions", st["updateRevision"])
        assert rev["revision"] == 1 and rev["metadata"]["ownerReferences"][0]["name"] == "web"
        uids = {n: (await client.get("pods", n))["metadata"]["uid"] for n in ("web-0", "web-1")}
    # the heartbeat stopped: the node goes Unknown, its pods are evicted and stay Terminating

    async def terminating():
        pods = [await get_or_none(client, "pods", n) for n in ("web-0", "web-1")]
        return all(p and p["metadata"].get("deletionTimestamp") for p in pods)

    await eventually(terminating, 15, "web-0 and web-1 evicted (Terminating) from the unreachable node")

    async def same_pods():
        pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in (await client.list("pods", "default"))[0]
                if p["metadata"]["name"].startswith("web-")}
        return pods == uids

    await stays(same_pods, 3, "the lost node's pods kept, no second pod of either identity")

    async def taint():  # the node controller writes the node too: retried on a conflict
        node = await client.get("nodes", NODE)
        node["spec"]["taints"] = [*node["spec"].get("taints", []), OUT_OF_SERVICE]
        return await client.update(node)

    await eventually(taint, 10, "the out-of-service taint added", ignore=(errors.Conflict,))

    async def replaced():
        p = await get_or_none(client, "pods", "web-0")
        return p if p and p["metadata"]["uid"] != uids["web-0"] and not p["metadata"].get("deletionTimestamp") \
            else None

    p = await eventually(replaced, 15, "web-0 force-deleted by the pod GC and created again")
    assert p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "0"


async def test_a_deleted_node_frees_its_pods_identity(client, controllers):
    async with heartbeat(client, OTHER):
        await client.create(web("db", replicas=1))
        first = await run_on(client, "db-0", OTHER)
        await client.delete("pods", "db-0", "default")  # graceful: the (absent) kubelet never confirms
        await stays(lambda: get_or_none(client, "pods", "db-0"), 1.5, "db-0 kept while its node exists")
        await client.delete("nodes", OTHER)

        async def replaced():
            p = await get_or_none(client, "pods", "db-0")
            return p if p and p["metadata"]["uid"] != first["metadata"]["uid"] else None

        await eventually(replaced, 15, "db-0 created again once its node is gone")


async def test_scale_subresource_scales_down_in_reverse_order_and_history_follows_the_template(client, controllers):
    await client.create(web("api", replicas=2) | {"spec": {**web("api", 2)["spec"], "podManagementPolicy": "Parallel"}})
    await eventually(lambda: get_or_none(client, "pods", "api-1"), 10, "api-1 created at once (Parallel)")
    scale = await client.get_scale("statefulsets", "api")
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=api"
    await client.scale("statefulsets", "api", 1)

    async def api1_deleting():
        p = await get_or_none(client, "pods", "api-1")
        return p is None or p["metadata"].get("deletionTimestamp")

    await eventually(api1_deleting, 10, "api-1 deleted by the scale-down")
    assert (await client.get("pods", "api-0"))["metadata"].get("deletionTimestamp") is None

    await client.patch("statefulsets", "api", {"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}})

    async def two_revisions():
        revs = [r for r in (await client.list("controllerrevisions", "default"))[0]
                if r["metadata"]["name"].startswith("api-")]
        return sorted(r["revision"] for r in revs) == [1, 2] and revs

    await eventually(two_revisions, 10, "a second ControllerRevision for the new template")


CLAIM = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                 "resources": {"requests": {"storage": "1Gi"}}}}


async def test_claims_are_kept_or_removed_as_the_retention_policy_says(client, controllers):
    def sts(name, when_deleted, when_scaled):
        return builders.statefulset(name, replicas=2, serviceName=name, podManagementPolicy="Parallel",
                                    volumeClaimTemplates=[CLAIM], persistentVolumeClaimRetentionPolicy={
                                        "whenDeleted": when_deleted, "whenScaled": when_scaled})

    await client.create(sts("keep", "Retain", "Retain"))
    await client.create(sts("drop", "Delete", "Delete"))
    claims = ["data-keep-0", "data-keep-1", "data-drop-0", "data-drop-1"]

    async def all_claims():
        return all([await get_or_none(client, "persistentvolumeclaims", c) for c in claims])

    await eventually(all_claims, 10, "a claim per ordinal of both sets")
    owners = (await client.get("persistentvolumeclaims", "data-drop-0"))["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("StatefulSet", "drop")]
    assert not (await client.get("persistentvolumeclaims", "data-keep-0"))["metadata"].get("ownerReferences")

    for name in ("keep", "drop"):
        await client.scale("statefulsets", name, 1)
    await eventually(lambda: _gone(client, "data-drop-1"), 15, "the scaled-away pod's claim removed with it")
    for name in ("keep", "drop"):
        await client.delete("statefulsets", name, "default")
    await eventually(lambda: _gone(client, "data-drop-0"), 15, "the deleted set's claim removed with it")
    await eventually(lambda: _gone(client, "keep-0", "pods"), 15, "the retained set's pods removed")
    assert all([await get_or_none(client, "persistentvolumeclaims", c) for c in ("data-keep-0", "data-keep-1")])


async def _gone(client, name: str, res: str = "persistentvolumeclaims") -> bool:
    return await get_or_none(client, res, name) is None


async def test_an_orphan_pod_of_the_sets_name_and_selector_is_adopted_not_duplicated(client, controllers):
    orphan = await client.create(builders.pod("solo-0", labels={"app": "solo"}, automountServiceAccountToken=False))
    await client.create(builders.statefulset("solo", replicas=1, serviceName="solo", podManagementPolicy="Parallel",
                                             updateStrategy={"type": "OnDelete"}))  # kept though not of a revision

    async def adopted():
        p = await client.get("pods", "solo-0")
        return [(r["kind"], r["name"]) for r in p["metadata"].get("ownerReferences") or []] == [("StatefulSet", "solo")]

    await eventually(adopted, 10, "solo-0 adopted by the StatefulSet")
    assert (await client.get("pods", "solo-0"))["metadata"]["uid"] == orphan["metadata"]["uid"]
