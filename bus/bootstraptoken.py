"""Bootstrap tokens, as Kubernetes keeps them (``k8s.io/cluster-bootstrap/token``): a token ``<id>.<secret>``
(``[a-z0-9]{6}.[a-z0-9]{16}``) lives in a Secret ``kube-system/bootstrap-token-<id>`` of type
``bootstrap.kubernetes.io/token`` with ``token-id``, ``token-secret``, ``expiration`` (RFC 3339),
``usage-bootstrap-authentication``, ``auth-extra-groups`` and ``description``. A machine that joins presents it as a
bearer token: it authenticates as ``system:bootstrap:<id>`` in ``system:bootstrappers`` (plus its extra groups) until
it expires or its Secret is deleted. k8n's join uses each token once: enrolling a node deletes it.

Pure functions over the Secret: the CLI makes and lists tokens with them, the API server authenticates with them."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from bus.authn import UserInfo
from bus.meta import format_time, parse_time

NAMESPACE = "kube-system"
SECRET_PREFIX = "bootstrap-token-"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
USER_PREFIX = "system:bootstrap:"
GROUP = "system:bootstrappers"
#: the group a node token's holder gets (kubeadm's is ``system:bootstrappers:kubeadm:default-node-token``)
NODE_GROUP = "system:bootstrappers:k8n:default-node-token"
#: the group of a token that may also fetch the control plane's keys (k8n join --control-plane)
CONTROL_PLANE_GROUP = "system:bootstrappers:k8n:control-plane"
#: the Secret (in kube-system) holding the control plane's keys, sealed, for machines joining the control plane
CONTROL_PLANE_SECRET = "k8n-control-plane-certs"
USAGES = ("authentication", "signing")
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
DEFAULT_TTL = timedelta(hours=24)  # kubeadm's
_ALPHABET = string.ascii_lowercase + string.digits


def generate() -> str:
    """A new random token ``<id>.<secret>``."""
    pick = lambda n: "".join(secrets.choice(_ALPHABET) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def parse(token: str) -> tuple[str, str]:
    """``(id, secret)``; ValueError in kubeadm's words otherwise."""
    m = TOKEN_RE.match(token or "")
    if not m:
        raise ValueError(f'the token "{token}" was not of the form "{TOKEN_RE.pattern}"')
    return m.group(1), m.group(2)


def secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret_object(token: str, ttl: timedelta | None = DEFAULT_TTL, description: str = "",
                  groups: tuple[str, ...] = (NODE_GROUP,), now: datetime | None = None) -> dict:
    """The Secret that makes ``token`` valid (``ttl`` None or 0: it never expires)."""
    token_id, token_secret = parse(token)
    for g in groups:
        if not GROUP_RE.match(g):
            raise ValueError(f'auth-extra-group "{g}" does not match "{GROUP_RE.pattern}"')
    data = {"token-id": token_id, "token-secret": token_secret, "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true"}
    if ttl:
        data["expiration"] = format_time((now or datetime.now(timezone.utc)) + ttl)
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    if description:
        data["description"] = description
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(token_id), "namespace": NAMESPACE},
            "data": {k: _b64(v) for k, v in data.items()}}


@dataclass(frozen=True)
class BootstrapToken:
    """A bootstrap token Secret, read."""

    id: str
    secret: str
    expiration: datetime | None
    usages: tuple[str, ...]
    groups: tuple[str, ...]
    description: str
    deleting: bool = False

    @classmethod
    def from_secret(cls, obj: dict) -> "BootstrapToken":
        """ValueError when ``obj`` is not a well-formed bootstrap token Secret."""
        meta = obj.get("metadata") or {}
        if obj.get("type") != SECRET_TYPE:
            raise ValueError(f"secret {meta.get('name')} is not of type {SECRET_TYPE}")
        try:
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        except (ValueError, TypeError):
            raise ValueError(f"secret {meta.get('name')} has data that is not base64") from None
        token_id = data.get("token-id", "")
        if not ID_RE.match(token_id) or meta.get("name") != secret_name(token_id):
            raise ValueError(f"secret {meta.get('name')} has no valid token-id")
        expiration = None
        if data.get("expiration"):
            expiration = parse_time(data["expiration"])
            if expiration is None:
                raise ValueError(f"secret {meta.get('name')} has an invalid expiration {data['expiration']!r}")
        return cls(token_id, data.get("token-secret", ""), expiration,
                   tuple(u for u in USAGES if data.get(f"usage-bootstrap-{u}") == "true"),
                   tuple(g for g in data.get("auth-extra-groups", "").split(",") if g),
                   data.get("description", ""), bool(meta.get("deletionTimestamp")))

    def expired(self, now: datetime | None = None) -> bool:
        return self.expiration is not None and (now or datetime.now(timezone.utc)) >= self.expiration

    def ttl(self, now: datetime | None = None) -> str:
        """kubeadm's TTL column: ``23h``, ``59m``, ``<forever>``, ``<invalid>`` once expired."""
        if self.expiration is None:
            return "<forever>"
        left = (self.expiration - (now or datetime.now(timezone.utc))).total_seconds()
        if left <= 0:
            return "<invalid>"
        return f"{int(left // 3600)}h" if left >= 3600 else f"{max(1, int(left // 60))}m"

    def user(self) -> UserInfo:
        return UserInfo(USER_PREFIX + self.id, "", (GROUP, *self.groups, "system:authenticated"))


def authenticate(obj: dict, token: str, now: datetime | None = None) -> UserInfo:
    """The user ``token`` authenticates as, given its Secret ``obj``; ValueError saying why not (the API server's
    log: the caller is told only that it is unauthorized, as Kubernetes does)."""
    token_id, token_secret = parse(token)
    t = BootstrapToken.from_secret(obj)
    if t.id != token_id or not hmac.compare_digest(t.secret.encode(), token_secret.encode()):
        raise ValueError(f"bootstrap token {token_id}: the secret does not match")
    if t.deleting:
        raise ValueError(f"bootstrap token {token_id} is being deleted")
    if t.expired(now):
        raise ValueError(f"bootstrap token {token_id} expired at {format_time(t.expiration)}")
    if "authentication" not in t.usages:
        raise ValueError(f"bootstrap token {token_id} is not usable for authentication")
    bad = [g for g in t.groups if not GROUP_RE.match(g)]
    if bad:
        raise ValueError(f"bootstrap token {token_id} has an invalid auth-extra-group {bad[0]!r}")
    return t.user()


def token_id_of(user: UserInfo) -> str | None:
    """The token id a bootstrap user authenticated with (None for any other user)."""
    if user.name.startswith(USER_PREFIX) and GROUP in user.groups:
        token_id = user.name[len(USER_PREFIX):]
        return token_id if ID_RE.match(token_id) else None
    return None
