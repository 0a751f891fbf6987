"""Namespace, ServiceAccount and PersistentVolume controllers against a real nats-server and API
server (controllers in this process, no pods run)."""

from __future__ import annotations

import base64

import pytest

from bus import errors
from bus.informer import SharedInformerFactory
from bus.tokens import verify_token
from master.controllers import namespace, pvbinder, serviceaccount
from master.controllers.manager import Context
from master.controllers.settings import ControllerManagerSettings
from tests import builders
from tests.builders import configmap, pod
from tests.harness import get_or_none, in_namespace, running_controllers
from tests.waiting import eventually, stays


@pytest.fixture
async def controllers(client, tmp_path):
    ctx = Context(client, SharedInformerFactory(client), ControllerManagerSettings(pv_reclaim_roots=str(tmp_path)))
    async with running_controllers(ctx, namespace, serviceaccount, pvbinder):
        yield ctx


async def _token_of(client, ns, sa="default"):
    acct = await get_or_none(client, "serviceaccounts", sa, ns)
    if not acct or not acct.get("secrets"):
        return None
    return await get_or_none(client, "secrets", acct["secrets"][0]["name"], ns)


async def test_every_namespace_gets_a_default_account_with_a_signed_token(client, controllers):
    tok = await eventually(lambda: _token_of(client, "default"), 10, "default/default token")
    await client.create(builders.namespace("team-a"))
    new = await eventually(lambda: _token_of(client, "team-a"), 10, "team-a/default token")
    sa = await client.get("serviceaccounts", "default", "team-a")
    meta = new["metadata"]
    assert new["type"] == "kubernetes.io/service-account-token"
    assert meta["name"].startswith("default-token-")
    assert meta["annotations"] == {"kubernetes.io/service-account.name": "default",
                                   "kubernetes.io/service-account.uid": sa["metadata"]["uid"]}
    assert base64.b64decode(new["data"]["namespace"]) == b"team-a" and "ca.crt" in new["data"]
    key = base64.b64decode((await client.get("secrets", "k8n-signing-key", "kube-system"))["data"]["key"])
    claims = verify_token(key, base64.b64decode(new["data"]["token"]).decode())
    assert claims["sub"] == "system:serviceaccount:team-a:default" and claims["iss"] == "k8n"
    assert claims["kubernetes.io/serviceaccount/service-account.uid"] == sa["metadata"]["uid"]
    assert verify_token(key, base64.b64decode(tok["data"]["token"]).decode())["sub"].endswith(":default:default")
    assert await get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a")

    # an account of one's own gets a token too; exactly one, however many times it is reconciled
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "team-a"}})
    await eventually(lambda: _token_of(client, "team-a", "builder"), 10, "builder token")

    async def one_token_each():
        tokens = [s for s in await in_namespace(client, "secrets", "team-a")
                  if s["type"] == "kubernetes.io/service-account-token"]
        return sorted(s["metadata"]["annotations"]["kubernetes.io/service-account.name"] for s in tokens) == [
            "builder", "default"]

    await stays(one_token_each, 0.5, "one token for each account of team-a")

    # the default account comes back when deleted, with a new token; the old token goes
    await client.delete("serviceaccounts", "default", "team-a")

    async def replaced():
        t = await _token_of(client, "team-a")
        return t if t and t["metadata"]["name"] != meta["name"] else None

    await eventually(replaced, 10, "a new default account with a new token")
    await eventually(lambda: _gone(client, "secrets", meta["name"], "team-a"), 10, "the old token deleted")
    # deleting an account deletes its token
    builder_token = (await _token_of(client, "team-a", "builder"))["metadata"]["name"]
    await client.delete("serviceaccounts", "builder", "team-a")
    await eventually(lambda: _gone(client, "secrets", builder_token, "team-a"), 10, "builder's token deleted")


async def _gone(client, res, name, ns=None):
    return await get_or_none(client, res, name, ns) is None


async def test_namespace_deletion_removes_its_content_then_the_namespace(client, controllers):
    await client.create(builders.namespace("doomed"))
    await eventually(lambda: _token_of(client, "doomed"), 10, "doomed/default token")
    for i in range(3):
        await client.create(configmap(f"cm{i}", "doomed", {"k": "v"}))
        await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{i}", "namespace": "doomed"},
                             "stringData": {"k": "v"}})
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "doomed"}})
    await client.create(pod("p", "doomed"))
    await client.create(configmap("keep"))

    await client.delete("namespaces", "doomed")
    ns = await get_or_none(client, "namespaces", "doomed")
    assert ns is None or ns["status"]["phase"] == "Terminating"
    with pytest.raises(errors.ApiError) as refused:
        await client.create(configmap("late", "doomed"))
    assert refused.value.code in (403, 404)
    await eventually(lambda: _gone(client, "namespaces", "doomed"), 15, "namespace removed")
    for res in ("configmaps", "secrets", "serviceaccounts", "pods"):
        assert await in_namespace(client, res, "doomed") == [], res
    assert await get_or_none(client, "configmaps", "keep", "default")  # other namespaces untouched
    with pytest.raises(errors.ApiError) as refused:
        await client.delete("namespaces", "kube-system")
    assert refused.value.code == 403


def _pv(name, path, size="1Gi", policy="Retain", **spec):
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": policy, "hostPath": {"path": str(path)}, **spec}}


def _pvc(name, size="1Gi", **spec):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}}


async def _phase(client, res, name, ns=None):
    o = await get_or_none(client, res, name, ns)
    return (o.get("status") or {}).get("phase") if o else None


async def _wait_phase(client, res, name, phase, ns=None, timeout=10):
    await eventually(lambda: _phase_is(client, res, name, phase, ns), timeout, f"{res}/{name} {phase}")


async def _phase_is(client, res, name, phase, ns):
    return await _phase(client, res, name, ns) == phase


async def test_claims_bind_to_the_smallest_matching_volume_and_each_reclaim_policy(client, controllers, tmp_path):
    dirs = {n: tmp_path / n for n in ("retain", "delete", "recycle", "huge")}
    for d in dirs.values():
        d.mkdir()
        (d / "data.txt").write_text("precious")
    await client.create(_pv("pv-huge", dirs["huge"], "100Gi"))
    await client.create(_pv("pv-retain", dirs["retain"], "1Gi", "Retain"))
    await client.create(_pv("pv-delete", dirs["delete"], "2Gi", "Delete"))
    await client.create(_pv("pv-recycle", dirs["recycle"], "3Gi", "Recycle", storageClassName="slow"))
    for n in ("pv-huge", "pv-retain", "pv-delete", "pv-recycle"):
        await _wait_phase(client, "persistentvolumes", n, "Available")

    await client.create(_pvc("c-retain", "500Mi"))
    await client.create(_pvc("c-delete", "1500Mi"))
    await client.create(_pvc("c-recycle", "1Gi", storageClassName="slow"))
    await client.create(_pvc("c-none", "1Ti"))
    for c in ("c-retain", "c-delete", "c-recycle"):
        await _wait_phase(client, "persistentvolumeclaims", c, "Bound", "default")
    got = {c: await client.get("persistentvolumeclaims", c, "default") for c in ("c-retain", "c-delete", "c-recycle")}
    assert {c: o["spec"]["volumeName"] for c, o in got.items()} == \
        {"c-retain": "pv-retain", "c-delete": "pv-delete", "c-recycle": "pv-recycle"}
    assert got["c-delete"]["status"]["capacity"] == {"storage": "2Gi"}
    assert got["c-delete"]["status"]["accessModes"] == ["ReadWriteOnce"]
    pv = await client.get("persistentvolumes", "pv-retain")
    assert pv["status"]["phase"] == "Bound"
    assert pv["spec"]["claimRef"]["name"] == "c-retain" and pv["spec"]["claimRef"]["uid"] == got["c-retain"]["metadata"]["uid"]
    assert await _phase(client, "persistentvolumeclaims", "c-none", "default") == "Pending"
    assert await _phase(client, "persistentvolumes", "pv-huge") == "Available"

    # Retain: Released, claimRef and data kept, not bound again
    await client.delete("persistentvolumeclaims", "c-retain", "default")
    await _wait_phase(client, "persistentvolumes", "pv-retain", "Released")
    assert (await client.get("persistentvolumes", "pv-retain"))["spec"]["claimRef"]["name"] == "c-retain"
    assert (dirs["retain"] / "data.txt").read_text() == "precious"
    # Delete: the PV and its directory go
    await client.delete("persistentvolumeclaims", "c-delete", "default")
    await eventually(lambda: _gone(client, "persistentvolumes", "pv-delete"), 10, "pv-delete deleted")
    assert not dirs["delete"].exists()
    # Recycle: scrubbed, Available again, bound by the next claim
    await client.delete("persistentvolumeclaims", "c-recycle", "default")
    await _wait_phase(client, "persistentvolumes", "pv-recycle", "Available")
    assert dirs["recycle"].is_dir() and list(dirs["recycle"].iterdir()) == []
    assert "claimRef" not in (await client.get("persistentvolumes", "pv-recycle"))["spec"]
    await client.create(_pvc("c-again", "1Gi", storageClassName="slow"))
    await _wait_phase(client, "persistentvolumeclaims", "c-again", "Bound", "default")
    assert (await client.get("persistentvolumeclaims", "c-again", "default"))["spec"]["volumeName"] == "pv-recycle"
    assert (dirs["huge"] / "data.txt").exists() and (dirs["retain"] / "data.txt").exists()


async def test_pre_bound_pairs_and_late_volumes(client, controllers, tmp_path):
    # a claim that names a volume waits for it, and gets it though a smaller one fits
    await client.create(_pv("small", tmp_path / "small", "1Gi"))
    await client.create(_pvc("wants-big", "1Gi", volumeName="big"))
    await stays(lambda: _phase_is(client, "persistentvolumeclaims", "wants-big", "Pending", "default"), 0.5,
                "wants-big Pending while its volume is missing")
    await client.create(_pv("big", tmp_path / "big", "5Gi"))
    await _wait_phase(client, "persistentvolumeclaims", "wants-big", "Bound", "default")
    # a volume reserved for a claim (claimRef) is not taken by another
    await client.create(_pv("reserved", tmp_path / "r", "1Gi",
                            claimRef={"name": "owner", "namespace": "default"}))
    await client.create(_pvc("other", "1Gi"))
    await _wait_phase(client, "persistentvolumeclaims", "other", "Bound", "default")
    assert (await client.get("persistentvolumeclaims", "other", "default"))["spec"]["volumeName"] == "small"
    await client.create(_pvc("owner", "1Gi"))
    await _wait_phase(client, "persistentvolumeclaims", "owner", "Bound", "default")
    assert (await client.get("persistentvolumeclaims", "owner", "default"))["spec"]["volumeName"] == "reserved"
    # a claim with no volume yet binds when one is added
    await client.create(_pvc("late", "10Gi"))
    await stays(lambda: _phase_is(client, "persistentvolumeclaims", "late", "Pending", "default"), 0.3,
                "late Pending while no volume fits")
    await client.create(_pv("later", tmp_path / "later", "10Gi"))
    await _wait_phase(client, "persistentvolumeclaims", "late", "Bound", "default")
