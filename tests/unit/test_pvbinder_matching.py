"""PV binder: which PersistentVolume a claim binds to, and which hostPaths reclaim may touch."""

from __future__ import annotations

import pytest

from bus.settings import SettingsError
from master.controllers.pvbinder import ReclaimRefused, choose_volume, compatible, safe_reclaim_path, storage
from master.controllers.settings import ControllerManagerSettings


def pv(name, size="1Gi", modes=("ReadWriteOnce",), sc=None, labels=None, claim=None, phase="Available"):
    spec = {"capacity": {"storage": size}, "accessModes": list(modes), "hostPath": {"path": f"/tmp/{name}"}}
    if sc is not None:
        spec["storageClassName"] = sc
    if claim:
        spec["claimRef"] = claim
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


def pvc(name="data", size="1Gi", modes=("ReadWriteOnce",), sc=None, selector=None, volume=None, uid="u1"):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if sc is not None:
        spec["storageClassName"] = sc
    if selector is not None:
        spec["selector"] = selector
    if volume:
        spec["volumeName"] = volume
    return {"metadata": {"name": name, "namespace": "default", "uid": uid}, "spec": spec, "status": {"phase": "Pending"}}


def test_smallest_sufficient_volume_wins():
    vols = [pv("big", "10Gi"), pv("small", "500Mi"), pv("fit", "2Gi"), pv("exact", "1Gi")]
    assert choose_volume(pvc(size="1Gi"), vols)["metadata"]["name"] == "exact"
    assert choose_volume(pvc(size="1500Mi"), vols)["metadata"]["name"] == "fit"
    assert choose_volume(pvc(size="20Gi"), vols) is None
    assert storage({"storage": "1Ki"}) == 1024


def test_access_modes_must_be_a_superset():
    vols = [pv("rwo", "1Gi", ("ReadWriteOnce",)), pv("rwx", "5Gi", ("ReadWriteOnce", "ReadWriteMany"))]
    assert choose_volume(pvc(modes=("ReadWriteMany",)), vols)["metadata"]["name"] == "rwx"
    assert choose_volume(pvc(modes=("ReadOnlyMany",)), vols) is None


def test_storage_class_empty_matches_unset_only():
    vols = [pv("fast", sc="fast"), pv("plain", "5Gi")]
    assert choose_volume(pvc(sc="fast"), vols)["metadata"]["name"] == "fast"
    assert choose_volume(pvc(), vols)["metadata"]["name"] == "plain"
    assert choose_volume(pvc(sc=""), vols)["metadata"]["name"] == "plain"
    assert choose_volume(pvc(sc="slow"), vols) is None


def test_selector_matches_volume_labels():
    vols = [pv("a", labels={"tier": "db"}), pv("b", labels={"tier": "web"})]
    assert choose_volume(pvc(selector={"matchLabels": {"tier": "web"}}), vols)["metadata"]["name"] == "b"
    sel = {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db", "web"]}]}
    assert choose_volume(pvc(selector=sel), vols) is None


def test_claimed_and_unavailable_volumes_are_skipped():
    other = {"name": "other", "namespace": "default", "uid": "u9"}
    vols = [pv("taken", claim=other), pv("released", phase="Released"), pv("free", "3Gi")]
    assert choose_volume(pvc(), vols)["metadata"]["name"] == "free"


def test_pre_bound_pairs_bind_only_each_other():
    mine = {"name": "data", "namespace": "default"}
    vols = [pv("small"), pv("reserved", "8Gi", claim=mine)]
    assert choose_volume(pvc(), vols)["metadata"]["name"] == "reserved"
    assert choose_volume(pvc(name="someone-else"), vols)["metadata"]["name"] == "small"
    # a claim naming its volume gets that one (if compatible) and no other
    assert choose_volume(pvc(volume="small", uid="u2"), vols)["metadata"]["name"] == "small"
    assert choose_volume(pvc(name="x", volume="reserved"), vols) is None
    assert choose_volume(pvc(volume="missing"), vols) is None
    assert not compatible(pv("tiny", "1Mi"), pvc(volume="tiny"))


def _refusal(path, roots, protected=()):
    with pytest.raises(ReclaimRefused) as e:
        safe_reclaim_path(path, roots, protected)
    return str(e.value)


def test_reclaim_only_below_a_root(tmp_path):
    roots = [str(tmp_path)]
    (tmp_path / "vol").mkdir()
    assert safe_reclaim_path(str(tmp_path / "vol"), roots) == (tmp_path / "vol").resolve()
    assert "is not below a reclaim root" in _refusal(str(tmp_path), roots)          # the root itself
    assert "is not below a reclaim root" in _refusal("/etc", roots)
    assert "is not below a reclaim root" in _refusal(str(tmp_path / ".." / "x"), roots)
    assert "is not an absolute path" in _refusal("relative/dir", roots)
    assert "is not an absolute path" in _refusal(None, roots)
    (tmp_path / "link").symlink_to("/etc")
    assert "is not below a reclaim root" in _refusal(str(tmp_path / "link"), roots)  # a symlink out of the root


def test_no_roots_by_default_and_never_the_data_directory(tmp_path):
    assert ControllerManagerSettings.load(environ={}).reclaim_roots == []
    assert _refusal(str(tmp_path / "vol"), []) == "no reclaim roots are configured (K8N_PV_RECLAIM_ROOTS)"
    data = tmp_path / "data"
    (data / "nodes").mkdir(parents=True)
    roots = [str(tmp_path)]
    for inside_or_above in (data, data / "nodes", data / "nodes" / "x"):
        assert "overlaps the data directory" in _refusal(str(inside_or_above), roots, (data,))
    assert safe_reclaim_path(str(tmp_path / "elsewhere"), roots, (data,)) == (tmp_path / "elsewhere").resolve()
    # a root that holds the data directory still only lets through what is beside it
    assert "overlaps the data directory" in _refusal(str(tmp_path / "data"), [str(tmp_path)], (data,))


@pytest.mark.parametrize("root", ["/", "/etc", "/usr/", "/var", "/var/lib", "/tmp", "/root", "relative"])
def test_system_directories_are_refused_as_roots(root):
    with pytest.raises(SettingsError) as e:
        ControllerManagerSettings.load(environ={"K8N_PV_RECLAIM_ROOTS": f"/srv/vols:{root}"})
    assert "K8N_PV_RECLAIM_ROOTS" in str(e.value) and repr(root) in str(e.value)
    assert ControllerManagerSettings.load(environ={"K8N_PV_RECLAIM_ROOTS": "/srv/vols:/tmp/k8n-vols"}).reclaim_roots \
        == ["/srv/vols", "/tmp/k8n-vols"]
