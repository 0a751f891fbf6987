"""Every NATS subject, bucket and key name k8n uses is built here and nowhere else.

Layout
------
- API requests (request/reply, served by the apiserver queue group):
  ``k8n.api.<caller>.<resource>.<verb>`` e.g. ``k8n.api.admin.pods.create``. ``caller`` is the sender's bus
  identity (``bus.roles.Identity.token``): NATS lets each identity publish only under its own, so the API server
  knows who asks. ``resource`` is the plural (``pods``, ``deployments``); plurals are unique across k8n's kinds.
- Replies come back on the caller's own inbox prefix ``_INBOX.<caller>`` (:func:`inbox_prefix`).
- Objects: one JetStream KV bucket per resource, named ``k8n-<resource>``. Keys are
  ``<namespace>.<name>`` for namespaced kinds and ``<name>`` for cluster-scoped ones; a ``.``
  inside a name is written as ``_`` (``_`` never occurs in a DNS-1123 name), so the encoding is
  reversible. Every change of every object is a message on
  ``$KV.k8n-<resource>.<namespace>.<name>``, so any NATS client can subscribe to it.
- Replies to writes that carried a ``requestId``: bucket ``k8n-replies`` (``bus.resources.API_REPLIES``),
  key = the request id (:func:`reply_key`); each apiserver answers liveness probes on
  ``k8n.apiserver.<instance>.alive`` (:func:`apiserver_alive`).
- Node-addressed calls and metrics name the node (and pod): see the functions below. A streaming call (logs,
  exec) names a session: the agent sends on ``k8n.node.<node>.session.<id>.out`` and reads the caller's stdin and
  control messages on ``k8n.node.<node>.session.<id>.in`` (:func:`node_session`).
- Prometheus metric families of each component: ``k8n.telemetry.<component>[.<node>]`` (:func:`telemetry`).
- JetStream API subjects that permissions name (``$JS.API.…``) are built here too.
"""

from __future__ import annotations

import re

API_PREFIX = "k8n.api"
API_QUEUE = "k8n-apiserver"
BUCKET_PREFIX = "k8n-"
KV_SUBJECT_PREFIX = "$KV."


def api_subject(caller: str, resource: str, verb: str) -> str:
    """Request subject for one verb on one resource (plural), sent by the identity ``caller``."""
    return f"{API_PREFIX}.{caller}.{resource}.{verb}"


def version_subject(caller: str) -> str:
    """Request subject answered with the server's version."""
    return f"{API_PREFIX}.{caller}.version.get"


def upgrade_subject(caller: str) -> str:
    """Request subject of ``k8n upgrade plan|apply`` (``master/apiserver/upgrade.py``)."""
    return f"{API_PREFIX}.{caller}.-.upgrade"


def backup_subject(caller: str) -> str:
    """Request subject of a backup's cut (``k8n backup``): the API server that takes it holds every replica's writes
    while it reads each bucket's last revision (``master/apiserver/backup.py``). ``-`` is no resource's token."""
    return f"{API_PREFIX}.{caller}.-.backup"


def api_wildcard() -> str:
    """What the apiserver queue group subscribes to."""
    return f"{API_PREFIX}.>"


def api_caller_wildcard(caller: str) -> str:
    """Every API request one identity may send."""
    return f"{API_PREFIX}.{caller}.>"


def parse_api_subject(subject: str) -> tuple[str, str, str]:
    """Inverse of :func:`api_subject`: ``(caller, resource, verb)``; raises ValueError."""
    parts = subject.split(".")
    if len(parts) != 5 or f"{parts[0]}.{parts[1]}" != API_PREFIX:
        raise ValueError(f"not an API subject: {subject!r}")
    return parts[2], parts[3], parts[4]


def inbox_prefix(caller: str) -> str:
    """The inbox prefix of one identity (its replies, its watches' deliveries): only it may subscribe there."""
    return f"_INBOX.{caller}"


# ---- request ids and the apiservers' reply cache --------------------------------------------

SAFE_TOKEN = re.compile(r"[A-Za-z0-9][-A-Za-z0-9.]{0,252}")  # names and namespaces that can be KV keys
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")  # a request id the apiserver accepts (uuid4 hex is one)
APISERVER_PREFIX = "k8n.apiserver"


def reply_key(request_id: str) -> str:
    """KV key of one request's cached reply. Ids are validated (:data:`REQUEST_ID`) where they enter, and every
    such id is already a valid single-token key."""
    if not REQUEST_ID.fullmatch(request_id):
        raise ValueError(f"not a request id: {request_id!r}")
    return request_id


def apiserver_alive(instance: str) -> str:
    """Subject one apiserver process answers while it runs (no responders: it is gone)."""
    return f"{APISERVER_PREFIX}.{instance}.alive"


def apiserver_hold() -> str:
    """Where the API server taking a backup's cut asks every replica to hold its writes, and then releases them."""
    return f"{APISERVER_PREFIX}.hold"


def bucket(resource: str) -> str:
    """KV bucket holding one resource's objects."""
    return f"{BUCKET_PREFIX}{resource}"


def stream(resource: str) -> str:
    """The JetStream stream behind a resource's bucket."""
    return f"KV_{bucket(resource)}"


# ---- object history and the audit stream (bus.history) ------------------------------------------------------
# Each kind's history is a stream of its own, ``HIST_k8n-<resource>``, that sources the kind's bucket: the server
# copies every change with its headers (who made it) to ``k8n.history.<resource>.<key>``. The API server publishes
# the records of mutating requests on ``k8n.audit.records``, kept by the stream ``K8N_AUDIT``.
HISTORY_PREFIX = "k8n.history"
AUDIT_PREFIX = "k8n.audit"
AUDIT_STREAM = "K8N_AUDIT"


def history_stream(resource: str) -> str:
    return f"HIST_{bucket(resource)}"


def history_subject(resource: str, namespace: str | None = None, name: str | None = None) -> str:
    """One object's history, one namespace's (``ns.>``) or the whole kind's (``>``), as :func:`kv_subject`."""
    base = f"{HISTORY_PREFIX}.{resource}."
    if name is not None:
        return base + object_key(namespace, name)
    return base + (f"{namespace}.>" if namespace else ">")


def audit_subject() -> str:
    """Where API servers publish audit records (newline-separated JSON, a batch per message)."""
    return f"{AUDIT_PREFIX}.records"


def encode_name(name: str) -> str:
    return name.replace(".", "_")


def decode_name(token: str) -> str:
    return token.replace("_", ".")


def object_key(namespace: str | None, name: str) -> str:
    """KV key of one object (namespace is None/'' for cluster-scoped kinds)."""
    if namespace:
        return f"{namespace}.{encode_name(name)}"
    return encode_name(name)


def parse_key(key: str) -> tuple[str | None, str]:
    """Inverse of :func:`object_key`: ``(namespace or None, name)``."""
    if "." in key:
        ns, token = key.split(".", 1)
        return ns, decode_name(token)
    return None, decode_name(key)


def kv_subject(resource: str, namespace: str | None = None, name: str | None = None) -> str:
    """Subject of object changes: one object, one namespace (``ns.>``) or the whole kind (``>``)."""
    base = f"{KV_SUBJECT_PREFIX}{bucket(resource)}."
    if name is not None:
        return base + object_key(namespace, name)
    if namespace:
        return base + f"{namespace}.>"
    return base + ">"


def kv_key_subject(resource: str, key: str) -> str:
    return f"{KV_SUBJECT_PREFIX}{bucket(resource)}.{key}"


def key_from_kv_subject(resource: str, subject: str) -> str:
    return subject[len(f"{KV_SUBJECT_PREFIX}{bucket(resource)}.") :]


def node_pods_namespace(node: str) -> str:
    """First key token of a node's pods in the node view bucket (``NODE_PODS``)."""
    return encode_name(node)


def node_pod_key(node: str, namespace: str, name: str) -> str:
    return f"{encode_name(node)}.{namespace}.{encode_name(name)}"


# The node view also keeps, per node, the NetworkPolicy rules compiled for that node's pods (``master/netpol``) under
# ``<node>.=networkpolicy``: two tokens, the second never a namespace (``=`` is not in a DNS-1123 label), so the
# agent's watch of its pods brings it and it can never collide with a pod key.
NODE_NETWORK_POLICY_KIND = "NodeNetworkPolicy"


def node_network_policy_key(node: str) -> str:
    return f"{encode_name(node)}.=networkpolicy"


# ---- service allocations (ClusterIPs, NodePorts) ----------------------------------------------

ALLOC_CLUSTER_IP = "clusterip"  # first key token of a ClusterIP claim
ALLOC_NODE_PORT = "nodeport"  # first key token of a NodePort claim


def service_alloc_key(kind: str, value: str | int) -> tuple[str, str]:
    """``(namespace, name)`` of one claim in the allocations bucket (``object_key`` makes the KV
    key: ``clusterip.10_96_0_1``, ``nodeport.30080``)."""
    return kind, str(value)


# ---- node-addressed subjects (agent) and metrics -------------------------------------------

NODE_PREFIX = "k8n.node"
METRICS_PREFIX = "k8n.metrics"
SESSION_OUT, SESSION_IN = "out", "in"
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # a streaming session's id (the caller picks a random one)


def node_call(node: str, call: str) -> str:
    """Request subject served by one node's agent: call is ``logs``, ``exec``, ``stats``."""
    return f"{NODE_PREFIX}.{encode_name(node) if node not in ('*', '>') else node}.{call}"


def node_session(node: str, session: str, direction: str) -> str:
    """One direction of a streaming session with a node's agent: ``out`` (the agent sends) or ``in`` (the caller
    sends stdin and control). Session ids are validated (:data:`SESSION_ID`) where they enter."""
    if session != "*" and not SESSION_ID.fullmatch(session):
        raise ValueError(f"not a session id: {session!r}")
    n = encode_name(node) if node != "*" else node
    return f"{NODE_PREFIX}.{n}.session.{session}.{direction}"


def node_metrics(node: str) -> str:
    return f"{METRICS_PREFIX}.node.{encode_name(node)}"


def pod_metrics(node: str, namespace: str, pod: str) -> str:
    return f"{METRICS_PREFIX}.pod.{encode_name(node)}.{namespace}.{encode_name(pod)}"


def pod_metrics_wildcard() -> str:
    return f"{METRICS_PREFIX}.pod.>"


def pod_metrics_of_node(node: str) -> str:
    return f"{METRICS_PREFIX}.pod.{encode_name(node)}.>"


def node_metrics_wildcard() -> str:
    return f"{METRICS_PREFIX}.node.*"


def parse_metrics_subject(subject: str) -> tuple[str, str, str]:
    """Inverse of :func:`node_metrics` (``(node, "", "")``) and :func:`pod_metrics` (``(node, namespace, pod)``);
    ValueError for anything else. The node token is the one NATS lets only that node's agent publish."""
    parts = subject.split(".")
    if parts[:3] == [*METRICS_PREFIX.split("."), "node"] and len(parts) == 4:
        return decode_name(parts[3]), "", ""
    if parts[:3] == [*METRICS_PREFIX.split("."), "pod"] and len(parts) == 6:
        return decode_name(parts[3]), parts[4], decode_name(parts[5])
    raise ValueError(f"not a metrics subject: {subject!r}")


# ---- Prometheus telemetry (bus.telemetry): one subject per component, and per node for agents -------------------

TELEMETRY_PREFIX = "k8n.telemetry"


def telemetry(component: str, node: str = "") -> str:
    """Where one component publishes its Prometheus metric families: ``k8n.telemetry.<component>`` (a bus role:
    ``apiserver``, ``scheduler``, …), an agent ``k8n.telemetry.node.<node>``."""
    return f"{TELEMETRY_PREFIX}.{component}" + (f".{encode_name(node) if node != '*' else node}" if node else "")


def telemetry_wildcard() -> str:
    return f"{TELEMETRY_PREFIX}.>"


def parse_telemetry_subject(subject: str) -> tuple[str, str]:
    """Inverse of :func:`telemetry`: ``(component, node)`` — who published, as NATS vouches for it (a payload's own
    claims are not trusted); ValueError for anything else."""
    parts = subject.split(".")
    if parts[:2] != TELEMETRY_PREFIX.split(".") or len(parts) not in (3, 4) or not all(parts[2:]):
        raise ValueError(f"not a telemetry subject: {subject!r}")
    return parts[2], decode_name(parts[3]) if len(parts) == 4 else ""


# ---- JetStream API subjects (what permissions name) -----------------------------------------------

JS_API = "$JS.API"
#: JetStream's account info: answered by the meta leader, or at once with "temporarily unavailable" by any server
#: of a cluster that has none (the API server's health probe, master/apiserver/jshealth.py)
JS_API_INFO = f"{JS_API}.INFO"
#: a page of every stream's configuration and state (the API server's JetStream figures, ``bus.telemetry``)
JS_API_STREAM_LIST = f"{JS_API}.STREAM.LIST"


def js_stream_info(stream_name: str) -> str:
    return f"{JS_API}.STREAM.INFO.{stream_name}"


def js_consumer_create(stream_name: str, filter_subject: str, consumer: str = "*") -> str:
    """Create subject of a named consumer with one filter (the filter is part of the subject, so a permission can
    pin it)."""
    return f"{JS_API}.CONSUMER.CREATE.{stream_name}.{consumer}.{filter_subject}"


def js_direct_get(stream_name: str, subject: str) -> str:
    """Direct get of the last message on ``subject``."""
    return f"{JS_API}.DIRECT.GET.{stream_name}.{subject}"


def js_direct_get_batch(stream_name: str) -> str:
    """Direct get with the request in the body (by sequence, next by subject, batches of last-per-subject)."""
    return f"{JS_API}.DIRECT.GET.{stream_name}"


def js_flow_control(stream_name: str) -> str:
    """Where a reader answers the flow-control requests of its consumers on a stream (a list paced by the reader,
    ``bus.store``: unpaced, a big one overflows the server's per-client buffer)."""
    return f"$JS.FC.{stream_name}.>"


# ---- nats-server's system account (used only by the API side's revocation, bus.natsrevoke) ----------------

#: request subject of a signed account JWT update, answered by every server with the ``full`` account resolver
SYS_CLAIMS_UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
#: request subject every server answers with its client connections (bus.natsconns: ``k8n upgrade plan``)
SYS_CONNZ = "$SYS.REQ.SERVER.PING.CONNZ"
