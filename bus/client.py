"""The asyncio API client: writes and gets through the apiserver (NATS request/reply),
lists and watches straight off the KV buckets.

Wire protocol (what any NATS client can speak):

- request subject ``k8n.api.<caller>.<resource>.<verb>`` (``bus.subjects.api_subject``; ``caller`` is the
  sender's bus identity, which its credentials let it publish under and no other), verbs ``create``,
  ``get``, ``list``, ``update``, ``patch``, ``delete``, ``deletecollection``;
- request payload (msgpack, or JSON when it starts with ``{``)::

    {"namespace": "default", "name": "web", "subresource": "status"|"scale"|"binding"|null,
     "requestId": "9f1c…",
     "body": {...object or patch...},
     "options": {"labelSelector": "...", "fieldSelector": "...", "dryRun": false,
                 "patchType": "merge"|"json"|"strategic"|"apply" (or its Content-Type), "force": false,
                 "gracePeriodSeconds": 0,
                 "propagationPolicy": "Background"|"Foreground"|"Orphan",
                 "preconditions": {"uid": "...", "resourceVersion": "..."}, "fieldManager": "..."}}

- reply payload (same encoding as the request): ``{"code": 200, "body": {...}, "warnings": [...]}``;
  errors have ``code`` >= 400 and a Kubernetes ``Status`` as ``body``.
- ``requestId`` (optional; 8 to 64 of ``[A-Za-z0-9_-]``, else a 400): a mutating request (``create``, ``update``,
  ``patch``, ``delete``, ``deletecollection``, subresources included) sent again with the same id and the same
  bytes is not applied again: the apiservers answer the repeat with the first attempt's reply (same code, same
  body and resourceVersion, errors included) for a few minutes (``master/apiserver/replies.py``). A repeat that
  arrives while the first attempt still runs waits for it, or is answered 429 with
  ``details.causes[].reason: "RequestInProgress"`` (retry with the same id); the same id with other bytes is a 400.
  Without an id a write is applied each time it is received. ``ApiClient`` sends a fresh random 128-bit hex id per call
  and the same one on every retry; reads ignore it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, AsyncIterator, Iterable

import nats
import nats.errors
from nats.aio.client import Client as NATS

from bus import codec, errors, listchunks, subjects
from bus.connect import connect, find_credentials, identity_of
from bus.meta import key_of
from bus.resources import Resource, by_kind, resolve
from bus.roles import Identity
from bus.store import ADDED, DELETED, MODIFIED, NatsStore, WatchEvent

log = logging.getLogger(__name__)

ResourceRef = Resource | str | type
# seconds the first attempt of a request that will be retried waits for its reply, doubling per retry up to the
# client's timeout (the last attempt waits the whole timeout): an API server killed with requests in flight never
# answers them, and the retry (same request id, so applied once) reaches a live replica of the queue group
FIRST_ATTEMPT_TIMEOUT = 2.0
Reply = tuple[int, Any, list[str]]  # (code, body, warnings)
MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def resource_of(ref: ResourceRef) -> Resource:
    """A Resource from a Resource, a name kubectl accepts, or a model class."""
    if isinstance(ref, Resource):
        return ref
    if isinstance(ref, str):
        r = resolve(ref)
    else:
        r = by_kind(getattr(ref, "__name__", ""))
    if r is None:
        raise errors.NotFound(404, f'the server doesn\'t have a resource type "{ref}"')
    return r


def resource_for_object(obj: dict) -> Resource:
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if not kind:
        raise errors.bad_request("Object 'Kind' is missing")
    r = by_kind(kind)
    if r is not None and r.custom is not None and obj.get("apiVersion"):
        r = by_kind(kind, obj["apiVersion"])  # the version the object names
    if r is None:
        raise errors.NotFound(404, f'no matches for kind "{kind}" in version "{obj.get("apiVersion", "")}"')
    return r


def _as_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    from bus.models import to_dict

    return to_dict(obj)


def _typed(ref: ResourceRef, body: Any) -> Any:
    """Return a model instance when the caller named a model class, else the plain dict."""
    if isinstance(ref, type) and isinstance(body, dict):
        return ref.model_validate(body)
    return body


_ids = random.Random()  # seeded from os.urandom: 128 random bits per id, without a system call per request


def new_request_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


def request_payload(res: Resource, namespace: str | None = None, name: str | None = None, body: Any = None,
                    subresource: str | None = None, options: dict | None = None,
                    request_id: str | None = None, user: dict | None = None) -> dict[str, Any]:
    """The API server request for one call (what ``ApiClient.call`` sends, for itself and for the HTTP
    gateway): the namespace only for a namespaced kind, options without their None values (none left:
    no ``options`` at all, which the server reads as empty). ``user`` (``bus.authn.UserInfo.as_dict()``) is the
    user the gateway acts for; the API server accepts it from the gateway's identity only."""
    payload: dict[str, Any] = {}
    if user is not None:
        payload["user"] = user
    if namespace and res.namespaced:
        payload["namespace"] = namespace
    if name is not None:
        payload["name"] = name
    if subresource:
        payload["subresource"] = subresource
    if request_id is not None:
        payload["requestId"] = request_id
    if body is not None:
        payload["body"] = body
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    if res.custom is not None:
        opts.setdefault("version", res.version)  # a custom resource is served at each of its served versions
    if opts:
        payload["options"] = opts
    return payload


class ApiClient:
    """Typed, asyncio access to the k8n API over NATS.

    Every verb takes the resource as a :class:`Resource`, a kubectl name (``"deploy"``) or a model
    class (then results come back as model instances). ``warnings`` lists passed in collect the
    server's warnings for that call.
    """

    def __init__(self, nc: NATS, timeout: float = 10.0, retries: int = 3) -> None:
        self.nc = nc
        self.timeout = timeout
        self.retries = retries
        self.store = NatsStore(nc)
        self.identity = identity_of(nc)

    @classmethod
    async def connect(cls, url: str, identity: Identity | None = None, creds: str | None = None,
                      **kw: Any) -> "ApiClient":
        """Connect as ``identity`` (its credentials from the creds dir; None: the admin's) or with the credentials
        file ``creds`` (see ``bus.connect``)."""
        holder: dict[str, ApiClient] = {}

        async def reconnected() -> None:
            c = holder.get("c")
            if c is not None:
                await c.store.restart_watches()

        nc = await connect(url, find_credentials(identity, creds), reconnected_cb=reconnected, **kw)
        c = cls(nc)
        holder["c"] = c
        return c

    async def close(self) -> None:
        try:
            await self.nc.drain()
        except Exception:
            await self.nc.close()

    # ---- raw request -------------------------------------------------------------------------

    async def call(self, res: Resource, verb: str, namespace: str | None = None, name: str | None = None,
                   body: Any = None, subresource: str | None = None, options: dict | None = None,
                   user: dict | None = None) -> Reply:
        """One API request and its whole reply ``(code, body, warnings)``, error codes included (nothing is
        raised for them). A mutating verb carries a fresh request id; every retry — after no responders, a
        timeout, or a "still in progress" answer to a repeat — sends the same id and the same bytes, so the
        apiserver applies it once and answers a repeat as it answered the first attempt. Raises
        :class:`bus.errors.TooLarge` for a request over the bus's size limit and :class:`bus.errors.NoReply` when
        ``retries`` are spent."""
        # an id only where a retry may repeat the write: a client that never retries (retries=0, the scheduler's
        # binds) costs the API servers no reply-cache entry
        rid = new_request_id() if verb in MUTATING_VERBS and self.retries > 0 else None
        data = codec.pack(request_payload(res, namespace, name, body, subresource, options, rid, user))
        subject = subjects.api_subject(self.identity.token, res.bus_name, verb)
        attempt = 0
        received = False  # some attempt may have reached an apiserver
        while True:
            try:
                msg = await self.nc.request(subject, data, timeout=self.attempt_timeout(attempt))
            except nats.errors.MaxPayloadError:
                raise errors.too_large("request is larger than the bus's maximum message size") from None
            except nats.errors.NoRespondersError:
                why = "NoRespondersError"
            except nats.errors.TimeoutError:
                why, received = "TimeoutError", True
            else:
                reply = codec.unpack(msg.data)
                code, out = int(reply.get("code", 500)), reply.get("body")
                if not (code == 429 and errors.is_in_progress(out)):
                    return code, out, list(reply.get("warnings") or [])
                why, received = errors.IN_PROGRESS, True
            attempt += 1
            if attempt > self.retries:
                raise errors.NoReply(f"the API server did not answer ({why})", received)
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))

    def attempt_timeout(self, attempt: int) -> float:
        """How long attempt ``attempt`` (0 first) of a call waits for a reply (see ``FIRST_ATTEMPT_TIMEOUT``)."""
        if attempt >= self.retries:
            return self.timeout
        return min(self.timeout, FIRST_ATTEMPT_TIMEOUT * 2**attempt)

    async def request(self, res: Resource, verb: str, namespace: str | None = None, name: str | None = None,
                      body: Any = None, subresource: str | None = None, options: dict | None = None,
                      warnings: list[str] | None = None) -> Any:
        """The reply's body; an error reply raises :class:`bus.errors.ApiError` (see :meth:`call`)."""
        code, out, warns = await self.call(res, verb, namespace, name, body, subresource, options)
        if warnings is not None:
            warnings.extend(warns)
        if code >= 400:
            raise errors.ApiError.from_status(out or {"code": code})
        return out

    async def server_version(self) -> dict:
        msg = await self.nc.request(subjects.version_subject(self.identity.token), codec.pack({}), timeout=self.timeout)
        return codec.unpack(msg.data).get("body") or {}

    # ---- what a reference names (custom resources: their definitions read when first named) ----------------

    async def resource(self, ref: ResourceRef) -> Resource:
        """:func:`resource_of`, learning the CustomResourceDefinitions when ``ref`` names none k8n is built with."""
        try:
            return resource_of(ref)
        except errors.NotFound:
            if not isinstance(ref, str) or not await self.load_definitions():
                raise
            return resource_of(ref)

    async def resource_for(self, obj: dict) -> Resource:
        """:func:`resource_for_object`, learning the CustomResourceDefinitions for a kind not known yet."""
        try:
            return resource_for_object(obj)
        except errors.NotFound:
            if not await self.load_definitions():
                raise
            return resource_for_object(obj)

    async def load_definitions(self) -> bool:
        """Register every CustomResourceDefinition in the cluster (read off its bucket); whether there was one."""
        from bus import crd

        items, _ = await self.store.list(resource_of(crd.CRDS))
        for d in items:
            crd.register(d)
        return bool(items)

    # ---- verbs -------------------------------------------------------------------------------

    async def create(self, obj: Any, namespace: str | None = None, dry_run: bool = False,
                     field_manager: str | None = None, warnings: list[str] | None = None) -> Any:
        d = _as_dict(obj)
        res = await self.resource_for(d)
        ns = namespace or (d.get("metadata") or {}).get("namespace") or ("default" if res.namespaced else None)
        out = await self.request(res, "create", ns, body=d,
                                 options={"dryRun": dry_run or None, "fieldManager": field_manager},
                                 warnings=warnings)
        return _typed(type(obj), out) if not isinstance(obj, dict) else out

    async def get(self, ref: ResourceRef, name: str, namespace: str | None = None,
                  subresource: str | None = None) -> Any:
        res = await self.resource(ref)
        out = await self.request(res, "get", namespace or "default", name, subresource=subresource)
        return _typed(ref, out) if not subresource else out

    async def update(self, obj: Any, namespace: str | None = None, subresource: str | None = None,
                     dry_run: bool = False, warnings: list[str] | None = None,
                     ref: ResourceRef | None = None) -> Any:
        """Replace an object (CAS on its resourceVersion). ``ref`` names the resource when the
        body is not the object itself (a Scale)."""
        d = _as_dict(obj)
        res = await self.resource(ref) if ref is not None else await self.resource_for(d)
        meta = d.get("metadata") or {}
        ns = namespace or meta.get("namespace") or "default"
        out = await self.request(res, "update", ns, meta.get("name"), body=d, subresource=subresource,
                                 options={"dryRun": dry_run or None}, warnings=warnings)
        return _typed(type(obj), out) if not isinstance(obj, dict) else out

    async def update_status(self, obj: Any, warnings: list[str] | None = None) -> Any:
        return await self.update(obj, subresource="status", warnings=warnings)

    async def patch(self, ref: ResourceRef, name: str, patch: Any, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str | None = None, dry_run: bool = False,
                    warnings: list[str] | None = None) -> Any:
        res = await self.resource(ref)
        out = await self.request(res, "patch", namespace or "default", name, body=patch, subresource=subresource,
                                 options={"patchType": patch_type, "dryRun": dry_run or None}, warnings=warnings)
        return _typed(ref, out) if not subresource else out

    async def delete(self, ref: ResourceRef, name: str, namespace: str | None = None,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict | None = None, dry_run: bool = False,
                     warnings: list[str] | None = None) -> Any:
        res = await self.resource(ref)
        return await self.request(res, "delete", namespace or "default", name, options={
            "gracePeriodSeconds": grace_period_seconds, "propagationPolicy": propagation_policy,
            "preconditions": preconditions, "dryRun": dry_run or None}, warnings=warnings)

    async def get_scale(self, ref: ResourceRef, name: str, namespace: str | None = None) -> dict:
        return await self.get(ref, name, namespace, subresource="scale")

    async def scale(self, ref: ResourceRef, name: str, replicas: int, namespace: str | None = None) -> dict:
        return await self.patch(ref, name, {"spec": {"replicas": replicas}}, namespace, subresource="scale")

    async def bind(self, pod: str, node: str, namespace: str = "default", uid: str | None = None) -> dict:
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace, **({"uid": uid} if uid else {})},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        return await self.request(resource_of("pods"), "create", namespace, pod, body=body, subresource="binding")

    # ---- reads straight off KV ---------------------------------------------------------------

    async def read(self, ref: ResourceRef, name: str, namespace: str | None = None) -> dict:
        """One object as the API server's get answers it, read straight off KV (one direct get, no API server
        hop: for a caller that has authorized the read itself, as the gateway has). A name or namespace no object
        can have is a 404; a bus that does not answer is a 503."""
        res = await self.resource(ref)
        ns = namespace if res.namespaced else None
        if ns is not None and not subjects.SAFE_TOKEN.fullmatch(ns):
            raise errors.not_found("namespaces", ns)
        if not subjects.SAFE_TOKEN.fullmatch(name or ""):
            raise errors.not_found(res.plural, name, res.group)
        try:
            return await self.store.get(res, ns, name)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            raise errors.unavailable(f"the object store did not answer ({type(e).__name__}); retry") from None

    async def list(self, ref: ResourceRef, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None) -> tuple[list[Any], int]:
        """``(items, resourceVersion)``; namespace None lists every namespace."""
        res = await self.resource(ref)
        match = selector_matcher(res, label_selector, field_selector)
        items, rv = await self.store.list(res, namespace if res.namespaced else None)
        items = [o for o in items if match(o)]
        items.sort(key=lambda o: ((o["metadata"].get("namespace") or ""), o["metadata"].get("name", "")))
        return [_typed(ref, o) for o in items], rv

    async def list_chunk(self, ref: ResourceRef, namespace: str | None = None, limit: int = 500,
                         continue_: str | None = None, label_selector: str | None = None,
                         field_selector: str | None = None) -> dict:
        """One chunk of a list (``limit``/``continue``, as kube-apiserver pages), read straight off KV from the first
        chunk's snapshot (:meth:`bus.store.NatsStore.list_page`): the List body, its ``metadata.continue`` naming
        the next chunk if any. An expired token is :class:`bus.errors.Gone` (410 Expired). (The API server answers
        the same for a ``list`` request with ``limit``/``continue`` options.)"""
        res = resource_of(ref)
        match = selector_matcher(res, label_selector, field_selector)
        return listchunks.chunk_body(res, *await self.store.list_page(
            res, namespace if res.namespaced else None, limit if limit > 0 else listchunks.UNLIMITED, continue_, match))

    async def watch(self, ref: ResourceRef, namespace: str | None = None, since: int | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    initial: Iterable[dict] = ()) -> "FilteredWatch":
        """Changes after ``since`` (None: from now). With selectors, an object that stops matching
        arrives as DELETED and one that starts matching as ADDED (``initial``: what the caller
        already holds, e.g. the list it watched from)."""
        res = await self.resource(ref)
        w = await self.store.watch(res, namespace if res.namespaced else None, since)
        return FilteredWatch(w, selector_matcher(res, label_selector, field_selector),
                             filtered=bool(label_selector or field_selector), initial=initial)


def selector_matcher(res: Resource, label_selector: str | None, field_selector: str | None):
    lsel = fsel = None
    if label_selector:
        from bus.labels import parse_selector

        try:
            lsel = parse_selector(label_selector)
        except ValueError as e:
            raise errors.bad_request(f"unable to parse requirement: {e}") from None
    if field_selector:
        from bus.fields import parse_field_selector, validate_field_selector

        try:
            fsel = parse_field_selector(field_selector)
        except ValueError as e:
            raise errors.bad_request(f"invalid field selector: {e}") from None
        bad = validate_field_selector(res.kind, fsel)
        if bad:
            raise errors.bad_request(bad)

    def match(obj: dict) -> bool:
        if lsel is not None and not lsel.matches((obj.get("metadata") or {}).get("labels") or {}):
            return False
        if fsel is not None and not fsel.matches(obj):
            return False
        return True

    return match


class FilteredWatch:
    """A store watch with selector semantics as Kubernetes' watch cache gives them."""

    def __init__(self, inner: Any, match: Any, filtered: bool, initial: Iterable[dict] = ()) -> None:
        self.inner = inner
        self.match = match
        self.filtered = filtered
        self.seen = {key_of(o) for o in initial}

    @property
    def last_revision(self) -> int:
        return self.inner.last_revision

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            ev = await self.inner.__anext__()
            if not self.filtered:
                return ev
            ok = self.match(ev.object)
            k = key_of(ev.object)
            if ev.type == DELETED:
                if k in self.seen or ok:
                    self.seen.discard(k)
                    return ev
                continue
            if ok:
                # a creation is ADDED even when ``initial`` (the list a watch from an older revision is seeded
                # with) already holds the object: the watch replays history from before that list
                etype = ADDED if ev.type == ADDED or k not in self.seen else MODIFIED
                self.seen.add(k)
                return WatchEvent(etype, ev.object, ev.revision, ev.key)
            if k in self.seen:
                self.seen.discard(k)
                return WatchEvent(DELETED, ev.object, ev.revision, ev.key)

    async def stop(self) -> None:
        await self.inner.stop()

