"""The agent's second line of defence where pod fields become host paths: subPaths opened without following a
symlink out of the volume, pod uids that are UUIDs, and pods that fail validation refused (node/admission.py,
node/volumes.py)."""

from __future__ import annotations

import os
import uuid

import pytest

from node.admission import refusal, valid_uid
from node.volumes import VolumeError, Volumes, safe_subpath
from tests.builders import pod


def test_a_subpath_is_made_inside_the_volume(tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    assert safe_subpath(vol, "logs/app") == vol / "logs" / "app" and (vol / "logs" / "app").is_dir()
    (vol / "app.conf").write_text("x")
    assert safe_subpath(vol, "app.conf") == vol / "app.conf"  # one file of a configMap volume


@pytest.mark.parametrize("sub", ["/etc", "../x", "a/../../x"])
def test_a_subpath_that_leaves_the_volume_is_refused(tmp_path, sub):
    with pytest.raises(VolumeError):
        safe_subpath(tmp_path, sub)


def test_a_symlink_planted_in_the_volume_is_not_followed(tmp_path):
    vol, outside = tmp_path / "vol", tmp_path / "host"
    vol.mkdir()
    outside.mkdir()
    os.symlink(outside, vol / "escape")  # what a container could do in its emptyDir
    for sub in ("escape", "escape/deeper"):
        with pytest.raises(VolumeError, match="symlink"):
            safe_subpath(vol, sub)
    assert not (outside / "deeper").exists()
    os.symlink("/etc/passwd", vol / "passwd")
    with pytest.raises(VolumeError, match="symlink"):
        safe_subpath(vol, "passwd")


def test_only_uuid_uids_name_host_paths(tmp_path):
    good = str(uuid.uuid4())
    assert valid_uid(good)
    for bad in ("../../x", "", None, "x" * 36, good + "/..", good.upper() + "x"):
        assert not valid_uid(bad)
    volumes = Volumes(tmp_path, lambda *a: None)
    assert volumes.pod_dir(good) == tmp_path / good
    with pytest.raises(ValueError):
        volumes.pod_dir("../../x")
    (tmp_path.parent / "keep").mkdir(exist_ok=True)
    volumes.cleanup("../keep")  # refused, logged: nothing outside the pods directory is removed
    assert (tmp_path.parent / "keep").exists()


def test_the_agent_refuses_pods_the_api_would_not_accept():
    p = pod("p")
    p["metadata"]["uid"] = str(uuid.uuid4())
    assert refusal(p) is None
    p["metadata"]["uid"] = "../../x"
    assert "is not a UUID" in refusal(p)
    p["metadata"]["uid"] = str(uuid.uuid4())
    p["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/d", "subPath": "/tmp/x"}]
    assert "subPath" in refusal(p) and "must be a relative path" in refusal(p)
