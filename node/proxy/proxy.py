"""The service proxy of one node: informers on Services and Endpoints, every change marks the
datapath dirty, and one sync at a time recomputes the desired table (level-triggered: from the
caches, never from an event) and applies only what changed as one nft transaction. Changes that
arrive while a transaction runs are coalesced into the next one.

The first sync replaces whatever an earlier run left in the table atomically; rules stay in the
kernel when the proxy stops (established and new connections keep working across a restart) unless
``stop(cleanup=True)`` removes the table."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from bus import aio, telemetry
from bus.informer import Informer

from node.telemetry import ProxyMetrics

from . import model, nft

log = logging.getLogger(__name__)


class ServiceProxy:
    def __init__(self, client: Any, node_name: str, node_ip: str, cluster_cidr: str = "10.244.0.0/16",
                 services: Any = None, endpoints: Any = None,
                 runner: Callable[[bytes], Awaitable[None]] = nft.run) -> None:
        """``services``/``endpoints``: sources with ``list()`` and ``get(ns, name)`` (informers are
        made from ``client`` when not given)."""
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.cluster_cidr = cluster_cidr
        self.table = nft.table_name(node_name)
        self.services = services
        self.endpoints = endpoints
        self._own_informers = services is None
        self.runner = runner
        self.applied: nft.State | None = None  # what the kernel holds (None: unknown, resync fully)
        self.syncs = 0
        self.last_sync_seconds = 0.0
        self.last_commands = 0
        self._cache: dict = {}  # per Service: (resourceVersions, its ServicePorts)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Watch Services and Endpoints, install the full table once, then keep it in sync."""
        if self._own_informers:
            self.services = Informer(self.client, "services")
            self.endpoints = Informer(self.client, "endpoints")
            for inf in (self.services, self.endpoints):
                inf.add_handler(on_add=self.changed, on_update=self.changed, on_delete=self.changed)
            await asyncio.gather(self.services.start(), self.endpoints.start())
        self._dirty.clear()
        try:
            await self.sync()
        except Exception as e:
            log.error("service proxy: first sync failed: %s", e)
            self._dirty.set()
        self._task = asyncio.create_task(self._loop(), name=f"proxy-{self.node_name}")

    def changed(self, *_: Any) -> None:
        self._dirty.set()

    async def stop(self, cleanup: bool = False) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._own_informers:
            for inf in (self.services, self.endpoints):
                if inf is not None:
                    await inf.stop()
        if cleanup:
            try:
                await nft.delete_table(self.table)
                log.info("service proxy: removed table %s", self.table)
            except Exception as e:
                log.warning("service proxy: removing table %s failed: %s", self.table, e)

    def desired(self) -> model.Desired:
        return model.desired(self.services.list(), self.endpoints.get, self.node_ip, self.cluster_cidr,
                             self._cache)

    async def sync(self, full: bool = False) -> int:
        """Bring the table to the desired state; returns the number of nft commands run."""
        t0 = time.perf_counter()
        state = nft.render(self.desired())
        tx = None if full or self.applied is None else nft.diff(self.table, self.applied, state)
        if tx is None:
            tx = nft.full(self.table, state)
        if len(tx):
            try:
                await self.runner(tx.payload())
            except Exception:
                self.applied = None  # unknown now: the next sync replaces the table
                raise
        self.applied = state
        self.syncs += 1
        self.last_commands = len(tx)
        self.last_sync_seconds = time.perf_counter() - t0
        if (m := telemetry.metrics(ProxyMetrics)) is not None:
            m.sync.observe(self.last_sync_seconds)
        if len(tx):
            log.debug("service proxy: %d nft commands in %.1f ms", len(tx), self.last_sync_seconds * 1000)
        return len(tx)

    async def _loop(self) -> None:
        await aio.sync_when_dirty(self._dirty, self.sync, "service proxy", log)
