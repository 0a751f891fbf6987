"""The verbs: create, get, list, update, patch, delete, deletecollection, and the status, scale
and binding subresources. Each takes a decoded request and returns ``(code, body, warnings)``
or raises :class:`bus.errors.ApiError`."""

from __future__ import annotations

import logging
import time
from typing import Any

import nats.errors

from bus import codec, errors, history, listchunks, nodecsr, subjects
from bus.crd import convert
from bus.client import selector_matcher
from bus.meta import deep_copy, format_time, generate_name, now, set_condition
from bus.models import model_for_kind, to_dict, unknown_fields
from bus.models.decode import decode
from bus.resources import Resource
from bus.store import NatsStore
from bus.validation import security_warnings, validate_custom, validate_object, validate_update
from master.apiserver import strategy
from master.apiserver.authz import REVIEW_KINDS, Authorization
from master.apiserver.customresources import CustomResources
from master.apiserver.listers import CachedLister
from master.apiserver.admission import IMMORTAL_NAMESPACES, NamespaceLifecycle, admit_service_account
from master.apiserver import history as object_history
from master.apiserver import ssa, tokenrequest
from master.apiserver.eviction import evict
from master.apiserver.nodecredentials import NodeCredentialSigner
from master.apiserver.patch import APPLY, STRATEGIC, apply_patch, patch_kind
from master.apiserver.podsecurity.admission import PodSecurityAdmission
from master.apiserver.resource_policies import ResourcePolicies
from master.apiserver.request import Reply, Request
from master.apiserver.service_alloc import allocated, patch_allocated
from master.apiserver.webhooks import CREATE, DELETE, UPDATE, Webhooks, attributes

log = logging.getLogger(__name__)

MAX_OBJECT_BYTES = 1536 * 1024  # what etcd would take: 1.5 MiB
CAS_RETRIES = 8
PROPAGATION = ("Orphan", "Background", "Foreground")
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
POLICY_ANNOTATION = "k8n.io/propagation-policy"
SAFE_TOKEN = subjects.SAFE_TOKEN  # names and namespaces that can be KV keys


def _warn_unknown(model: Any) -> list[str]:
    fields = unknown_fields(model)
    if not fields:
        return []
    names = ", ".join(f'"{f}"' for f in fields[:20])
    more = f" and {len(fields) - 20} more" if len(fields) > 20 else ""
    return [f"k8n does not implement field(s) {names}{more}; they are stored and returned unchanged"]


def _check_size(res: Resource, name: str, obj: dict | None, size: int | None = None) -> None:
    size = len(codec.pack(obj)) if size is None else size
    if size > MAX_OBJECT_BYTES:
        raise errors.too_large(
            f'{res.qualified} "{name}" is too large: {size} bytes, the limit is {MAX_OBJECT_BYTES} bytes')


def _rv(obj: dict) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)


class Handlers:
    def __init__(self, store: NatsStore, namespaces: NamespaceLifecycle, authz: Authorization | None = None,
                 podsecurity: PodSecurityAdmission | None = None, signer: NodeCredentialSigner | None = None,
                 custom: CustomResources | None = None, policy: ResourcePolicies | None = None,
                 webhooks: Webhooks | None = None, accounts: CachedLister | None = None) -> None:
        self.store = store
        self.accounts = accounts  # ServiceAccounts for pod admission (cached, else read live); None: read live
        self.webhooks = webhooks or Webhooks(store, namespaces.labels_of)  # admission webhooks (started by the server)
        self.policy = policy or ResourcePolicies(store)  # Priority, LimitRanger, ResourceQuota
        self.custom = custom or CustomResources(store)  # CustomResourceDefinitions and the resources they serve
        self.signer = signer  # signs nodes' bus credentials (CSRs of k8n.io/bus-node); revokes them with the Node
        self.namespaces = namespaces
        self.authz = authz  # the escalation check on roles and bindings, and the access reviews
        self.podsecurity = podsecurity  # Pod Security admission (pods, pod templates, namespace labels)
        self.audit = object_history.Auditor(getattr(store, "nc", None))  # every mutating request (K8N_AUDIT)

    async def handle(self, req: Request) -> Reply:
        """Serve one request; a mutating one's writes carry who made it (its object history) and its outcome is
        audited."""
        writer = object_history.writer(req)
        if writer is None:
            return await self._serve(req)
        received = time.time()
        token = history.WRITER.set(writer)
        try:
            reply = await self._serve(req)
        except errors.ApiError as e:
            await self.audit.record(req, received, e.code, reason=e.reason)
            raise
        except Exception as e:  # the server answers a failing store with a 503, anything else with a 500
            unavailable = isinstance(e, nats.errors.Error)
            await self.audit.record(req, received, 503 if unavailable else 500,
                                    reason="ServiceUnavailable" if unavailable else "InternalError")
            raise
        finally:
            history.WRITER.reset(token)
        await self.audit.record(req, received, reply[0], reply[1])
        return reply

    async def _serve(self, req: Request) -> Reply:
        if req.res.namespaced and not req.namespace and req.verb not in ("list",):
            raise errors.bad_request("a namespace is required for namespaced resources")
        if not req.res.stored and req.verb != "create":  # tokenreviews: create-only, nothing to read back
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        sub = req.subresource
        if sub == history.HISTORY and req.verb in ("get", "list"):
            return await object_history.serve(self.store.nc, req)
        if sub and sub not in req.res.subresources:
            raise errors.NotFound(404, f'the server could not find the requested resource ({req.res.plural}/{sub})')
        fn = getattr(self, f"do_{req.verb}", None)
        if fn is None:
            raise errors.method_not_allowed(f"verb {req.verb!r} is not supported")
        if req.res.custom is None:
            return await fn(req)
        code, body, warnings = await fn(req)
        return code, convert(req.res, body), warnings  # at the version the request named

    # ---- validation ------------------------------------------------------------------------

    def _validate(self, res: Resource, body: dict, name: str) -> tuple[dict, list[str]]:
        if res.custom is not None:
            obj, causes = validate_custom(res, body)
            if causes:
                raise errors.invalid(res.kind, name, causes, res.group)
            return obj, []
        model, causes = validate_object(res, body)
        if causes:
            raise errors.invalid(res.kind, name, causes, res.group)
        return to_dict(model), _warn_unknown(model) + security_warnings(model)

    def _validate_status(self, res: Resource, new: dict, cur: dict, name: str) -> tuple[dict, list[str]]:
        """A status write: the rest of the object is the stored one (``prepare_status_update``), validated when it
        was stored, so only the status is decoded and normalized; the rest is kept as stored."""
        if res.custom is not None or not strategy.same_but_status(new, cur):
            return self._validate(res, new, name)
        partial = {"apiVersion": res.api_version, "kind": res.kind, "metadata": cur.get("metadata") or {}}
        if "status" in new:
            partial["status"] = new["status"]
        model, causes = decode(model_for_kind(res.kind), partial)
        if causes or model is None:
            raise errors.invalid(res.kind, name, causes, res.group)
        out = {k: v for k, v in new.items() if k != "status"}
        status = to_dict(model).get("status")
        if status is not None:
            out["status"] = status
        return out, _warn_unknown(model)

    # ---- create ----------------------------------------------------------------------------

    async def do_create(self, req: Request) -> Reply:
        if req.subresource == "binding":
            return await self._bind(req)
        if req.subresource == "eviction":
            self._name(req)  # a name is required; one that cannot exist is a 404
            return await evict(req, self.store, self.do_delete)
        if req.subresource == "token":
            self._name(req)
            return await tokenrequest.create_token(self.store, req)
        if req.res.kind == "TokenReview":
            return await tokenrequest.review_token(self.store, req)
        if req.res.kind in REVIEW_KINDS and self.authz is not None:
            return await self.authz.review(req)
        if req.subresource:
            raise errors.method_not_allowed(f"create is not supported on {req.res.plural}/{req.subresource}")
        res, body = req.res, req.body
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of a create must be a {res.kind} object")
        self._check_type(res, body)
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.invalid(res.kind, "", [errors.Cause("metadata", "Invalid value: must be an object")], res.group)
        ns = self._namespace_for(req, meta)
        _check_size(res, str(meta.get("name") or ""), None, req.size)
        if not meta.get("name") and isinstance(meta.get("generateName"), str) and meta["generateName"]:
            meta["name"] = generate_name(meta["generateName"])
        name = str(meta.get("name") or "")
        obj, warnings = self._validate(res, body, name)
        if self.authz is not None:
            await self.authz.admit(req, obj, None)
        if res.namespaced:
            await self.namespaces.admit_create(ns)
        self.custom.check_create(res)
        if res.kind == "Pod":
            await admit_service_account(self.store, obj, ns, self.accounts)
        await self.policy.admit_create(res, ns, obj)
        obj, more = await self._mutated(req, CREATE, name, obj)
        warnings += more
        if self.podsecurity is not None:
            warnings += await self.podsecurity.admit(res.kind, ns, req.user.name, obj)
        strategy.prepare_create(res, obj, ns)
        warnings += await self.webhooks.validate(attributes(req, CREATE, name, obj))
        if res.kind == "CustomResourceDefinition":
            await self.custom.before_create(obj, req.dry_run)
        if res.kind == "CertificateSigningRequest" and not req.dry_run:
            if self.signer is None:
                NodeCredentialSigner.stamp_requester(obj, req.user)
            else:
                await self.signer.admit(obj, req.user)
        ssa.track_create(res, obj, req.options)
        async with allocated(self.store, res, None, obj, req.dry_run), \
                self.policy.charged(res, ns, obj, dry_run=req.dry_run):  # ClusterIPs, NodePorts; quota
            if req.dry_run:
                return 201, obj, warnings
            out = await self.store.create(res, ns, name, obj)
        if res.kind == "CertificateSigningRequest" and self.signer is not None:
            await self._supersede(out)
        if res.kind == "Namespace":
            self.namespaces.observe(out)  # this server's next request sees its labels (Pod Security)
        if res.kind == "CustomResourceDefinition":
            self.custom.after_write(out)
        return 201, out, warnings

    async def _mutated(self, req: Request, operation: str, name: str, obj: dict | None,
                       old: dict | None = None) -> tuple[dict | None, list[str]]:
        """The mutating admission webhooks' version of ``obj`` (validated again if one changed it)."""
        return await self.webhooks.mutate(attributes(req, operation, name, obj, old),
                                          lambda o: self._validate(req.res, o, name)[0])

    async def _supersede(self, csr: dict) -> None:
        """A node's newly signed bus credentials revoke those signed for it before."""
        node = (csr["metadata"].get("labels") or {}).get(nodecsr.NODE_LABEL)
        if node and nodecsr.issued_jwt(csr):
            try:
                await self.signer.revoke_node(node, but=csr["metadata"]["name"])
            except Exception as e:  # signed and stored: the new credentials work; the old ones stay until retried
                log.error("could not revoke the earlier bus credentials of node %s: %s", node, e)

    async def _revoke_node(self, name: str) -> None:
        """A deleted Node's bus credentials are revoked (the Node is gone whatever happens here)."""
        try:
            await self.signer.revoke_node(name)
        except Exception as e:
            log.error("could not revoke the bus credentials of deleted node %s: %s", name, e)

    def _check_type(self, res: Resource, body: dict) -> None:
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind is not None and kind != res.kind:
            raise errors.bad_request(f"the object kind {kind!r} does not match the resource {res.plural!r} ({res.kind})")
        if api_version is not None and api_version != res.api_version:
            raise errors.bad_request(
                f"the API version {api_version!r} is not served for {res.kind}; use {res.api_version!r}")

    def _namespace_for(self, req: Request, meta: dict) -> str | None:
        if not req.res.namespaced:
            return None
        ns = meta.get("namespace")
        if ns and ns != req.namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        return req.namespace

    # ---- reads -----------------------------------------------------------------------------

    async def do_get(self, req: Request) -> Reply:
        obj = await self.store.get(req.res, req.namespace, self._name(req))
        if req.subresource == "scale":
            return 200, strategy.scale_of(req.res, obj), []
        return 200, obj, []  # a custom resource's apiVersion is the request's (handle converts)

    async def do_list(self, req: Request) -> Reply:
        res = req.res
        match = selector_matcher(res, req.options.get("labelSelector"), req.options.get("fieldSelector"))
        limit, token = listchunks.chunking(req.options)
        if limit or token:  # one chunk, from the first chunk's snapshot
            return 200, listchunks.chunk_body(res, *await self.store.list_page(
                res, req.namespace if res.namespaced else None, limit or listchunks.UNLIMITED, token, match)), []
        items, rv = await self.store.list(res, req.namespace if res.namespaced else None)
        items = sorted((o for o in items if match(o)),
                       key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"].get("name", "")))
        return 200, {"apiVersion": res.api_version, "kind": f"{res.kind}List",
                     "metadata": {"resourceVersion": str(rv)}, "items": items}, []

    def _name(self, req: Request) -> str:
        if not req.name or not isinstance(req.name, str):
            raise errors.bad_request("a resource name is required")
        if not SAFE_TOKEN.fullmatch(req.name):  # no such object can exist (create validates names)
            raise errors.not_found(req.res.plural, req.name, req.res.group)
        return req.name

    # ---- update / patch --------------------------------------------------------------------

    async def do_update(self, req: Request) -> Reply:
        name = self._name(req)
        body = req.body
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of an update must be a {req.res.kind} object")
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") not in (None, name):
            raise errors.bad_request("the name of the object does not match the name on the request")
        want_rv = meta.get("resourceVersion")
        if req.subresource == "scale":
            return await self._write_scale(req, lambda cur: body, want_rv)

        def mutate(cur: dict) -> dict:
            return body

        return await self._write(req, mutate, want_rv)

    async def do_patch(self, req: Request) -> Reply:
        self._name(req)
        ptype = patch_kind(req.options.get("patchType"), req.options.get("force"))
        if req.res.custom is not None and ptype == STRATEGIC:
            raise errors.ApiError(415, "the body of the request was in an unknown format - accepted media types "
                                       "include: application/json-patch+json, application/merge-patch+json, "
                                       "application/apply-patch+yaml", "UnsupportedMediaType")
        patch = req.body
        want_rv = None
        if isinstance(patch, dict) and isinstance(patch.get("metadata"), dict):
            want_rv = patch["metadata"].get("resourceVersion")
        if ptype == APPLY:
            return await self._apply(req, want_rv)

        def mutate(cur: dict) -> dict:
            return apply_patch(cur, patch, ptype, "Scale" if req.subresource == "scale" else req.res.kind)

        if req.subresource == "scale":
            return await self._write_scale(req, mutate, want_rv)
        return await self._write(req, mutate, want_rv)

    async def _apply(self, req: Request, want_rv: Any) -> Reply:
        """Server-side apply: merged into the object, or creates it (201)."""
        if req.subresource:
            raise errors.method_not_allowed(f"apply is not supported on {req.res.plural}/{req.subresource}")
        manager, force = ssa.apply_options(req.options)
        for _ in range(CAS_RETRIES):
            try:
                return await self._write(req, lambda cur: ssa.apply(
                    req.res, cur, req.body, manager, force, req.name, req.namespace), want_rv)
            except errors.NotFound:
                if want_rv not in (None, ""):
                    raise
            obj = ssa.apply(req.res, None, req.body, manager, force, req.name, req.namespace)
            try:
                return await self.do_create(Request(req.res, "create", req.namespace, req.name, None, obj,
                                                    {"dryRun": req.options.get("dryRun")}, req.size,
                                                    user=req.user))
            except errors.AlreadyExists:
                continue
        raise errors.conflict(req.res.plural, req.name or "", req.res.group, "too many concurrent writers; try again")

    async def _write(self, req: Request, mutate: Any, want_rv: Any) -> Reply:
        """Read, mutate, validate, compare-and-set; retried on conflict unless the caller
        named a resourceVersion (then a stale one is a 409)."""
        res, name = req.res, self._name(req)
        for attempt in range(CAS_RETRIES):
            cur = await self.store.get(res, req.namespace, name, consistent=attempt > 0)
            if want_rv not in (None, "") and str(want_rv) != cur["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            new = mutate(deep_copy(cur))
            if not isinstance(new, dict):
                raise errors.bad_request("the result is not an object")
            self._check_type(res, new)
            new.setdefault("apiVersion", res.api_version)
            new.setdefault("kind", res.kind)
            patch_allocated(res, cur, new)
            if req.subresource == "status":
                new = strategy.prepare_status_update(res, cur, new)
                new_obj, warnings = self._validate_status(res, new, cur, name)
            else:
                new_obj, warnings = self._validate(res, new, name)
            if req.subresource != "status":
                strategy.prepare_update(res, cur, new_obj)
                self.policy.admit_update(res, cur, new_obj)
                new_obj, more = await self._mutated(req, UPDATE, name, new_obj, cur)
                warnings += more
                if res.kind == "CustomResourceDefinition":
                    self.custom.before_update(new_obj)
                causes = validate_update(res, cur, new_obj)
                if causes:
                    raise errors.invalid(res.kind, name, causes, res.group)
                if self.authz is not None:
                    await self.authz.admit(req, new_obj, cur)
                if self.podsecurity is not None:
                    warnings += await self.podsecurity.admit(res.kind, req.namespace, req.user.name, new_obj, cur)
            else:
                new_obj, more = await self._mutated(req, UPDATE, name, new_obj, cur)
                warnings += more
                new_obj["metadata"] = cur["metadata"]
            warnings += await self.webhooks.validate(attributes(req, UPDATE, name, new_obj, cur))
            strategy.complete_status(res, new_obj)
            ssa.track_write(res, cur, new_obj, req.options, req.subresource)
            new_obj["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            _check_size(res, name, new_obj if req.verb == "patch" else None, None if req.verb == "patch" else req.size)
            if strategy.unchanged(cur, new_obj):
                return 200, cur, warnings
            if req.dry_run:
                return 200, new_obj, warnings
            meta = new_obj["metadata"]
            removing = meta.get("deletionTimestamp") and not meta.get("finalizers") and self._may_remove(res, new_obj)
            try:
                async with allocated(self.store, res, cur, None if removing else new_obj), self.policy.charged(
                        res, req.namespace, None if removing or req.subresource else new_obj, cur):
                    if removing:
                        out = await self.store.delete(res, req.namespace, name, new_obj, _rv(cur))
                    else:
                        out = await self.store.update(res, req.namespace, name, new_obj, _rv(cur))
                        if res.kind == "Namespace":
                            self.namespaces.observe(out)
                if res.kind == "CustomResourceDefinition" and removing:
                    await self.custom.removed(out)
                elif res.kind == "CustomResourceDefinition":
                    self.custom.after_write(out)
            except errors.Conflict:
                if want_rv not in (None, ""):
                    raise
                continue
            return 200, out, warnings
        raise errors.conflict(res.plural, name, res.group, "too many concurrent writers; try again")

    async def _write_scale(self, req: Request, mutate: Any, want_rv: Any) -> Reply:
        res, name = req.res, self._name(req)
        for attempt in range(CAS_RETRIES):
            cur = await self.store.get(res, req.namespace, name, consistent=attempt > 0)
            if want_rv not in (None, "") and str(want_rv) != cur["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            scale = mutate(strategy.scale_of(res, cur))
            replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid("Scale", name, [errors.Cause(
                    "spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")], "autoscaling")
            new = deep_copy(cur)
            strategy.set_replicas(res, new, replicas)
            if new == cur:
                return 200, strategy.scale_of(res, cur), []
            strategy.prepare_update(res, cur, new)
            ssa.track_write(res, cur, new, req.options, "scale")
            if req.dry_run:
                return 200, strategy.scale_of(res, new), []
            try:
                out = await self.store.update(res, req.namespace, name, new, _rv(cur))
            except errors.Conflict:
                if want_rv not in (None, ""):
                    raise
                continue
            return 200, strategy.scale_of(res, out), []
        raise errors.conflict(res.plural, name, res.group, "too many concurrent writers; try again")

    def _may_remove(self, res: Resource, obj: dict) -> bool:
        """A terminating object with no finalizers left goes — except a pod still shutting down
        on its node (its agent removes it with grace 0)."""
        if res.kind == "Namespace":
            return not (obj.get("spec") or {}).get("finalizers")
        if res.kind != "Pod":
            return True
        meta = obj["metadata"]
        return meta.get("deletionGracePeriodSeconds") in (0, None) or not (obj.get("spec") or {}).get("nodeName")

    # ---- binding ---------------------------------------------------------------------------

    async def _bind(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        target = body.get("target") if isinstance(body.get("target"), dict) else {}
        node = target.get("name")
        name = self._name(req)
        if not node or not isinstance(node, str):
            raise errors.invalid("Binding", name, [errors.Cause("target.name", "Required value", "FieldValueRequired")])
        uid = (body.get("metadata") or {}).get("uid") if isinstance(body.get("metadata"), dict) else None
        res = req.res
        for attempt in range(CAS_RETRIES):
            pod = await self.store.get(res, req.namespace, name, consistent=attempt > 0)
            meta, spec = pod["metadata"], pod.setdefault("spec", {})
            if uid and meta.get("uid") != uid:
                raise errors.conflict(res.plural, name, why=f"the pod's UID is {meta.get('uid')}, not {uid}")
            if meta.get("deletionTimestamp"):
                raise errors.conflict(res.plural, name, why="the pod is being deleted")
            if spec.get("nodeName"):
                raise errors.conflict(res.plural, name, why=f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
            spec["nodeName"] = node
            status = pod.setdefault("status", {})
            status["conditions"] = set_condition(status.get("conditions") or [], {
                "type": "PodScheduled", "status": "True", "lastProbeTime": None,
                "lastTransitionTime": now()})
            try:
                await self.store.update(res, req.namespace, name, pod, _rv(pod))
            except errors.Conflict:
                continue
            return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, []
        raise errors.conflict(res.plural, name, why="too many concurrent writers; try again")

    # ---- delete ----------------------------------------------------------------------------

    async def do_delete(self, req: Request) -> Reply:
        res, name = req.res, self._name(req)
        opts = req.options
        policy = opts.get("propagationPolicy")
        if policy is not None and policy not in PROPAGATION:
            raise errors.invalid("DeleteOptions", "", [errors.Cause(
                "propagationPolicy", f'Unsupported value: "{policy}": supported values: "Orphan", "Background", "Foreground"',
                "FieldValueNotSupported")])
        grace = opts.get("gracePeriodSeconds")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise errors.bad_request("gracePeriodSeconds must be an integer")
        pre = opts.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise errors.bad_request("preconditions must be an object")
        if res.kind == "Namespace" and name in IMMORTAL_NAMESPACES:
            raise errors.forbidden(res.plural, name, "this namespace may not be deleted")
        self.policy.admit_delete(res, name)
        for attempt in range(CAS_RETRIES):
            cur = await self.store.get(res, req.namespace, name, consistent=attempt > 0)
            meta = cur["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta.get("resourceVersion"):
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                      f"ResourceVersion in object meta: {meta.get('resourceVersion')}")
            await self._mutated(req, DELETE, name, None, cur)
            await self.webhooks.validate(attributes(req, DELETE, name, None, cur))
            new = deep_copy(cur)
            nmeta = new["metadata"]
            finalizers = list(nmeta.get("finalizers") or [])
            if policy == "Orphan" and ORPHAN_FINALIZER not in finalizers:
                finalizers.append(ORPHAN_FINALIZER)
            elif policy == "Foreground" and FOREGROUND_FINALIZER not in finalizers:
                finalizers.append(FOREGROUND_FINALIZER)
            if policy:
                nmeta.setdefault("annotations", {})[POLICY_ANNOTATION] = policy
            if finalizers:
                nmeta["finalizers"] = finalizers
            pod_grace = strategy.pod_delete_grace(cur, grace) if res.kind == "Pod" else 0
            if res.kind == "Namespace":
                new.setdefault("status", {})["phase"] = "Terminating"
            graceful = pod_grace > 0 or bool(finalizers) or (
                res.kind == "Namespace" and bool((new.get("spec") or {}).get("finalizers")))
            if graceful:
                if nmeta.get("deletionTimestamp"):
                    # Already terminating: a shorter grace period may still speed it up.
                    old_grace = nmeta.get("deletionGracePeriodSeconds")
                    if res.kind == "Pod" and old_grace is not None and pod_grace < old_grace:
                        nmeta["deletionGracePeriodSeconds"] = pod_grace
                        if pod_grace == 0 and not finalizers:
                            graceful = False
                else:
                    nmeta["deletionTimestamp"] = format_time(time.time() + pod_grace)
                    nmeta["deletionGracePeriodSeconds"] = pod_grace
            if req.dry_run:
                return 200, new, []
            try:
                if graceful:
                    if new == cur:
                        return 200, cur, []
                    out = await self.store.update(res, req.namespace, name, new, _rv(cur))
                    return 200, out, []
                if not nmeta.get("deletionTimestamp"):
                    nmeta["deletionTimestamp"] = now()
                    nmeta["deletionGracePeriodSeconds"] = 0
                async with allocated(self.store, res, cur, None):
                    out = await self.store.delete(res, req.namespace, name, new, _rv(cur))
                if res.kind == "CustomResourceDefinition":
                    await self.custom.removed(out)
                if res.kind == "Node" and self.signer is not None:
                    await self._revoke_node(name)
                return 200, out, []
            except errors.Conflict:
                if pre.get("resourceVersion"):
                    raise
                continue
        raise errors.conflict(res.plural, name, res.group, "too many concurrent writers; try again")

    async def do_deletecollection(self, req: Request) -> Reply:
        res = req.res
        match = selector_matcher(res, req.options.get("labelSelector"), req.options.get("fieldSelector"))
        items, rv = await self.store.list(res, req.namespace if res.namespaced else None)
        deleted = []
        for o in items:
            if not match(o):
                continue
            m = o["metadata"]
            sub = Request(res, "delete", m.get("namespace"), m["name"], options={
                k: v for k, v in req.options.items() if k in ("gracePeriodSeconds", "propagationPolicy", "dryRun")})
            try:
                _, out, _ = await self.do_delete(sub)
                deleted.append(out)
            except errors.NotFound:
                pass
        return 200, {"apiVersion": res.api_version, "kind": f"{res.kind}List",
                     "metadata": {"resourceVersion": str(rv)}, "items": deleted}, []
