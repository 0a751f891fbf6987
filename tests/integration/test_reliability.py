"""Reliability with real processes: apiservers killed mid-stream, several apiservers sharing
the load, a nats-server restart."""

from __future__ import annotations

import asyncio
import signal

import pytest

from bus import errors
from bus.client import ApiClient
from tests.builders import configmap
from tests.conftest import start_apiserver_process, wait_for_api
from tests.waiting import eventually

pytestmark = pytest.mark.slow


def cm(name: str) -> dict:
    return configmap(name, data={"n": "0"})


async def create_retrying(client: ApiClient, obj: dict) -> None:
    """What a careful client does: retry until the outcome is known. A create whose reply was
    lost comes back as AlreadyExists on retry — the write is in."""
    async def created() -> bool:
        try:
            await client.create(obj)
        except errors.AlreadyExists:
            pass
        return True

    await eventually(created, 60, f"the create of {obj['metadata']['name']} to be answered", interval=0.05,
                     ignore=(errors.Unavailable,))


@pytest.fixture
async def two_apiservers(nats_server, tmp_path):
    procs = [start_apiserver_process(nats_server.url, tmp_path / f"api{i}.log") for i in range(2)]
    await wait_for_api(nats_server.url)
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except Exception:
            p.kill()


async def test_kill_9_apiserver_during_writes_loses_nothing(nats_server, two_apiservers, tmp_path):
    client = await ApiClient.connect(nats_server.url)
    client.timeout = 1.0
    client.retries = 50
    acked: list[str] = []

    async def writer(k: int) -> None:
        for i in range(60):
            name = f"w{k}-{i}"
            await create_retrying(client, cm(name))
            acked.append(name)

    writers = [asyncio.create_task(writer(k)) for k in range(4)]
    await eventually(lambda: acked, 10, "the writers under way")  # the kill below lands mid-stream
    victim = two_apiservers[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # a replacement comes up while the survivor carries the load
    two_apiservers[0] = start_apiserver_process(nats_server.url, tmp_path / "api-restarted.log")
    await asyncio.gather(*writers)
    items, _ = await client.list("configmaps", "default")
    names = [o["metadata"]["name"] for o in items]
    assert len(names) == len(set(names)), "an object is duplicated"
    assert set(acked) <= set(names), f"acknowledged writes missing: {sorted(set(acked) - set(names))[:5]}"
    assert len(acked) == 240
    await client.close()


async def test_concurrent_read_modify_write_loses_no_update(nats_server, two_apiservers):
    clients = [await ApiClient.connect(nats_server.url) for _ in range(4)]
    await clients[0].create(cm("counter"))
    per_client = 25

    async def incr(c: ApiClient) -> None:
        done = 0
        while done < per_client:
            obj = await c.get("configmaps", "counter")
            obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
            try:
                await c.update(obj)
                done += 1
            except errors.Conflict:
                continue

    await asyncio.gather(*(incr(c) for c in clients))
    final = await clients[0].get("configmaps", "counter")
    assert final["data"]["n"] == str(per_client * len(clients))
    for c in clients:
        await c.close()


async def test_nats_restart_clients_reconnect(nats_server, tmp_path):
    proc = start_apiserver_process(nats_server.url, tmp_path / "api.log")
    try:
        await wait_for_api(nats_server.url)
        client = await ApiClient.connect(nats_server.url)
        await client.create(cm("before"))
        items, rv = await client.list("configmaps", "default")
        w = await client.watch("configmaps", "default", since=rv)
        nats_server.stop()
        await eventually(lambda: not client.nc.is_connected, 10, "the client to lose the server")
        nats_server.start()

        async def created() -> bool:
            await client.create(cm("after"))
            return True

        # the client and the apiserver reconnect on their own
        await eventually(created, 30, "a create after the restart", ignore=(errors.Unavailable, errors.ApiError))
        ev = await asyncio.wait_for(w.__anext__(), 15)
        assert ev.type == "ADDED" and ev.object["metadata"]["name"] == "after"
        assert (await client.get("configmaps", "before"))["data"] == {"n": "0"}
        await w.stop()
        await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
