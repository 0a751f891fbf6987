"""Waiting in tests, instead of fixed sleeps: ``eventually`` for something that must happen, ``stays`` for something
that must not (a condition that holds now and keeps holding for a while). Both take a predicate: a function of no
arguments returning a value, or (in the async flavours) a coroutine; a truthy value means "yes".

    pod = await eventually(lambda: ready_pod(client, "web"), 30, "pod web Ready")    # ready_pod: async, pod or None
    await stays(lambda: unbound(client, "for-nobody"), 0.5, "the pod of an unknown scheduler unbound")
    eventually_sync(lambda: proc.poll() is not None, 10, "k8n up to exit")

A predicate computing its value from an awaited call must itself be async (``async def`` or a lambda returning the
coroutine): ``lambda: await_me() is None`` compares the coroutine object, not its result.

``eventually`` polls often at first and less often later (up to every ``interval`` seconds); ``stays`` checks
every ``interval`` seconds, and once more at the end. Failures are AssertionErrors naming ``what`` and the last
value seen; ``what`` may be a function giving that text (called only on failure, e.g. to add a log's tail).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Callable

FIRST_INTERVAL = 0.01


What = str | Callable[[], str]


def _failed(what: What, timeout: float, last: Any, error: BaseException | None) -> AssertionError:
    extra = f"; last error: {error!r}" if error is not None else ""
    what = what() if callable(what) else what
    return AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r}{extra})")


async def _value(pred: Callable[[], Any]) -> Any:
    v = pred()
    return await v if inspect.isawaitable(v) else v


async def eventually(pred: Callable[[], Any], timeout: float = 10.0, what: What = "the condition", *,
                     interval: float = 0.2, ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Until ``pred()`` is truthy; returns that value. Exceptions of the types in ``ignore`` count as "not yet"
    (for "retry until it works"); any other exception, an AssertionError raised by ``pred`` included, fails
    at once."""
    deadline = time.monotonic() + timeout
    pause, last, error = FIRST_INTERVAL, None, None
    while True:
        try:
            last, error = await _value(pred), None
        except ignore as e:
            last, error = None, e
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _failed(what, timeout, last, error)
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, interval)


async def stays(pred: Callable[[], Any], seconds: float, what: What = "the condition", *,
                interval: float = 0.1) -> Any:
    """``pred()`` is truthy now and at every check during the next ``seconds``; fails at the first check where
    it is not. Returns the last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = await _value(pred)
        if not value:
            raise AssertionError(f"no longer true: {what() if callable(what) else what} (value: {value!r})")
        left = deadline - time.monotonic()
        if left <= 0:
            return value
        await asyncio.sleep(min(interval, left))


def eventually_sync(pred: Callable[[], Any], timeout: float = 10.0, what: What = "the condition", *,
                    interval: float = 0.3, ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """``eventually`` for code outside an event loop (blocks the calling thread)."""
    deadline = time.monotonic() + timeout
    pause, last, error = FIRST_INTERVAL, None, None
    while True:
        try:
            last, error = pred(), None
        except ignore as e:
            last, error = None, e
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _failed(what, timeout, last, error)
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, interval)


def stays_sync(pred: Callable[[], Any], seconds: float, what: What = "the condition", *, interval: float = 0.2) -> Any:
    """``stays`` for code outside an event loop (blocks the calling thread)."""
    deadline = time.monotonic() + seconds
    while True:
        value = pred()
        if not value:
            raise AssertionError(f"no longer true: {what() if callable(what) else what} (value: {value!r})")
        left = deadline - time.monotonic()
        if left <= 0:
            return value
        time.sleep(min(interval, left))
