"""The API server's side of ``k8n backup``: the cut, one point in time across every bucket.

Only API servers write the buckets (``bus.roles``), so a moment when none of them writes is a consistent cut: the
API server that serves a backup request (``bus.subjects.backup_subject``) asks every replica to hold its writes
(``bus.subjects.apiserver_hold``, itself included). Each replica stops starting mutating requests at once and
answers ``held``; asked again (``settle``: an API server answers each request once), it answers ``settled`` once the
mutating requests it was serving have finished. The coordinator waits for the ``held`` answers (until none came for
:data:`ANSWER_WINDOW`), then for every ``settled``, reads the last sequence of every ``KV_k8n-*`` stream (one
``STREAM.LIST``), and releases the hold: writes wait about :data:`ANSWER_WINDOW`. A replica that answers later than
that is not waited for (the reply names those that held). A replica releases on its own after :data:`MAX_HOLD` seconds, should the coordinator die. The reply names the
revision (stream sequence = resourceVersion) of each bucket and its stream configuration; the client (the admin
identity) then reads each bucket's keys as they were at that revision (``bus.backup``). Held are the writes of
requests; an API server's own upkeep (the reply cache, a custom resource's new bucket) is not, nor the node view's
writes of ``nodepods`` (left out of backups).

Authorized as listing every resource of every group (``*.*``: a backup holds every Secret) and as ``create`` on the
non-resource URL ``/k8n/backup`` (it holds every API server's writes): cluster-admin may; a ClusterRole can grant it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import orjson
from nats.aio.msg import Msg

from bus import backup, errors, subjects
from bus.rbac import Attributes, forbidden_error
from bus.version import version_info
from master.apiserver.special import answer, payload_of

log = logging.getLogger(__name__)

ANSWER_WINDOW = 0.2  # seconds without a new "held" answer after which every replica is taken to have answered
SETTLE_TIMEOUT = 5.0  # seconds the replicas' in-flight writes may take to finish
BACKUP_PATH = "/k8n/backup"  # the non-resource URL RBAC grants backups on (cluster-admin's "*" does)
MAX_HOLD = 10.0  # seconds a replica holds its writes at most (a coordinator that died)


class WriteHold:
    """One API server's mutating requests, held while a backup takes its cut."""

    def __init__(self) -> None:
        self.writing = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()
        self.holders: dict[str, asyncio.TimerHandle] = {}  # backup token -> its hold's expiry

    async def enter(self) -> None:
        """Before a mutating request: wait while a hold is on."""
        while not self._open.is_set():
            await self._open.wait()
        self.writing += 1
        self._idle.clear()

    def leave(self) -> None:
        self.writing -= 1
        if self.writing <= 0:
            self._idle.set()

    def hold(self, token: str) -> None:
        self._open.clear()
        old = self.holders.pop(token, None)
        if old is not None:
            old.cancel()
        self.holders[token] = asyncio.get_running_loop().call_later(MAX_HOLD, self.release, token)

    def release(self, token: str) -> None:
        timer = self.holders.pop(token, None)
        if timer is not None:
            timer.cancel()
        if not self.holders:
            self._open.set()

    async def settled(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False


class Backups:
    """Serves the backup requests and the hold requests of other replicas' backups."""

    def __init__(self, nc: Any, authorizer: Any, user_of: Any, instance: str) -> None:
        self.nc = nc
        self.authorizer = authorizer  # bus.nodeauthz.ClusterAuthorizer
        self.user_of = user_of  # (subject, payload) -> UserInfo
        self.instance = instance
        self.hold = WriteHold()
        self._sub = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(subjects.apiserver_hold(), cb=self._on_hold)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - a closed connection
                pass

    # ---- a replica: hold, answer, settle ---------------------------------------------------------------------

    async def _on_hold(self, msg: Msg) -> None:
        try:
            req = orjson.loads(msg.data)
            token, op = str(req["token"]), req["op"]
        except (ValueError, KeyError, TypeError):
            return
        if op == "release":
            self.hold.release(token)
            return
        if not msg.reply:
            return
        if op == "hold":
            self.hold.hold(token)
            state = "held"
        elif op == "settle":  # a second request: an API server may answer each request once (``bus.roles``)
            state = "settled" if token in self.hold.holders and await self.hold.settled(SETTLE_TIMEOUT) else "busy"
        else:
            return
        await self.nc.publish(msg.reply, orjson.dumps({"instance": self.instance, "state": state}))

    # ---- the coordinator ---------------------------------------------------------------------------------------

    async def serve(self, msg: Msg) -> None:
        await answer(msg, self._backup, "backup cut")

    async def _backup(self, msg: Msg) -> dict:
        user = self.user_of(msg.subject, payload_of(msg))
        for attrs in (Attributes(user, "list", "", "*", "*"),  # it reads every object, Secrets included
                      Attributes(user, "create", resource_request=False, path=BACKUP_PATH)):  # and holds writes
            decision = await self.authorizer.authorize_async(attrs, None)
            if not decision.allowed:
                raise forbidden_error(attrs, decision.reason)
        token = uuid.uuid4().hex
        inbox = self.nc.new_inbox()
        answers: dict[str, str] = {}
        changed = asyncio.Event()

        async def on_answer(m: Msg) -> None:
            try:
                a = orjson.loads(m.data)
                answers[str(a["instance"])] = str(a["state"])
            except (ValueError, KeyError, TypeError):
                return
            changed.set()

        sub = await self.nc.subscribe(inbox, cb=on_answer)
        started = time.monotonic()
        try:
            await self.nc.publish(subjects.apiserver_hold(), orjson.dumps({"token": token, "op": "hold"}),
                                  reply=inbox)
            await _quiet(changed, ANSWER_WINDOW)  # every replica says "held" (this one too)
            holders = set(answers)
            await self.nc.publish(subjects.apiserver_hold(), orjson.dumps({"token": token, "op": "settle"}),
                                  reply=inbox)
            deadline = time.monotonic() + SETTLE_TIMEOUT + 1
            while any(answers.get(i) == "held" for i in holders) and time.monotonic() < deadline:
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
            unsettled = sorted(i for i in holders if answers.get(i) != "settled")
            if self.instance not in holders or unsettled:
                raise errors.unavailable("the API servers' writes did not settle for the backup's cut (still "
                                         f"writing: {', '.join(unsettled) or self.instance}); retry")
            buckets = await self._streams()
            held_ms = (time.monotonic() - started) * 1000
        finally:
            await self.nc.publish(subjects.apiserver_hold(), orjson.dumps({"token": token, "op": "release"}))
            await sub.unsubscribe()
        log.info("backup cut of %d buckets, writes of %d API servers held %.1f ms", len(buckets), len(holders),
                 held_ms)
        return backup.header(version_info(), buckets, sorted(holders), held_ms)

    async def _streams(self) -> dict[str, dict]:
        return await kv_streams(self.nc)


async def kv_streams(nc: Any) -> dict[str, dict]:
    """Every bucket a backup keeps (bus.backup.LEFT_OUT left out): its last sequence and its stream configuration."""
    out: dict[str, dict] = {}
    offset = 0
    while True:
        resp = orjson.loads((await nc.request(subjects.JS_API_STREAM_LIST, orjson.dumps({"offset": offset}),
                                              timeout=5)).data)
        if "error" in resp:
            raise errors.internal(f"listing the streams: {resp['error']}")
        got = resp.get("streams") or []
        for s in got:
            name = (s.get("config") or {}).get("name", "")
            bucket = backup.bucket_of_stream(name)
            if bucket is not None:
                out[bucket] = {"revision": int((s.get("state") or {}).get("last_seq") or 0), "config": s["config"]}
        offset += len(got)
        if not got or offset >= int(resp.get("total") or 0):
            return out


async def _quiet(changed: asyncio.Event, window: float) -> None:
    """Wait until ``changed`` stays unset for ``window`` seconds (it is cleared after each set)."""
    while True:
        try:
            await asyncio.wait_for(changed.wait(), max(window, 0.0))
        except TimeoutError:
            return
        changed.clear()
