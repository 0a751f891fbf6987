"""Authorization in the API server: every request is authorized for the user it acts as (``Request.user``) by the
Node authorizer then RBAC (``bus.nodeauthz``, ``bus.rbac``: one implementation, which the gateway uses too), from
informer caches of the RBAC kinds and volumes kept on the API server's own connection, and each node's pods read
from the node view when that node asks. Denials are 403s
worded as Kubernetes words them. Writes of roles and bindings are also checked for privilege escalation
(:meth:`Authorization.admit`), and the access reviews (SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectAccessReview, SelfSubjectRulesReview) are answered here.
"""

from __future__ import annotations

import logging
from typing import Any

from bus import errors
from bus.authn import UserInfo
from bus.informer import SharedInformerFactory
from bus.resources import Resource
from bus.nodeauthz import ClusterAuthorizer
from bus.rbac import Attributes, check_rbac_write, forbidden_error, forbidden_write_error, subject_rules_review
from bus.store import NatsStore
from master.apiserver.request import Reply, Request

log = logging.getLogger(__name__)

API_VERSION = "authorization.k8s.io/v1"
REVIEW_KINDS = ("SubjectAccessReview", "LocalSubjectAccessReview", "SelfSubjectAccessReview",
                "SelfSubjectRulesReview")
RBAC_WRITES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
SYNC_TIMEOUT = 30.0


def attributes(req: Request) -> Attributes:
    """What a request asks, as the authorizer reads it: a create names no object (Kubernetes' request info), except
    a subresource of one (``pods/binding``, ``serviceaccounts/token``)."""
    name = req.name if (req.verb != "create" or req.subresource) else ""
    return Attributes.for_resource(req.user, req.verb, req.res, req.namespace, name, req.subresource)


class Authorization:
    def __init__(self, store: NatsStore) -> None:
        self.store = store
        self.factory = SharedInformerFactory(store)
        self.authorizer = ClusterAuthorizer(self.factory)
        self.rules, self.rbac = self.authorizer.rules, self.authorizer.rbac

    async def start(self) -> None:
        await self.factory.start()
        if not await self.factory.wait_for_cache_sync(SYNC_TIMEOUT):
            raise RuntimeError("the authorizer's caches (RBAC, volumes) did not sync")

    async def stop(self) -> None:
        await self.factory.stop()

    # ---- every request ------------------------------------------------------------------------------------

    async def authorize(self, req: Request) -> None:
        """Raise a 403 unless ``req.user`` may do what ``req`` asks."""
        attrs = attributes(req)
        decision = await self.authorizer.authorize_async(attrs, req.body)
        if not decision.allowed:
            raise forbidden_error(attrs, decision.reason)

    async def may_create(self, user: UserInfo, res: Resource, subresource: str) -> bool:
        """Whether ``user`` may create ``subresource`` of (cluster-scoped) ``res`` (the csrapproving controller's
        SubjectAccessReview: ``certificatesigningrequests/nodeclient``)."""
        attrs = Attributes.for_resource(user, "create", res, None, "", subresource)
        return (await self.authorizer.authorize_async(attrs, None)).allowed

    async def admit(self, req: Request, obj: dict, old: dict | None) -> None:
        """Refuse a role or binding that grants more than its writer holds (Kubernetes' escalation check)."""
        if req.res.plural not in RBAC_WRITES:
            return
        msg = await check_rbac_write(self.authorizer, req.user, req.res.plural, req.namespace, obj, self._role,
                                     old=old, rule_resolver=self.rbac)
        if msg:
            name = (obj.get("metadata") or {}).get("name") or req.name or ""
            raise forbidden_write_error(req.res.plural, name, msg)

    def _role(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.rules.get_role(namespace, name) if kind == "Role" else self.rules.get_cluster_role(name)

    # ---- access reviews -----------------------------------------------------------------------------------

    async def review(self, req: Request) -> Reply:
        """POST of an access review: the answer in ``status`` (201), nothing stored."""
        kind = req.res.kind
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("kind") not in (None, kind):
            raise errors.bad_request(f"the object kind {body.get('kind')!r} does not match the resource "
                                     f"{req.res.plural!r} ({kind})")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        out = {"kind": kind, "apiVersion": API_VERSION,
               "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None}, "spec": spec}
        if kind == "SelfSubjectRulesReview":
            ns = spec.get("namespace")
            if not isinstance(ns, str) or not ns:
                raise errors.invalid(kind, "", [errors.Cause("spec.namespace", "Required value")], "authorization.k8s.io")
            out["status"] = subject_rules_review(self.authorizer, req.user, ns)
            return 201, out, []
        if kind == "SelfSubjectAccessReview":
            user = req.user
        else:
            user = self._subject(kind, spec)
        attrs = self._review_attributes(kind, spec, user, req.namespace)
        decision = await self.authorizer.authorize_async(attrs)
        status: dict[str, Any] = {"allowed": decision.allowed}
        if decision.denied:
            status["denied"] = True
        if decision.reason:
            status["reason"] = decision.reason
        out["status"] = status
        return 201, out, []

    @staticmethod
    def _subject(kind: str, spec: dict) -> UserInfo:
        user, groups = spec.get("user"), spec.get("groups")
        if not user and not groups:
            raise errors.invalid(kind, "", [errors.Cause("spec.user", "Invalid value: \"\": at least one of user or "
                                                         "group must be specified")], "authorization.k8s.io")
        try:
            return UserInfo.from_dict({"username": user or "", "groups": groups or [], "uid": spec.get("uid") or "",
                                       "extra": spec.get("extra") or {}}) if user else \
                UserInfo("", "", tuple(g for g in groups if isinstance(g, str)))
        except ValueError as e:
            raise errors.bad_request(str(e)) from None

    @staticmethod
    def _review_attributes(kind: str, spec: dict, user: UserInfo, namespace: str | None) -> Attributes:
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if bool(ra) == bool(nra):
            raise errors.invalid(kind, "", [errors.Cause(
                "spec.resourceAttributes", "Invalid value: \"null\": exactly one of nonResourceAttributes or "
                "resourceAttributes must be specified")], "authorization.k8s.io")
        if nra:
            if not isinstance(nra, dict):
                raise errors.bad_request("spec.nonResourceAttributes must be an object")
            return Attributes.for_path(user, str(nra.get("verb") or ""), str(nra.get("path") or ""))
        if not isinstance(ra, dict):
            raise errors.bad_request("spec.resourceAttributes must be an object")
        ns = str(ra.get("namespace") or "")
        if kind == "LocalSubjectAccessReview":
            if ns and ns != namespace:
                raise errors.invalid(kind, "", [errors.Cause(
                    "spec.resourceAttributes.namespace", f"Invalid value: \"{ns}\": must match metadata.namespace")],
                    "authorization.k8s.io")
            ns = namespace or ""
        return Attributes(user, str(ra.get("verb") or ""), ns, str(ra.get("group") or ""),
                          str(ra.get("resource") or ""), str(ra.get("subresource") or ""), str(ra.get("name") or ""))
