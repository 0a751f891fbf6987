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


def dump_tasks_on_sigusr1(logger: Any) -> None:
    """``kill -USR1 <pid>`` logs the stack of every asyncio task (where a process is stuck)."""
    import io
    import signal

    def dump() -> None:
        for task in asyncio.all_tasks():
            buf = io.StringIO()
            task.print_stack(file=buf)
            logger.warning("task %s:\n%s", task.get_name(), buf.getvalue())

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
