"""``k8n apply --wait``: watch the applied objects until each is ready (:mod:`bus.cli.waiting`), one fails, or the
time is up; one progress line per object (:class:`bus.cli.progress.Board`).

One watch per resource and namespace (and, for Services, one on their namespace's Endpoints), opened before the
objects are read, so no change is missed between the read and the watch; an event no newer than what is held is
skipped. A wait that fails or times out prints ``error: <object> <reason>`` and answers 1; one that times out also
says why a pod of the object is not ready when one says so (unschedulable, an image that does not pull, a crash)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bus import errors
from bus.cli import waiting
from bus.cli.progress import Board, seconds
from bus.cli.waiting import State

if TYPE_CHECKING:
    from bus.client import ApiClient
    from bus.resources import Resource

TICK = 0.5  # seconds between redraws of the elapsed times on a terminal
ENDPOINTS = "endpoints"


@dataclass
class Target:
    """One applied object being waited for."""

    res: Resource
    name: str
    namespace: str | None
    ref: str  # deployment.apps/web, as apply printed it
    manifest: dict
    obj: dict | None = None
    rv: int = 0
    endpoints: dict | None = None
    ep_rv: int = 0
    state: State = State("reading")
    took: float | None = None

    @property
    def watched(self) -> bool:
        return waiting.checked(self.manifest)

    def update(self, obj: dict | None, now: float) -> None:
        if obj is None:
            self.state = State("deleted before it was ready", failed=True)
        else:
            self.obj = obj
            self.state = waiting.state_of(obj, self.endpoints)
        if self.state.done and self.took is None:
            self.took = now


def _rv(obj: dict | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


async def _hint(client: ApiClient, t: Target) -> str:
    """Why a pod of ``t`` is not ready (`` (pod NAME: ...)``), or ``""``."""
    sel = waiting.pod_selector(t.obj or t.manifest)
    if sel is None or not t.res.namespaced:
        return ""
    try:
        pods, _ = await client.list("pods", t.namespace)
    except errors.ApiError:
        return ""
    mine = [p for p in pods if sel.matches((p.get("metadata") or {}).get("labels") or {})]
    if not mine:
        return " (no pod matches its selector)"
    for p in mine:
        problem = waiting.pod_problem(p)
        if problem:
            return f" (pod {p['metadata']['name']}: {problem})"
    return ""


class Waiter:
    def __init__(self, client: ApiClient, targets: list[Target], timeout: float, board: Board) -> None:
        self.client, self.targets, self.timeout, self.board = client, targets, timeout, board
        self.start = time.monotonic()
        self.events: asyncio.Queue = asyncio.Queue()
        self.watches: list[Any] = []
        self.pumps: list[asyncio.Task] = []
        # (resource plural, namespace, name) → targets; Endpoints under ("endpoints", ns, name)
        self.index: dict[tuple[str, str | None, str], list[Target]] = {}

    def show(self, t: Target) -> None:
        now = time.monotonic() - self.start
        mark = "" if not self.board.tty else ("✓ " if t.state.done else "✗ " if t.state.failed else "… ")
        took = t.took if t.took is not None else now
        self.board.set(t.ref, f"{mark}{t.ref}: {t.state.text}", f" ({seconds(took)})")

    async def _watch(self, res: Any, namespace: str | None) -> None:
        w = await self.client.watch(res, namespace)
        self.watches.append(w)
        plural = res if isinstance(res, str) else res.plural

        async def pump() -> None:
            try:
                async for ev in w:
                    self.events.put_nowait((plural, namespace, ev))
                self.events.put_nowait((plural, namespace, EOFError("closed")))
            except Exception as e:  # noqa: BLE001 - reported by the wait
                self.events.put_nowait((plural, namespace, e))

        self.pumps.append(asyncio.create_task(pump()))

    async def _open(self) -> None:
        watched = [t for t in self.targets if t.watched]
        groups: dict[tuple[str, str | None], Any] = {}
        for t in watched:
            groups.setdefault((t.res.plural + "." + t.res.group, t.namespace), t.res)
            self.index.setdefault((t.res.plural, t.namespace, t.name), []).append(t)
            if waiting.needs_endpoints(t.manifest):
                groups.setdefault((ENDPOINTS, t.namespace), ENDPOINTS)
                self.index.setdefault((ENDPOINTS, t.namespace, t.name), []).append(t)
        await asyncio.gather(*(self._watch(res, ns) for (_, ns), res in groups.items()))

        async def read(t: Target) -> None:
            if waiting.needs_endpoints(t.manifest):
                try:
                    t.endpoints = await self.client.get(ENDPOINTS, t.name, t.namespace)
                    t.ep_rv = _rv(t.endpoints)
                except errors.NotFound:
                    pass
            try:
                obj = await self.client.get(t.res, t.name, t.namespace)
            except errors.NotFound:
                obj = None
            t.rv = _rv(obj)
            t.update(obj, time.monotonic() - self.start)

        await asyncio.gather(*(read(t) for t in watched))
        for t in self.targets:
            if not t.watched:
                t.state, t.took = waiting.READY, 0.0

    def _apply(self, plural: str, namespace: str | None, ev: Any) -> None:
        obj = ev.object
        name = (obj.get("metadata") or {}).get("name")
        for t in self.index.get((plural, namespace, name), ()):
            if t.state.done or t.state.failed:
                continue
            if plural == ENDPOINTS:
                if ev.revision <= t.ep_rv:
                    continue
                t.ep_rv, t.endpoints = ev.revision, (None if ev.type == "DELETED" else obj)
                if t.obj is not None:
                    t.update(t.obj, time.monotonic() - self.start)
            else:
                if ev.revision <= t.rv:
                    continue
                t.rv = ev.revision
                t.update(None if ev.type == "DELETED" else obj, time.monotonic() - self.start)
            self.show(t)

    async def run(self) -> int:
        try:
            await self._open()
            for t in self.targets:
                self.show(t)
            self.board.draw()
            deadline = self.start + self.timeout if self.timeout > 0 else None
            while True:
                failed = next((t for t in self.targets if t.state.failed), None)
                if failed:
                    self.board.draw()
                    print(f"error: {failed.ref} {failed.state.text}", file=sys.stderr, flush=True)
                    return 1
                if all(t.state.done for t in self.targets):
                    self.board.draw()
                    print(f"{len(self.targets)} object{'s' if len(self.targets) > 1 else ''} ready after "
                          f"{seconds(time.monotonic() - self.start)}", flush=True)
                    return 0
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return await self._timed_out()
                wait = min(left if left is not None else TICK, TICK) if self.board.tty else left
                try:
                    plural, ns, ev = await asyncio.wait_for(self.events.get(), wait)
                except asyncio.TimeoutError:
                    for t in self.targets:
                        self.show(t)
                    self.board.draw()
                    continue
                if isinstance(ev, BaseException):
                    raise errors.unavailable(f"the watch of {plural} ended: {ev}")
                self._apply(plural, ns, ev)
                self.board.draw()
        finally:
            for task in self.pumps:
                task.cancel()
            await asyncio.gather(*(w.stop() for w in self.watches), return_exceptions=True)

    async def _timed_out(self) -> int:
        waiting_for = [t for t in self.targets if not t.state.done]
        for t in waiting_for:
            self.show(t)
        self.board.draw()
        for t in waiting_for:
            hint = await _hint(self.client, t)
            print(f"error: timed out after {seconds(self.timeout)} waiting for {t.ref}: {t.state.text}{hint}",
                  file=sys.stderr, flush=True)
        return 1


async def wait(client: ApiClient, targets: list[Target], timeout: float, board: Board | None = None) -> int:
    """Wait for ``targets`` (``timeout`` seconds; 0 waits forever); 0 when every one is ready, else 1."""
    if not targets:
        return 0
    return await Waiter(client, targets, timeout, board or Board()).run()
