"""Object history and the audit stream: the vocabulary every side shares.

Who changed what rides on the write itself: the API server puts the caller's name, the verb and the field manager in
headers of the KV message it writes (:data:`WRITER`, read by ``bus.store``), so a request pays no extra write. Each
kind's history is a stream of its own (``subjects.history_stream``) that *sources* the kind's bucket: nats-server
copies every change, headers included, to ``k8n.history.<resource>.<key>`` and keeps it with the history's own
retention (revisions per object, maximum age), apart from the bucket's 8 revisions. Reading one object's history is
one batched direct get (:func:`read_object`); the final states of deleted objects are the last messages of the
subjects whose last change is a delete (:func:`read_deleted`).

The audit stream keeps one record per mutating request, in Kubernetes' ``audit.k8s.io/v1`` Event shape, published
by the API server without waiting for an acknowledgement, a batch of records per message (:func:`audit_record`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import nats.js.errors
import orjson
from nats.js import api

from bus import schema, subjects
from bus.meta import format_time
from bus.resources import Resource
from bus.settings import load as load_settings
from bus.settings import setting

log = logging.getLogger(__name__)

HISTORY = "history"  # the subresource (``GET .../deployments/web/history``), authorized as reading the object
KIND = "ObjectHistory"
API_VERSION = "k8n.io/v1"
USER_HDR, VERB_HDR, MANAGER_HDR = "K8n-User", "K8n-Verb", "K8n-Manager"
SOURCE_HDR = "Nats-Stream-Source"  # "<source stream> <source sequence> ...": the sequence is the resourceVersion
KV_OP, EVENT_HDR = "KV-Operation", "K8n-Event"

#: the headers the API server adds to the store writes of the request it serves (a task's own context)
WRITER: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("k8n_writer", default=None)
#: buckets that hold no API objects (never a history), and kinds with none unless ``history-kinds`` names them
NEVER = ("nodepods", "serviceallocations", "replies")
OFF_BY_DEFAULT = ("events", "leases", "endpoints", "endpointslices")  # churn, or derived by controllers
MAX_READ = 1000  # revisions one history read returns at most
DAY = 86400.0
AUDIT_ALL = subjects.AUDIT_PREFIX + ".>"  # what the audit stream keeps


@dataclass(frozen=True)
class HistorySettings:
    history: bool = setting(True, "keep every kind's object history (`k8n history`) in a stream of its own "
                                  "(`HIST_k8n-<resource>`, sourcing the kind's bucket); false deletes those streams")
    history_revisions: int = setting(100, "revisions kept per object in its history (the bucket keeps 8)")
    history_max_age: float = setting(30 * DAY, "seconds a revision stays in the history (0: no limit)")
    history_kinds: str = setting(
        "", "per-kind revisions, `RESOURCE=N,...` (`pods=20,leases=10`); 0 turns a kind's history off. Events, "
        "Leases, Endpoints and EndpointSlices keep none unless named here")
    audit_max_age: float = setting(7 * DAY, "seconds an audit record of a mutating request stays in stream "
                                            "`K8N_AUDIT` (0: no audit records)")

    @classmethod
    def load(cls) -> "HistorySettings":
        return load_settings(cls)

    def revisions(self, res: Resource) -> int:
        """Revisions kept per object of ``res``; 0: no history."""
        if not self.history or res.bus_name in NEVER or res.in_memory or not res.stored:
            return 0
        for item in self.history_kinds.split(","):
            kind, sep, n = item.strip().partition("=")
            if sep and kind.strip() in (res.plural, res.bus_name):
                try:
                    return max(0, int(n))
                except ValueError:
                    raise ValueError(f"K8N_HISTORY_KINDS: {item!r}: expected RESOURCE=N") from None
        return 0 if res.bus_name in OFF_BY_DEFAULT else self.history_revisions


# ---- the writer's headers --------------------------------------------------------------------------------------

def _header_value(v: Any) -> str:
    """A header value: one line, no control characters, bounded."""
    return "".join(c for c in str(v) if c.isprintable())[:256]


def writer_headers(user: str, verb: str, manager: str | None) -> dict[str, str]:
    out = {USER_HDR: _header_value(user), VERB_HDR: _header_value(verb)}
    if manager:
        out[MANAGER_HDR] = _header_value(manager)
    return out


# ---- the streams ------------------------------------------------------------------------------------------------

def _persist(replicas: int) -> api.PersistMode | None:
    """A single-replica history or audit stream is flushed to disk in the background, not fsynced per message as the
    buckets are (``sync_interval: always``): a second fsync per write doubled nats-server's CPU per create. The bucket
    stays the durable copy; after a power loss a history stream resumes its source after the last copy it kept, so
    it copies again what the bucket still holds (8 revisions a key); audit records of the last moments may be lost
    (they are published without acknowledgement anyway). Replicated streams keep the default."""
    return api.PersistMode.ASYNC if replicas == 1 else None


def stream_config(res: Resource, cfg: HistorySettings, replicas: int) -> api.StreamConfig | None:
    """The history stream of ``res`` (None: it keeps none)."""
    revisions = cfg.revisions(res)
    if not revisions:
        return None
    kv = subjects.kv_subject(res.bus_name)
    return api.StreamConfig(
        name=subjects.history_stream(res.bus_name), subjects=[], storage=api.StorageType.FILE, num_replicas=replicas,
        max_msgs_per_subject=revisions, max_age=cfg.history_max_age or None, allow_direct=True,
        discard=api.DiscardPolicy.OLD, persist_mode=_persist(replicas),
        sources=[api.StreamSource(name=subjects.stream(res.bus_name), subject_transforms=[
            api.SubjectTransform(src=kv, dest=subjects.history_subject(res.bus_name))])])


def audit_config(cfg: HistorySettings, replicas: int) -> api.StreamConfig | None:
    if not cfg.audit_max_age:
        return None
    return api.StreamConfig(name=subjects.AUDIT_STREAM, subjects=[AUDIT_ALL],
                            storage=api.StorageType.FILE, num_replicas=replicas, max_age=cfg.audit_max_age,
                            allow_direct=True, discard=api.DiscardPolicy.OLD, persist_mode=_persist(replicas))


async def _put_stream(js: Any, name: str, cfg: api.StreamConfig | None) -> None:
    """Create, update or (``cfg`` None) delete one stream; idempotent."""
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        info = None
    if cfg is None:
        if info is not None:
            await js.delete_stream(name)
        return
    if info is None:
        await js.add_stream(cfg)
    elif (info.config.max_msgs_per_subject, info.config.max_age or None, info.config.subjects or []) != (
            cfg.max_msgs_per_subject, cfg.max_age, cfg.subjects or []):
        cfg.num_replicas = info.config.num_replicas or cfg.num_replicas  # as made (a change is the operator's)
        await js.update_stream(cfg)


async def ensure_streams(js: Any, resources: tuple[Resource, ...], replicas: int,
                         cfg: HistorySettings | None = None, audit: bool = True) -> None:
    """Every history stream ``resources`` keep (made, updated to the settings, or deleted when turned off), and the
    audit stream: what the API server runs where it makes the buckets, on a new cluster and an upgraded one."""
    cfg = cfg or HistorySettings.load()
    streams = [(subjects.history_stream(r.bus_name), stream_config(r, cfg, replicas)) for r in resources
               if r.bus_name not in NEVER]
    if audit:
        streams.append((subjects.AUDIT_STREAM, audit_config(cfg, replicas)))
    for name, config in streams:
        try:
            await _put_stream(js, name, config)
        except nats.js.errors.APIError as e:  # the objects are served without it (another API server's settings?)
            log.error("cannot set up stream %s: %s", name, e)


async def delete_stream(js: Any, res: Resource) -> None:
    await _put_stream(js, subjects.history_stream(res.bus_name), None)


# ---- reading ----------------------------------------------------------------------------------------------------

def _micro(ts: str) -> str:
    """JetStream's nanosecond RFC 3339 as Kubernetes' MicroTime (``2026-01-02T03:04:05.123456Z``)."""
    if "." not in ts:
        return ts
    head, frac = ts.rstrip("Z").split(".", 1)
    return f"{head}.{(frac + '000000')[:6]}Z"


def item_of(msg: Any, bucket: str = "") -> dict:
    """One revision, from a message of ``bucket``'s history stream (any stored schema: bus.schema)."""
    h = msg.headers or {}
    source = (h.get(SOURCE_HDR) or "").split()
    revision = int(source[1]) if len(source) > 1 and source[1].isdigit() else 0
    if h.get(KV_OP) in ("DEL", "PURGE"):
        etype = "DELETED"
    elif h.get(EVENT_HDR) == "ADDED":
        etype = "ADDED"
    else:
        etype = "MODIFIED"
    try:
        obj = schema.decode(bucket, msg.data, h) if msg.data else {}
    except Exception:  # noqa: BLE001 - an undecodable body is shown as nothing, not a failed read
        obj = {}
    if isinstance(obj, dict):
        obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    manager = h.get(MANAGER_HDR) or _last_manager(obj)
    return {"revision": revision, "time": _micro(h.get("Nats-Time-Stamp", "")), "user": h.get(USER_HDR),
            "verb": h.get(VERB_HDR), "fieldManager": manager, "type": etype, "object": obj}


def _last_manager(obj: Any) -> str | None:
    """A write made before its writer was recorded: the manager of its newest managedFields entry."""
    entries = ((obj or {}).get("metadata") or {}).get("managedFields") if isinstance(obj, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    newest = max((e for e in entries if isinstance(e, dict)), key=lambda e: str(e.get("time") or ""), default={})
    return newest.get("manager")


def history_list(items: list[dict]) -> dict:
    return {"kind": KIND, "apiVersion": API_VERSION, "items": items}


async def _direct_batch(nc: Any, stream_name: str, request: dict, timeout: float) -> list[Any]:
    """The messages of one batched direct get (until its end-of-batch status); [] when none matched or the stream
    does not exist."""
    inbox = nc.new_inbox()
    got: list[Any] = []
    done = asyncio.get_running_loop().create_future()

    async def on_msg(msg: Any) -> None:
        if not msg.data and msg.headers and msg.headers.get("Status"):
            if not done.done():
                done.set_result(msg.headers.get("Status"))
        else:
            got.append(msg)

    sub = await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
    try:
        await nc.publish(subjects.js_direct_get_batch(stream_name), orjson.dumps(request), reply=inbox)
        status = await asyncio.wait_for(done, timeout)
    finally:
        await sub.unsubscribe()
    if status == "503":  # no responders: no such stream
        return []
    if status not in ("204", "404"):
        raise RuntimeError(f"reading {stream_name}: status {status}")
    return got


async def read_object(nc: Any, res: Resource, namespace: str | None, name: str, timeout: float = 5.0) -> list[dict]:
    """The kept revisions of one object, oldest first ([]: none kept, or the kind keeps no history)."""
    req = {"next_by_subj": subjects.history_subject(res.bus_name, namespace, name), "seq": 1, "batch": MAX_READ}
    return [item_of(m, res.bus_name)
            for m in await _direct_batch(nc, subjects.history_stream(res.bus_name), req, timeout)]


async def _subjects_of(nc: Any, stream_name: str, filt: str, timeout: float) -> list[str]:
    out: list[str] = []
    while True:
        req = orjson.dumps({"subjects_filter": filt, "offset": len(out)})
        resp = orjson.loads((await nc.request(subjects.js_stream_info(stream_name), req, timeout=timeout)).data)
        if "error" in resp:
            if resp["error"].get("code") == 404:
                return []
            raise nats.js.errors.APIError.from_error(resp["error"])
        got = list(((resp.get("state") or {}).get("subjects") or {}).keys())
        out.extend(got)
        if not got or len(out) >= int(resp.get("total") or 0):
            return out


async def read_deleted(nc: Any, res: Resource, namespace: str | None, timeout: float = 5.0,
                       chunk: int = 256) -> list[dict]:
    """The final state of every object of ``res`` (in ``namespace``) whose last kept change is its deletion."""
    stream_name = subjects.history_stream(res.bus_name)
    subjs = await _subjects_of(nc, stream_name, subjects.history_subject(res.bus_name, namespace), timeout)
    out: list[dict] = []
    for i in range(0, len(subjs), chunk):
        part = subjs[i:i + chunk]
        for m in await _direct_batch(nc, stream_name, {"multi_last": part, "batch": len(part)}, timeout):
            if (m.headers or {}).get(KV_OP) in ("DEL", "PURGE"):
                out.append(item_of(m, res.bus_name))
    out.sort(key=lambda it: it["revision"])
    return out


# ---- audit ------------------------------------------------------------------------------------------------------

def audit_record(audit_id: str, user: Any, verb: str, res: Resource, namespace: str | None, name: str | None,
                 subresource: str | None, code: int, received: str, done: str, resource_version: str | None,
                 reason: str | None = None) -> bytes:
    """One record, as Kubernetes' audit Event at level Metadata (stage ResponseComplete)."""
    ref: dict[str, Any] = {"resource": res.plural, "apiGroup": res.group, "apiVersion": res.version}
    for k, v in (("namespace", namespace), ("name", name), ("subresource", subresource),
                 ("resourceVersion", resource_version)):
        if v:
            ref[k] = v
    status: dict[str, Any] = {"code": code}
    if reason:
        status["reason"] = reason
    return orjson.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id,
        "stage": "ResponseComplete", "verb": verb,
        "user": {"username": user.name, "uid": user.uid, "groups": list(user.groups)},
        "objectRef": ref, "responseStatus": status,
        "requestReceivedTimestamp": received, "stageTimestamp": done})

class Auditor:
    """Publishes the record of every mutating request to stream ``K8N_AUDIT``: core publishes nothing waits for,
    the records of :data:`FLUSH_AFTER` seconds (at most :data:`BATCH` of them) one message, so that a busy API server
    costs the stream one stored message per batch rather than per request. The API server records what it served;
    the gateway what its authorizer refused before forwarding."""

    BATCH = 256
    FLUSH_AFTER = 0.02

    def __init__(self, nc: Any, enabled: bool | None = None) -> None:
        self.nc = nc
        if enabled is None:
            enabled = nc is not None and HistorySettings.load().audit_max_age > 0
        self.enabled = enabled
        self._records: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, audit_id: str | None, user: Any, verb: str, res: Resource, namespace: str | None,
            name: str | None, subresource: str | None, code: int, received: float,
            resource_version: str | None = None, reason: str | None = None) -> None:
        """Queue one record (``received``: the request's arrival, epoch seconds)."""
        if not self.enabled:
            return
        self._records.append(audit_record(
            audit_id or uuid.uuid4().hex, user, verb, res, namespace, name, subresource, code,
            format_time(received, micro=True), format_time(time.time(), micro=True), resource_version, reason))
        if len(self._records) >= self.BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        records, self._records = self._records, []
        if records:
            asyncio.ensure_future(self._publish(b"\n".join(records)))

    async def _publish(self, payload: bytes) -> None:
        try:
            await self.nc.publish(subjects.audit_subject(), payload)
        except Exception as e:  # noqa: BLE001 - a lost audit record never fails a request
            log.warning("could not publish %d audit records: %s", payload.count(b"\n") + 1, e)


async def read_audit(nc: Any, since_seq: int = 1, limit: int = 1000, timeout: float = 5.0) -> list[dict]:
    """Audit records from stream sequence ``since_seq`` on, oldest first (at most ``limit`` messages of them)."""
    req = {"next_by_subj": AUDIT_ALL, "seq": since_seq, "batch": limit}
    return [orjson.loads(line) for m in await _direct_batch(nc, subjects.AUDIT_STREAM, req, timeout)
            for line in m.data.split(b"\n") if line]
