"""ServiceAccount controllers.

- ``serviceaccount``: every namespace that is not terminating has a ``default`` ServiceAccount
  (recreated if deleted) and the ``kube-root-ca.crt`` ConfigMap the pods' token volume projects.
- ``serviceaccount-tokens``: as in Kubernetes since 1.24, no token Secret is made for an account (pods get
  short-lived tokens through the TokenRequest API, ``node/volumes.py``). A Secret of type
  ``kubernetes.io/service-account-token`` that someone creates with the annotation
  ``kubernetes.io/service-account.name`` is still filled in (``token``, ``ca.crt``, ``namespace``, and the
  account's uid in ``kubernetes.io/service-account.uid``), and deleted when its account is gone or was recreated.

  Its token is obtained through TokenRequest, bound to the Secret, so deleting the Secret voids it (TokenReview
  checks the Secret still exists with its uid). Where Kubernetes' legacy Secret tokens never expire, this one lasts
  :data:`LEGACY_TOKEN_SECONDS`, one year (the lifetime Kubernetes gives tokens kept for legacy clients,
  ``ExpirationExtensionSeconds``), and is replaced once 80 % of that has passed: the Secret's token keeps
  working for as long as the Secret exists, while a copy that leaked stops working within a year even if the
  Secret stays.
"""

from __future__ import annotations

import base64
import logging
import time

from bus import errors, subjects, tokens
from bus.client import resource_of
from bus.controller import Controller
from bus.meta import deep_copy, namespace_of
from bus.workqueue import Result
from master.controllers.namespace import terminating

log = logging.getLogger(__name__)

DEFAULT_SA = "default"
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
CA_PLACEHOLDER = "# k8n serves the API over NATS; there is no cluster CA yet\n"


def root_ca(root_ca_file: str) -> str:
    """The cluster CA pods trust the API with (``ca.crt`` of their token volume and of token Secrets): the
    controller manager's ``root_ca_file``, else ``<data dir>/pki/ca.crt``, else a placeholder (no HTTPS API)."""
    from pathlib import Path

    from bus import config

    path = Path(root_ca_file) if root_ca_file else config.data_dir(None) / "pki" / "ca.crt"
    try:
        return path.read_text()
    except OSError:
        return CA_PLACEHOLDER
LEGACY_TOKEN_SECONDS = 365 * 24 * 60 * 60  # a token Secret's token lasts a year (see above) ...
RENEW_AT = 0.8  # ... and is replaced once 80 % of its lifetime has passed, as the kubelet renews pod tokens
MAX_REQUEUE_SECONDS = 24 * 60 * 60  # look again at least daily


def setup(ctx) -> list:
    inf = ctx.informers
    namespaces, accounts = inf.informer("namespaces"), inf.informer("serviceaccounts")
    root_ca_cms = inf.informer("configmaps", field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}")
    secrets = inf.informer("secrets", field_selector=f"type={TOKEN_TYPE}")
    ca = root_ca(ctx.settings.root_ca_file)
    return [DefaultAccounts(ctx.client, namespaces, accounts, root_ca_cms, ca).controller,
            Tokens(ctx.client, accounts, secrets, namespaces, ca).controller]


def account_key_of_token(secret: dict) -> str | None:
    meta = secret.get("metadata") or {}
    name = (meta.get("annotations") or {}).get(NAME_ANNOTATION)
    return subjects.object_key(meta.get("namespace"), name) if name else None


def _namespace_key(obj: dict) -> str:
    return subjects.object_key(None, namespace_of(obj) or "")


# ---- default ServiceAccount and root CA per namespace --------------------------------------------


class DefaultAccounts:
    def __init__(self, client, namespaces, accounts, root_ca, ca: str = CA_PLACEHOLDER) -> None:
        self.client, self.namespaces, self.accounts, self.root_ca = client, namespaces, accounts, root_ca
        self.ca = ca
        self.controller = Controller("serviceaccount", self.reconcile)
        self.controller.watches(namespaces)
        self.controller.watches(accounts, _namespace_key)
        self.controller.watches(root_ca, _namespace_key)

    async def reconcile(self, key: str) -> None:
        ns = self.namespaces.get_by_key(key)
        if ns is None or terminating(ns):
            return
        name = ns["metadata"]["name"]
        if self.accounts.get(name, DEFAULT_SA) is None:
            await self._create({"apiVersion": "v1", "kind": "ServiceAccount",
                                "metadata": {"name": DEFAULT_SA, "namespace": name}})
        cm = self.root_ca.get(name, ROOT_CA_CONFIGMAP)
        if cm is None:
            await self._create({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": name},
                                "data": {"ca.crt": self.ca}})
        elif (cm.get("data") or {}).get("ca.crt") != self.ca:  # a new CA (or the placeholder of an older k8n)
            try:
                await self.client.patch("configmaps", ROOT_CA_CONFIGMAP, {"data": {"ca.crt": self.ca}}, name)
            except (errors.NotFound, errors.Conflict):
                pass

    async def _create(self, obj: dict) -> None:
        try:
            await self.client.create(obj)
        except errors.ApiError as e:
            if not isinstance(e, (errors.AlreadyExists, errors.NotFound)) and e.code != 403:
                raise  # else: there already (cache lag), or the namespace is going away


# ---- token Secrets -------------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_renewal_at(secret: dict, sa: dict) -> float:
    """When the token in ``secret`` must be replaced (epoch seconds; 0: now): it is missing, is not a token of
    ``sa`` bound to this very Secret, or 80 % of its lifetime has passed. The token is read, not verified: the
    Secret is the controller's own record, and whoever presents the token is checked by TokenReview."""
    data = secret.get("data") or {}
    if not data.get("namespace") or not data.get("ca.crt"):
        return 0.0
    try:
        claims = tokens.unverified_claims(base64.b64decode(data.get("token") or "").decode())
        private = claims[tokens.PRIVATE_CLAIM]
        bound = private["secret"]
        iat, exp = float(claims["iat"]), float(claims["exp"])
        meta, sa_meta = secret.get("metadata") or {}, sa.get("metadata") or {}
        if (private["namespace"], private["serviceaccount"]["uid"], bound["name"], bound["uid"]) != (
                meta.get("namespace"), sa_meta.get("uid"), meta.get("name"), meta.get("uid")):
            return 0.0
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return 0.0
    return iat + RENEW_AT * (exp - iat)


def filled_secret(secret: dict, sa: dict, token: str, ca: str = CA_PLACEHOLDER) -> dict:
    """``secret`` with ``token``, the CA and the namespace in its data and the account's uid annotated."""
    out = deep_copy(secret)
    meta = out["metadata"]
    meta.setdefault("annotations", {})[UID_ANNOTATION] = sa["metadata"].get("uid", "")
    data = out.get("data") or {}
    data.update({"token": _b64(token), "ca.crt": _b64(ca), "namespace": _b64(meta["namespace"])})
    out["data"] = data
    return out


def token_request_for(secret: dict) -> dict:
    """The TokenRequest of a token bound to ``secret`` (default audiences: the API's)."""
    meta = secret["metadata"]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": LEGACY_TOKEN_SECONDS,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": meta["name"],
                                        "uid": meta.get("uid", "")}}}


class Tokens:
    """Fills in the token Secrets people create for an account, and deletes those of accounts that are gone."""

    def __init__(self, client, accounts, secrets, namespaces, ca: str = CA_PLACEHOLDER, clock=time.time) -> None:
        self.client, self.accounts, self.secrets, self.namespaces = client, accounts, secrets, namespaces
        self.ca = ca
        self.clock = clock
        self.controller = Controller("serviceaccount-tokens", self.reconcile)
        self.controller.watches(accounts)
        self.controller.watches(secrets, account_key_of_token)

    def _tokens_of(self, namespace: str, name: str) -> list[dict]:
        return [s for s in self.secrets.list(namespace)
                if ((s["metadata"].get("annotations") or {}).get(NAME_ANNOTATION)) == name]

    async def _account(self, key: str, namespace: str, name: str) -> dict | None:
        """The account from the cache, else from the API (a Secret made right after its account must not be
        deleted because the cache has not seen the account yet)."""
        sa = self.accounts.get_by_key(key)
        if sa is not None:
            return sa
        try:
            return await self.client.get("serviceaccounts", name, namespace)
        except errors.NotFound:
            return None

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = subjects.parse_key(key)
        mine = self._tokens_of(namespace or "", name)
        if not mine:
            return None
        sa = await self._account(key, namespace or "", name)
        uid = sa["metadata"].get("uid") if sa else None
        live = []
        for s in mine:
            claimed = (s["metadata"].get("annotations") or {}).get(UID_ANNOTATION)
            if sa is None or (claimed and claimed != uid):
                await self._delete(s)  # the account is gone or was recreated: its token Secrets go
            else:
                live.append(s)
        ns = self.namespaces.get(None, namespace or "")
        if sa is None or ns is None or terminating(ns) or sa["metadata"].get("deletionTimestamp"):
            return None
        now, next_at = self.clock(), None
        for s in live:
            if s["metadata"].get("deletionTimestamp"):
                continue
            at = token_renewal_at(s, sa)
            if at <= now:
                at = await self._fill(sa, s)
            if at is not None:
                next_at = at if next_at is None else min(next_at, at)
        if next_at is None:
            return None
        return Result(requeue_after=min(max(next_at - now, 1.0), MAX_REQUEUE_SECONDS))

    async def _fill(self, sa: dict, secret: dict) -> float | None:
        """Put a new token bound to ``secret`` into it; when it must be replaced (None: the Secret is gone)."""
        meta = sa["metadata"]
        try:
            tr = await self.client.request(resource_of("serviceaccounts"), "create", meta["namespace"], meta["name"],
                                           body=token_request_for(secret), subresource="token")
            await self.client.update(filled_secret(secret, sa, tr["status"]["token"], self.ca))
        except errors.NotFound:
            return None  # the Secret (or the account) went meanwhile: the token is void with it
        # a Conflict propagates: the Secret changed meanwhile, the queue retries with the fresh one
        return self.clock() + RENEW_AT * LEGACY_TOKEN_SECONDS

    async def _delete(self, secret: dict) -> None:
        meta = secret["metadata"]
        try:
            await self.client.delete("secrets", meta["name"], meta["namespace"], preconditions={"uid": meta.get("uid")})
        except (errors.NotFound, errors.Conflict):
            pass
