"""ServiceAccount tokens in the API server: the ``serviceaccounts/token`` subresource (TokenRequest) and
``tokenreviews`` (TokenReview), as Kubernetes serves them (``pkg/registry/core/serviceaccount/storage/token.go``,
``pkg/registry/authentication/tokenreview``, ``pkg/serviceaccount/claims.go``).

- **TokenRequest** (``POST serviceaccounts/<name>/token``, authentication.k8s.io/v1, answered 201): a token for the
  account, signed with the key only API servers hold (:func:`authority`, ``bus.tokens``). ``spec.audiences``
  defaults to the API's audiences, ``spec.expirationSeconds`` to 3600 (at least 600, at most 2^32: else 422).
  ``spec.boundObjectRef`` (``v1`` Pod or Secret, by name and optionally uid) binds the token to that object: it
  must exist (404), have the uid given (409), and a pod must run as the account (400); the token dies with it.
  A node (``system:node:<name>``) may only ask for tokens bound to a pod, by uid, scheduled on itself (403), as
  Kubernetes' NodeRestriction admission has it. Kubernetes' ``--service-account-extend-token-expiration`` (a
  3607 s kubelet token silently made to last a year) is not copied: a token lasts what it says.
- **TokenReview** (``POST tokenreviews``, cluster-scoped, never stored, answered 201): checks a token's signature,
  issuer, times and audiences (``spec.audiences``, default the API's), then that the ServiceAccount still exists
  with the token's uid and that the pod or secret it is bound to still exists with its uid (Kubernetes' validator:
  deleted more than the leeway ago counts as gone). ``status``: ``authenticated``, ``user`` (``username``, ``uid``,
  ``groups``, ``extra`` — for a pod-bound token ``authentication.kubernetes.io/pod-name``/``pod-uid``, its
  ``node-name``/``node-uid``, and the ``credential-id`` ``JTI=<jti>``), ``audiences`` (the ones the token was
  accepted for), or ``error`` saying why not.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from bus import bootstraptoken, errors, subjects, tokens
from bus.authn import UserInfo, node_of_user, service_account_user
from bus.errors import Cause
from bus.meta import deep_copy, format_time, timestamp
from bus.models import TokenRequest, TokenReview, to_dict
from bus.models.decode import decode, fmt_value
from bus.resources import by_plural
from bus.store import NatsStore
from master.apiserver.request import Reply, Request
from master.apiserver.settings import ApiServerSettings

log = logging.getLogger(__name__)

GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"
DEFAULT_EXPIRATION_SECONDS = 60 * 60  # authentication/v1 SetDefaults_TokenRequestSpec
MIN_EXPIRATION_SECONDS = 10 * 60
MAX_EXPIRATION_SECONDS = 1 << 32
BINDABLE_KINDS = {"Pod": "pods", "Secret": "secrets"}
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
_NAME = subjects.SAFE_TOKEN  # what can be an object's name


# ---- the key pair ------------------------------------------------------------------------------------------


class TokenAuthority:
    """Issues and checks ServiceAccount tokens with one API server's key pair."""

    def __init__(self, keys: tokens.KeyPair, issuer: str = tokens.DEFAULT_ISSUER,
                 audiences: tuple[str, ...] = tokens.DEFAULT_AUDIENCES) -> None:
        self.audiences = tuple(audiences)
        self.issuer = tokens.Issuer(keys.private_key, issuer)
        self.verifier = tokens.Verifier(keys.public_keys, (issuer,), self.audiences)


_authorities: dict[str, tuple[tuple, TokenAuthority]] = {}  # key file -> (its key set's version, authority)


def _authority_at(path: str) -> TokenAuthority:
    """The authority of the key set at ``path``, reloaded when its files change (``k8n certs rotate-sa-key`` on
    this machine, or the files copied here from another control-plane machine): no restart needed."""
    version = tokens.key_set_version(path)
    cached = _authorities.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    auth = TokenAuthority(tokens.load_or_create_key_pair(path))
    if cached is not None:
        log.info("ServiceAccount signing key set %s reloaded: signing with %s, accepting %d key(s)", path,
                 auth.issuer.key_id, len(auth.verifier.keys))
    if None in version:  # the key pair was just made: its files' version now
        version = tokens.key_set_version(path)
    _authorities[path] = (version, auth)  # else the version read before loading: a change meanwhile reloads again
    return auth


_KEY_PATH_ENV = ("K8N_SERVICE_ACCOUNT_KEY_FILE", "K8N_DATA_DIR", "HOME")  # what the default key file depends on
_key_paths: dict[tuple, str] = {}


def authority(settings: ApiServerSettings | None = None) -> TokenAuthority:
    """The authority of the key file the settings name (``K8N_SERVICE_ACCOUNT_KEY_FILE``, else
    ``<data dir>/pki/sa.key``); the key pair is made there on first use when absent, and reloaded whenever the key
    files change (checked by their mtimes on each use)."""
    if settings is not None:
        return _authority_at(str(settings.service_account_key_path()))
    env = tuple(os.environ.get(k) for k in _KEY_PATH_ENV)  # loading every setting costs ~260 µs: once per value
    path = _key_paths.get(env)
    if path is None:
        path = _key_paths[env] = str(ApiServerSettings.load().service_account_key_path())
    return _authority_at(path)


# ---- helpers -----------------------------------------------------------------------------------------------


def _check_type(body: Any, kind: str) -> dict:
    if not isinstance(body, dict):
        raise errors.bad_request(f"the body of the request must be a {kind} object ({API_VERSION})")
    if body.get("kind") not in (None, kind):
        raise errors.bad_request(f"the object kind {body['kind']!r} is not a {kind}")
    if body.get("apiVersion") not in (None, API_VERSION):
        raise errors.bad_request(f"the API version {body['apiVersion']!r} is not served for {kind}; use "
                                 f"{API_VERSION!r}")
    return body


def _decode(model: type, body: dict, name: str) -> dict:
    obj, causes = decode(model, body)
    if causes or obj is None:
        raise errors.invalid(model.__name__, name, causes, GROUP)
    return to_dict(obj)


async def _get(store: NatsStore, plural: str, namespace: str | None, name: str) -> dict:
    if not name:
        raise errors.bad_request("Name parameter required.")
    res = by_plural(plural)
    assert res is not None
    if not _NAME.fullmatch(name):
        raise errors.not_found(res.plural, name, res.group)
    return await store.get(res, namespace, name)


def _forbidden(account: str, why: str) -> errors.ApiError:
    return errors.forbidden("serviceaccounts", account, why)


# ---- TokenRequest ------------------------------------------------------------------------------------------


def _validate_expiration(seconds: int) -> list[Cause]:
    path = "spec.expirationSeconds"
    if seconds < MIN_EXPIRATION_SECONDS:
        return [Cause(path, f"Invalid value: {fmt_value(seconds)}: may not specify a duration less than 10 minutes")]
    if seconds > MAX_EXPIRATION_SECONDS:
        return [Cause(path, f"Invalid value: {fmt_value(seconds)}: may not specify a duration larger than 2^32 "
                            "seconds")]
    return []


async def _bound_object(store: NatsStore, namespace: str, account: str, ref: dict | None,
                        node: str | None) -> tuple[dict | None, dict | None]:
    """The object ``ref`` names (and, for a pod, its Node when it exists), checked as Kubernetes checks them."""
    if node is not None:  # NodeRestriction: a node's tokens are bound to a pod of its own, by uid
        if not ref or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise _forbidden(account, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise _forbidden(account, "node requested token with a pod binding without a uid")
    if not ref:
        return None, None
    api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
    group, _, version = api_version.rpartition("/")
    plural = BINDABLE_KINDS.get(kind) if group == "" else None
    if plural is None:
        raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    name = str(ref.get("name") or "")
    obj = await _get(store, plural, namespace, name)
    uid = (obj.get("metadata") or {}).get("uid", "")
    if ref.get("uid") and ref["uid"] != uid:
        why = (f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. The object "
               "might have been deleted and then recreated")
        if node is not None:
            raise _forbidden(account, why)
        raise errors.conflict(kind, name, "", why)
    node_obj = None
    if kind == "Pod":
        spec = obj.get("spec") or {}
        if spec.get("serviceAccountName") != account:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{account}" to pod running with '
                                     "different serviceaccount name.")
        if node is not None and spec.get("nodeName") != node:
            raise _forbidden(account, "node requested token bound to a pod scheduled on a different node")
        if spec.get("nodeName"):
            try:
                node_obj = await _get(store, "nodes", None, spec["nodeName"])
            except errors.NotFound:
                pass  # the token still names the node, without its uid
    return obj, node_obj


async def create_token(store: NatsStore, req: Request, auth: TokenAuthority | None = None) -> Reply:
    """POST serviceaccounts/<name>/token (``req.name`` already checked by the caller)."""
    auth = auth or authority()
    account, namespace = str(req.name), str(req.namespace)
    body = _check_type({} if req.body is None else req.body, "TokenRequest")
    tr = _decode(TokenRequest, body, account)
    meta = tr.get("metadata") or {}
    if meta.get("name") and meta["name"] != account:
        raise errors.invalid("TokenRequest", account, [Cause(
            "metadata.name", f"Invalid value: {fmt_value(meta['name'])}: must match the service account name if "
                             "specified")], GROUP)
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.invalid("TokenRequest", account, [Cause(
            "metadata.namespace", f"Invalid value: {fmt_value(meta['namespace'])}: must match the service account "
                                  "namespace if specified")], GROUP)
    sa = await _get(store, "serviceaccounts", namespace, account)
    spec = tr.get("spec") or {}
    audiences = list(spec.get("audiences") or auth.audiences)
    seconds = spec.get("expirationSeconds")
    seconds = DEFAULT_EXPIRATION_SECONDS if seconds is None else seconds
    causes = _validate_expiration(seconds)
    if causes:
        raise errors.invalid("TokenRequest", "", causes, GROUP)
    user: UserInfo | None = getattr(req, "user", None)
    node = node_of_user(user) if isinstance(user, UserInfo) else None
    ref = spec.get("boundObjectRef")
    bound, node_obj = await _bound_object(store, namespace, account, ref, node)
    now = time.time()
    token, expires = auth.issuer.issue(sa, audiences, seconds, bound, node=node_obj, now=now)
    out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": seconds}
    if ref:
        out_spec["boundObjectRef"] = ref
    out_meta = {k: v for k, v in meta.items() if k not in ("name", "namespace", "creationTimestamp")}
    out_meta.update({"name": account, "namespace": namespace, "creationTimestamp": format_time(now)})
    return 201, {"kind": "TokenRequest", "apiVersion": API_VERSION, "metadata": out_meta, "spec": out_spec,
                 "status": {"token": token, "expirationTimestamp": expires}}, []


# ---- TokenReview -------------------------------------------------------------------------------------------


def _gone_before(obj: dict, cutoff: float) -> bool:
    ts = timestamp((obj.get("metadata") or {}).get("deletionTimestamp"))
    return ts is not None and ts < cutoff


async def _still_bound(store: NatsStore, namespace: str, plural: str, kind: str, ref: tokens.BoundObject,
                       cutoff: float) -> None:
    try:
        obj = await _get(store, plural, namespace, ref.name)
    except errors.NotFound:
        raise ValueError("Token has been invalidated") from None
    if _gone_before(obj, cutoff):
        raise ValueError("Token has been invalidated")
    uid = (obj.get("metadata") or {}).get("uid", "")
    if uid != ref.uid:
        raise ValueError(f"{kind} UID ({uid}) does not match claim ({ref.uid})")


async def validate(store: NatsStore, info: tokens.TokenInfo, now: float | None = None) -> UserInfo:
    """The user of a verified token, when its ServiceAccount and bound object still exist with the uids it names
    (Kubernetes' ``validator.Validate``); ValueError naming why not."""
    cutoff = (time.time() if now is None else now) - tokens.LEEWAY_SECONDS
    try:
        sa = await _get(store, "serviceaccounts", info.namespace, info.name)
    except errors.NotFound as e:
        raise ValueError(str(e)) from None
    if _gone_before(sa, cutoff):
        raise ValueError(f"ServiceAccount {info.namespace}/{info.name} has been deleted")
    sa_uid = (sa.get("metadata") or {}).get("uid", "")
    if sa_uid != info.uid:
        raise ValueError(f"ServiceAccount UID ({sa_uid}) does not match claim ({info.uid})")
    extra: dict[str, tuple[str, ...]] = {}
    if info.secret is not None:
        await _still_bound(store, info.namespace, "secrets", "Secret", info.secret, cutoff)
    if info.pod is not None:
        await _still_bound(store, info.namespace, "pods", "Pod", info.pod, cutoff)
        extra[EXTRA_POD_NAME], extra[EXTRA_POD_UID] = (info.pod.name,), (info.pod.uid,)
        if info.node is not None:
            extra[EXTRA_NODE_NAME] = (info.node.name,)
            if info.node.uid:
                extra[EXTRA_NODE_UID] = (info.node.uid,)
    if info.jti:
        extra[EXTRA_CREDENTIAL_ID] = (f"JTI={info.jti}",)
    return dataclasses.replace(service_account_user(info.namespace, info.name, info.uid),
                               extra=tuple(sorted(extra.items())))


async def review(store: NatsStore, auth: TokenAuthority, token: str,
                 audiences: list[str] | None = None) -> tuple[UserInfo, tuple[str, ...]]:
    """``(user, accepted audiences)`` of a token; ValueError naming why it is not authenticated. Bootstrap tokens
    (``<id>.<secret>``, ``bus.bootstraptoken``) are checked against their Secret, as kube-apiserver's bootstrap
    token authenticator does; they carry no audience."""
    if bootstraptoken.TOKEN_RE.match(token):
        return await _bootstrap_user(store, token), ()
    info = auth.verifier.verify(token, audiences or None)
    return await validate(store, info), info.audiences


async def _bootstrap_user(store: NatsStore, token: str) -> UserInfo:
    token_id, _ = bootstraptoken.parse(token)
    try:
        secret = await store.get(by_plural("secrets"), bootstraptoken.NAMESPACE, bootstraptoken.secret_name(token_id))
    except errors.NotFound:
        raise ValueError(f"no bootstrap token with id {token_id}") from None
    return bootstraptoken.authenticate(secret, token)


async def review_token(store: NatsStore, req: Request, auth: TokenAuthority | None = None) -> Reply:
    """POST tokenreviews."""
    auth = auth or authority()
    if req.namespace:
        raise errors.bad_request(f"namespace is not allowed on this type: {req.namespace}")
    body = _check_type({} if req.body is None else req.body, "TokenReview")
    tr = _decode(TokenReview, body, "")
    spec = tr.get("spec") or {}
    token = spec.get("token")
    if not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    status: dict[str, Any]
    try:
        user, accepted = await review(store, auth, token, list(spec.get("audiences") or auth.audiences))
    except ValueError as e:
        status = {"authenticated": False, "user": {}, "error": str(e)}
    else:
        status = {"authenticated": True, "user": user.as_dict(), "audiences": list(accepted)}
    meta = deep_copy(tr.get("metadata") or {})
    meta.setdefault("creationTimestamp", None)
    return 201, {"kind": "TokenReview", "apiVersion": API_VERSION, "metadata": meta, "spec": spec,
                 "status": status}, []


# ---- the legacy key Secret ---------------------------------------------------------------------------------

LEGACY_KEY_SECRET = ("kube-system", "k8n-signing-key")  # the HS256 key earlier k8n kept where any token could read it


async def remove_legacy_signing_key(store: NatsStore) -> None:
    """Delete the Secret earlier versions kept their signing key in (their tokens are refused anyway)."""
    res = by_plural("secrets")
    assert res is not None
    ns, name = LEGACY_KEY_SECRET
    try:
        cur = await store.get(res, ns, name)
    except errors.NotFound:
        return
    final = deep_copy(cur)
    final["metadata"].update({"deletionTimestamp": format_time(), "deletionGracePeriodSeconds": 0})
    try:
        await store.delete(res, ns, name, final, int(cur["metadata"]["resourceVersion"]))
        log.warning("deleted the legacy ServiceAccount signing key Secret %s/%s", ns, name)
    except (errors.NotFound, errors.Conflict):
        pass  # another API server got there first
