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
