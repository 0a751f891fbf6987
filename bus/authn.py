"""Who is asking: the user a request is made as, and the names Kubernetes gives its well-known users and groups.

Every API request carries a :class:`UserInfo`. On the bus the API server derives it from the caller's NATS identity
(:func:`user_for_identity`; the identity is part of the request subject and NATS lets each identity publish only
under its own, so nobody can claim another's); at the HTTP gateway it is the authenticated bearer token's user,
which the gateway passes on (it may do so only for the users it authenticated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bus.roles import Identity

# ---- well-known groups and users (Kubernetes' names) --------------------------------------------------
SYSTEM_MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
NODES_GROUP = "system:nodes"
SERVICEACCOUNTS_GROUP = "system:serviceaccounts"
NODE_USER_PREFIX = "system:node:"
SERVICEACCOUNT_USER_PREFIX = "system:serviceaccount:"
ANONYMOUS = "system:anonymous"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
APISERVER_USER = "system:apiserver"
GATEWAY_USER = "system:k8n-gateway"
INGRESS_USER = "system:k8n-ingress"
ADMIN_USER = "kubernetes-admin"


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def as_dict(self) -> dict:
        """The user as it crosses the bus (and as Kubernetes' ``UserInfo`` reads in JSON)."""
        d: dict = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            d["uid"] = self.uid
        if self.extra:
            d["extra"] = {k: list(v) for k, v in self.extra}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UserInfo":
        """Inverse of :meth:`as_dict`; ValueError for anything that is not one."""
        if not isinstance(d, dict) or not isinstance(d.get("username"), str) or not d["username"]:
            raise ValueError("user.username must be a non-empty string")
        groups = d.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("user.groups must be a list of strings")
        uid = d.get("uid") or ""
        if not isinstance(uid, str):
            raise ValueError("user.uid must be a string")
        extra = d.get("extra") or {}
        if not isinstance(extra, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
                for k, v in extra.items()):
            raise ValueError("user.extra must map strings to lists of strings")
        return cls(d["username"], uid, tuple(groups), tuple((k, tuple(v)) for k, v in sorted(extra.items())))

    @property
    def is_master(self) -> bool:
        return SYSTEM_MASTERS in self.groups


def with_authenticated(groups: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``groups`` plus ``system:authenticated`` (every authenticated user is in it), without duplicates."""
    out = tuple(dict.fromkeys(groups))
    return out if AUTHENTICATED in out else out + (AUTHENTICATED,)


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"{SERVICEACCOUNT_USER_PREFIX}{namespace}:{name}", uid,
                    (SERVICEACCOUNTS_GROUP, f"{SERVICEACCOUNTS_GROUP}:{namespace}", AUTHENTICATED))


def node_user(node: str) -> UserInfo:
    return UserInfo(f"{NODE_USER_PREFIX}{node}", "", (NODES_GROUP, AUTHENTICATED))


def node_of_user(user: UserInfo) -> str | None:
    """The node a node's user acts for (``system:node:<name>`` in ``system:nodes``), else None."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_USER_PREFIX):
        return user.name[len(NODE_USER_PREFIX):] or None
    return None


def user_for_identity(identity: "Identity") -> UserInfo:
    """The Kubernetes user a bus identity acts as when it calls the API itself."""
    from bus import roles, subjects

    role = identity.role
    if role == roles.ADMIN:
        return UserInfo(ADMIN_USER, "", (SYSTEM_MASTERS, AUTHENTICATED))
    if role == roles.APISERVER:
        return UserInfo(APISERVER_USER, "", (SYSTEM_MASTERS, AUTHENTICATED))
    if role == roles.NODE:
        return node_user(subjects.decode_name(identity.name))
    names = {roles.CONTROLLER_MANAGER: CONTROLLER_MANAGER_USER, roles.SCHEDULER: SCHEDULER_USER,
             roles.GATEWAY: GATEWAY_USER, roles.INGRESS: INGRESS_USER}
    if role in names:
        return UserInfo(names[role], "", (AUTHENTICATED,))
    return UserInfo(f"system:k8n-{identity.token}", "", (AUTHENTICATED,))
