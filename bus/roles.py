"""The role table: who may publish and subscribe to what on the bus. One place; the README's table is generated from
it (``python -m bus.roles --write``) and every user JWT carries the permissions :func:`permissions_for` gives.

Principles (../shared/DESIGN.md, "Trust"):
- Only API servers write the KV buckets and manage streams; everyone else reads through JetStream consumers whose
  *name and filter are part of the create subject* (``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``), so a
  permission pins what they read. Unnamed consumer creates (nats.py's ``kv.watch()``) and consumer deletes are the
  API side's alone; other readers' consumers expire when their subscription goes.
- Every identity sends API requests under its own name: ``k8n.api.<identity>.<resource>.<verb>``. The API server
  takes the caller's identity from that subject; NATS refuses a publish under any other name.
- Every identity has its own inbox prefix ``_INBOX.<identity>`` and may subscribe only there (``_INBOX.>`` would
  let it read everyone's replies, Secrets included).
- A node's agent serves only ``k8n.node.<its node>.>``, reads only its own pods (``k8n-nodepods.<node>.>``) and the
  kinds a kubelet and a service proxy need, publishes metrics only for its node.
- Each component publishes its Prometheus telemetry only on its own subject (``k8n.telemetry.<role>``, an agent on
  ``k8n.telemetry.node.<its node>``); the gateway, the admin and subscribers read them.
- The ingress controller reads only what routing needs (Ingresses, IngressClasses, Services, EndpointSlices,
  Secrets for TLS) and writes Ingress status and events through the API.
- The subscriber role (outside event clients) reads object changes and metrics, never Secrets, and sends no API
  requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bus import subjects

# roles
APISERVER = "apiserver"
NODEVIEW = "nodeview"
CONTROLLER_MANAGER = "controller-manager"
SCHEDULER = "scheduler"
GATEWAY = "gateway"
NODE = "node"
INGRESS = "ingress"
ADMIN = "admin"
SUBSCRIBER = "subscriber"
ROLES = (APISERVER, NODEVIEW, CONTROLLER_MANAGER, SCHEDULER, GATEWAY, NODE, INGRESS, ADMIN, SUBSCRIBER)
NAMED_ROLES = (NODE, SUBSCRIBER)  # roles with one identity per instance: ``<role>:<name>``
NAME_OPTIONAL = (APISERVER,)  # an API server replica may carry its instance's name

_NAME = re.compile(r"[a-z0-9]([-a-z0-9_]*[a-z0-9])?")


@dataclass(frozen=True)
class Identity:
    """One bus identity: a role, and for per-instance roles a name (a node's name, an API server's instance)."""

    role: str
    name: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown bus role {self.role!r} (roles: {', '.join(ROLES)})")
        if self.role in NAMED_ROLES:
            if not _NAME.fullmatch(self.name) or len(self.name) > 253:
                raise ValueError(f"a {self.role} identity needs a name of a-z, 0-9, '-' and '_' (got {self.name!r})")
        elif self.name and (self.role not in NAME_OPTIONAL or not _NAME.fullmatch(self.name)):
            raise ValueError(f"the {self.role} identity takes no name" if self.role not in NAME_OPTIONAL
                             else f"bad {self.role} instance name {self.name!r}")

    @classmethod
    def node(cls, node_name: str) -> "Identity":
        return cls(NODE, subjects.encode_name(node_name))

    @classmethod
    def parse(cls, token: str) -> "Identity":
        """Inverse of :attr:`token`; ValueError for anything else."""
        role, _, name = token.partition(":")
        return cls(role, name)

    @property
    def token(self) -> str:
        """The identity as one subject token (and the JWT's name): ``admin``, ``node:worker-1``."""
        return f"{self.role}:{self.name}" if self.name else self.role

    @property
    def file_name(self) -> str:
        """Base name of its credentials file: ``admin``, ``node-worker-1`` (nodes: several agents may share a
        directory); an API server's is ``apiserver`` whatever its instance name (one per machine)."""
        return f"{self.role}-{self.name}" if self.name and self.role != APISERVER else self.role

    @classmethod
    def example(cls, role: str, name: str = "") -> "Identity":
        """An identity with a placeholder name such as ``<node>`` (for documentation; never minted)."""
        ident = object.__new__(cls)
        object.__setattr__(ident, "role", role)
        object.__setattr__(ident, "name", name)
        return ident

    @property
    def inbox_prefix(self) -> str:
        return subjects.inbox_prefix(self.token)


@dataclass(frozen=True)
class Permissions:
    pub_allow: tuple[str, ...] = ()
    pub_deny: tuple[str, ...] = ()
    sub_allow: tuple[str, ...] = ()
    sub_deny: tuple[str, ...] = ()
    responses: int = 0  # replies it may send to requests it received (NATS ``allow_responses``), 0 = none


# Buckets no reader but the API side may ever see: the reply cache holds every write's reply (Secrets included)
API_ONLY_BUCKETS = ("replies",)
SECRET_BUCKETS = ("secrets",)
# What a node's agent (kubelet, proxy, DNS) reads besides its own pods
NODE_READS = ("services", "endpoints", "endpointslices", "nodes", "namespaces")
# What the node view reads besides pods: NetworkPolicies and the namespaces their namespaceSelectors match
NODEVIEW_READS = ("pods", "networkpolicies", "namespaces")
# What the ingress controller reads: its routes, their Services and endpoints, and TLS Secrets (a bucket cannot be
# filtered by Secret type, so it reads every Secret's bytes, as ingress-nginx's cluster-wide Secret watch does)
INGRESS_READS = ("ingresses", "ingressclasses", "services", "endpointslices", "secrets")
INGRESS_LEASES = "kube-system"  # the namespace of the ingress controllers' Leases (node/ingress/presence.py)


def _read_buckets(deny: tuple[str, ...], audit: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Publish allow/deny that let a reader list and watch every bucket except ``deny`` (new buckets included) and
    their object histories, and (``audit``) read the audit stream."""
    allow = (subjects.js_stream_info("*"), subjects.js_consumer_create("*", ">"), subjects.js_direct_get("*", ">"),
             subjects.js_direct_get_batch("*"),  # batched gets: a chunk of a list at its snapshot (bus.store)
             subjects.js_flow_control("*"))
    streams = tuple(s for b in deny for s in (subjects.stream(b),)
                    + (() if b in API_ONLY_BUCKETS else (subjects.history_stream(b),)))
    streams += () if audit else (subjects.AUDIT_STREAM,)
    denied = tuple(x for s in streams for x in (subjects.js_consumer_create(s, ">"), subjects.js_direct_get(s, ">"),
                                                subjects.js_direct_get_batch(s), subjects.js_flow_control(s)))
    return allow, denied


def _read_only(resources: tuple[str, ...], extra_filters: tuple[tuple[str, str], ...] = ()) -> tuple[str, ...]:
    """Publish allow for consumers on exactly these buckets (any key), plus ``(resource, filter)`` pairs."""
    out = [subjects.js_stream_info("*")]
    out += [subjects.js_consumer_create(subjects.stream(r), subjects.kv_subject(r)) for r in resources]
    out += [subjects.js_consumer_create(subjects.stream(r), f) for r, f in extra_filters]
    paced = dict.fromkeys(resources + tuple(r for r, _ in extra_filters))
    out += [subjects.js_flow_control(subjects.stream(r)) for r in paced]
    return tuple(out)


def permissions_for(identity: Identity) -> Permissions:
    """The bus permissions of one identity (the role table)."""
    inbox = (f"{identity.inbox_prefix}.>",)
    api = (subjects.api_caller_wildcard(identity.token),)
    role = identity.role
    if role == APISERVER:
        return Permissions(
            pub_allow=(subjects.KV_SUBJECT_PREFIX + ">", "$JS.API.>", subjects.js_flow_control("*"),
                       subjects.apiserver_alive("*"), subjects.telemetry(APISERVER), subjects.audit_subject(),
                       subjects.apiserver_hold(),
                       subjects.version_subject(identity.token)),  # the other replicas' version (bus.skew)
            sub_allow=inbox + (subjects.api_wildcard(), subjects.apiserver_alive("*"), subjects.apiserver_hold()),
            responses=1)
    if role == NODEVIEW:
        nodepods = "nodepods"
        return Permissions(  # API requests: its Lease only (RBAC), for its leader election
            pub_allow=(subjects.kv_subject(nodepods),) + _read_only(NODEVIEW_READS + (nodepods,))
            + (subjects.js_direct_get(subjects.stream(nodepods), ">"),) + api,
            sub_allow=inbox)
    if role in (CONTROLLER_MANAGER, GATEWAY, ADMIN, SCHEDULER):
        deny = API_ONLY_BUCKETS + (SECRET_BUCKETS if role == SCHEDULER else ())
        allow, denied = _read_buckets(deny, audit=role == ADMIN)  # the audit records: admins only
        pub = api + allow + ((subjects.telemetry(role),) if role != ADMIN else ())
        sub = inbox
        if role in (GATEWAY, ADMIN):  # they forward logs/exec/portforward/stats to nodes (after authorizing them)
            pub += (subjects.node_call("*", ">"),)
            sub += (subjects.node_session("*", "*", subjects.SESSION_OUT),)
        if role in (CONTROLLER_MANAGER, GATEWAY, ADMIN):
            sub += (subjects.METRICS_PREFIX + ".>",)
        if role in (GATEWAY, ADMIN):  # the gateway serves every component's telemetry at /metrics
            sub += (subjects.telemetry_wildcard(),)
        if role == GATEWAY:  # it audits what its authorizer refuses (the rest is the API servers')
            pub += (subjects.audit_subject(),)
        if role == ADMIN:
            sub += (subjects.KV_SUBJECT_PREFIX + ">", subjects.audit_subject())
        return Permissions(pub_allow=pub, pub_deny=denied, sub_allow=sub,
                           sub_deny=tuple(subjects.kv_subject(b) for b in API_ONLY_BUCKETS))
    if role == NODE:
        node = identity.name
        own_pods = subjects.kv_subject("nodepods", node)
        return Permissions(
            pub_allow=api + _read_only(NODE_READS, (("nodepods", own_pods),)) + (
                subjects.node_metrics(node), subjects.pod_metrics_of_node(node), subjects.telemetry(NODE, node),
                subjects.node_session(node, "*", subjects.SESSION_OUT)),
            sub_allow=inbox + (subjects.node_call(node, ">"),),
            responses=1)  # one reply per call: streams go on the node's session subjects
    if role == INGRESS:  # API requests: status.loadBalancer of Ingresses and events (RBAC system:k8n-ingress)
        presence = (("leases", subjects.kv_subject("leases", INGRESS_LEASES)),)  # the controllers' Leases
        return Permissions(pub_allow=api + _read_only(INGRESS_READS, presence) + (subjects.telemetry(INGRESS, "*"),),
                           sub_allow=inbox)
    if role == SUBSCRIBER:
        hidden = API_ONLY_BUCKETS + SECRET_BUCKETS
        allow, denied = _read_buckets(hidden)
        return Permissions(
            pub_allow=allow, pub_deny=denied,
            sub_allow=inbox + (subjects.KV_SUBJECT_PREFIX + ">", subjects.METRICS_PREFIX + ".>",
                               subjects.telemetry_wildcard()),
            sub_deny=tuple(subjects.kv_subject(b) for b in hidden))
    raise ValueError(f"no permissions for role {role!r}")


def markdown_table() -> str:
    """The role table for the README."""
    rows = ["| identity | may publish | may not publish | may subscribe | may not subscribe |",
            "|---|---|---|---|---|"]
    examples = {APISERVER: "<instance>", NODE: "<node>", SUBSCRIBER: "<name>"}
    for role in ROLES:
        ident = Identity.example(role, examples.get(role, ""))
        p = permissions_for(ident)

        def cell(xs: tuple[str, ...]) -> str:
            return "<br>".join(f"`{x}`" for x in xs) or "—"

        extra = " (+ replies to requests it serves)" if p.responses else ""
        rows.append(f"| `{ident.token}` | {cell(p.pub_allow)}{extra} | {cell(p.pub_deny)} | {cell(p.sub_allow)} "
                    f"| {cell(p.sub_deny)} |")
    return "\n".join(rows) + "\n"


BLOCK = "roles"  # the README's <!-- settings:roles --> block

if __name__ == "__main__":
    from bus.settings import readme_main

    readme_main("python -m bus.roles", {BLOCK: markdown_table()}, "README.md")
