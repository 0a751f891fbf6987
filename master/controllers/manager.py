"""``controllers`` component: runs every controller of the controller manager in one process."""

from __future__ import annotations

import asyncio
import logging

from bus.client import ApiClient
from bus.informer import SharedInformerFactory
from master.controllers.nodeipam import NodeIpam

log = logging.getLogger(__name__)


async def _wait_api(client: ApiClient, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await client.get("namespaces", "default")
            return
        except Exception:
            await asyncio.sleep(0.2)


async def run(server_url: str, stop: asyncio.Event) -> None:
    client = await ApiClient.connect(server_url, name="k8n-controller-manager")
    await _wait_api(client, stop)
    factory = SharedInformerFactory(client)
    controllers = [NodeIpam(client, factory.informer("nodes")).controller]
    await factory.start()
    tasks = [asyncio.create_task(c.run(), name=c.name) for c in controllers]
    try:
        await stop.wait()
    finally:
        for c in controllers:
            c.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await factory.stop()
        await client.close()
