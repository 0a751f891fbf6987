"""Strategic merge patch and server-side apply through a real nats-server and API server, with the
``patchType`` values the HTTP gateway sends (the HTTP Content-Types)."""

from __future__ import annotations

import pytest

from bus import codec, errors, subjects
from bus.resources import by_plural
from tests import builders
from tests.builders import IMAGE, IMAGE_ALIAS, container

SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
DEPLOY = by_plural("deployments")


def deployment(name: str, replicas: int | None = 2, image: str = IMAGE_ALIAS, sidecar: bool = False) -> dict:
    """A Deployment whose container ``web`` has env MODE=a (and a ``sidecar`` container after it)."""
    containers = [container("web", image=image, pull=None, env=[{"name": "MODE", "value": "a"}])]
    if sidecar:
        containers.append(container("sidecar", image=IMAGE_ALIAS, pull=None))
    return builders.deployment(name, replicas=replicas, containers=containers)


async def raw(client, verb: str, name: str, body=None, **options) -> tuple[int, dict]:
    """One request on the bus, answering the reply's code and body (the client raises on >= 400)."""
    payload = {"namespace": "default", "name": name, "body": body, "options": options}
    msg = await client.nc.request(subjects.api_subject(client.identity.token, "deployments", verb), codec.pack(payload), timeout=10)
    reply = codec.unpack(msg.data)
    return reply["code"], reply["body"]


def owners(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])}


async def test_strategic_merge_patch_merges_containers_by_name(client):
    created = await client.create(deployment("smp", sidecar=True))
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{"name": "web", "image": IMAGE,
                        "$setElementOrder/env": [{"name": "MODE"}, {"name": "LEVEL"}],
                        "env": [{"name": "LEVEL", "value": "debug"}]}]}}}}
    out = await client.patch("deployments", "smp", patch, patch_type=SMP)
    web, sidecar = out["spec"]["template"]["spec"]["containers"]
    assert (web["name"], web["image"]) == ("web", IMAGE)
    assert web["env"] == [{"name": "MODE", "value": "a"}, {"name": "LEVEL", "value": "debug"}]
    assert sidecar["name"] == "sidecar" and sidecar["image"] == IMAGE_ALIAS
    assert out["metadata"]["generation"] == created["metadata"]["generation"] + 1
    assert int(out["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert "managedFields" not in out["metadata"]  # no fieldManager anywhere: no bookkeeping
    # $patch: delete removes the sidecar; the stored object says so
    await client.patch("deployments", "smp", {"spec": {"template": {"spec": {"containers": [
        {"$patch": "delete", "name": "sidecar"}]}}}}, patch_type="strategic")
    got = await client.get("deployments", "smp")
    assert [c["name"] for c in got["spec"]["template"]["spec"]["containers"]] == ["web"]


async def test_strategic_merge_patch_errors_are_statuses_with_field_paths(client):
    await client.create(deployment("smp-bad"))
    with pytest.raises(errors.Invalid) as e:
        await client.patch("deployments", "smp-bad", {"spec": {"template": {"spec": {"containers": [
            {"image": "no-name"}]}}}}, patch_type=SMP)
    assert e.value.code == 422
    assert e.value.causes[0]["field"] == "spec.template.spec.containers[0]"
    with pytest.raises(errors.ApiError) as e:
        await client.patch("deployments", "smp-bad", {}, patch_type="application/x-unknown")
    assert e.value.code == 415


async def test_apply_creates_then_updates_then_is_unchanged(client):
    code, created = await raw(client, "patch", "ssa", deployment("ssa"), patchType=APPLY, fieldManager="kubectl")
    assert code == 201
    assert created["metadata"]["uid"] and created["spec"]["replicas"] == 2
    (entry,) = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl", "Apply", "apps/v1")
    assert entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']["f:image"] == {}

    code, updated = await raw(client, "patch", "ssa", deployment("ssa", image=IMAGE),
                              patchType=APPLY, fieldManager="kubectl")
    assert code == 200
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert updated["metadata"]["generation"] == 2

    code, again = await raw(client, "patch", "ssa", deployment("ssa", image=IMAGE),
                            patchType=APPLY, fieldManager="kubectl")
    assert code == 200
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]  # nothing written

    # a field the manager stops applying is removed from the object
    cfg = deployment("ssa", image=IMAGE)
    del cfg["spec"]["template"]["spec"]["containers"][0]["env"]
    out = await client.request(DEPLOY, "patch", "default", "ssa", body=cfg,
                               options={"patchType": APPLY, "fieldManager": "kubectl"})
    assert "env" not in out["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in (await client.get("deployments", "ssa"))["spec"]["template"]["spec"]["containers"][0]


async def test_apply_conflicts_with_another_manager_and_force_takes_over(client):
    await client.request(DEPLOY, "patch", "default", "web", body=deployment("web"),
                         options={"patchType": APPLY, "fieldManager": "kubectl"})
    # another manager changes replicas (kubectl scale / edit style: a merge patch with a fieldManager)
    scaled = await client.request(DEPLOY, "patch", "default", "web", body={"spec": {"replicas": 5}},
                                  options={"patchType": "application/merge-patch+json",
                                           "fieldManager": "kubectl-client-side-apply"})
    assert owners(scaled)[("kubectl-client-side-apply", "Update")] == {"f:spec": {"f:replicas": {}}}

    with pytest.raises(errors.Conflict) as e:
        await client.request(DEPLOY, "patch", "default", "web", body=deployment("web", replicas=3),
                             options={"patchType": APPLY, "fieldManager": "kubectl"})
    assert e.value.code == 409
    assert e.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                               "using apps/v1: .spec.replicas")
    assert e.value.causes == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                               "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}]
    assert (await client.get("deployments", "web"))["spec"]["replicas"] == 5  # nothing was written

    # applying the live value is no conflict: both own it
    shared = await client.request(DEPLOY, "patch", "default", "web", body=deployment("web", replicas=5),
                                  options={"patchType": APPLY, "fieldManager": "kubectl"})
    assert "f:replicas" in owners(shared)[("kubectl", "Apply")]["f:spec"]

    forced = await client.request(DEPLOY, "patch", "default", "web", body=deployment("web", replicas=3),
                                  options={"patchType": APPLY, "fieldManager": "kubectl", "force": True})
    assert forced["spec"]["replicas"] == 3
    assert ("kubectl-client-side-apply", "Update") not in owners(forced)
    assert "f:replicas" in owners(forced)[("kubectl", "Apply")]["f:spec"]


async def test_apply_needs_a_field_manager_and_a_kind(client):
    code, body = await raw(client, "patch", "nofm", deployment("nofm"), patchType=APPLY)
    assert code == 422 and body["reason"] == "Invalid"
    assert "fieldManager is required for apply requests" in body["message"]
    assert body["details"]["causes"][0]["field"] == "fieldManager"
    cfg = deployment("nokind")
    del cfg["kind"]
    code, body = await raw(client, "patch", "nokind", cfg, patchType=APPLY, fieldManager="m")
    assert code == 400 and "Kind" in body["message"]
    with pytest.raises(errors.NotFound):
        await client.get("deployments", "nokind")
    code, body = await raw(client, "patch", "nofm", {"spec": {"replicas": 1}}, patchType="merge", force=True)
    assert code == 422 and body["details"]["causes"][0]["field"] == "force"


async def test_writes_with_a_field_manager_record_update_entries(client):
    created = await client.create(deployment("upd"), field_manager="kubectl-create")
    assert set(owners(created)) == {("kubectl-create", "Update")}
    assert "f:replicas" in owners(created)[("kubectl-create", "Update")]["f:spec"]
    created["spec"]["replicas"] = 4
    updated = await client.request(DEPLOY, "update", "default", "upd", body=created,
                                   options={"fieldManager": "kubectl-edit"})
    o = owners(updated)
    assert o[("kubectl-edit", "Update")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in o[("kubectl-create", "Update")]["f:spec"]
