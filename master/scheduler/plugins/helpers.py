"""Small pieces several plugins share: pod/node field access and signatures for memoising."""

from __future__ import annotations

from typing import Any

import orjson


def signature(value: Any) -> bytes:
    """A hashable, order-independent key for a piece of pod spec (memo keys)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def tolerations(spec: dict) -> list[dict]:
    return spec.get("tolerations") or []


def tolerates(tol: dict, key: str, value: str, effect: str) -> bool:
    """``v1.Toleration.ToleratesTaint``: an empty key with Exists tolerates every taint."""
    if tol.get("effect") and tol["effect"] != effect:
        return False
    if tol.get("key") and tol["key"] != key:
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (tol.get("value") or "") == value


def tolerated(tols: list[dict], key: str, value: str, effect: str) -> bool:
    return any(tolerates(t, key, value, effect) for t in tols)
