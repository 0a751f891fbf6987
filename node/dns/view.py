"""The node's view of Services and Endpoints (one informer each, every namespace): what the DNS resolver
answers from, and what the agent reads the Service environment variables from."""

from __future__ import annotations

from typing import Any

from bus.informer import BY_NAMESPACE, Informer


class ClusterView:
    def __init__(self, client: Any) -> None:
        self.services = Informer(client, "services")
        self.endpoint_informer = Informer(client, "endpoints")

    async def start(self, timeout: float | None = 30.0) -> bool:
        """Start both informers; returns whether both synced within ``timeout``."""
        ok = await self.services.start(timeout=timeout)
        return await self.endpoint_informer.start(timeout=timeout) and ok

    async def stop(self) -> None:
        await self.services.stop()
        await self.endpoint_informer.stop()

    @property
    def synced(self) -> bool:
        return self.services.synced and self.endpoint_informer.synced

    # ---- resolver.Catalog ---------------------------------------------------------------------------------

    def service(self, namespace: str, name: str) -> dict | None:
        return self.services.get(namespace, name)

    def endpoints(self, namespace: str, name: str) -> dict | None:
        return self.endpoint_informer.get(namespace, name)

    def has_namespace(self, namespace: str) -> bool:
        return bool(self.services.index_keys(BY_NAMESPACE, namespace))

    def services_in(self, *namespaces: str) -> list[dict]:
        return [s for ns in dict.fromkeys(namespaces) for s in self.services.list(ns)]
