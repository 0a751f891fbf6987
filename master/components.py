"""The control-plane components ``python -m master`` can run: name -> ``async run(server_url, stop)``."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from master.apiserver.server import run as run_apiserver
from master.scheduler import run as run_scheduler
from master.controllers.manager import run as run_controllers
from master.nodeview import run as run_nodeview

Component = Callable[[str, asyncio.Event], Awaitable[None]]

COMPONENTS: dict[str, Component] = {
    "apiserver": run_apiserver,
    "scheduler": run_scheduler,
    "nodeview": run_nodeview,
    "controllers": run_controllers,
}
