"""ServiceAccount controllers.

- ``serviceaccount``: every namespace that is not terminating has a ``default`` ServiceAccount
  (recreated if deleted) and the ``kube-root-ca.crt`` ConfigMap the pods' token volume projects.
- ``serviceaccount-tokens``: every ServiceAccount has a token Secret ``<sa>-token-<5 chars>`` (type
  ``kubernetes.io/service-account-token``: a signed JWT, ``ca.crt`` and ``namespace``) listed in its
  ``secrets``; tokens of ServiceAccounts that are gone (or were recreated) are deleted.

Tokens are signed and checked by ``bus.tokens`` (a cluster key kept in the Secret ``k8n-signing-key`` in
``kube-system``, made on first use).
"""

from __future__ import annotations

import base64
import logging

from bus import errors, subjects
from bus.controller import Controller
from bus.expectations import Expectations
from bus.meta import generate_name, namespace_of
from bus.tokens import sign_token, signing_key, token_claims
from master.controllers.namespace import terminating

log = logging.getLogger(__name__)

DEFAULT_SA = "default"
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
CA_PLACEHOLDER = "# k8n serves the API over NATS; there is no cluster CA yet\n"


def setup(ctx) -> list:
    inf = ctx.informers
    namespaces, accounts = inf.informer("namespaces"), inf.informer("serviceaccounts")
    root_ca = inf.informer("configmaps", field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}")
    tokens = inf.informer("secrets", field_selector=f"type={TOKEN_TYPE}")
    return [DefaultAccounts(ctx.client, namespaces, accounts, root_ca).controller,
            Tokens(ctx.client, accounts, tokens, namespaces).controller]


def token_secret(sa: dict, token: str) -> dict:
    meta = sa["metadata"]
    enc = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    return {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": generate_name(f"{meta['name']}-token-"), "namespace": meta["namespace"],
                         "annotations": {NAME_ANNOTATION: meta["name"], UID_ANNOTATION: meta.get("uid", "")},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount", "name": meta["name"],
                                              "uid": meta.get("uid", "")}]},
            "data": {"token": enc(token), "ca.crt": enc(CA_PLACEHOLDER), "namespace": enc(meta["namespace"])}}


def account_key_of_token(secret: dict) -> str | None:
    meta = secret.get("metadata") or {}
    name = (meta.get("annotations") or {}).get(NAME_ANNOTATION)
    return subjects.object_key(meta.get("namespace"), name) if name else None


def _namespace_key(obj: dict) -> str:
    return subjects.object_key(None, namespace_of(obj) or "")


# ---- default ServiceAccount and root CA per namespace --------------------------------------------


class DefaultAccounts:
    def __init__(self, client, namespaces, accounts, root_ca) -> None:
        self.client, self.namespaces, self.accounts, self.root_ca = client, namespaces, accounts, root_ca
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
        if self.root_ca.get(name, ROOT_CA_CONFIGMAP) is None:
            await self._create({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": name},
                                "data": {"ca.crt": CA_PLACEHOLDER}})

    async def _create(self, obj: dict) -> None:
        try:
            await self.client.create(obj)
        except errors.ApiError as e:
            if not isinstance(e, (errors.AlreadyExists, errors.NotFound)) and e.code != 403:
                raise  # else: there already (cache lag), or the namespace is going away


# ---- token Secrets -------------------------------------------------------------------------------


class Tokens:
    def __init__(self, client, accounts, tokens, namespaces) -> None:
        self.client, self.accounts, self.tokens, self.namespaces = client, accounts, tokens, namespaces
        self.expectations = Expectations()
        self._key: bytes | None = None
        self.controller = Controller("serviceaccount-tokens", self.reconcile)
        self.controller.watches(accounts)
        self.controller.watches(tokens, account_key_of_token)
        tokens.add_handler(on_add=self._observed)

    def _observed(self, secret: dict) -> None:
        key = account_key_of_token(secret)
        if key:
            self.expectations.creation_observed(key)

    def _tokens_of(self, namespace: str, name: str) -> list[dict]:
        return [s for s in self.tokens.list(namespace)
                if ((s["metadata"].get("annotations") or {}).get(NAME_ANNOTATION)) == name]

    async def reconcile(self, key: str) -> None:
        namespace, name = subjects.parse_key(key)
        sa = self.accounts.get_by_key(key)
        uid = sa["metadata"].get("uid") if sa else None
        mine, stale = [], []
        for s in self._tokens_of(namespace, name):
            (mine if uid and s["metadata"]["annotations"].get(UID_ANNOTATION) == uid else stale).append(s)
        for s in stale:  # the account is gone or was recreated: its old tokens go
            await self._delete(s)
        if sa is None:
            self.expectations.delete(key)
            return
        ns = self.namespaces.get(None, namespace or "")
        if ns is None or terminating(ns) or sa["metadata"].get("deletionTimestamp"):
            return
        if not mine:
            if not self.expectations.satisfied(key):
                return  # a token we made is not in the cache yet
            mine = [await self._create_token(key, sa)]
        await self._reference(sa, [s["metadata"]["name"] for s in mine])

    async def _create_token(self, key: str, sa: dict) -> dict:
        if self._key is None:
            self._key = await signing_key(self.client)
        self.expectations.expect_creations(key, 1)
        try:
            return await self.client.create(token_secret(sa, sign_token(self._key, token_claims(sa))))
        except Exception:
            self.expectations.creation_observed(key)
            raise

    async def _reference(self, sa: dict, names: list[str]) -> None:
        """``secrets`` of the account lists its tokens (and no token Secret that is gone)."""
        refs = list(sa.get("secrets") or [])
        ns = sa["metadata"]["namespace"]
        known = {s["metadata"]["name"] for s in self.tokens.list(ns)} | set(names)
        want = [r for r in refs if r.get("name") in known or not r.get("name", "").startswith(f"{sa['metadata']['name']}-token-")]
        want += [{"name": n} for n in names if n not in {r.get("name") for r in want}]
        if want == refs:
            return
        try:
            await self.client.update({**sa, "secrets": want})
        except errors.NotFound:
            pass
        # a Conflict propagates: the queue retries with the fresh account

    async def _delete(self, secret: dict) -> None:
        meta = secret["metadata"]
        try:
            await self.client.delete("secrets", meta["name"], meta["namespace"], preconditions={"uid": meta.get("uid")})
        except (errors.NotFound, errors.Conflict):
            pass
