"""Nodes that protect themselves (issue 18, item 5), on real Docker with the real agent, scheduler and node lifecycle
controller:

- **Disk**: the agent's state directory (pods' emptyDirs: ``nodefs``) is a 64 MiB tmpfs the test mounts, with
  ``nodefs.available<40%``. A pod filling its emptyDir brings DiskPressure and the ``disk-pressure`` NoSchedule
  taint; the filling pod (not the one within its ephemeral-storage request) is evicted as the kubelet does it
  (Failed, ``Evicted``, the message, a Warning event); while tainted a new pod waits unscheduled and one tolerating
  the taint runs; after the transition period the condition and the taint go and the waiting pod runs.
- **Memory**: ``allocatableMemory.available`` below MemTotal less 500 MiB (pods using more than 500 MiB together):
  two memory-hungry pods, the lower-priority one using less; it is the one evicted (priority before usage), and the
  other keeps running once the pressure is relieved.
- **Image GC** on the real Docker, with only the test's own images in view: over the high threshold the unused one
  is removed; one a (stopped) container uses and one a pod names are kept; too little to free: FreeDiskSpaceFailed.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from bus import errors
from tests.builders import container, pod
from tests.harness import NEEDS_DOCKER, start_cluster, stop_cluster
from tests.waiting import eventually

pytestmark = list(NEEDS_DOCKER)

FAST = ["--eviction-monitoring-seconds", "1", "--status-seconds", "2"]
DISK_TOLERATION = {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "nodefs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


async def _node(c, name):
    return await c.get("nodes", name)


def _condition(node, type_):
    return next((x.get("status") for x in (node.get("status") or {}).get("conditions") or [] if x["type"] == type_),
                None)


def _taints(node):
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}


async def _phase(c, name):
    return ((await c.get("pods", name)).get("status") or {}).get("phase")


async def _events(c, name, reason):
    return [e for e in (await c.list("events", "default"))[0]
            if e["involvedObject"].get("name") == name and e.get("reason") == reason]


def _with_volume(p: dict, request: str | None = None) -> dict:
    p["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    for cont in p["spec"]["containers"]:
        cont["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
        if request:
            cont["resources"] = {"requests": {"ephemeral-storage": request}}
    return p


async def test_disk_pressure_evicts_the_filling_pod_and_taints_the_node(nats_server, tmp_path, small_disk):
    cluster = await start_cluster(nats_server, tmp_path, agent_extra=[
        "--state-dir", str(small_disk), "--eviction-hard", "nodefs.available<40%",
        "--eviction-pressure-transition-period", "15", *FAST])
    c, node = cluster.client, cluster.node
    try:
        assert _condition(await _node(c, node), "DiskPressure") == "False"
        await c.create(_with_volume(pod("quiet", grace=1, containers=[
            container("c", "dd if=/dev/zero of=/scratch/f bs=1M count=1; sleep 3600")]), request="20Mi"))
        await eventually(lambda: _is(c, "quiet", "Running"), 30, "the quiet pod Running")
        await c.create(_with_volume(pod("writer", grace=1, containers=[
            container("c", "dd if=/dev/zero of=/scratch/f bs=1M count=40; sleep 3600")])))

        async def tainted():
            n = await _node(c, node)
            return _condition(n, "DiskPressure") == "True" and \
                ("node.kubernetes.io/disk-pressure", "NoSchedule") in _taints(n)
        await eventually(tainted, 30, "DiskPressure and the disk-pressure taint")
        # new pods: one without the toleration waits, one with it runs
        await c.create(pod("late", grace=1, containers=[container("c", "sleep 3600")]))
        await c.create(pod("tolerant", grace=1, containers=[container("c", "sleep 3600")],
                           tolerations=[DISK_TOLERATION]))

        async def evicted():
            p = await c.get("pods", "writer")
            return (p.get("status") or {}).get("reason") == "Evicted" and p
        p = await eventually(evicted, 30, "the writer evicted")
        st = p["status"]
        assert st["phase"] == "Failed"
        assert st["message"].startswith("The node was low on resource: ephemeral-storage. Threshold quantity: ")
        assert any(x["type"] == "DisruptionTarget" and x["status"] == "True" for x in st["conditions"])
        ev = await eventually(lambda: _events(c, "writer", "Evicted"), 10, "the Evicted event")
        assert ev[0]["type"] == "Warning" and ev[0]["message"] == st["message"]
        await eventually(lambda: _is(c, "tolerant", "Running"), 30, "the tolerating pod Running")
        late = await c.get("pods", "late")
        if _condition(await _node(c, node), "DiskPressure") == "True":  # still within the transition period
            assert not late["spec"].get("nodeName"), "a pod without the toleration was placed on the tainted node"
        assert await _phase(c, "quiet") == "Running"  # within its request: not evicted
        # the pressure is gone (the writer's emptyDir with it): after the transition period, no taint
        await eventually(lambda: _untainted(c, node, "DiskPressure"), 40, "DiskPressure False and no taint")
        await eventually(lambda: _is(c, "late", "Running"), 30, "the waiting pod scheduled and Running")
        assert await _phase(c, "writer") == "Failed"  # never restarted
    finally:
        await stop_cluster(cluster)


async def test_memory_pressure_evicts_the_lower_priority_pod_first(nats_server, tmp_path):
    total_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))
    cluster = await start_cluster(nats_server, tmp_path, agent_extra=[
        "--eviction-hard", f"allocatableMemory.available<{total_kib - 500 * 1024}Ki",
        "--eviction-pressure-transition-period", "5", *FAST])
    c, node = cluster.client, cluster.node
    high = f"t-high-{uuid.uuid4().hex[:6]}"
    await c.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": high},
                    "value": 1000})
    try:
        await c.create(pod("quiet", grace=1, containers=[container(
            "c", "sleep 3600", resources={"requests": {"memory": "50Mi"}})]))
        await eventually(lambda: _is(c, "quiet", "Running"), 30, "the quiet pod Running")
        # the higher-priority pod uses more: the kubelet's ranking takes the lower priority first anyway
        await c.create(pod("big-important", grace=1, priorityClassName=high, containers=[
            container("c", "dd if=/dev/zero bs=400M count=1 | sleep 3600")]))
        await c.create(pod("small-unimportant", grace=1, containers=[
            container("c", "dd if=/dev/zero bs=300M count=1 | sleep 3600")]))

        async def evicted():
            p = await c.get("pods", "small-unimportant")
            return (p.get("status") or {}).get("reason") == "Evicted" and p
        p = await eventually(evicted, 45, "the lower-priority pod evicted")
        msg = p["status"]["message"]
        assert msg.startswith("The node was low on resource: memory. Threshold quantity: "), msg
        assert "Container c was using " in msg and "request is 0, has larger consumption of memory." in msg
        n = await _node(c, node)
        assert _condition(n, "MemoryPressure") == "True"
        await eventually(lambda: _untainted(c, node, "MemoryPressure"), 30, "MemoryPressure False and no taint")
        assert await _phase(c, "big-important") == "Running"
        assert await _phase(c, "quiet") == "Running"
        assert (await _events(c, "small-unimportant", "Evicted"))[0]["type"] == "Warning"
        assert not await _events(c, "big-important", "Evicted")
        assert any(e["reason"] == "NodeHasInsufficientMemory" for e in (await c.list("events", "default"))[0]
                   if e["involvedObject"].get("kind") == "Node")
    finally:
        try:
            await c.delete("priorityclasses", high)
        except errors.ApiError:
            pass
        await stop_cluster(cluster)


async def _is(c, name, phase):
    return await _phase(c, name) == phase


async def _untainted(c, node, condition):
    n = await _node(c, node)
    key = {"DiskPressure": "node.kubernetes.io/disk-pressure", "MemoryPressure": "node.kubernetes.io/memory-pressure"}
    return _condition(n, condition) == "False" and (key[condition], "NoSchedule") not in _taints(n)


def _build(tmp: Path, tag: str, label: str) -> str:
    """A tiny image of its own (a unique file on scratch), labelled for this test; its id."""
    ctx = tmp / tag.replace(":", "_").replace("/", "_")
    ctx.mkdir()
    (ctx / "f").write_text(f"{tag} {uuid.uuid4()}")
    (ctx / "Dockerfile").write_text(f"FROM scratch\nLABEL io.k8n.test={label}\nCOPY f /f\n")
    subprocess.run(["docker", "build", "-q", "-t", tag, str(ctx)], check=True, capture_output=True)
    return subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], check=True, capture_output=True,
                          text=True).stdout.strip()


class _Labelled:
    """Docker's API with only this test's images in view (the machine's other images are other tests'); removals
    and the containers in use are Docker's own."""

    def __init__(self, api, label: str) -> None:
        self.api, self.label = api, label

    def images(self):
        return self.api.images(filters={"label": f"io.k8n.test={self.label}"})

    def containers(self, all=False):
        return self.api.containers(all=all)

    def remove_image(self, iid, force=False):
        return self.api.remove_image(iid, force=force)


async def test_image_gc_removes_only_unused_images(tmp_path):
    import docker

    from node.imagegc import ImageGC

    label = uuid.uuid4().hex[:10]
    tags = {k: f"k8n-gc-test-{label}-{k}:v1" for k in ("unused", "stopped", "named")}
    events: list[tuple] = []

    async def event(*a):
        events.append(a)
    client = docker.from_env()
    cid = None
    try:
        ids = {k: _build(tmp_path, t, label) for k, t in tags.items()}
        cid = client.api.create_container(tags["stopped"], command=["/f"])["Id"]  # uses it, never started
        gc = ImageGC(_Labelled(client.api, label), str(tmp_path), "k8n/pause:3.9", lambda: [tags["named"]], event,
                     high=0, low=0, min_age=0)  # "over the threshold" whatever the disk: every unused image goes
        freed = await gc.garbage_collect()
        left = {img["Id"] for img in client.api.images(filters={"label": f"io.k8n.test={label}"})}
        assert ids["unused"] not in left and {ids["stopped"], ids["named"]} <= left
        assert freed > 0
        assert [e[1] for e in events] == ["FreeDiskSpaceFailed"]  # the rest of the disk is not images of this test
    finally:
        if cid:
            client.api.remove_container(cid, force=True)
        for t in tags.values():
            subprocess.run(["docker", "rmi", "-f", t], capture_output=True)
        client.close()
