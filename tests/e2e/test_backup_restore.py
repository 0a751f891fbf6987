"""``k8n backup`` of a running ``k8n up`` cluster, ``k8n restore`` into a new data directory, ``k8n up`` on it with the
same node: a Deployment's pod whose containers still run is adopted (same containers), a pod deleted after the backup
comes back (its containers made again), and the pod made after the backup is gone (its containers removed).
Run under ``flock /tmp/k8n-e2e.lock`` like every test that starts ``k8n up``."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.e2e.upcluster import K8N, UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = list(NEEDS_DOCKER)

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
                  "metadata": {"labels": {"app": "web"}},
                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                      {"name": "main", "image": "k8n/busybox:latest", "command": ["sleep", "3600"]}]}}}}


def running(c: UpCluster) -> dict[str, str]:
    """uid -> name of the app=web pods Running and Ready."""
    out = json.loads(c.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)
    return {p["metadata"]["uid"]: p["metadata"]["name"] for p in out["items"]
            if not p["metadata"].get("deletionTimestamp") and p.get("status", {}).get("phase") == "Running"
            and any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))}


def containers_of(c: UpCluster, uid: str) -> set[str]:
    return set(subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.k8n.pod.uid={uid}"],
                              capture_output=True, text=True).stdout.split())


def served_by_containers(c: UpCluster, uid: str) -> bool:
    """The pod is Ready and its status names a container that runs now (not one the restored status remembers)."""
    name = running(c).get(uid)
    if name is None:
        return False
    pod = json.loads(c.kubectl("get", "pod", name, "-o", "json").stdout)
    ids = [s.get("containerID", "").rpartition("://")[2] for s in pod["status"].get("containerStatuses", [])]
    live = containers_of(c, uid)
    return bool(ids) and all(any(i.startswith(x) for x in live) for i in ids if i)


def stop_up(c: UpCluster) -> None:
    """Stop ``k8n up`` alone (UpCluster.stop also removes the node's containers: these must stay)."""
    os.killpg(c.up.pid, signal.SIGTERM)
    c.up.wait(30)
    c.up = None


@pytest.mark.timeout(240)
def test_up_on_a_restored_data_dir_adopts_and_recreates(tmp_path):
    old = UpCluster(tmp_path).start()
    new = None
    try:
        old.kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))
        eventually_sync(lambda: len(running(old)) == 2, 90, "2 pods Running")
        before = running(old)
        backup = tmp_path / "cluster.k8nbak"
        out = subprocess.run([K8N, "backup", str(backup)], capture_output=True, text=True, env=old.env, timeout=60)
        assert out.returncode == 0, out.stderr
        kept_uid, deleted_uid = sorted(before)
        kept_containers = containers_of(old, kept_uid)
        assert kept_containers
        old.kubectl("delete", "pod", before[deleted_uid], "--wait=true")  # after the backup: it comes back
        eventually_sync(lambda: len(running(old)) == 2, 90, "the replacement Running")
        later_uid = next(u for u in running(old) if u not in before)
        # the old cluster stops; its agent dies without draining: the containers keep running
        old.agent.send_signal(signal.SIGKILL)
        old.agent.wait(10)
        old.agent = None
        stop_up(old)
        assert containers_of(old, kept_uid) == kept_containers

        new = UpCluster(tmp_path)
        new.node, new.cidr = old.node, old.cidr
        new.data = tmp_path / "restored"
        new.env["K8N_DATA_DIR"] = str(new.data)
        out = subprocess.run([K8N, "restore", str(backup), "--data-dir", str(new.data)], capture_output=True,
                             text=True, env=new.env, timeout=120)
        assert out.returncode == 0, out.stderr
        (tmp_path / "up.log").rename(tmp_path / "up-old.log")
        new.start()
        # the restored statuses say Running from the start: wait for the agent's own, naming live containers
        eventually_sync(lambda: all(served_by_containers(new, u) for u in before), 90,
                        "the backed-up pods Running on live containers")
        assert containers_of(new, kept_uid) == kept_containers, "the running pod was adopted, not restarted"
        eventually_sync(lambda: not containers_of(new, later_uid), 30, "the pod made after the backup removed")
    finally:
        if new is not None:
            new.stop()
        else:
            old.stop()
