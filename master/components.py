"""The control-plane components ``python -m master`` can run: name -> ``async run(server_url, stop)``."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Awaitable, Callable

from bus.store import StoreSettings
from master.apiserver.server import run as run_apiserver
from master.apiserver.settings import ApiServerSettings
from master.scheduler import run as run_scheduler
from master.controllers.manager import run as run_controllers
from master.controllers.settings import ControllerManagerSettings
from master.leaderelection import ElectionConfig
from master.nodeview import run as run_nodeview

Component = Callable[[str, asyncio.Event], Awaitable[None]]

COMPONENTS: dict[str, Component] = {
    "apiserver": run_apiserver,
    "scheduler": run_scheduler,
    "nodeview": run_nodeview,
    "controllers": run_controllers,
}


def configure(names: list[str]) -> dict[str, Component]:
    """The named components with their settings read now, once, from the environment (a bad
    ``K8N_*`` value raises ``bus.settings.SettingsError`` before anything connects)."""
    election = ElectionConfig.from_options() if {"controllers", "scheduler", "nodeview"} & set(names) else None
    out: dict[str, Component] = {}
    for name in names:
        if name == "controllers":
            out[name] = partial(run_controllers, settings=ControllerManagerSettings.load(), election=election)
        elif name == "scheduler":
            out[name] = partial(run_scheduler, election=election)
        elif name == "nodeview":
            out[name] = partial(run_nodeview, election=election)
        else:
            if name == "apiserver":  # read here so that a bad value stops the start, not the first Service
                ApiServerSettings.load()
                StoreSettings.load()
            out[name] = COMPONENTS[name]
    return out
