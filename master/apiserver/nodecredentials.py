"""Bus credentials for joining nodes: the API server's signer for CertificateSigningRequests of signer
``k8n.io/bus-node`` (``bus.nodecsr``), and their revocation when the Node goes.

Kubernetes' TLS bootstrap, in one step: a machine that joins authenticates with a bootstrap token (the API server's
TokenReview knows them: ``bus.bootstraptoken``), creates a CSR naming its node and the public key of a NATS user key
pair it made itself, and the API server — holding the cluster's bus signing key (``<data dir>/nats-auth``) —
approves it at once and answers with the user JWT for ``node:<name>`` in ``status.certificate``. The token is used up
(its Secret is deleted before anything is signed, with a precondition, so two joins racing on one token cannot both
win). A node may also ask again for itself (its own identity, no token), e.g. with a fresh key. Whatever signed
request existed for the same node before is revoked when a new one is signed, and all of them when the Node is
deleted: the keys go into the NATS account's revocation list, pushed to the running servers.

Who may create such a request is RBAC's to say (``system:node-bootstrapper`` bound to the node token group);
approving it needs, as in Kubernetes' csrapproving controller, ``create`` on
``certificatesigningrequests/nodeclient`` (bootstrap tokens) or ``.../selfnodeclient`` (a node for itself); a request
that also asks for the node's ingress controller's credentials needs ``.../ingressclient`` too, which only the
bootstrap tokens' group has (``k8n:node-autoapprove-ingress``): a node cannot give itself cluster-wide Secret reads."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Awaitable, Callable

from bus import bootstraptoken, errors, nodecsr
from bus.authn import NODE_USER_PREFIX, UserInfo
from bus.meta import deep_copy, format_time
from bus.resources import by_plural
from bus.store import NatsStore

log = logging.getLogger(__name__)

CSRS = by_plural("certificatesigningrequests")

#: revoke these NATS user public keys on every server (bus.natsauth's revocation, given by the API server)
Revoker = Callable[[list[str]], Awaitable[None]]
#: may this user create this subresource of certificatesigningrequests (RBAC)?
Allowed = Callable[[UserInfo, str], Awaitable[bool]]


def _approved(message: str) -> dict:
    t = format_time()
    return {"type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
            "lastUpdateTime": t, "lastTransitionTime": t}


class NodeCredentialSigner:
    def __init__(self, store: NatsStore, auth_dir: Path | None, revoke: Revoker | None = None,
                 allowed: Allowed | None = None) -> None:
        self.store = store
        self.auth_dir = auth_dir
        self.revoke = revoke
        self.allowed = allowed
        self._auth = None
        self._auth_stamp: tuple | None = None  # bus.natsauth.key_files_stamp of auth_dir when _auth was read

    def cluster_auth(self):
        """The cluster's bus keys, read again whenever a key file changed since they were read (by inode, mtime and
        size: ``k8n certs rotate-bus-key`` and its ``--finish``, a restore or a copied control-plane bundle replace
        them), so nodes joining after a rotation get JWTs of the new signing key, and a revocation pushes an account
        JWT with the signing keys of now."""
        from bus.natsauth import AuthError, ClusterAuth, key_files_stamp

        if self.auth_dir is None:
            raise errors.unavailable("this API server holds no bus signing key (K8N_BUS_AUTH_DIR): it cannot "
                                     "sign node credentials")
        stamp = key_files_stamp(self.auth_dir)  # before reading: a change meanwhile is read at the next call
        if self._auth is None or stamp != self._auth_stamp:
            try:
                self._auth = ClusterAuth.load(self.auth_dir)
            except AuthError as e:
                raise errors.unavailable(f"this API server cannot sign node credentials: {e}") from None
            if self._auth_stamp is not None:
                log.info("bus keys in %s changed: read them again", self.auth_dir)
            self._auth_stamp = stamp
        return self._auth

    @staticmethod
    def stamp_requester(csr: dict, user: UserInfo) -> None:
        """What Kubernetes records of every CSR's requester (``spec.username``, ``uid``, ``groups``, ``extra``)."""
        spec = csr.setdefault("spec", {})
        for f in ("username", "uid", "groups", "extra"):
            spec.pop(f, None)
        spec["username"] = user.name
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra}

    async def admit(self, csr: dict, user: UserInfo) -> None:
        """On create (``csr`` validated and prepared, not stored yet): record the requester and, for our signer,
        approve and sign it in place, consuming the bootstrap token it was made with."""
        self.stamp_requester(csr, user)
        spec = csr["spec"]
        if spec.get("signerName") != nodecsr.SIGNER:
            return
        name = csr["metadata"].get("name", "")
        try:
            node, key, ingress_key = nodecsr.parse_request(spec)
        except ValueError as e:
            raise errors.invalid("CertificateSigningRequest", name, [errors.Cause(
                "spec.request", f"Invalid value: {e}", "FieldValueInvalid")], "certificates.k8s.io") from None
        from bus.roles import INGRESS, Identity

        try:
            identity = Identity.node(node)
        except ValueError as e:
            raise errors.invalid("CertificateSigningRequest", name, [errors.Cause(
                "spec.request", f"Invalid value: node {node!r}: {e}", "FieldValueInvalid")],
                "certificates.k8s.io") from None
        token_id = bootstraptoken.token_id_of(user)
        if token_id is not None:
            sub, how = "nodeclient", "bootstrap token authentication"
        elif user.name == NODE_USER_PREFIX + node:
            sub, how = "selfnodeclient", f"node {node}'s own request"
        else:
            raise errors.forbidden("certificatesigningrequests", name, f"only a bootstrap token or node {node} "
                                   f"itself may request bus credentials for node {node}", "certificates.k8s.io")
        for needed in (sub, "ingressclient") if ingress_key else (sub,):
            if self.allowed is not None and not await self.allowed(user, needed):
                raise errors.forbidden("certificatesigningrequests", name, f'user "{user.name}" may not create '
                                       f"certificatesigningrequests/{needed}", "certificates.k8s.io")
        auth = self.cluster_auth()
        if token_id is not None:
            await self._use_up(token_id)
        jwt = auth.sign_user(identity, key)
        meta = csr["metadata"]
        meta.setdefault("labels", {})[nodecsr.NODE_LABEL] = identity.name
        notes = meta.setdefault("annotations", {})
        for k in nodecsr.SIGNED_ANNOTATIONS:  # what a signed request says is the API server's to write
            notes.pop(k, None)
        notes[nodecsr.USER_KEY_ANNOTATION] = key
        what = f"bus credentials of node {node}"
        if ingress_key:  # the node's ingress controller (identity ingress), revoked with the node's key
            notes[nodecsr.INGRESS_KEY_ANNOTATION] = ingress_key
            notes[nodecsr.INGRESS_JWT_ANNOTATION] = auth.sign_user(Identity(INGRESS), ingress_key)
            what += " and of its ingress controller"
        csr["status"] = {"conditions": [_approved(f"Auto approving {what} after {how}")],
                         "certificate": base64.b64encode(jwt.encode()).decode()}
        log.info("signed %s (user keys %s) for %s", what, ", ".join(nodecsr.signed_keys(csr)), user.name)

    async def _use_up(self, token_id: str) -> None:
        """Delete the token's Secret (precondition: the revision just read): only one request gets through."""
        res = by_plural("secrets")
        ns, name = bootstraptoken.NAMESPACE, bootstraptoken.secret_name(token_id)
        gone = errors.ApiError(401, "Unauthorized", f"bootstrap token {token_id} was used already")
        try:
            cur = await self.store.get(res, ns, name)
        except errors.NotFound:
            raise gone from None
        final = deep_copy(cur)
        final["metadata"].update({"deletionTimestamp": format_time(), "deletionGracePeriodSeconds": 0})
        try:
            await self.store.delete(res, ns, name, final, int(cur["metadata"]["resourceVersion"]))
        except (errors.Conflict, errors.NotFound):
            raise gone from None

    async def signed_for(self, node_name: str) -> list[dict]:
        """The signed requests of node ``node_name`` (its identity's name)."""
        items, _ = await self.store.list(CSRS)
        return [c for c in items if (c["metadata"].get("labels") or {}).get(nodecsr.NODE_LABEL) == node_name
                and (c.get("spec") or {}).get("signerName") == nodecsr.SIGNER]

    async def revoke_node(self, node_name: str, but: str | None = None) -> list[str]:
        """Revoke the keys of every signed request of ``node_name`` (but ``but``, whose key is kept: a node asking
        again with the same key pair keeps it, a revocation being per key) and delete those requests; the keys
        revoked."""
        from bus.roles import Identity

        try:
            ident = Identity.node(node_name)
        except ValueError:
            return []
        signed = await self.signed_for(ident.name)
        kept = {k for c in signed if c["metadata"]["name"] == but for k in nodecsr.signed_keys(c)}
        old = [c for c in signed if c["metadata"]["name"] != but]
        keys = [k for c in old for k in nodecsr.signed_keys(c) if k not in kept]
        if not keys:
            return []
        if self.revoke is None:
            log.warning("cannot revoke the bus credentials of node %s: no revoker", node_name)
            return []
        await self.revoke(keys)
        for c in old:
            final = deep_copy(c)
            final["metadata"]["deletionTimestamp"] = format_time()
            try:
                await self.store.delete(CSRS, None, c["metadata"]["name"], final, int(c["metadata"]["resourceVersion"]))
            except (errors.NotFound, errors.Conflict):
                pass
        log.info("revoked the bus credentials of node %s (%d keys)", node_name, len(keys))
        return keys
