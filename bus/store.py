"""The object store: a small interface, with NATS JetStream KV behind it.

Rules (see ../shared/DESIGN.md): one bucket per resource; ``metadata.resourceVersion`` is the KV
revision (stream sequence) of the write; create expects absence, update and delete are
compare-and-set on the revision; a delete writes a KV delete marker whose body is the object's
final state, so watchers see what was deleted. Stored bodies carry no resourceVersion (it is not
known before the write); readers inject it from the revision.

A list returns the resourceVersion from which a watch continues with no gap and no duplicate; a
watch from a revision older than the bucket retains raises :class:`bus.errors.Gone`.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import secrets
from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol

import nats
import nats.errors
import orjson
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from bus import codec, errors, history, listchunks, schema, subjects
from bus.resources import BUCKETS, Resource
from bus.roles import Identity
from bus.settings import load as load_settings
from bus.settings import setting

log = logging.getLogger(__name__)

KV_OP = "KV-Operation"
KV_DEL = "DEL"
KV_PURGE = "PURGE"
EVENT_HDR = "K8n-Event"
EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQ = (10071, 10164)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(slots=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    object: dict[str, Any]
    revision: int
    key: str


class Watch(Protocol):
    """An async iterator of :class:`WatchEvent` in revision order; ``stop()`` ends it."""

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...
    async def __anext__(self) -> WatchEvent: ...
    async def stop(self) -> None: ...
    @property
    def last_revision(self) -> int: ...


class Store(Protocol):
    async def create(self, res: Resource, namespace: str | None, name: str, obj: dict) -> dict: ...
    async def get(self, res: Resource, namespace: str | None, name: str, consistent: bool = False) -> dict: ...
    async def update(self, res: Resource, namespace: str | None, name: str, obj: dict, revision: int) -> dict: ...
    async def delete(self, res: Resource, namespace: str | None, name: str, final: dict, revision: int) -> dict: ...
    async def list(self, res: Resource, namespace: str | None = None) -> tuple[list[dict], int]: ...
    async def watch(self, res: Resource, namespace: str | None = None, since: int | None = None) -> Watch: ...


def with_revision(body: dict, revision: int) -> dict:
    """Inject ``metadata.resourceVersion`` into a decoded body (mutates and returns it)."""
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        meta = body["metadata"] = {}
    meta["resourceVersion"] = str(revision)
    return body


def strip_revision(obj: dict) -> dict:
    """A shallow copy of ``obj`` whose metadata has no resourceVersion (what is stored)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    out["metadata"] = meta
    return out



@dataclass(frozen=True)
class StoreSettings:
    """Settings of the buckets, read from the environment by whoever creates them (the API servers)."""

    kv_replicas: int = setting(0, "JetStream replicas of every bucket created; 0: automatic, 3 when the NATS "
                                  "cluster the API server connects to has three or more servers, else 1")

    @classmethod
    def load(cls) -> "StoreSettings":
        return load_settings(cls)

def consumer_name() -> str:
    """A fresh name for a list's or a watch's consumer: consumers are created by name, with their filter in the create
    subject, so that a bus permission can pin what a reader reads (``bus.roles``)."""
    return "c" + secrets.token_hex(10)


class NatsStore:
    """:class:`Store` on JetStream KV buckets.

    Only API servers write, and only they delete consumers (``bus.roles``); another identity's consumers are left to
    expire once their subscription is gone (``inactive_threshold``)."""

    LIST_INACTIVE = 5.0  # seconds a finished list's consumer lingers when this identity may not delete it

    def __init__(self, nc: NATS, timeout: float = 5.0) -> None:
        self.nc = nc
        self.timeout = timeout
        self.js = nc.jetstream(timeout=timeout)
        self._acks = _Requester(nc)
        self._watches: set[_KVWatch] = set()
        self._chunk_keys: dict[tuple[str, str | None, int], list[tuple[str, str]]] = {}  # lists being chunked
        self.deletes_consumers = _is_api_side(nc)
        #: the schema objects are written in (bus.schema): the cluster's storage schema, which the API server
        #: keeps here; LEGACY until it says otherwise (what every release reads)
        self.write_schema = schema.LEGACY

    # ---- buckets -----------------------------------------------------------------------------

    async def ensure_buckets(self, resources: tuple[Resource, ...] = BUCKETS, replicas: int | None = None) -> None:
        """Create every resource's bucket if missing (idempotent). ``replicas`` (default ``$K8N_KV_REPLICAS``, else
        :meth:`auto_replicas`) is the JetStream replication factor for a NATS cluster."""
        replicas = replicas or StoreSettings.load().kv_replicas or self.auto_replicas()
        for res in resources:
            cfg = api.KeyValueConfig(
                bucket=subjects.bucket(res.bus_name),
                history=res.history,
                ttl=res.ttl_seconds or None,
                storage=api.StorageType.MEMORY if res.in_memory else api.StorageType.FILE,
                replicas=replicas,
                direct=True,
            )
            try:
                await self.js.stream_info(subjects.stream(res.bus_name))
            except nats.js.errors.NotFoundError:
                await self.js.create_key_value(cfg)
        await history.ensure_streams(self.js, resources, replicas, audit=resources == BUCKETS)

    async def delete_bucket(self, res: Resource) -> None:
        """Delete a resource's bucket and everything in it (a custom resource whose definition is gone);
        idempotent."""
        try:
            await self.js.delete_key_value(subjects.bucket(res.bus_name))
        except nats.js.errors.NotFoundError:
            pass
        await history.delete_stream(self.js, res)

    def auto_replicas(self) -> int:
        """3 when the NATS cluster has three or more servers (those configured and those the servers announced),
        else 1."""
        return 3 if len({u.netloc for u in self.nc.servers}) >= 3 else 1

    async def wait_buckets(self, resources: tuple[Resource, ...], stop: asyncio.Event | None = None) -> None:
        """Wait until the API servers have made these buckets (only they may)."""
        for res in resources:
            while stop is None or not stop.is_set():
                try:
                    await self.js.stream_info(subjects.stream(res.bus_name))
                    break
                except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
                    await asyncio.sleep(0.2)

    # ---- writes ------------------------------------------------------------------------------

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> int:
        """Publish into the bucket's stream and wait for JetStream's ack; the stream sequence. A write made while
        serving a request carries who made it (``bus.history.WRITER``): its history keeps that."""
        writer = history.WRITER.get()
        if writer:
            headers = {**headers, **writer}
        try:
            msg = await self._acks.request(subject, payload, headers, self.timeout)
        except nats.errors.MaxPayloadError:
            raise errors.too_large("object exceeds the bus's maximum message size") from None
        except nats.errors.NoRespondersError:
            raise errors.unavailable("the object store is not available (no JetStream responders)") from None
        except nats.errors.TimeoutError:
            raise errors.unavailable("timed out writing to the object store") from None
        ack = orjson.loads(msg.data)
        if "error" in ack:
            raise nats.js.errors.APIError.from_error(ack["error"])
        return int(ack["seq"])

    async def _last(self, res: Resource, key: str, direct: bool = True) -> Msg | None:
        """The last message stored for a key (value or delete marker), or None. ``direct`` (a direct get) may be
        answered by any replica of the bucket, one that may lag behind; else the stream's leader answers, with what
        it has acknowledged."""
        try:
            return await self.js.get_msg(
                subjects.stream(res.bus_name),
                subject=subjects.kv_key_subject(res.bus_name, key),
                direct=direct,
            )
        except nats.js.errors.NotFoundError:
            return None

    async def create(self, res: Resource, namespace: str | None, name: str, obj: dict) -> dict:
        key = subjects.object_key(namespace, name)
        subject = subjects.kv_subject(res.bus_name, namespace, name)
        body = strip_revision(obj)
        payload = schema.encode(res.bus_name, body, self.write_schema)
        hdrs = {EXPECTED_LAST: "0", EVENT_HDR: ADDED, **schema.headers_for(self.write_schema)}
        try:
            rev = await self._publish(subject, payload, hdrs)
        except nats.js.errors.APIError as e:
            if e.err_code not in WRONG_LAST_SEQ:
                raise
            last = await self._last(res, key)
            if last is None or not _is_delete(last):
                raise errors.already_exists(res.plural, name, res.group) from None
            hdrs[EXPECTED_LAST] = str(last.seq)
            try:
                rev = await self._publish(subject, payload, hdrs)
            except nats.js.errors.APIError as e2:
                if e2.err_code in WRONG_LAST_SEQ:
                    raise errors.already_exists(res.plural, name, res.group) from None
                raise
        return with_revision(body, rev)

    async def update(self, res: Resource, namespace: str | None, name: str, obj: dict, revision: int) -> dict:
        subject = subjects.kv_subject(res.bus_name, namespace, name)
        body = strip_revision(obj)
        try:
            rev = await self._publish(subject, schema.encode(res.bus_name, body, self.write_schema),
                                      {EXPECTED_LAST: str(int(revision)), **schema.headers_for(self.write_schema)})
        except nats.js.errors.APIError as e:
            if e.err_code not in WRONG_LAST_SEQ:
                raise
            await self._raise_missing_or_conflict(res, namespace, name)
        return with_revision(body, rev)

    async def delete(self, res: Resource, namespace: str | None, name: str, final: dict, revision: int) -> dict:
        """Remove the object; the delete marker carries ``final`` for watchers. CAS on revision."""
        subject = subjects.kv_subject(res.bus_name, namespace, name)
        body = strip_revision(final)
        try:
            rev = await self._publish(
                subject, schema.encode(res.bus_name, body, self.write_schema),
                {KV_OP: KV_DEL, EXPECTED_LAST: str(int(revision)), **schema.headers_for(self.write_schema)})
        except nats.js.errors.APIError as e:
            if e.err_code not in WRONG_LAST_SEQ:
                raise
            await self._raise_missing_or_conflict(res, namespace, name)
        return with_revision(body, rev)

    async def put_key(self, res: Resource, key: str, obj: dict) -> int:
        """A blind write of a derived view (never for API objects: they are CAS-only)."""
        return await self._publish(subjects.kv_key_subject(res.bus_name, key), codec.pack(obj), {})

    async def remove_key(self, res: Resource, key: str, final: dict) -> int:
        """Delete a derived view's key, the marker carrying the final state."""
        return await self._publish(subjects.kv_key_subject(res.bus_name, key), codec.pack(final), {KV_OP: KV_DEL})

    # ---- raw keys of buckets that hold no API objects (no delete markers: entries expire) ---------

    async def create_key(self, res: Resource, key: str, value: bytes) -> int | None:
        """KV create of raw bytes: the revision, or None when the key already holds a value."""
        return await self.update_key(res, key, value, 0)  # expected last revision 0: the key holds nothing

    async def update_key(self, res: Resource, key: str, value: bytes, revision: int) -> int | None:
        """Compare-and-set of raw bytes on the key's revision: the new revision, or None when it moved on."""
        try:
            return await self._publish(subjects.kv_key_subject(res.bus_name, key), value,
                                       {EXPECTED_LAST: str(int(revision))})
        except nats.js.errors.APIError as e:
            if e.err_code in WRONG_LAST_SEQ:
                return None
            raise

    async def update_key_nowait(self, res: Resource, key: str, value: bytes, revision: int) -> None:
        """:meth:`update_key` without waiting for (or asking for) JetStream's acknowledgement: nothing tells
        whether it was stored. For a write whose loss only costs a cache miss, on the hot path."""
        await self.nc.publish(subjects.kv_key_subject(res.bus_name, key), value,
                              headers={EXPECTED_LAST: str(int(revision))})

    async def get_key(self, res: Resource, key: str) -> tuple[bytes, int] | None:
        """``(raw value, revision)`` of a key, or None when it holds nothing."""
        last = await self._last(res, key)
        if last is None or _is_delete(last):
            return None
        return last.data, last.seq

    async def _raise_missing_or_conflict(self, res: Resource, namespace: str | None, name: str) -> None:
        last = await self._last(res, subjects.object_key(namespace, name), direct=False)  # not a lagging replica
        if last is None or _is_delete(last):
            raise errors.not_found(res.plural, name, res.group) from None
        raise errors.conflict(res.plural, name, res.group) from None

    # ---- reads -------------------------------------------------------------------------------

    async def get(self, res: Resource, namespace: str | None, name: str, consistent: bool = False) -> dict:
        """One object. ``consistent``: read from the bucket's leader, not from a replica that may lag (what a
        compare-and-set retries with after a conflict: a lagging replica would answer the same stale revision)."""
        last = await self._last(res, subjects.object_key(namespace, name), direct=not consistent)
        if last is None or _is_delete(last):
            raise errors.not_found(res.plural, name, res.group)
        return with_revision(schema.decode(res.bus_name, last.data, last.headers), last.seq)

    async def last_revision(self, res: Resource) -> tuple[int, int]:
        """``(first, last)`` sequence the bucket retains."""
        info = await self.js.stream_info(subjects.stream(res.bus_name))
        return info.state.first_seq, info.state.last_seq

    async def list(self, res: Resource, namespace: str | None = None) -> tuple[list[dict], int]:
        """Every live object (optionally in one namespace) and the revision of that snapshot."""
        _, last_before = await self.last_revision(res)
        items: dict[str, dict] = {}
        top = last_before
        done = asyncio.get_running_loop().create_future()
        consumed = 0

        async def on_msg(msg: Msg) -> None:
            nonlocal top, consumed
            if _is_status(msg):  # flow control: the server sends more once this is answered
                reply = msg.reply or (msg.headers or {}).get("Nats-Consumer-Stalled")
                if reply:
                    await self.nc.publish(reply, b"")
                return
            seqs = delivery_sequences(msg.reply)
            if seqs is None:
                return
            seq, _, pending = seqs
            consumed += 1
            key = subjects.key_from_kv_subject(res.bus_name, msg.subject)
            if _is_delete(msg):
                items.pop(key, None)
            else:
                try:
                    items[key] = with_revision(schema.decode(res.bus_name, msg.data, msg.headers), seq)
                except schema.SchemaError:
                    raise
                except Exception:  # a foreign writer put garbage in our bucket: skip it
                    log.warning("undecodable value at %s rev %d", msg.subject, seq)
            top = max(top, seq)
            if pending == 0 and not done.done():
                done.set_result(None)

        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        try:
            cfg = api.ConsumerConfig(
                name=consumer_name(),
                deliver_subject=inbox,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                filter_subject=subjects.kv_subject(res.bus_name, namespace),
                ack_policy=api.AckPolicy.NONE,
                max_deliver=1,
                # paced by the reader: pushed unpaced, a list bigger than the server's per-client buffer
                # (64 MB: 30,000 pods) got the connection cut as a slow consumer, and the relist failed for good
                flow_control=True,
                idle_heartbeat=2.0,
                mem_storage=True,
                num_replicas=1,
                inactive_threshold=30.0 if self.deletes_consumers else self.LIST_INACTIVE,
            )
            info = await self.js._jsm.add_consumer(subjects.stream(res.bus_name), config=cfg)
            if info.num_pending == 0 and info.delivered.consumer_seq == 0 and consumed == 0:
                pass  # nothing to read
            else:
                await asyncio.wait_for(done, timeout=60)
        finally:
            await sub.unsubscribe()
            if self.deletes_consumers:
                try:
                    await self.js._jsm.delete_consumer(subjects.stream(res.bus_name), info.name)  # type: ignore[possibly-undefined]
                except Exception:
                    pass
        return list(items.values()), top

    async def list_page(self, res: Resource, namespace: str | None, limit: int, token: str | None = None,
                        match: Any = None) -> tuple[list[dict], int, str | None]:
        """One chunk of a list, as kube-apiserver serves ``limit``/``continue``: ``(items, resourceVersion, continue
        token or None)``. Every chunk is read from the first chunk's snapshot (the bucket as of its revision: the
        last message at or before it on each key, with JetStream's batched direct get), in list-key order; only the
        keys are held whole, the objects one chunk at a time. A token whose snapshot lost a value (the key changed
        since and its history no longer holds the old one) is 410 Expired. ``match``: a selector's predicate; the
        chunk fills with matching objects. Readers need the batched direct get on the bucket (``bus.roles``: those
        that may read the whole bucket)."""
        cont = listchunks.decode_continue(token) if token else None
        for _ in range(FIRST_CHUNK_RETRIES):
            revision = (await self.last_revision(res))[1] if cont is None or cont.revision < 0 else cont.revision
            try:
                return await self._read_page(res, namespace, limit, revision, cont.start if cont else "", match)
            except _Lost:
                if cont is not None and cont.revision > 0:
                    raise listchunks.expired(cont.start) from None
                # the first chunk's own snapshot moved on under it (a key changed twice meanwhile): take a newer one
        raise errors.unavailable("the list changed too fast to read a consistent first chunk; try again")

    async def _read_page(self, res: Resource, namespace: str | None, limit: int, revision: int, start: str,
                         match: Any) -> tuple[list[dict], int, str | None]:
        keys = await self._keys_at(res, namespace, revision)
        i = bisect.bisect_left(keys, (start, ""))
        items: list[dict] = []
        size = 0
        while i < len(keys) and len(items) < limit and size < listchunks.PAGE_BYTES:
            batch = keys[i:i + min(max(limit - len(items), 16), listchunks.GET_BATCH)]
            found = await self._last_at(res, [subj for _, subj in batch], revision)
            for _key, subj in batch:
                i += 1
                msg = found.get(subj)
                if msg is None:
                    if not await self._absent_at(res, subj, revision):
                        raise _Lost()
                    continue
                if _is_delete(msg):
                    continue
                obj = with_revision(schema.decode(res.bus_name, msg.data, msg.headers),
                                    int(msg.headers["Nats-Sequence"]))  # type: ignore[index]
                if match is not None and not match(obj):
                    continue
                items.append(obj)
                size += len(msg.data)
                if len(items) >= limit or size >= listchunks.PAGE_BYTES:
                    break
        more = i < len(keys)
        return items, revision, listchunks.encode_continue(revision, keys[i - 1][0]) if more else None

    async def _keys_at(self, res: Resource, namespace: str | None, revision: int) -> list[tuple[str, str]]:
        """The sorted keys a list at ``revision`` walks: every subject retained now (a superset of the keys that
        held an object then), remembered for the chunks that follow (a few snapshots, keys only)."""
        cache_key = (res.bus_name, namespace, revision)
        keys = self._chunk_keys.pop(cache_key, None)
        if keys is None:
            keys = listchunks.keys_of(await self._subjects(res, namespace), res.bus_name,
                                      res.namespaced and not namespace)
        self._chunk_keys[cache_key] = keys  # most recently used last
        while len(self._chunk_keys) > listchunks.KEY_SNAPSHOTS:
            self._chunk_keys.pop(next(iter(self._chunk_keys)))
        return keys

    async def _subjects(self, res: Resource, namespace: str | None) -> list[str]:
        """Every subject of the bucket (one per key that has a retained message), in pages of the server's size."""
        stream_name, out, offset = subjects.stream(res.bus_name), [], 0
        while True:
            req = orjson.dumps({"subjects_filter": subjects.kv_subject(res.bus_name, namespace), "offset": offset})
            resp = orjson.loads((await self.nc.request(subjects.js_stream_info(stream_name), req,
                                                       timeout=self.timeout)).data)
            if "error" in resp:
                raise nats.js.errors.APIError.from_error(resp["error"])
            got = list(((resp.get("state") or {}).get("subjects") or {}).keys())
            out.extend(got)
            offset += len(got)
            if not got or offset >= int(resp.get("total") or 0):
                return out

    async def _last_at(self, res: Resource, subjs: list[str], revision: int) -> dict[str, Msg]:
        """The last message at or before ``revision`` on each subject that has one (a batched direct get)."""
        found: dict[str, Msg] = {}
        todo = list(subjs)
        while todo:
            inbox = self.nc.new_inbox()
            got: list[Msg] = []
            done = asyncio.get_running_loop().create_future()

            async def on_msg(msg: Msg) -> None:
                if _is_status(msg):
                    if not done.done():
                        done.set_result(msg)
                else:
                    got.append(msg)

            sub = await self.nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
            try:
                req = orjson.dumps({"multi_last": todo, "up_to_seq": revision, "batch": len(todo)})
                await self.nc.publish(subjects.js_direct_get_batch(subjects.stream(res.bus_name)), req, reply=inbox)
                end = await asyncio.wait_for(done, timeout=self.timeout)
            finally:
                await sub.unsubscribe()
            for m in got:
                found[m.headers["Nats-Subject"]] = m  # type: ignore[index]
            status = end.headers.get("Status")  # type: ignore[union-attr]
            if status == "404":  # none of them has a message at or before the revision
                return found
            if status != "204":
                raise errors.internal(f"reading a list chunk: {status} {end.headers.get('Description', '')}")
            if not got or int(end.headers.get("Nats-Num-Pending") or 0) == 0:  # type: ignore[union-attr]
                return found
            todo = [x for x in todo if x not in found]
        return found

    async def _absent_at(self, res: Resource, subj: str, revision: int) -> bool:
        """Whether a key with no retained message at or before ``revision`` held no object then (it was created,
        or re-created after a delete, later) — rather than one whose value there has since been dropped."""
        req = orjson.dumps({"next_by_subj": subj, "seq": revision + 1})
        msg = await self.nc.request(subjects.js_direct_get_batch(subjects.stream(res.bus_name)), req,
                                    timeout=self.timeout)
        if _is_status(msg):
            return True  # nothing after it either: the key's messages are gone (expired), it lists nothing
        prev = (msg.headers or {}).get(EXPECTED_LAST)
        if prev is None:
            return False
        return int(prev) == 0 or (msg.headers or {}).get(EVENT_HDR) == ADDED

    async def watch(self, res: Resource, namespace: str | None = None, since: int | None = None) -> "_KVWatch":
        """Changes after revision ``since`` (None: only changes from now on)."""
        first, last = await self.last_revision(res)
        if since is None:
            since = last
        elif since > 0 and since + 1 < first:
            raise errors.gone(f"too old resource version: {since} ({first - 1})")
        w = _KVWatch(self, res, namespace, since)
        await w.start()
        return w

    async def restart_watches(self) -> None:
        """Re-create every open watch from its last revision (after a reconnect)."""
        for w in list(self._watches):
            await w.restart()


class _Requester:
    """Lean request/reply for JetStream publishes: one wildcard reply subscription, a future per
    request, a timer instead of ``wait_for`` (the write path's hot loop)."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._prefix = ""
        self._sub = None
        self._futures: dict[str, asyncio.Future] = {}
        self._n = 0
        self._init = asyncio.Lock()

    async def _ensure(self) -> None:
        async with self._init:
            if self._sub is None:
                self._prefix = self.nc.new_inbox() + "."
                self._sub = await self.nc.subscribe(self._prefix + "*", cb=self._on_reply,
                                                    pending_msgs_limit=-1, pending_bytes_limit=-1)

    async def _on_reply(self, msg: Msg) -> None:
        fut = self._futures.pop(msg.subject[len(self._prefix):], None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _expire(self, token: str) -> None:
        fut = self._futures.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_exception(nats.errors.TimeoutError())

    async def request(self, subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> Msg:
        if self._sub is None:
            await self._ensure()
        self._n += 1
        token = str(self._n)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._futures[token] = fut
        timer = loop.call_later(timeout, self._expire, token)
        try:
            await self.nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            msg = await fut
        finally:
            timer.cancel()
            self._futures.pop(token, None)
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            raise nats.errors.NoRespondersError
        return msg


def _is_api_side(nc: NATS) -> bool:
    from bus.connect import identity_of
    from bus.roles import APISERVER

    try:
        return identity_of(nc).role == APISERVER
    except Exception:  # a connection not made by bus.connect (no identity): nothing stops it
        return True


async def connect_store(url: str, identity: Identity, name: str | None = None) -> NatsStore:
    """A NATS connection as ``identity`` (its credentials from the creds dir, ``bus.connect``) that reconnects
    forever, and a store on it whose watches resume after every reconnect. Close with ``await store.nc.drain()``."""
    from bus.connect import connect, find_credentials

    holder: list[NatsStore] = []

    async def reconnected() -> None:
        for st in holder:
            await st.restart_watches()

    nc = await connect(url, find_credentials(identity), name=name, reconnected_cb=reconnected)
    store = NatsStore(nc)
    holder.append(store)
    return store


FIRST_CHUNK_RETRIES = 5


class _Lost(Exception):
    """A value of a list snapshot is no longer retained."""


def _is_status(msg: Msg) -> bool:
    return not msg.data and bool(msg.headers) and msg.headers.get("Status") is not None  # type: ignore[union-attr]


def _is_delete(msg: Msg) -> bool:
    if not msg.headers:
        return False
    op = msg.headers.get(KV_OP)
    if op in (KV_DEL, KV_PURGE):
        return True
    return msg.headers.get("Nats-Marker-Reason") is not None


def delivery_sequences(reply: str | None) -> tuple[int, int, int] | None:
    """``(stream sequence, consumer sequence, pending)`` of a pushed JetStream message, read off its ack subject
    (``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``, or the 12-token form with a domain and
    an account hash first); None for anything else. nats.py's ``Msg.metadata`` builds the same with a datetime and
    dataclasses, a cost every watched write paid in every informer."""
    if not reply:
        return None
    t = reply.split(".")
    if len(t) < 9 or t[0] != "$JS" or t[1] != "ACK":
        return None
    i = 5 if len(t) == 9 else 7
    try:
        return int(t[i]), int(t[i + 1]), int(t[i + 3])
    except (ValueError, IndexError):
        return None


class _KVWatch:
    """An ordered push consumer from a start revision, re-created on gaps, stalls and reconnects."""

    HEARTBEAT = 2.0

    def __init__(self, store: NatsStore, res: Resource, namespace: str | None, since: int) -> None:
        self.store = store
        self.res = res
        self.namespace = namespace
        self._last = since
        self._queue: asyncio.Queue[WatchEvent | BaseException | None] = asyncio.Queue()
        self._sub = None
        self._consumer: str | None = None
        self._cseq = 0
        self._alive = 0.0
        self._stopped = False
        self._monitor: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    @property
    def last_revision(self) -> int:
        return self._last

    async def start(self) -> None:
        await self._create()
        self.store._watches.add(self)
        self._monitor = asyncio.create_task(self._watchdog())

    async def _create(self) -> None:
        nc = self.store.nc
        inbox = nc.new_inbox()
        self._cseq = 0
        self._sub = await nc.subscribe(inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        cfg = api.ConsumerConfig(
            name=consumer_name(),
            deliver_subject=inbox,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self._last + 1,
            filter_subject=subjects.kv_subject(self.res.bus_name, self.namespace),
            ack_policy=api.AckPolicy.NONE,
            max_deliver=1,
            idle_heartbeat=self.HEARTBEAT,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=max(30.0, self.HEARTBEAT * 5),
        )
        info = await self.store.js._jsm.add_consumer(subjects.stream(self.res.bus_name), config=cfg)
        self._consumer = info.name
        self._alive = asyncio.get_running_loop().time()

    async def _drop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        name, self._consumer = self._consumer, None
        if name and self.store.nc.is_connected and self.store.deletes_consumers:
            try:
                await self.store.js._jsm.delete_consumer(subjects.stream(self.res.bus_name), name)
            except Exception:
                pass

    async def restart(self) -> None:
        """Drop the consumer and start a new one after the last revision seen."""
        async with self._lock:
            if self._stopped:
                return
            await self._drop()
            try:
                first, _ = await self.store.last_revision(self.res)
                if self._last + 1 < first:
                    raise errors.gone(f"too old resource version: {self._last} ({first - 1})")
                await self._create()
            except errors.Gone as e:
                self._queue.put_nowait(e)
            except Exception as e:  # not reachable now; the watchdog's next tick tries again
                log.debug("watch %s restart failed: %s", self.res.bus_name, e)
                self._alive = 0.0

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:
            await asyncio.sleep(self.HEARTBEAT)
            if self._stopped:
                return
            if loop.time() - self._alive > self.HEARTBEAT * 2.5:
                await self.restart()

    async def _on_msg(self, msg: Msg) -> None:
        self._alive = asyncio.get_running_loop().time()
        if _is_status(msg):
            if msg.reply:  # flow control request
                await self.store.nc.publish(msg.reply, b"")
                return
            last_c = msg.headers.get("Nats-Last-Consumer") if msg.headers else None
            if last_c is not None and int(last_c) != self._cseq:
                asyncio.ensure_future(self.restart())
            return
        seqs = delivery_sequences(msg.reply)
        if seqs is None:
            return
        seq, cseq, _ = seqs
        if cseq != self._cseq + 1:
            asyncio.ensure_future(self.restart())  # gap (slow consumer) or stale consumer
            return
        self._cseq = cseq
        if seq <= self._last:
            return
        self._last = seq
        key = subjects.key_from_kv_subject(self.res.bus_name, msg.subject)
        try:
            body = schema.decode(self.res.bus_name, msg.data, msg.headers) if msg.data else {}
        except schema.SchemaError as e:  # a newer k8n wrote it: this reader cannot go on (bus.skew prevents it)
            self._queue.put_nowait(e)
            return
        except Exception as e:
            log.warning("undecodable value at %s rev %d: %s", msg.subject, seq, e)
            return
        if not isinstance(body, dict):
            return
        if _is_delete(msg):
            etype = DELETED
            if not body:  # a foreign delete without final state: name the object at least
                ns, name = subjects.parse_key(key)
                body = {"metadata": {"name": name, **({"namespace": ns} if ns else {})}}
        elif msg.headers and msg.headers.get(EVENT_HDR) == ADDED:
            etype = ADDED
        else:
            etype = MODIFIED
        self._queue.put_nowait(WatchEvent(etype, with_revision(body, seq), seq, key))

    def __aiter__(self) -> "_KVWatch":
        return self

    async def __anext__(self) -> WatchEvent:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def pending(self) -> int:
        return self._queue.qsize()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.store._watches.discard(self)
        if self._monitor:
            self._monitor.cancel()
        await self._drop()
        self._queue.put_nowait(None)
