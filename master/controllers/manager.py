"""``controllers`` component: the controller manager. Every module in this package that defines
``setup(ctx) -> list[Runnable]`` is a controller; it is discovered, so adding a controller is
adding a module. A Runnable has ``async run()`` and ``shutdown()`` (``bus.controller.Controller``).
Controllers read their settings from ``ctx.settings`` (``master.controllers.settings``)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from bus import roles, telemetry
from bus.roles import Identity
from bus.client import ApiClient
from bus.crd import CrdRegistry
from bus.events import EventRecorder
from bus.informer import SharedInformerFactory
from master.controllers.settings import ControllerManagerSettings
from master.leaderelection import ElectionConfig, run_leader_elected

log = logging.getLogger(__name__)

LEASE_NAME = "kube-controller-manager"


@dataclass
class Context:
    client: ApiClient
    informers: SharedInformerFactory
    settings: ControllerManagerSettings = field(default_factory=ControllerManagerSettings.load)
    crds: CrdRegistry | None = None  # the CustomResourceDefinitions: which custom resources exist (listeners)

    def __post_init__(self) -> None:
        if self.crds is None:
            self.crds = CrdRegistry(self.client)

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self.client, component)


def discover() -> list[Any]:
    import master.controllers as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name in ("manager", "settings") or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"master.controllers.{info.name}")
        if callable(getattr(mod, "setup", None)):
            mods.append(mod)
    return mods


async def _wait_api(client: ApiClient, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await client.get("namespaces", "default")
            return
        except Exception:
            await asyncio.sleep(0.2)


async def run(server_url: str, stop: asyncio.Event, settings: ControllerManagerSettings | None = None,
              election: ElectionConfig | None = None) -> None:
    """Run every discovered controller while this replica holds the Lease
    ``kube-system/kube-controller-manager`` (``master.leaderelection``). ``settings`` and
    ``election`` default to what the environment says (``K8N_<NAME>``)."""
    settings = settings or ControllerManagerSettings.load()
    election = election or ElectionConfig.from_options()
    client = await ApiClient.connect(server_url, Identity(roles.CONTROLLER_MANAGER))
    try:
        async with telemetry.publishing(client.nc, roles.CONTROLLER_MANAGER):  # the work queues' metrics
            await _wait_api(client, stop)
            ctx = Context(client, SharedInformerFactory(client), settings)
            await run_leader_elected(client, LEASE_NAME, stop, lambda lead_stop: _run_controllers(ctx, lead_stop),
                                     config=election)
    finally:
        await client.close()


async def _run_controllers(ctx: Context, stop: asyncio.Event) -> None:
    runnables = []
    for mod in discover():
        runnables.extend(mod.setup(ctx))
        log.info("controller %s set up", mod.__name__.rsplit(".", 1)[-1])
    await ctx.informers.start()
    await ctx.crds.start()
    tasks = [asyncio.create_task(r.run(), name=getattr(r, "name", repr(r))) for r in runnables]
    try:
        await stop.wait()
    finally:
        for r in runnables:
            r.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.crds.stop()
        await ctx.informers.stop()
