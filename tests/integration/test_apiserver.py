"""The API server over a real nats-server: verbs, subresources, semantics and errors."""

from __future__ import annotations

import asyncio
import base64

import pytest

from bus import codec, errors, subjects
from bus.resources import by_plural
from tests import builders as b
from tests.builders import IMAGE, IMAGE_ALIAS, configmap, container, deployment, namespace, node, pod
from tests.waiting import eventually


async def test_system_namespaces_exist(client):
    items, _ = await client.list("namespaces")
    names = {n["metadata"]["name"] for n in items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    assert all(n["status"]["phase"] == "Active" for n in items)


async def test_create_sets_server_fields_and_defaults(client):
    out = await client.create(pod("a", containers=[container(image=IMAGE_ALIAS, pull=None)]))
    meta = out["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert out["status"]["phase"] == "Pending"
    assert out["spec"]["restartPolicy"] == "Always"
    assert out["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    got = await client.get("pods", "a")
    assert got == out


async def test_resource_version_is_the_kv_revision(client):
    out = await client.create(pod("rv"))
    msg = await client.store.js.get_msg(subjects.stream("pods"), subject=subjects.kv_subject("pods", "default", "rv"),
                                        direct=True)
    assert str(msg.seq) == out["metadata"]["resourceVersion"]


async def test_create_twice_is_already_exists(client):
    await client.create(pod("dup"))
    with pytest.raises(errors.ApiError) as e:
        await client.create(pod("dup"))
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"
    assert e.value.message == 'pods "dup" already exists'


async def test_generate_name(client):
    p = pod("")
    del p["metadata"]["name"]
    p["metadata"]["generateName"] = "web-"
    a = await client.create(p)
    b = await client.create(p)
    assert a["metadata"]["name"].startswith("web-") and len(a["metadata"]["name"]) == 9
    assert a["metadata"]["name"] != b["metadata"]["name"]


async def test_stale_update_is_conflict(client):
    first = await client.create(pod("c1"))
    second = dict(first, metadata={**first["metadata"], "labels": {"app": "x"}})
    await client.update(second)
    stale = dict(first, metadata={**first["metadata"], "labels": {"app": "y"}})
    with pytest.raises(errors.Conflict) as e:
        await client.update(stale)
    assert e.value.code == 409 and e.value.reason == "Conflict"
    assert (await client.get("pods", "c1"))["metadata"]["labels"] == {"app": "x"}


async def test_generation_moves_on_spec_change_only(client):
    d = await client.create(deployment("gen", replicas=2))
    assert d["metadata"]["generation"] == 1
    d["metadata"]["labels"] = {"team": "a"}
    d = await client.update(d)
    assert d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 5
    d = await client.update(d)
    assert d["metadata"]["generation"] == 2


async def test_status_and_spec_are_written_separately(client):
    d = await client.create(deployment("st", replicas=2))
    d["status"] = {"replicas": 7}
    d["spec"]["replicas"] = 3
    d = await client.update(d)
    assert d["spec"]["replicas"] == 3 and d["status"].get("replicas") is None
    d["status"] = {"replicas": 3, "readyReplicas": 3}
    d["spec"]["replicas"] = 9
    d = await client.update_status(d)
    assert d["status"]["readyReplicas"] == 3 and d["spec"]["replicas"] == 3
    assert d["metadata"]["generation"] == 2


async def test_scale_subresource(client):
    await client.create(deployment("sc", replicas=2))
    scale = await client.get_scale("deployments", "sc")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=sc"
    out = await client.scale("deploy", "sc", 5)
    assert out["spec"]["replicas"] == 5
    assert (await client.get("deployments", "sc"))["spec"]["replicas"] == 5
    with pytest.raises(errors.Invalid):
        await client.scale("deploy", "sc", -1)


async def test_binding_sets_node_once(client):
    await client.create(pod("b"))
    await client.bind("b", "node-1")
    p = await client.get("pods", "b")
    assert p["spec"]["nodeName"] == "node-1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in p["status"]["conditions"])
    with pytest.raises(errors.Conflict):
        await client.bind("b", "node-2")


async def test_merge_and_json_patch(client):
    await client.create(deployment("p", replicas=2))
    out = await client.patch("deploy", "p", {"metadata": {"labels": {"x": "1"}}, "spec": {"replicas": 4}})
    assert out["metadata"]["labels"] == {"x": "1"} and out["spec"]["replicas"] == 4
    out = await client.patch("deploy", "p", [{"op": "replace", "path": "/spec/replicas", "value": 1},
                                             {"op": "remove", "path": "/metadata/labels/x"}], patch_type="json")
    assert out["spec"]["replicas"] == 1 and not out["metadata"].get("labels")
    with pytest.raises(errors.ApiError) as e:
        await client.patch("deploy", "p", [{"op": "remove", "path": "/no/such"}], patch_type="json")
    assert e.value.code == 422


async def test_delete_unscheduled_pod_is_immediate_and_watchers_get_final_state(client):
    created = await client.create(pod("gone"))
    w = await client.watch("pods", "default", since=int(created["metadata"]["resourceVersion"]))
    await client.delete("pods", "gone")
    ev = await asyncio.wait_for(w.__anext__(), 5)
    await w.stop()
    assert ev.type == "DELETED"
    assert ev.object["metadata"]["uid"] == created["metadata"]["uid"]
    assert ev.object["spec"]["containers"][0]["image"] == IMAGE
    with pytest.raises(errors.NotFound):
        await client.get("pods", "gone")


async def test_scheduled_pod_deletion_is_graceful(client):
    await client.create(pod("g", terminationGracePeriodSeconds=20))
    await client.bind("g", "node-1")
    out = await client.delete("pods", "g")
    assert out["metadata"]["deletionTimestamp"] and out["metadata"]["deletionGracePeriodSeconds"] == 20
    assert (await client.get("pods", "g"))["metadata"]["deletionTimestamp"]
    await client.delete("pods", "g", grace_period_seconds=0)
    with pytest.raises(errors.NotFound):
        await client.get("pods", "g")


async def test_finalizers_hold_deletion(client):
    await client.create(configmap("f", data={"a": "1"}, finalizers=["example.com/hold"]))
    out = await client.delete("configmaps", "f")
    assert out["metadata"]["deletionTimestamp"]
    still = await client.get("configmaps", "f")
    assert still["metadata"]["finalizers"] == ["example.com/hold"]
    await client.patch("configmaps", "f", {"metadata": {"finalizers": None}})
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "f")


async def test_propagation_policy_is_recorded(client):
    await client.create(deployment("orph", replicas=2))
    out = await client.delete("deploy", "orph", propagation_policy="Orphan")
    assert "orphan" in out["metadata"]["finalizers"]
    await client.create(deployment("fg", replicas=2))
    out = await client.delete("deploy", "fg", propagation_policy="Foreground")
    assert "foregroundDeletion" in out["metadata"]["finalizers"]


async def test_missing_and_terminating_namespace_refuse_objects(client):
    with pytest.raises(errors.NotFound) as e:
        await client.create(pod("x", ns="nope"))
    assert 'namespaces "nope" not found' in e.value.message
    await client.create(namespace("doomed"))
    await client.create(pod("x", ns="doomed"))
    out = await client.delete("namespaces", "doomed")
    assert out["status"]["phase"] == "Terminating"
    with pytest.raises(errors.ApiError) as e:
        await client.create(pod("y", ns="doomed"))
    assert e.value.code == 403 and "being terminated" in e.value.message


async def test_system_namespace_cannot_be_deleted(client):
    with pytest.raises(errors.ApiError) as e:
        await client.delete("namespaces", "default")
    assert e.value.code == 403


async def test_invalid_object_names_the_field(client):
    d = deployment("bad", replicas=-1)
    with pytest.raises(errors.Invalid) as e:
        await client.create(d)
    assert e.value.code == 422
    assert "spec.replicas" in [c["field"] for c in e.value.causes]
    p = pod("noimage")
    del p["spec"]["containers"][0]["image"]
    with pytest.raises(errors.Invalid) as e:
        await client.create(p)
    assert "spec.containers[0].image" in [c["field"] for c in e.value.causes]


async def test_immutable_selector_refused(client):
    d = await client.create(deployment("imm", replicas=2))
    d["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(errors.Invalid) as e:
        await client.update(d)
    assert any(c["field"].startswith("spec.selector") for c in e.value.causes)


async def test_unknown_fields_are_kept_and_warned(client):
    d = deployment("unk", replicas=2)
    d["spec"]["template"]["spec"]["containers"][0]["fancyFeature"] = {"on": True}
    warnings: list[str] = []
    out = await client.create(d, warnings=warnings)
    assert out["spec"]["template"]["spec"]["containers"][0]["fancyFeature"] == {"on": True}
    assert any("spec.template.spec.containers[0].fancyFeature" in w for w in warnings)


async def test_label_and_field_selectors(client):
    for i in range(4):
        p = pod(f"s{i}")
        p["metadata"]["labels"] = {"app": "web" if i % 2 else "db", "tier": str(i)}
        await client.create(p)
    await client.bind("s1", "node-a")
    items, _ = await client.list("pods", "default", label_selector="app=web,tier!=3")
    assert [p["metadata"]["name"] for p in items] == ["s1"]
    items, _ = await client.list("pods", "default", label_selector="tier in (0,2)")
    assert [p["metadata"]["name"] for p in items] == ["s0", "s2"]
    items, _ = await client.list("pods", "default", field_selector="spec.nodeName=node-a")
    assert [p["metadata"]["name"] for p in items] == ["s1"]
    body = await client.request(by_plural("pods"), "list", "default", options={"fieldSelector": "metadata.name=s2,status.phase=Pending"})
    assert [p["metadata"]["name"] for p in body["items"]] == ["s2"]
    with pytest.raises(errors.BadRequest):
        await client.list("pods", "default", field_selector="spec.bogus=1")


async def test_list_then_watch_has_no_gap_and_no_duplicate(client):
    for i in range(20):
        await client.create(pod(f"w{i}"))

    written = []

    async def writer():
        for i in range(20, 60):
            await client.create(pod(f"w{i}"))
            written.append(i)

    task = asyncio.create_task(writer())
    await eventually(lambda: written, 5, "the writer under way")  # the list and watch below run while it writes
    items, rv = await client.list("pods", "default")
    seen = {p["metadata"]["name"] for p in items}
    w = await client.watch("pods", "default", since=rv)
    await task
    while len(seen) < 60:
        ev = await asyncio.wait_for(w.__anext__(), 5)
        name = ev.object["metadata"]["name"]
        assert name not in seen, f"duplicate {name}"
        assert ev.type == "ADDED"
        seen.add(name)
    await w.stop()
    assert seen == {f"w{i}" for i in range(60)}


async def test_watch_from_compacted_revision_is_gone(client):
    # Secrets: a kind the API server's first start writes none of (a key of its own keeps revision 1 retained)
    s = await client.create(b.secret("churn", data={"n": "0"}))
    first = int(s["metadata"]["resourceVersion"])
    for i in range(1, 30):  # more revisions than the bucket keeps per key
        s["data"]["n"] = base64.b64encode(str(i).encode()).decode()
        s = await client.update(s)
    with pytest.raises(errors.Gone) as e:
        await client.watch("secrets", since=first)
    assert e.value.code == 410


async def test_json_requests_and_errors_for_outside_clients(client):
    req = codec.to_json({"namespace": "default", "name": "nosuch"})
    msg = await client.nc.request(subjects.api_subject(client.identity.token, "pods", "get"), req, timeout=5)
    reply = codec.from_json(msg.data)
    assert reply["code"] == 404 and reply["body"]["kind"] == "Status" and reply["body"]["reason"] == "NotFound"


@pytest.mark.parametrize("payload, code", [
    (b"\xc1\xff\x00garbage", 400),
    (b"{not json", 400),
    (codec.pack([1, 2, 3]), 400),
    (codec.pack({"namespace": 5}), 400),
    (codec.pack({"namespace": "default", "body": "a string"}), 400),
])
async def test_bad_payloads_get_status_errors(client, payload, code):
    msg = await client.nc.request(subjects.api_subject(client.identity.token, "pods", "create"), payload, timeout=5)
    reply = codec.unpack(msg.data) if not payload.startswith(b"{") else codec.from_json(msg.data)
    assert reply["code"] == code and reply["body"]["kind"] == "Status"


async def test_oversized_and_deep_objects_are_refused(client):
    big = pod("big")
    big["spec"]["blob"] = "x" * (2 * 1024 * 1024)  # an unmodelled field: only the size limit stops it
    with pytest.raises(errors.TooLarge) as e:
        await client.create(big)
    assert e.value.code == 413
    big["spec"]["blob"] = "x" * (5 * 1024 * 1024)
    with pytest.raises(errors.TooLarge):
        await client.create(big)
    with pytest.raises(errors.Invalid):  # Kubernetes' own ConfigMap limit
        await client.create(configmap("big", data={"blob": "x" * (1024 * 1024 + 1)}))
    deep: dict = {}
    cur = deep
    for _ in range(500):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(errors.BadRequest):
        await client.create({**configmap("deep"), "extra": deep})
    # the server still serves
    assert (await client.get("namespaces", "default"))["metadata"]["name"] == "default"


async def test_cluster_scoped_names_with_dots(client):
    out = await client.create({**node("node-1.example.com"),
                               "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}})
    assert out["status"]["capacity"]["pods"] == "110"  # a node registers with its status
    got = await client.get("nodes", "node-1.example.com")
    assert got["metadata"]["name"] == "node-1.example.com"


async def test_list_of_an_empty_namespace_answers_at_once(client):
    cm = await client.create(configmap("hist", data={"a": "1"}))
    cm["data"]["a"] = "2"
    await client.update(cm)  # the bucket now has history; kube-public has nothing
    t0 = asyncio.get_running_loop().time()
    items, rv = await client.list("configmaps", "kube-public")
    assert items == [] and rv >= int(cm["metadata"]["resourceVersion"])
    assert asyncio.get_running_loop().time() - t0 < 2
