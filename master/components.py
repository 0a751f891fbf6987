"""The control-plane components ``python -m master`` can run: name -> ``async run(server_url, stop)``."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from master.apiserver.server import run as run_apiserver

Component = Callable[[str, asyncio.Event], Awaitable[None]]

COMPONENTS: dict[str, Component] = {
    "apiserver": run_apiserver,
}
