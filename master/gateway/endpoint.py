"""The gateway as the endpoint of the ``kubernetes`` Service (what kube-apiserver's endpoint reconciler does for
itself): ``default/kubernetes`` Endpoints name the address pods reach the gateway at, so a pod using its mounted
token and CA talks to ``https://kubernetes.default.svc`` with exactly the rights RBAC gives its ServiceAccount.
The Service has no selector, so the endpoints controller leaves these Endpoints to us; the last gateway to start
names itself (one gateway per cluster for now)."""

from __future__ import annotations

import asyncio
import logging

from bus.client import ApiClient

log = logging.getLogger(__name__)

SERVICE, NAMESPACE, PORT_NAME = "kubernetes", "default", "https"
RECHECK_SECONDS = 30.0


def endpoints(address: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}]}


async def publish(client: ApiClient, address: str, port: int) -> bool:
    """Make ``default/kubernetes`` Endpoints name ``address:port``; True when they do."""
    want = endpoints(address, port)
    cur = await client.get("endpoints", SERVICE, NAMESPACE)  # the API servers make it (empty) at bootstrap
    if cur.get("subsets") == want["subsets"]:
        return True
    await client.update({**cur, "subsets": want["subsets"]})
    return True


async def keep(client: ApiClient, address: str, port: int) -> None:
    """Publish, and check again now and then (another writer, a restored store), until cancelled."""
    delay = 0.5
    while True:
        try:
            await publish(client, address, port)
            delay = RECHECK_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the API server not up yet, a conflict: try again
            log.info("could not publish the kubernetes endpoints yet: %s", e)
            delay = min(max(delay * 2, 0.5), 5.0)
        await asyncio.sleep(delay)
