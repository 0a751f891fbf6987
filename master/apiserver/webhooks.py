"""Dynamic admission: the MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins
(``k8s.io/apiserver/pkg/admission/plugin/webhook``). The configurations are watched (an informer on the API
server's store); a write is matched against each webhook's rules, namespaceSelector and objectSelector, and sent as
an ``admission.k8s.io/v1`` AdmissionReview over HTTPS (aiohttp, verified against the webhook's caBundle).
Mutating webhooks run first, one by one in name order, their JSONPatches applied; validating webhooks then run in
parallel and any refusal refuses the request with kube-apiserver's message. A webhook that cannot be called
(unreachable, timed out, a bad answer) refuses the request under failurePolicy Fail and is passed over under Ignore.
Webhook configurations themselves are never intercepted."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import jsonpatch
import orjson

from bus import errors
from bus.authn import UserInfo
from bus.informer import Informer
from bus.labels import selector_from_label_selector
from bus.models.admissionregistration import DEFAULT_TIMEOUT, EQUIVALENT, FAIL, IF_NEEDED
from bus.resources import Resource, by_plural
from bus.store import NatsStore

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 30.0
REVIEW_API_VERSION = "admission.k8s.io/v1"
CONFIGURATION_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"
_OPTIONS_KIND = {CREATE: "CreateOptions", UPDATE: "UpdateOptions", DELETE: "DeleteOptions"}


class CallError(Exception):
    """The webhook could not be called or gave no usable answer (``ErrCallingWebhook``): failurePolicy decides."""


# ---- pure logic: what a webhook matches, what it is sent, what its answer means ------------------------------------


@dataclass
class Attributes:
    """One request as admission sees it (``admission.Attributes``)."""
    res: Resource
    operation: str
    namespace: str | None
    name: str
    subresource: str = ""
    obj: dict | None = None
    old: dict | None = None
    user: UserInfo = field(default_factory=lambda: UserInfo("system:anonymous"))
    dry_run: bool = False
    options: dict = field(default_factory=dict)


def resource_matches(patterns: list[str], resource: str, subresource: str) -> bool:
    """A rule's ``resources``: ``*`` is every resource but no subresource, ``*/*`` everything, ``pods/*`` every
    subresource of pods, ``*/status`` the status of everything, ``pods/status`` exactly that."""
    full = f"{resource}/{subresource}" if subresource else resource
    for p in patterns:
        if p in ("*/*", full) or (p == "*" and not subresource):
            return True
        if subresource and p in (f"{resource}/*", f"*/{subresource}"):
            return True
    return False


def rule_matches(rule: dict, operation: str, res: Resource, subresource: str, namespace: str | None) -> bool:
    def has(values: Any, value: str) -> bool:
        return "*" in (values or ()) or value in (values or ())

    if not (has(rule.get("operations"), operation) and has(rule.get("apiGroups"), res.group)
            and has(rule.get("apiVersions"), res.version)
            and resource_matches(rule.get("resources") or [], res.plural, subresource)):
        return False
    scope = rule.get("scope") or "*"
    cluster = not namespace  # a Namespace itself is cluster-scoped
    return scope == "*" or (scope == "Cluster") == cluster


def matching_resource(hook: dict, a: Attributes) -> Resource | None:
    """The resource (version) under which ``hook`` gets the request: the request's own, or — matchPolicy
    Equivalent — another served version of the same custom resource its rules name; None: not called."""
    rules = hook.get("rules") or []
    if any(rule_matches(r, a.operation, a.res, a.subresource, a.namespace) for r in rules):
        return a.res
    if (hook.get("matchPolicy") or EQUIVALENT) == EQUIVALENT and a.res.custom is not None:
        for other in a.res.custom.at_versions(a.res):
            if any(rule_matches(r, a.operation, other, a.subresource, a.namespace) for r in rules):
                return other
    return None


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A webhook's namespaceSelector / objectSelector: unset or ``{}`` matches everything."""
    if not selector:
        return True
    try:
        return selector_from_label_selector(selector).matches(labels or {})
    except ValueError:
        return False


def _labels(obj: dict | None) -> dict | None:
    return ((obj or {}).get("metadata") or {}).get("labels") if obj is not None else None


def object_selected(hook: dict, a: Attributes) -> bool:
    """objectSelector against the new object's labels or the old one's (either matching will do)."""
    sel = hook.get("objectSelector")
    if not sel:
        return True
    objs = [o for o in (a.obj, a.old) if o is not None] or [{}]
    return any(selector_matches(sel, _labels(o)) for o in objs)


def _gvk(res: Resource) -> dict:
    return {"group": res.group, "version": res.version, "kind": res.kind}


def _gvr(res: Resource) -> dict:
    return {"group": res.group, "version": res.version, "resource": res.plural}


def _at_version(obj: dict | None, res: Resource) -> dict | None:
    if obj is None or obj.get("apiVersion") == res.api_version:
        return obj
    return {**obj, "apiVersion": res.api_version}  # conversion strategy None: only apiVersion differs


def review_options(a: Attributes) -> dict | None:
    kind = _OPTIONS_KIND.get(a.operation)
    if kind is None:
        return None
    out: dict = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    if a.dry_run:
        out["dryRun"] = ["All"]
    keys = ("gracePeriodSeconds", "preconditions", "propagationPolicy") if a.operation == DELETE else (
        "fieldManager", "fieldValidation")
    out.update({k: a.options[k] for k in keys if a.options.get(k) is not None})
    return out


def review_request(a: Attributes, matched: Resource, uid: str) -> dict:
    """The AdmissionReview v1 a webhook is POSTed, as kube-apiserver builds it (``CreateV1AdmissionReview``)."""
    req: dict = {"uid": uid, "kind": _gvk(matched), "resource": _gvr(matched)}
    if a.subresource:
        req["subResource"] = a.subresource
    req["requestKind"], req["requestResource"] = _gvk(a.res), _gvr(a.res)
    if a.subresource:
        req["requestSubResource"] = a.subresource
    if a.name:
        req["name"] = a.name
    if a.namespace:
        req["namespace"] = a.namespace
    req["operation"] = a.operation
    user: dict = {"username": a.user.name}
    if a.user.uid:
        user["uid"] = a.user.uid
    if a.user.groups:
        user["groups"] = list(a.user.groups)
    if a.user.extra:
        user["extra"] = {k: list(v) for k, v in a.user.extra}
    req["userInfo"] = user
    req["object"] = _at_version(a.obj, matched)
    req["oldObject"] = _at_version(a.old, matched)
    req["dryRun"] = a.dry_run
    options = review_options(a)
    if options is not None:
        req["options"] = options
    return {"kind": "AdmissionReview", "apiVersion": REVIEW_API_VERSION, "request": req}


def review_response(body: Any, uid: str) -> dict:
    """The ``response`` of a webhook's answer, checked as ``VerifyAdmissionResponse`` does (CallError if bad)."""
    if not isinstance(body, dict):
        raise CallError("received invalid webhook response: the answer is not a JSON object")
    if body.get("apiVersion") != REVIEW_API_VERSION or body.get("kind") != "AdmissionReview":
        raise CallError(f"expected webhook response of {REVIEW_API_VERSION}, Kind=AdmissionReview, got "
                        f"{body.get('apiVersion')}, Kind={body.get('kind')}")
    resp = body.get("response")
    if not isinstance(resp, dict):
        raise CallError("webhook response was absent")
    if resp.get("uid") != uid:
        raise CallError(f'expected response.uid="{uid}", got "{resp.get("uid")}"')
    return resp


def denied(name: str, resp: dict) -> errors.ApiError:
    """``ToStatusErr``: the refusal a webhook answered, with kube-apiserver's message; code from its status (at
    least 400)."""
    result = resp.get("status") if isinstance(resp.get("status"), dict) else {}
    code = result.get("code") if isinstance(result.get("code"), int) else 0
    by = f'admission webhook "{name}" denied the request'
    if result.get("message"):
        message = f"{by}: {result['message']}"
    elif result.get("reason"):
        message = f"{by}: {result['reason']}"
    else:
        message = f"{by} without explanation"
    err = errors.ApiError(max(code, 400), message, result.get("reason") or "")
    err.reason = result.get("reason") or ""
    if isinstance(result.get("details"), dict):
        err.details = result["details"]
    return err


def failed(name: str, reason: str) -> errors.ApiError:
    """``apierrors.NewInternalError(ErrCallingWebhook)``: a webhook that failed closed."""
    message = f'failed calling webhook "{name}": {reason}'
    err = errors.internal(message)
    err.details = {"causes": [{"message": message}]}
    return err


def apply_review_patch(name: str, obj: dict, resp: dict) -> dict | None:
    """The object with the webhook's JSONPatch applied (None: it sent none); a patch that cannot be applied is a
    500, whatever the failurePolicy (as in Kubernetes)."""
    patch = resp.get("patch")
    if not patch:
        return None
    if resp.get("patchType") != "JSONPatch":
        raise errors.internal(f"unsupported patch type {resp.get('patchType')!r}")
    try:
        ops = orjson.loads(base64.b64decode(patch, validate=True))
        out = jsonpatch.JsonPatch(ops).apply(obj)
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError,
            jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise errors.internal(f'admission webhook "{name}" sent a patch that could not be applied: {e}') from None
    if not isinstance(out, dict):
        raise errors.internal(f'admission webhook "{name}" replaced the object with a non-object')
    return out


# ---- the plugin -------------------------------------------------------------------------------------------------


class Webhooks:
    def __init__(self, store: NatsStore, namespace_labels: Callable[[str], Awaitable[dict]]) -> None:
        self.store = store
        self.namespace_labels = namespace_labels
        self.informers = {kind: Informer(store, by_plural(kind.lower() + "s")) for kind in CONFIGURATION_KINDS}
        self._hooks: dict[str, list[dict] | None] = {kind: [] for kind in CONFIGURATION_KINDS}
        for kind, inf in self.informers.items():
            inf.add_handler(on_add=lambda _o, k=kind: self._changed(k),
                            on_update=lambda _o, _n, k=kind: self._changed(k),
                            on_delete=lambda _o, k=kind: self._changed(k))
        self._session: Any = None
        self._tls: dict[str, ssl.SSLContext] = {}

    def _changed(self, kind: str) -> None:
        self._hooks[kind] = None

    async def start(self) -> None:
        for inf in self.informers.values():
            await inf.start(wait=False)
        for kind, inf in self.informers.items():
            if not await inf.wait_synced(SYNC_TIMEOUT):
                raise RuntimeError(f"the admission cache of {kind}s did not sync")

    async def stop(self) -> None:
        for inf in self.informers.values():
            await inf.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def hooks(self, kind: str) -> list[dict]:
        """Every webhook of ``kind``'s configurations, configurations in name order, webhooks in theirs."""
        hooks = self._hooks[kind]
        if hooks is None:
            configs = sorted(self.informers[kind].list(), key=lambda c: c["metadata"]["name"])
            hooks = self._hooks[kind] = [h for c in configs for h in c.get("webhooks") or () if isinstance(h, dict)]
        return hooks

    async def _matching(self, kind: str, a: Attributes) -> list[tuple[dict, Resource]]:
        if a.res.kind in CONFIGURATION_KINDS or not a.res.stored:
            return []
        out = []
        for hook in self.hooks(kind):
            matched = matching_resource(hook, a)
            if matched is None or not object_selected(hook, a) or not await self._namespace_selected(hook, a):
                continue
            out.append((hook, matched))
        return out

    async def _namespace_selected(self, hook: dict, a: Attributes) -> bool:
        sel = hook.get("namespaceSelector")
        if not sel:
            return True
        if a.res.kind == "Namespace" and not a.res.group:  # a namespace is matched by its own labels
            return selector_matches(sel, _labels(a.obj if a.obj is not None else a.old))
        if not a.namespace:  # other cluster-scoped objects: the selector does not apply
            return True
        return selector_matches(sel, await self.namespace_labels(a.namespace))

    # ---- the two phases --------------------------------------------------------------------------------------

    async def mutate(self, a: Attributes, revalidate: Callable[[dict], dict]) -> tuple[dict | None, list[str]]:
        """Call the matching mutating webhooks in order, applying their patches to ``a.obj`` (re-validated with
        ``revalidate`` after the last patch); reinvocationPolicy IfNeeded webhooks are called once more when a later
        one changed the object. Returns the object and the webhooks' warnings."""
        matching = await self._matching("MutatingWebhookConfiguration", a)
        warnings: list[str] = []
        if not matching:
            return a.obj, warnings
        changed_by = -1
        for i, (hook, matched) in enumerate(matching):
            if await self._mutate_one(hook, matched, a, warnings):
                changed_by = i
        if changed_by > 0:
            for i, (hook, matched) in enumerate(matching[:changed_by]):
                if hook.get("reinvocationPolicy") == IF_NEEDED:
                    await self._mutate_one(hook, matched, a, warnings)
        if changed_by >= 0 and a.obj is not None:
            a.obj = revalidate(a.obj)
        return a.obj, warnings

    async def _mutate_one(self, hook: dict, matched: Resource, a: Attributes, warnings: list[str]) -> bool:
        resp = await self._admit(hook, matched, a, warnings)
        if resp is None:
            return False
        if not resp.get("allowed"):
            raise denied(hook.get("name") or "", resp)
        if a.obj is None or a.operation == DELETE:
            return False
        patched = apply_review_patch(hook.get("name") or "", _at_version(a.obj, matched), resp)
        if patched is None:
            return False
        if matched is not a.res:
            patched["apiVersion"] = a.obj.get("apiVersion")
        changed = patched != a.obj
        a.obj = patched
        return changed

    async def validate(self, a: Attributes) -> list[str]:
        """Call the matching validating webhooks in parallel; the first refusal (in webhook order) is raised."""
        matching = await self._matching("ValidatingWebhookConfiguration", a)
        warnings: list[str] = []
        if not matching:
            return warnings
        answers = await asyncio.gather(*(self._admit(h, m, a, warnings) for h, m in matching),
                                       return_exceptions=True)
        for (hook, _), resp in zip(matching, answers):
            if isinstance(resp, BaseException):
                raise resp
            if resp is not None and not resp.get("allowed"):
                raise denied(hook.get("name") or "", resp)
        return warnings

    async def _admit(self, hook: dict, matched: Resource, a: Attributes, warnings: list[str]) -> dict | None:
        """The webhook's response; None when it could not be called and its failurePolicy is Ignore."""
        name = hook.get("name") or ""
        uid = str(uuid.uuid4())
        try:
            resp = review_response(await self._post(hook, review_request(a, matched, uid)), uid)
        except CallError as e:
            if (hook.get("failurePolicy") or FAIL) == FAIL:
                raise failed(name, str(e)) from None
            log.warning('failed calling webhook "%s", failing open: %s', name, e)
            return None
        warnings.extend(w for w in resp.get("warnings") or () if isinstance(w, str))
        return resp

    # ---- the HTTPS call ---------------------------------------------------------------------------------------

    async def _post(self, hook: dict, review: dict) -> Any:
        timeout = hook.get("timeoutSeconds") or DEFAULT_TIMEOUT
        cc = hook.get("clientConfig") or {}
        url = cc.get("url") or "<service>"
        try:
            async with asyncio.timeout(timeout):  # resolving, connecting and reading alike
                url, hostname = await self._target(cc)
                session = self._client()
                async with session.post(url, data=orjson.dumps(review), ssl=self._tls_for(cc.get("caBundle")),
                                        server_hostname=hostname,
                                        headers={"Content-Type": "application/json",
                                                 "Accept": "application/json"}) as r:
                    data = await r.read()
                    if r.status != 200:
                        raise CallError(f"failed to call webhook: the server responded with the status code "
                                        f"{r.status} but did not return more information")
        except TimeoutError:
            raise CallError(f'failed to call webhook: Post "{url}?timeout={timeout}s": '
                            f"context deadline exceeded") from None
        except CallError:
            raise
        except Exception as e:  # noqa: BLE001 - refused connections, TLS failures, resets: all fail the call
            raise CallError(f'failed to call webhook: Post "{url}?timeout={timeout}s": {e}') from None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise CallError(f"received invalid webhook response: {e}") from None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        return self._session

    def _tls_for(self, ca_bundle: str | None) -> ssl.SSLContext:
        key = ca_bundle or ""
        ctx = self._tls.get(key)
        if ctx is None:
            if ca_bundle:
                try:
                    pem = base64.b64decode(ca_bundle).decode()
                    ctx = ssl.create_default_context(cadata=pem)
                except (ValueError, ssl.SSLError) as e:
                    raise CallError(f"could not use the caBundle: {e}") from None
            else:
                ctx = ssl.create_default_context()
            if len(self._tls) > 256:
                self._tls.clear()
            self._tls[key] = ctx
        return ctx

    async def _target(self, cc: dict) -> tuple[str, str | None]:
        """(URL to POST to, the name the certificate must carry if not the URL's host). A service reference goes
        to one of the Service's ready endpoints (pod IP and target port), its certificate checked for
        ``<service>.<namespace>.svc`` as kube-apiserver checks it."""
        if cc.get("url"):
            return cc["url"], None
        ref = cc.get("service") or {}
        ns, name, port, path = ref.get("namespace"), ref.get("name"), ref.get("port") or 443, ref.get("path") or ""
        try:
            svc = await self.store.get(by_plural("services"), ns, name)
            eps = await self.store.get(by_plural("endpoints"), ns, name)
        except errors.NotFound:
            raise CallError(f'service "{name}" not found') from None
        svc_port = next((p for p in (svc.get("spec") or {}).get("ports") or () if p.get("port") == port), None)
        if svc_port is None:
            raise CallError(f"service {ns}/{name} has no port {port}")
        for subset in eps.get("subsets") or ():
            ports = subset.get("ports") or ()
            ep_port = next((p for p in ports if p.get("name") == svc_port.get("name")
                            or (len(ports) == 1 and not svc_port.get("name"))), None)
            addresses = subset.get("addresses") or ()
            if ep_port is not None and addresses:
                host = addresses[0]["ip"]
                host = f"[{host}]" if ":" in host else host
                return f"https://{host}:{ep_port['port']}{path}", f"{name}.{ns}.svc"
        raise CallError(f'service "{ns}/{name}" has no ready endpoints')


def attributes(req: Any, operation: str, name: str, obj: dict | None, old: dict | None = None) -> Attributes:
    """The Attributes of an API request (``master.apiserver.request.Request``)."""
    ns = req.namespace if req.res.namespaced else None
    if ns and obj is not None and isinstance(obj.get("metadata"), dict):
        obj["metadata"].setdefault("namespace", ns)
    return Attributes(req.res, operation, ns, name, req.subresource or "", obj, old, req.user, req.dry_run,
                      req.options)
