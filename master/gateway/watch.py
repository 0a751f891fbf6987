"""Watches over HTTP: a chunked stream of newline-delimited JSON events read off the KV stream.

Kubernetes semantics: ``resourceVersion=N`` streams changes newer than N; absent or ``0`` first sends
the current objects as synthetic ADDED events; a revision older than the bucket keeps is an ERROR
event carrying a 410 Expired Status (clients relist); ``allowWatchBookmarks`` adds periodic BOOKMARK
events; ``timeoutSeconds`` ends the stream; selectors filter (an object that stops matching leaves
as DELETED). With a Table Accept every object is a one-row Table.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from bus import errors
from bus.client import ApiClient
from bus.store import ADDED
from master.gateway import tables
from master.gateway.paths import Target

BOOKMARK_SECONDS = 30.0  # how often a watch that allows bookmarks gets one
IDLE_CHECK_SECONDS = 2.0  # how often an idle watch checks that its client is still there
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class _Encoder:
    def __init__(self, target: Target, table: bool, include: str) -> None:
        self.res, self.table, self.include = target.res, table, include
        self.columns_sent = False

    def event(self, etype: str, obj: dict) -> bytes:
        if self.res.custom is not None and obj.get("kind") == self.res.kind:  # at the version the path names
            obj = {**obj, "apiVersion": self.res.api_version}
        if self.table:
            obj = tables.table(self.res, [obj], include=self.include, with_columns=not self.columns_sent)
            self.columns_sent = True
        return orjson.dumps({"type": etype, "object": obj}, option=orjson.OPT_NON_STR_KEYS) + b"\n"

    def bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.res.kind, "apiVersion": self.res.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    @staticmethod
    def error(err: errors.ApiError) -> bytes:
        return orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n"


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _since(value: str | None) -> int | None:
    """None = start with the current state (absent, '' or '0'); else the revision to stream after."""
    if value in (None, "", "0"):
        return None
    try:
        rv = int(value)
    except ValueError:
        raise errors.bad_request(f'invalid resourceVersion "{value}": must be an integer') from None
    if rv < 0:
        raise errors.bad_request(f'invalid resourceVersion "{value}"')
    return rv


async def serve(request: web.Request, client: ApiClient, target: Target, table: bool, include: str,
                content_type: str) -> web.StreamResponse:
    q = request.query
    label, field = q.get("labelSelector") or None, q.get("fieldSelector") or None
    if target.name:  # /watch/.../pods/<name>: that one object
        field = ",".join(f for f in (field, f"metadata.name={target.name}") if f)
    since = _since(q.get("resourceVersion"))
    send_initial = since is None if "sendInitialEvents" not in q else _flag(q.get("sendInitialEvents"))
    bookmarks = _flag(q.get("allowWatchBookmarks"))
    timeout = None
    if q.get("timeoutSeconds"):
        try:
            timeout = max(0.0, float(q["timeoutSeconds"]))
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be a number") from None
    ns = target.namespace if target.res.namespaced else None
    # Fail before the 200 for what the client got wrong (selectors); a too old revision is an event.
    # With selectors, the matching objects seed the watch so that one that stops matching leaves as DELETED.
    initial: list[dict] = []
    watch = None
    gone: errors.ApiError | None = None
    try:
        if send_initial or ((label or field) and since is not None):
            initial, list_rv = await client.list(target.res, ns, label, field)
            if send_initial:  # the current state, then what follows it
                since = list_rv
        watch = await client.watch(target.res, ns, since, label, field, initial=initial)
    except errors.Gone as e:
        gone = e
    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    enc = _Encoder(target, table, include)
    if gone is not None or watch is None:
        await resp.write(enc.error(gone or errors.internal("no watch")))
        await resp.write_eof()
        return resp
    try:
        if send_initial:
            for obj in initial:
                await resp.write(enc.event(ADDED, obj))
            if bookmarks and "sendInitialEvents" in q:
                await resp.write(enc.bookmark(since or 0, initial_end=True))
        await _pump(request, resp, watch, enc, timeout, bookmarks)
    except ConnectionResetError:  # the client went away (a cancellation propagates after the cleanup)
        return resp
    finally:
        await watch.stop()
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


async def _pump(request: web.Request, resp: web.StreamResponse, watch: Any, enc: _Encoder,
                timeout: float | None, bookmarks: bool) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout if timeout is not None else None
    next_bookmark = loop.time() + BOOKMARK_SECONDS
    nxt: asyncio.Future | None = None
    try:
        while True:
            now = loop.time()
            wake = now + IDLE_CHECK_SECONDS
            if end is not None:
                if now >= end:
                    return
                wake = min(wake, end)
            if bookmarks:
                wake = min(wake, next_bookmark)
            if nxt is None:
                nxt = asyncio.ensure_future(watch.__anext__())
            done, _ = await asyncio.wait({nxt}, timeout=max(0.0, wake - now))
            if nxt in done:
                fut, nxt = nxt, None
                try:
                    ev = fut.result()
                except StopAsyncIteration:
                    return
                except errors.ApiError as e:
                    await resp.write(enc.error(e))
                    return
                await resp.write(enc.event(ev.type, ev.object))
                continue
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            if bookmarks and loop.time() >= next_bookmark:
                await resp.write(enc.bookmark(watch.last_revision))
                next_bookmark = loop.time() + BOOKMARK_SECONDS
    finally:
        if nxt is not None:
            nxt.cancel()
            try:
                await nxt
            except BaseException:
                pass
