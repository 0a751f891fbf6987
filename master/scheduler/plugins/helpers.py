"""Small pieces several plugins share: signatures for memoising (the taint, toleration and node affinity
predicates they share with the controllers live in ``bus.scheduling``)."""

from __future__ import annotations

from typing import Any

import orjson


def signature(value: Any) -> bytes:
    """A hashable, order-independent key for a piece of pod spec (memo keys)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
