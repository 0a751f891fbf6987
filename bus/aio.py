"""Running asyncio programs: uvloop's event loop when installed (it is a dependency), else asyncio's."""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is pinned in pyproject
    uvloop = None


def run(main: Coroutine[Any, Any, Any]) -> Any:
    if uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: what every entry point waits on to stop cleanly."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
