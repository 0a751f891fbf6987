"""The reply cache that makes a retried write apply once.

A mutating request may carry a ``requestId`` (``bus/client.py`` sends one per logical call and the same one on every
retry, with the same bytes). The apiservers share one short-lived JetStream KV bucket (``bus.resources.API_REPLIES``,
key = the id) so that a repeat is answered with the first attempt's reply instead of being applied again:

1. **claim**: a KV create (expects absence) of a pending marker ``{fp, by}`` — ``fp`` fingerprints the subject and
   the request bytes, ``by`` names the claiming apiserver process. Of two replicas racing on one id, one wins.
2. the winner applies the write, **remembers** the reply (code, body, warnings — errors too) with a CAS on its
   claim, and responds. The remembering publish does not wait for JetStream's acknowledgement (two messages fewer
   on every write); if it is lost, a repeat finds the marker pending and is answered "in progress" until the entry
   expires.
3. a repeat (the create found the key) gets the stored reply's exact bytes. While the marker is pending it polls for
   a bounded time (``WAIT``), then answers 429 "in progress" (:func:`bus.errors.in_progress`), which the client
   retries with the same id. A marker whose claimer is gone (its liveness subject has no responders: the process
   died between claim and reply) is taken over by CAS, so a crash does not block the id until it expires. What
   such a claimer wrote before dying may then be written again: no transaction spans two streams.
4. a repeat whose fingerprint differs is a 400: the id was reused for another request.

Requests without an id, reads and dry runs never come here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass

import nats
import nats.errors

from bus import codec, errors, subjects
from bus.resources import API_REPLIES
from bus.store import NatsStore

log = logging.getLogger(__name__)

WAIT = 5.0  # how long a repeat waits for the first attempt's reply before answering "in progress"
POLL_FIRST, POLL_MAX = 0.005, 0.2  # seconds between reads of a pending marker (doubling)
PROBE_EVERY = 1.0  # seconds between liveness probes of a pending marker's claimer
PROBE_TIMEOUT = 1.0
CLAIM_TRIES = 8


@dataclass(slots=True)
class Claim:
    """This apiserver owns the request id: apply the write, then :meth:`ReplyCache.remember` its reply."""

    key: str
    revision: int
    fp: bytes


def fingerprint(subject: str, data: bytes) -> bytes:
    h = hashlib.blake2b(subject.encode(), digest_size=16)
    h.update(b"\0")
    h.update(data)
    return h.digest()


class ReplyCache:
    def __init__(self, store: NatsStore, wait: float = WAIT) -> None:
        self.store = store
        self.nc: nats.NATS = store.nc
        self.wait = wait
        self.instance = uuid.uuid4().hex  # this process, as pending markers name it
        self._sub = None

    async def start(self) -> None:
        async def alive(msg) -> None:
            if msg.reply:
                await msg.respond(b"")

        self._sub = await self.nc.subscribe(subjects.apiserver_alive(self.instance), cb=alive)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
            self._sub = None

    async def claim(self, request_id: str, subject: str, data: bytes) -> Claim | bytes:
        """A :class:`Claim` the first time an id is seen, else the stored reply (msgpack bytes) of its first attempt.
        Raises 400 for an id reused with other bytes, 429 "in progress" when the first attempt does not finish
        within ``wait``."""
        key = subjects.reply_key(request_id)
        fp = fingerprint(subject, data)
        pending = codec.pack({"fp": fp, "by": self.instance})
        try:
            rev = await self.store.create_key(API_REPLIES, key, pending)
        except errors.Unavailable:
            # the bucket lives in memory: a restarted nats-server has none until someone makes it again
            await self.store.ensure_buckets((API_REPLIES,))
            rev = await self.store.create_key(API_REPLIES, key, pending)
        if rev is not None:
            return Claim(key, rev, fp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        delay, next_probe = POLL_FIRST, 0.0
        for _ in range(CLAIM_TRIES):
            while True:
                got = await self.store.get_key(API_REPLIES, key)
                if got is None:  # expired under us: the id is new again
                    break
                value, rev = got
                entry = codec.unpack(value)
                if not isinstance(entry, dict) or entry.get("fp") != fp:
                    raise errors.bad_request(f"requestId {request_id} was already used for a different request")
                reply = entry.get("reply")
                if reply is not None:
                    return reply
                now = loop.time()
                if now >= next_probe:
                    next_probe = now + PROBE_EVERY
                    if not await self._alive(entry.get("by")):
                        log.warning("request %s: its apiserver is gone before replying; taking it over", request_id)
                        new = await self.store.update_key(API_REPLIES, key, pending, rev)
                        if new is not None:
                            return Claim(key, new, fp)
                        continue  # it moved on: read it again
                if now >= deadline:
                    raise errors.in_progress(request_id)
                await asyncio.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, POLL_MAX)
            rev = await self.store.create_key(API_REPLIES, key, pending)
            if rev is not None:
                return Claim(key, rev, fp)
        raise errors.in_progress(request_id)

    async def _alive(self, instance: object) -> bool:
        """False only when nobody answers the claimer's liveness subject (a timeout counts as alive: it may be busy)."""
        if instance == self.instance:
            return True
        if not isinstance(instance, str) or not instance:
            return True
        try:
            await self.nc.request(subjects.apiserver_alive(instance), b"", timeout=PROBE_TIMEOUT)
        except nats.errors.NoRespondersError:
            return False
        except Exception:
            return True
        return True

    async def remember(self, claim: Claim, reply: bytes) -> None:
        """Store the reply (msgpack of ``{code, body, warnings}``) for the claim's repeats (not acknowledged: a
        claim taken over in the meantime keeps its new owner's marker)."""
        await self.store.update_key_nowait(API_REPLIES, claim.key, codec.pack({"fp": claim.fp, "reply": reply}),
                                           claim.revision)
