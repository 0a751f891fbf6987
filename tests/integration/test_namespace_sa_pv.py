"""Namespace, ServiceAccount and PersistentVolume controllers against a real nats-server and API
server (controllers in this process, no pods run)."""

from __future__ import annotations

import base64

import pytest

from bus import errors
from bus.informer import SharedInformerFactory
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


async def _account_of(client, ns, sa="default"):
    return await get_or_none(client, "serviceaccounts", sa, ns)


async def _token_secrets(client, ns):
    return [s for s in await in_namespace(client, "secrets", ns) if s["type"] == "kubernetes.io/service-account-token"]


async def test_every_namespace_gets_a_default_account_and_no_token_secret(client, controllers):
    await eventually(lambda: _account_of(client, "default"), 10, "default/default account")
    await client.create(builders.namespace("team-a"))
    sa = await eventually(lambda: _account_of(client, "team-a"), 10, "team-a/default account")
    assert await eventually(lambda: get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a"), 10,
                            "team-a/kube-root-ca.crt")
    # as in Kubernetes since 1.24, accounts get no token Secret (pods ask TokenRequest for short-lived tokens)
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "team-a"}})

    async def no_token_secrets():
        return await _token_secrets(client, "team-a") == []

    await stays(no_token_secrets, 0.5, "no token Secret in team-a")
    # the default account comes back when deleted, as a new account
    await client.delete("serviceaccounts", "default", "team-a")

    async def replaced():
        a = await _account_of(client, "team-a")
        return a if a and a["metadata"]["uid"] != sa["metadata"]["uid"] else None

    await eventually(replaced, 10, "a new default account")
    # a token Secret someone makes is filled in with a token bound to it (tests/integration/test_tokenrequest.py)
    await client.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                         "metadata": {"name": "builder-token", "namespace": "team-a",
                                      "annotations": {"kubernetes.io/service-account.name": "builder"}}})

    async def filled():
        s = await get_or_none(client, "secrets", "builder-token", "team-a")
        return s if s and (s.get("data") or {}).get("token") else None

    secret = await eventually(filled, 10, "the builder-token Secret filled in")
    assert base64.b64decode(secret["data"]["namespace"]) == b"team-a"
    # deleting an account deletes its token Secrets
    await client.delete("serviceaccounts", "builder", "team-a")
    await eventually(lambda: _gone(client, "secrets", "builder-token", "team-a"), 10, "builder's token Secret deleted")


async def _gone(client, res, name, ns=None):
    return await get_or_none(client, res, name, ns) is None


async def test_namespace_deletion_removes_its_content_then_the_namespace(client, controllers):
    await client.create(builders.namespace("doomed"))
    await eventually(lambda: _account_of(client, "doomed"), 10, "doomed/default account")
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


async def test_a_reclaim_outside_the_roots_or_of_the_data_directory_fails_and_touches_nothing(
        client, controllers, tmp_path, tmp_path_factory, monkeypatch):
    data = tmp_path / "k8n-data"  # this process's data directory, inside the configured reclaim root
    monkeypatch.setenv("K8N_DATA_DIR", str(data))
    outside = tmp_path_factory.mktemp("outside")
    for d in (data / "nodes", outside):
        d.mkdir(parents=True, exist_ok=True)
        (d / "keep.txt").write_text("precious")
    await client.create(_pv("pv-outside", outside, "1Gi", "Delete"))
    await client.create(_pv("pv-data", data, "2Gi", "Recycle"))
    await client.create(_pvc("c-outside", "1Gi"))
    await client.create(_pvc("c-data", "2Gi"))
    for c in ("c-outside", "c-data"):
        await _wait_phase(client, "persistentvolumeclaims", c, "Bound", "default")
        await client.delete("persistentvolumeclaims", c, "default")
    await _wait_phase(client, "persistentvolumes", "pv-outside", "Failed")
    await _wait_phase(client, "persistentvolumes", "pv-data", "Failed")
    outside_pv = await client.get("persistentvolumes", "pv-outside")
    assert outside_pv["status"]["message"] == (f"Delete of volume pv-outside refused: hostPath {str(outside)!r} is not "
                                               f"below a reclaim root ({tmp_path})")
    assert "overlaps the data directory" in (await client.get("persistentvolumes", "pv-data"))["status"]["message"]
    assert (outside / "keep.txt").read_text() == "precious"
    assert (data / "nodes" / "keep.txt").read_text() == "precious"
