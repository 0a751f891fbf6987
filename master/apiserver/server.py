"""The API server process: a NATS queue-group subscriber that decodes requests, runs the verb
and replies. Several can run at once; every write is compare-and-set in the store."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import nats
import nats.js.errors
from nats.aio.msg import Msg

from bus import codec, errors, roles, subjects, telemetry
from bus.authn import UserInfo, user_for_identity
from bus.client import MUTATING_VERBS
from bus.resources import Resource, by_bus_name, by_plural
from bus.roles import Identity
from bus.store import NatsStore, connect_store
from bus.version import version_info
from master.apiserver.admission import NamespaceLifecycle
from master.apiserver.authz import Authorization
from master.apiserver.backup import Backups
from master.apiserver.upgrade import StorageSchema, Upgrades, upgrade_suffix
from master.apiserver.bootstrap import bootstrap
from master.apiserver.customresources import CustomResources
from master.apiserver.webhooks import Webhooks
from master.apiserver.nodecredentials import CSRS, NodeCredentialSigner
from master.apiserver.handlers import SAFE_TOKEN, Handlers, Request
from master.apiserver.jshealth import READ_DEADLINE, JetStreamWatch
from master.apiserver.podsecurity.admission import PodSecurityAdmission, PodSecurityConfig
from master.apiserver.listers import CachedLister
from master.apiserver.resource_policies import ResourcePolicies
from master.apiserver.replies import Claim, ReplyCache
from master.apiserver.settings import ApiServerSettings
from master.apiserver.telemetry import ApiMetrics

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 3 * 1024 * 1024  # as kube-apiserver's request body limit
MAX_DEPTH = 100
MAX_IN_FLIGHT = 2000
_STR_FIELDS = ("namespace", "name", "subresource")
VERSION_SUFFIX = ".version.get"
BACKUP_SUFFIX = subjects.backup_subject("")[len(subjects.API_PREFIX) + 1:]  # ".-.backup"
UPGRADE_SUFFIX = upgrade_suffix()  # ".-.upgrade"


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when maps/lists nest deeper than ``limit`` (recursion is bounded by ``limit``)."""

    def ok(v: Any, level: int) -> bool:
        if level > limit:
            return False
        for x in (v.values() if type(v) is dict else v):
            tx = type(x)
            if (tx is dict or tx is list) and not ok(x, level + 1):
                return False
        return True

    return type(value) in (dict, list) and not ok(value, 0)


def caller_of(subject: str) -> Identity:
    """The bus identity that sent a request (NATS lets each identity publish only under its own name)."""
    try:
        caller, _, _ = subjects.parse_api_subject(subject)
        return Identity.parse(caller)
    except ValueError:
        raise errors.NotFound(404, f"no API at subject {subject}") from None


def user_of(caller: Identity, payload: dict) -> UserInfo:
    """The user a request acts for: the caller's own, or — from the gateway only — the HTTP user it authenticated
    (``user`` in the payload). Anyone else naming a user is refused."""
    given = payload.get("user")
    if given is None:
        return user_for_identity(caller)
    if caller.role != roles.GATEWAY:
        raise errors.ApiError(403, f"{caller.token} may not act for another user (only the gateway passes on the "
                              "user it authenticated)", "Forbidden")
    try:
        return UserInfo.from_dict(given)
    except ValueError as e:
        raise errors.bad_request(str(e)) from None


def parse_request(subject: str, data: bytes, res: Resource | None = None) -> tuple[Request, bool]:
    """Decode one request; raises ApiError (400/403/404/413) for what cannot be served. ``res``: the resource the
    subject names, when the caller has looked it up (a custom resource); else a built-in one."""
    as_json = codec.is_json(data)
    caller = caller_of(subject)
    _, resource, verb = subjects.parse_api_subject(subject)
    res = res or by_bus_name(resource)
    if res is None:
        raise errors.NotFound(404, f'the server doesn\'t have a resource type "{resource}"')
    if len(data) > MAX_REQUEST_BYTES:
        raise errors.too_large(f"the request is {len(data)} bytes, the limit is {MAX_REQUEST_BYTES}")
    if data.strip():
        try:
            payload, as_json = codec.decode(data)
        except ValueError as e:
            raise errors.bad_request(f"the request payload could not be decoded: {e}") from None
    else:
        payload = {}
    if not isinstance(payload, dict):
        raise errors.bad_request("the request payload must be a map")
    if _too_deep(payload):
        raise errors.bad_request(f"the request is nested deeper than {MAX_DEPTH} levels")
    for f in _STR_FIELDS:
        if payload.get(f) is not None and not isinstance(payload[f], str):
            raise errors.bad_request(f"{f} must be a string")
    ns = payload.get("namespace")
    if ns and not SAFE_TOKEN.fullmatch(ns):
        raise errors.not_found("namespaces", ns)
    options = payload.get("options") or {}
    if not isinstance(options, dict):
        raise errors.bad_request("options must be a map")
    for f in ("labelSelector", "fieldSelector", "patchType", "propagationPolicy", "fieldManager"):
        if options.get(f) is not None and not isinstance(options[f], str):
            raise errors.bad_request(f"options.{f} must be a string")
    rid = payload.get("requestId")
    if rid is not None and not (isinstance(rid, str) and subjects.REQUEST_ID.fullmatch(rid)):
        raise errors.bad_request("requestId must be 8 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
    if res.custom is not None:
        res = CustomResources.at_version(res, options.get("version"))
    req = Request(res, verb, payload.get("namespace") or None, payload.get("name"),
                  payload.get("subresource") or None, payload.get("body"), options, len(data), rid,
                  user_of(caller, payload))
    return req, as_json


STORE_UNAVAILABLE = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError,
                     nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError)


#: JetStream's errors for a store that has no room left ("insufficient resources", "insufficient storage resources
#: available"): a nats-server started on a full disk gives itself no storage and answers every write with one
OUT_OF_SPACE_CODES = (10023, 10047)


def out_of_space(e: Exception) -> bool:
    return isinstance(e, nats.js.errors.APIError) and e.err_code in OUT_OF_SPACE_CODES


def store_unavailable(e: Exception) -> errors.ApiError:
    """The 503 a request gets when JetStream cannot answer or has no room: the client may retry. (kube-apiserver
    passes etcd's "mvcc: database space exceeded" on as a 500 with reason Unknown; a full disk here is a 503 because
    the same request may succeed later: writes resume once space is freed, as after a lost quorum.)"""
    if out_of_space(e):
        return errors.unavailable(f"the object store is out of space: JetStream refuses writes ({e.description}); "
                                  "the data disk of a nats-server is full, writes resume once space is freed")
    what = {nats.errors.TimeoutError: "did not answer in time", nats.errors.NoRespondersError: "has no responders",
            nats.js.errors.ServiceUnavailableError: "is unavailable"}.get(type(e), f"cannot be reached ({e})")
    return errors.unavailable(f"the object store (JetStream) {what}: the NATS cluster may be electing a leader or "
                              "have lost its quorum; retry")


class ApiServer:
    """Serve the API on ``nc`` (an open NATS connection)."""

    def __init__(self, nc: nats.NATS, store: NatsStore | None = None) -> None:
        self.nc = nc
        self.store = store or NatsStore(nc)
        self.namespaces = NamespaceLifecycle(self.store)
        self.authz = Authorization(self.store)
        settings = ApiServerSettings.load()
        self.authorizes = settings.authorizes  # off only to measure its cost (a benchmark)
        self.podsecurity = PodSecurityAdmission(PodSecurityConfig.from_settings(settings), self.namespaces.labels_of,
                                                self._pods_in)
        self.signer = NodeCredentialSigner(self.store, settings.bus_auth_path(), self._revoke,
                                           lambda user, sub: self.authz.may_create(user, CSRS, sub))
        self.custom = CustomResources(self.store)
        self.policy = ResourcePolicies(self.store)  # Priority, LimitRanger, ResourceQuota (and their caches)
        self.webhooks = Webhooks(self.store, self.namespaces.labels_of)  # admission webhooks
        self.accounts = CachedLister(self.store, "serviceaccounts")  # what pod admission reads (a get per pod before)
        self.handlers = Handlers(self.store, self.namespaces, self.authz, self.podsecurity, self.signer, self.custom,
                                 self.policy, self.webhooks, self.accounts)
        self.replies = ReplyCache(self.store)
        self.backups = Backups(nc, self.authz.authorizer, lambda subject, payload: user_of(caller_of(subject), payload),
                               self.replies.instance)  # `k8n backup`: the cut, every replica's writes held
        self.storage = StorageSchema(self.store)  # the schema objects are written in (bus.schema)
        self.upgrades = Upgrades(self.store, self.storage, self.authz.authorizer,
                                 lambda subject, payload: user_of(caller_of(subject), payload),
                                 self.signer.cluster_auth, self.bus_url)  # `k8n upgrade plan|apply`
        self._sub = None
        self._tasks: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.jetstream = JetStreamWatch(nc)  # writes refused at once while JetStream cannot take them
        self.metrics = telemetry.metrics(ApiMetrics)  # None: metrics off (bus.telemetry)

    async def _store_ready_when_jetstream_answers(self) -> None:
        """Make the buckets and what exists from the first start, waiting while JetStream cannot answer or take
        writes yet (a NATS cluster still electing its meta leader, or without quorum: an API server restarted then
        waits for it instead of exiting)."""
        delay = 0.2
        while True:
            try:
                await self.store.ensure_buckets()
                await self.storage.ensure()  # before the first write: a new cluster is written in the newest schema
                await bootstrap(self.store)
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                    nats.js.errors.ServiceUnavailableError, errors.Unavailable) as e:
                log.warning("JetStream does not answer yet (%s); trying again in %.1fs", type(e).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def bus_url(self) -> str:
        """The NATS servers this API server knows (what an account update is pushed to)."""
        return ",".join(f"{u.scheme}://{u.netloc}" for u in self.nc.servers)

    async def _revoke(self, keys: list[str]) -> None:
        """Revoke NATS users on every server (the signer's tool: a deleted Node's credentials)."""
        from bus.natsrevoke import revoke_users

        await revoke_users(self.bus_url(), self.signer.cluster_auth(), keys)

    async def _pods_in(self, namespace: str) -> list[dict]:
        items, _ = await self.store.list(by_plural("pods"), namespace)
        return items

    async def start(self) -> None:
        await self._store_ready_when_jetstream_answers()
        await self.authz.start()
        await self.namespaces.start()
        await self.custom.start()
        await self.policy.start()
        await self.accounts.start()
        await self.webhooks.start()
        await self.replies.start()
        self.jetstream.start()
        await self.backups.start()
        self.storage.start()
        self._sub = await self.nc.subscribe(
            subjects.api_wildcard(), queue=subjects.API_QUEUE, cb=self._on_request,
            pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.nc.flush()
        log.info("apiserver serving %s (queue %s)", subjects.api_wildcard(), subjects.API_QUEUE)

    async def _on_request(self, msg: Msg) -> None:
        await self._slots.acquire()
        t = asyncio.create_task(self._serve(msg))
        self._tasks.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task) -> None:
        self._tasks.discard(t)
        self._slots.release()

    async def _serve(self, msg: Msg) -> None:
        as_json = codec.is_json(msg.data)
        warnings: list[str] = []
        if msg.subject.endswith(VERSION_SUFFIX):
            if msg.reply:
                await msg.respond(codec.encode({"code": 200, "body": version_info()}, as_json))
            return
        if msg.subject.endswith(BACKUP_SUFFIX):
            await self.backups.serve(msg)
            return
        if msg.subject.endswith(UPGRADE_SUFFIX):
            await self.upgrades.serve(msg)
            return
        start = time.perf_counter()
        claim: Claim | None = None
        req: Request | None = None
        try:
            req, as_json = parse_request(msg.subject, msg.data, await self._resource_of(msg.subject))
            if self.authorizes:
                await self._authorize(req)
            down = self.jetstream.health.refusal()
            if down is not None and req.verb in MUTATING_VERBS and not req.dry_run:
                raise down
            if req.request_id is not None and req.verb in MUTATING_VERBS and not req.dry_run:
                got = await self.replies.claim(req.request_id, msg.subject, msg.data)
                if not isinstance(got, Claim):  # a repeat: the first attempt's reply, byte for byte
                    reply = codec.unpack(got)
                    await self._respond(msg, codec.encode(reply, True) if as_json else got)
                    self._count(req, reply.get("code", 200), start)
                    return
                claim = got
            held = req.verb in MUTATING_VERBS and not req.dry_run  # a backup's cut holds writes
            if held:
                await self.backups.hold.enter()
            try:
                code, body, warnings = await self._handle(req, down is not None)
            finally:
                if held:
                    self.backups.hold.leave()
        except errors.ApiError as e:
            code, body = e.code, e.status()
        except STORE_UNAVAILABLE as e:  # a NATS cluster electing leaders, without quorum, or with JetStream off
            err = store_unavailable(e)
            code, body = err.code, err.status()
        except Exception as e:  # never let one request take the server down
            if out_of_space(e):  # a nats-server whose disk is full
                err = store_unavailable(e)
            else:
                log.exception("request on %s failed", msg.subject)
                err = errors.internal(f"{type(e).__name__}: {e}")
            code, body = err.code, err.status()
        if not msg.reply and claim is None:
            self._count(req, code, start)
            return
        reply = {"code": code, "body": body}
        if warnings:
            reply["warnings"] = warnings
        if claim is None:
            await self._respond(msg, codec.encode(reply, as_json))
            self._count(req, code, start)
            return
        packed = codec.pack(reply)
        try:
            await self.replies.remember(claim, packed)  # goes out just before the reply, unacknowledged
        except Exception as e:  # a repeat of this id will be told "in progress" until the entry expires
            log.warning("could not cache the reply to request %s: %s", claim.key, e)
        await self._respond(msg, codec.encode(reply, True) if as_json else packed)
        self._count(req, code, start)

    async def _authorize(self, req: Request) -> None:
        """RBAC (or the node authorizer); a refused mutating request is audited too, as Kubernetes' audit log has it."""
        try:
            await self.authz.authorize(req)
        except errors.ApiError as e:
            if req.verb in MUTATING_VERBS:
                await self.handlers.audit.record(req, time.time(), e.code, reason=e.reason)
            raise

    def _count(self, req: Request | None, code: int, start: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(req, code, time.perf_counter() - start)

    async def _resource_of(self, subject: str) -> Resource | None:
        """The resource a request subject names when it is a custom one (looked up if not yet known); None lets
        :func:`parse_request` answer for the built-in ones and the unknown."""
        try:
            token = subjects.parse_api_subject(subject)[1]
        except ValueError:
            return None
        if by_plural(token) is not None or "_" not in token:
            return None
        return await self.custom.resolve(token)

    async def _handle(self, req: Request, jetstream_down: bool) -> tuple[int, Any, list[str]]:
        """Serve a request; while JetStream is down a read gets :data:`READ_DEADLINE` (a replica that is still up
        answers at once) and a failure says why JetStream is down."""
        if not jetstream_down:
            return await self.handlers.handle(req)
        try:
            return await asyncio.wait_for(self.handlers.handle(req), READ_DEADLINE)
        except (TimeoutError, errors.Unavailable, *STORE_UNAVAILABLE):
            raise self.jetstream.health.refusal() or errors.unavailable("the object store (JetStream) is "
                                                                       "unavailable; retry") from None

    async def _respond(self, msg: Msg, data: bytes) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(data)
        except Exception:
            log.exception("could not reply on %s", msg.subject)

    async def stop(self) -> None:
        await self.jetstream.stop()
        if self._sub is not None:
            try:
                await self._sub.drain()
            except Exception:
                pass
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self.replies.stop()
        await self.backups.stop()
        await self.storage.stop()
        await self.custom.stop()
        await self.policy.stop()
        await self.accounts.stop()
        await self.webhooks.stop()
        await self.namespaces.stop()
        await self.authz.stop()


async def run(server_url: str, stop: asyncio.Event) -> None:
    """Run one apiserver until ``stop`` is set."""
    store = await connect_store(server_url, Identity(roles.APISERVER))
    async with telemetry.publishing(store.nc, roles.APISERVER) as tel:
        api = ApiServer(store.nc, store)
        if tel is not None and api.metrics is not None:
            tel.on_publish(lambda: api.metrics.jetstream.refresh(store.nc))
        await api.start()
        try:
            await stop.wait()
        finally:
            await api.stop()
    await store.nc.drain()
