"""CustomResourceDefinitions with a real nats-server, API server and controller manager: a definition is served the
moment it is acknowledged, on its own subjects and bucket; its schema prunes, defaults and validates; status and
scale subresources; two versions; the garbage collector and finalizers on custom resources; deleting the definition
deletes its objects, its bucket, and stops serving it."""

from __future__ import annotations

import asyncio
import copy

import pytest

from bus import codec, errors, roles, subjects
from bus.client import ApiClient
from bus.roles import Identity
from tests.builders import configmap, owner_ref
from tests.integration.test_gc import api  # noqa: F401 - the fixture: API server and controllers as processes
from tests.conftest import connect_as
from tests.unit.test_crdschema import SCHEMA
from tests.waiting import eventually

GROUP = "stable.example.com"
CT = f"crontabs.{GROUP}"  # what a user names the resource by


def definition(group: str = GROUP, plural: str = "crontabs", kind: str = "CronTab", scope: str = "Namespaced",
               versions: tuple[str, ...] = ("v1",), storage: str = "v1") -> dict:
    vs = []
    for v in versions:
        vs.append({"name": v, "served": True, "storage": v == storage, "schema": {"openAPIV3Schema": SCHEMA},
                   "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                            "statusReplicasPath": ".status.replicas"}}})
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope, "versions": vs,
                     "names": {"plural": plural, "kind": kind, "shortNames": ["ct"]}}}


def crontab(name: str, version: str = "v1", group: str = GROUP, kind: str = "CronTab", **spec) -> dict:
    return {"apiVersion": f"{group}/{version}", "kind": kind, "metadata": {"name": name, "namespace": "default"},
            "spec": {"cronSpec": "* * * * */5", **spec}}


async def test_a_definition_is_established_and_its_first_object_accepted_at_once(api, nats_server):
    crd = await api.create(definition())
    conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["storedVersions"] == ["v1"]
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    # another client of the bus that never saw the definition: its first request is served
    other = await ApiClient.connect(nats_server.url)
    try:
        out = await other.create(crontab("first", junk=1))
    finally:
        await other.close()
    assert out["spec"] == {"cronSpec": "* * * * */5", "replicas": 1, "nested": {"level": "info"}}, \
        "unknown fields pruned, defaults set"
    assert out["metadata"]["uid"] and out["metadata"]["generation"] == 1
    assert "status" not in out, "a create cannot set status where it is a subresource"
    # its own bucket, named with the group: any NATS client can watch its changes
    nc = await connect_as(nats_server, Identity(roles.SUBSCRIBER, "events"))
    try:
        seen: asyncio.Queue = asyncio.Queue()

        async def on(msg) -> None:
            seen.put_nowait(msg)

        sub = await nc.subscribe(subjects.kv_subject("crontabs_stable_example_com", "default"), cb=on)
        await nc.flush()
        await api.patch(CT, "first", {"spec": {"image": "v2"}}, "default")
        msg = await asyncio.wait_for(seen.get(), 10)
        assert codec.unpack(msg.data)["spec"]["image"] == "v2"
        await sub.unsubscribe()
    finally:
        await nc.close()


async def test_schema_errors_are_422_with_field_paths(api):
    await api.create(definition())
    with pytest.raises(errors.Invalid) as e:
        await api.create(crontab("bad", replicas="many", mode="warp"))
    assert e.value.message.startswith('CronTab.stable.example.com "bad" is invalid')
    fields = {c["field"]: c["message"] for c in e.value.causes}
    assert fields["spec.replicas"].endswith('must be of type integer: "string"')
    assert fields["spec.mode"] == 'Unsupported value: "warp": supported values: "fast", "slow"'
    with pytest.raises(errors.NotFound):
        await api.get(CT, "bad", "default")  # nothing written


async def test_status_and_scale_subresources(api):
    await api.create(definition())
    res = (await api.create(crontab("s", replicas=2)))
    res["status"] = {"replicas": 2}
    res["spec"]["replicas"] = 9
    out = await api.update_status(res)
    assert out["status"] == {"replicas": 2} and out["spec"]["replicas"] == 2, "status writes only status"
    main = copy.deepcopy(out)
    main["status"] = {"replicas": 100}
    main["spec"]["replicas"] = 3
    out = await api.update(main)
    assert out["status"] == {"replicas": 2} and out["spec"]["replicas"] == 3, "the main resource keeps status"
    assert out["metadata"]["generation"] == 2
    scale = await api.get(CT, "s", "default", subresource="scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 2
    await api.patch(CT, "s", {"spec": {"replicas": 5}}, "default", subresource="scale")
    assert (await api.get(CT, "s", "default"))["spec"]["replicas"] == 5


async def test_two_versions_share_one_store(api):
    await api.create(definition(versions=("v1", "v2"), storage="v1"))
    out = await api.create(crontab("multi", version="v2"))
    assert out["apiVersion"] == f"{GROUP}/v2", "answered at the version asked"
    stored = await api.store.get(api_res(api, "v1"), "default", "multi")
    assert stored["apiVersion"] == f"{GROUP}/v1", "stored at the storage version"
    assert (await api.get(api_res(api, "v1"), "multi", "default"))["apiVersion"] == f"{GROUP}/v1"
    assert (await api.get(api_res(api, "v2"), "multi", "default"))["apiVersion"] == f"{GROUP}/v2"


def api_res(api, version):
    from bus.resources import by_kind

    return by_kind("CronTab", f"{GROUP}/{version}")


async def test_same_plural_in_two_groups_never_meet(api):
    await api.create(definition())
    await api.create(definition(group="other.example.org"))
    await api.create(crontab("a"))
    await api.create(crontab("b", group="other.example.org"))
    mine, _ = await api.list(api_res(api, "v1"), "default")
    assert [o["metadata"]["name"] for o in mine] == ["a"]


async def test_garbage_collector_and_finalizers_on_custom_resources(api):
    await api.create(definition())
    owner = await api.create(configmap("owner"))
    await api.create({**crontab("owned"), "metadata": {"name": "owned", "namespace": "default",
                                                       "ownerReferences": [owner_ref(owner)]}})
    parent = await api.create(crontab("parent"))
    await api.create(configmap("child", owners=[owner_ref(parent)]))
    await api.delete("configmaps", "owner")
    await eventually(lambda: _gone(api, CT, "owned"), 20, "the custom resource owned by a ConfigMap")
    await api.delete(CT, "parent", "default")
    await eventually(lambda: _gone(api, "configmaps", "child"), 20, "the ConfigMap owned by a custom resource")
    fin = await api.create({**crontab("held"), "metadata": {"name": "held", "namespace": "default",
                                                           "finalizers": ["example.com/hold"]}})
    await api.delete(CT, "held", "default")
    held = await api.get(CT, "held", "default")
    assert held["metadata"].get("deletionTimestamp"), "a finalizer holds it"
    await api.patch(CT, "held", {"metadata": {"finalizers": None}}, "default")
    await eventually(lambda: _gone(api, CT, "held"), 10, "removed once its finalizer is")
    del fin


async def _gone(api, ref, name) -> bool:
    try:
        await api.get(ref, name, "default")
        return False
    except errors.NotFound:
        return True


async def test_deleting_the_definition_deletes_its_objects_and_stops_serving_it(api):
    await api.create(definition())
    for i in range(3):
        await api.create(crontab(f"c{i}"))
    res = api_res(api, "v1")
    await api.delete("customresourcedefinitions", f"crontabs.{GROUP}")

    async def definition_gone() -> bool:
        try:
            await api.get("customresourcedefinitions", f"crontabs.{GROUP}")
            return False
        except errors.NotFound:
            return True

    await eventually(definition_gone, 30, "the definition removed once its objects are gone")
    with pytest.raises(errors.NotFound):
        await api.request(res, "create", "default", body=crontab("late"))
    with pytest.raises(Exception):
        await api.store.js.stream_info(subjects.stream(res.bus_name))  # its bucket is gone


async def test_cluster_scoped_custom_resources(api):
    await api.create(definition(plural="clusterthings", kind="ClusterThing", scope="Cluster"))
    out = await api.create({"apiVersion": f"{GROUP}/v1", "kind": "ClusterThing", "metadata": {"name": "ct1"},
                            "spec": {"cronSpec": "* * * * *"}})
    assert "namespace" not in out["metadata"]
