"""The data disk full (issue 13): ``k8n up`` (its embedded nats-server) keeps its data directory on a 64 MiB tmpfs
the test mounts; a big file fills it while writes run. Writes are then refused fast with a 503 that says the store is
out of space, reads of existing objects still answer, ``k8n up`` says what happened, and once the file is removed the
cluster stores again by itself, with every acknowledged write there."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from bus import errors
from bus.client import ApiClient
from bus.connect import creds_path
from bus.roles import ADMIN, Identity
from tests.e2e.upcluster import ROOT, launch_up, wait_up
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually

pytestmark = NEEDS_DOCKER  # root: it mounts a filesystem

SIZE = "64m"


def fill(path: Path) -> int:
    """Write zeros into ``path`` until the filesystem is full; the bytes written."""
    chunk, n = b"\0" * 2**20, 0
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
        try:  # what is left of the last MiB too
            while f.write(b"\0" * 4096):
                n += 4096
        except OSError:
            pass
    return n


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "data"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["cp", "-r", str(mnt / "logs"), str(tmp_path / "logs")], capture_output=True)  # to look at
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def up_on_small_disk(small_disk, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "K8N_DATA_DIR": str(small_disk),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for inherited in ("K8N_SERVER", "K8N_CREDS_DIR", "K8N_CREDS", "KUBECONFIG"):
        env.pop(inherited, None)
    out = tmp_path / "up.log"  # beside the small disk, not on it
    with open(out, "ab") as log:
        proc = launch_up(small_disk, log, "--nats-port", "0", "--http-port", "0", env=env, cwd=tmp_path)
    try:
        wait_up(proc, small_disk, lambda: out.read_text(errors="replace")[-3000:])
        yield small_disk, out
    finally:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            proc.wait(10)


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"v": name * 50}}


async def test_disk_full_refuses_writes_keeps_reads_and_recovers_with_nothing_lost(up_on_small_disk):
    data, up_log = up_on_small_disk
    info = json.loads((data / "cluster.json").read_text())
    c = await ApiClient.connect(info["server"], creds=str(creds_path(Identity(ADMIN), data / "creds")))
    c.retries, c.timeout = 0, 15.0  # one attempt each: what a caller sees
    acked: dict[str, str] = {}  # name -> resourceVersion of every acknowledged create
    outcomes: list[tuple[float, str]] = []

    async def create(name: str) -> None:
        t = time.monotonic()
        try:
            got = await c.create(cm(name))
            acked[name] = got["metadata"]["resourceVersion"]
            outcomes.append((time.monotonic() - t, "created"))
        except errors.ApiError as e:
            outcomes.append((time.monotonic() - t, f"{e.code} {e.message}"))

    try:
        for i in range(20):
            await create(f"before-{i}")
        assert len(acked) == 20

        filler = data / "filler"
        written = await asyncio.to_thread(fill, filler)
        assert written > 0

        def refused_fast() -> bool:
            took, what = outcomes[-1]
            return what.startswith("503 ") and "out of space" in what and took < 1.0

        async def refused_now() -> bool:
            await create(f"full-{len(outcomes)}")
            return refused_fast()

        await eventually(refused_now, 60, lambda: f"a write refused fast for lack of space; got {outcomes[-3:]}")
        print("refused:", outcomes[-1])
        assert "JetStream disabled itself: the data disk is full" in up_log.read_text()
        got = await c.get("configmaps", "before-3", "default")  # reads of existing objects still answer
        assert got["data"]["v"] == "before-3" * 50

        os.remove(filler)
        freed = time.monotonic()

        async def stores_again() -> bool:
            await create(f"after-{len(outcomes)}")
            return outcomes[-1][1] == "created"

        await eventually(stores_again, 60, lambda: f"writes accepted after the space was freed; got {outcomes[-3:]}")
        print(f"writes accepted {time.monotonic() - freed:.1f}s after the space was freed")
        assert "k8n: space was freed on the data disk" in up_log.read_text()
        await eventually(lambda: "k8n: JetStream stores again" in up_log.read_text(), 10, "k8n up to say so")

        for name, rv in acked.items():  # no acknowledged write lost, none changed
            got = await c.get("configmaps", name, "default")
            assert got["metadata"]["resourceVersion"] == rv and got["data"]["v"] == name * 50, name
    finally:
        await c.close()
