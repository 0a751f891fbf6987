"""Running asyncio programs: uvloop's event loop when installed (it is a dependency), else asyncio's; a level-triggered sync loop."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Coroutine

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


async def sync_when_dirty(dirty: asyncio.Event, sync: Callable[[], Awaitable[Any]], what: str, logger: Any) -> None:
    """Level-triggered: run ``sync`` each time ``dirty`` is set (changes while it runs collapse into one more run); a
    failure is logged and retried with backoff from 0.1 s to 10 s. Runs until cancelled."""
    delay = 0.1
    while True:
        await dirty.wait()
        dirty.clear()
        try:
            await sync()
            delay = 0.1
        except asyncio.CancelledError:
            raise
        except Exception as e:
            logger.error("%s: sync failed (retrying in %.1fs): %s", what, delay, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            dirty.set()
