"""Kubernetes' Node authorizer and NodeRestriction, for k8n's node agents: pure decisions over an index of which
node needs which object, kept from informers.

A node agent's user is ``system:node:<node>`` in ``system:nodes`` (``bus.authn.node_user``). For it
:class:`NodeAuthorizer` answers:

- reads k8n's agent needs of everyone's objects: get/list/watch of nodes, services, endpoints, endpointslices,
  namespaces and pods (the agent's own pods come from the node view bucket; a ``spec.nodeName`` field selector is
  not required here, unlike Kubernetes' AuthorizeNodeWithSelectors);
- its own Node: create, update and patch it and its status (another node's: no);
- its own Lease: get, create, update, patch, delete in ``kube-node-lease`` under its own name;
- pods bound to it (``spec.nodeName``): update/patch their status, delete them (the agent's final delete);
- create/update/patch of events, and (k8n: ``bus.events.EventRecorder`` reads back the event it counts up) get of
  one named event;
- get (list/watch of one named object) of the secrets, configmaps and persistentvolumeclaims a pod bound to it
  references (volumes, projected sources, env/envFrom, imagePullSecrets, ephemeral volumes' claims, the secret
  refs of volume plugins), the persistentvolumes bound to such claims (the PV's ``claimRef``), and
  update/patch of such claims' status;
- serviceaccounts/token create for the ServiceAccount of a pod bound to it, when the TokenRequest body binds the
  token to that pod (``spec.boundObjectRef``: v1 Pod, its name and uid) — pass the request body as ``body``.

Everything else — and every request of a user that is not a node — gets no opinion, so the caller falls back to
RBAC (as Kubernetes' node authorizer does); the reasons are Kubernetes' words. Evictions and pod creation (mirror
pods) are not allowed: k8n agents make neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from bus import skew
from bus.authn import NODE_USER_PREFIX, NODES_GROUP, UserInfo
from bus.rbac import ALLOWED, Attributes, Decision, deny, go_quote as _q, no_opinion

NODE_LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_SERVICE_ACCOUNT = "default"

PODS, SECRETS, CONFIGMAPS = "pods", "secrets", "configmaps"
PVCS, PVS, SERVICEACCOUNTS = "persistentvolumeclaims", "persistentvolumes", "serviceaccounts"

READ = frozenset({"get", "list", "watch"})
_READ_EVERYWHERE = {("", "nodes"), ("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices"),
                    ("", "namespaces"), ("", "pods")}
_EVENTS = {("", "events"), ("events.k8s.io", "events")}
_EVENT_VERBS = frozenset({"create", "update", "patch"})
_LEASE_VERBS = frozenset({"get", "create", "update", "patch", "delete"})

# Volume plugins whose secret a node reads (podutil.VisitPodSecretNames): volume key -> (field, name key).
_VOLUME_SECRET_REFS = (("azureFile", "secretName", None), ("cephfs", "secretRef", "name"),
                       ("cinder", "secretRef", "name"), ("flexVolume", "secretRef", "name"),
                       ("iscsi", "secretRef", "name"), ("rbd", "secretRef", "name"), ("scaleIO", "secretRef", "name"),
                       ("storageos", "secretRef", "name"), ("csi", "nodePublishSecretRef", "name"))


def _d(v: Any) -> Mapping:
    return v if isinstance(v, Mapping) else {}


def _l(v: Any) -> list:
    return v if isinstance(v, list) else []


def node_identity(user: UserInfo) -> tuple[bool, str]:
    """(is a node, its node name — "" when the name is missing), as Kubernetes' NodeIdentity."""
    if NODES_GROUP not in user.groups or not user.name.startswith(NODE_USER_PREFIX):
        return False, ""
    return True, user.name[len(NODE_USER_PREFIX):]


def pod_references(pod: Mapping) -> set[tuple[str, str]]:
    """(resource, name) of every object in the pod's namespace that a node running ``pod`` reads: secrets,
    configmaps, persistentvolumeclaims and the pod's serviceaccount."""
    spec = _d(pod.get("spec"))
    pod_name = _d(pod.get("metadata")).get("name") or ""
    out: set[tuple[str, str]] = set()

    def add(kind: str, name: Any) -> None:
        if isinstance(name, str) and name:
            out.add((kind, name))

    for ref in _l(spec.get("imagePullSecrets")):
        add(SECRETS, _d(ref).get("name"))
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for c in _l(spec.get(field)):
            c = _d(c)
            for env in _l(c.get("env")):
                vf = _d(_d(env).get("valueFrom"))
                add(SECRETS, _d(vf.get("secretKeyRef")).get("name"))
                add(CONFIGMAPS, _d(vf.get("configMapKeyRef")).get("name"))
            for ef in _l(c.get("envFrom")):
                ef = _d(ef)
                add(SECRETS, _d(ef.get("secretRef")).get("name"))
                add(CONFIGMAPS, _d(ef.get("configMapRef")).get("name"))
    for vol in _l(spec.get("volumes")):
        vol = _d(vol)
        add(SECRETS, _d(vol.get("secret")).get("secretName"))
        add(CONFIGMAPS, _d(vol.get("configMap")).get("name"))
        for src in _l(_d(vol.get("projected")).get("sources")):
            src = _d(src)
            add(SECRETS, _d(src.get("secret")).get("name"))
            add(CONFIGMAPS, _d(src.get("configMap")).get("name"))
        add(PVCS, _d(vol.get("persistentVolumeClaim")).get("claimName"))
        if vol.get("ephemeral") is not None and vol.get("name"):
            add(PVCS, f"{pod_name}-{vol['name']}")
        for plugin, fld, key in _VOLUME_SECRET_REFS:
            v = _d(vol.get(plugin)).get(fld)
            add(SECRETS, v if key is None else _d(v).get(key))
    add(SERVICEACCOUNTS, service_account_of(pod))
    return out


def service_account_of(pod: Mapping) -> str:
    """The pod's ServiceAccount (``default`` when the spec names none, as admission and the agent assume)."""
    spec = _d(pod.get("spec"))
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
    return sa if isinstance(sa, str) and sa else DEFAULT_SERVICE_ACCOUNT


@dataclass(frozen=True, slots=True)
class PodInfo:
    node: str
    uid: str
    service_account: str
    refs: frozenset[tuple[str, str]]  # (resource, name) in the pod's namespace, the pod itself included


class NodeGraph:
    """Which nodes need which objects: (resource, namespace, name) -> nodes, kept from a pods informer
    (:meth:`watch_pods`) and a PersistentVolumes one for their claimRef (:meth:`watch_volumes`). Every answer
    is a dict lookup."""

    def __init__(self) -> None:
        self._refs: dict[tuple[str, str, str], dict[str, int]] = {}
        self._pods: dict[tuple[str, str], PodInfo] = {}
        self._pv_claim: dict[str, tuple[str, str]] = {}

    # -- feeding --

    def watch_pods(self, informer: Any) -> None:
        informer.add_handler(on_add=self.set_pod, on_update=lambda _old, new: self.set_pod(new),
                             on_delete=self.remove_pod)

    def watch_volumes(self, informer: Any) -> None:
        informer.add_handler(on_add=self.set_volume, on_update=lambda _old, new: self.set_volume(new),
                             on_delete=self.remove_volume)

    def set_pod(self, pod: Mapping) -> None:
        """Add or replace a pod (one not bound to a node references nothing)."""
        meta = _d(pod.get("metadata"))
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        spec = _d(pod.get("spec"))
        node = spec.get("nodeName") if isinstance(spec.get("nodeName"), str) else ""
        key = (ns, name)
        old = self._pods.get(key)
        info = None
        if node:
            info = PodInfo(node, str(meta.get("uid") or ""), service_account_of(pod),
                           frozenset(pod_references(pod) | {(PODS, name)}))
        if old == info:
            return
        if old is not None:
            self._unref(ns, old)
        if info is None:
            self._pods.pop(key, None)
            return
        self._pods[key] = info
        for kind, ref in info.refs:
            counts = self._refs.setdefault((kind, ns, ref), {})
            counts[info.node] = counts.get(info.node, 0) + 1

    def remove_pod(self, pod: Mapping) -> None:
        meta = _d(pod.get("metadata"))
        key = (meta.get("namespace") or "", meta.get("name") or "")
        old = self._pods.pop(key, None)
        if old is not None:
            self._unref(key[0], old)

    def _unref(self, ns: str, info: PodInfo) -> None:
        for kind, ref in info.refs:
            self._dec((kind, ns, ref), info.node)

    def _dec(self, key: tuple[str, str, str], node: str) -> None:
        counts = self._refs.get(key)
        if counts is None:
            return
        n = counts.get(node, 0) - 1
        if n > 0:
            counts[node] = n
        else:
            counts.pop(node, None)
            if not counts:
                del self._refs[key]

    def set_volume(self, pv: Mapping) -> None:
        name = _d(pv.get("metadata")).get("name") or ""
        ref = _d(_d(pv.get("spec")).get("claimRef"))
        if ref.get("name"):
            self._pv_claim[name] = (ref.get("namespace") or "", ref["name"])
        else:
            self._pv_claim.pop(name, None)

    def remove_volume(self, pv: Mapping) -> None:
        self._pv_claim.pop(_d(pv.get("metadata")).get("name") or "", None)

    # -- reading --

    def nodes_for(self, resource: str, namespace: str, name: str) -> frozenset[str]:
        """The nodes that need the object (``resource`` is the plural: pods, secrets, configmaps,
        persistentvolumeclaims, serviceaccounts, persistentvolumes)."""
        if resource == PVS:
            claim = self._pv_claim.get(name)
            return frozenset(self._refs.get((PVCS, *claim), ())) if claim else frozenset()
        return frozenset(self._refs.get((resource, namespace, name), ()))

    def related(self, resource: str, namespace: str, name: str, node: str) -> bool:
        """Whether ``node`` needs the object (hasPathFrom)."""
        if resource == PVS:
            claim = self._pv_claim.get(name)
            return bool(claim) and node in self._refs.get((PVCS, *claim), ())
        return node in self._refs.get((resource, namespace, name), ())

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        """What the graph knows of a pod bound to a node (None for unknown or unbound pods)."""
        return self._pods.get((namespace, name))

    def __len__(self) -> int:
        return len(self._pods)


def _no_relationship(node: str) -> Decision:
    return no_opinion(f"no relationship found between node '{node}' and this object")


def _body_name(body: Any) -> str:
    name = _d(_d(body).get("metadata")).get("name")
    return name if isinstance(name, str) else ""


def _kubelet_version(body: Any) -> str | None:
    """The agent version a Node (or a patch of one) reports (the version-skew policy, bus.skew)."""
    info = ((body.get("status") or {}).get("nodeInfo") or {}) if isinstance(body, dict) else {}
    v = info.get("kubeletVersion") if isinstance(info, dict) else None
    return v if isinstance(v, str) else None


class NodeAuthorizer:
    """The Node authorizer (with NodeRestriction's object checks folded in): see the module's docstring."""

    def __init__(self, graph: NodeGraph, lease_namespace: str = NODE_LEASE_NAMESPACE) -> None:
        self.graph = graph
        self.lease_namespace = lease_namespace

    def authorize(self, attrs: Attributes, body: Any = None) -> Decision:
        is_node, node = node_identity(attrs.user)
        if not is_node:
            return no_opinion()
        if not node:
            return no_opinion(f"unknown node for user {_q(attrs.user.name)}")
        if not attrs.resource_request:
            return no_opinion()
        gr = (attrs.api_group, attrs.resource)
        verb, sub = attrs.verb, attrs.subresource
        if gr == ("", SECRETS) or gr == ("", CONFIGMAPS):
            return self._read_namespaced(node, attrs)
        if gr == ("", PVCS):
            if sub == "status":
                if verb not in ("update", "patch"):
                    return no_opinion("can only get/update/patch this type")
                return self._related(node, attrs)
            return self._get(node, attrs)
        if gr == ("", PVS):
            return self._get(node, attrs)
        if gr == ("", SERVICEACCOUNTS):
            return self._service_account(node, attrs, body)
        if gr == ("coordination.k8s.io", "leases"):
            return self._lease(node, attrs, body)
        if gr == ("", "nodes"):
            return self._node(node, attrs, body)
        if gr == ("", PODS):
            return self._pod(node, attrs)
        if gr in _READ_EVERYWHERE and not sub and verb in READ:
            return ALLOWED
        if gr in _EVENTS and not sub and (verb in _EVENT_VERBS or (verb == "get" and attrs.name)):
            return ALLOWED  # get of one named event: k8n's EventRecorder reads back the event it counts up
        return no_opinion()

    # -- pieces (Kubernetes' authorize* functions) --

    def _related(self, node: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return no_opinion("No Object name found")
        if self.graph.related(attrs.resource, attrs.namespace, attrs.name, node):
            return ALLOWED
        return _no_relationship(node)

    def _get(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return no_opinion("can only get individual resources of this type")
        if attrs.subresource:
            return no_opinion("cannot get subresource")
        return self._related(node, attrs)

    def _read_namespaced(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in READ:
            return no_opinion("can only read resources of this type")
        if attrs.subresource:
            return no_opinion("cannot read subresource")
        if not attrs.namespace:
            return no_opinion("can only read namespaced object of this type")
        return self._related(node, attrs)

    def _service_account(self, node: str, attrs: Attributes, body: Any) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return no_opinion("can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return no_opinion("can only create token subresource of serviceaccount")
        if not self.graph.related(SERVICEACCOUNTS, attrs.namespace, attrs.name, node):
            return _no_relationship(node)
        # NodeRestriction: the token must be bound to a pod of this node that runs as this account.
        ref = _d(_d(_d(body).get("spec")).get("boundObjectRef"))
        if ref.get("kind") != "Pod" or ref.get("apiVersion") not in ("v1", None, "") or not ref.get("name"):
            return no_opinion("node requested token not bound to a pod")
        if not ref.get("uid"):
            return no_opinion("node requested token with a pod binding without a uid")
        pod = self.graph.pod(attrs.namespace, ref["name"])
        if pod is None:
            return no_opinion(f"pods {_q(ref['name'])} not found")
        if ref["uid"] != pod.uid:
            return no_opinion(f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
                              f"record. The object might have been deleted and then recreated")
        if pod.node != node:
            return no_opinion("node requested token bound to a pod scheduled on a different node")
        if pod.service_account != attrs.name:
            return no_opinion(f"node requested token bound to a pod that does not use service account "
                              f"{_q(attrs.name)}")
        return ALLOWED

    def _lease(self, node: str, attrs: Attributes, body: Any) -> Decision:
        if attrs.verb not in _LEASE_VERBS:
            return no_opinion("can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != self.lease_namespace:
            return no_opinion(f"can only access leases in the {_q(self.lease_namespace)} system namespace")
        # NodeRestriction: a create names its lease in the body (pass it), everything else in the request.
        name = attrs.name or (_body_name(body) if attrs.verb == "create" else "")
        if name != node:
            return no_opinion("can only access node lease with the same name as the requesting node")
        return ALLOWED

    def _node(self, node: str, attrs: Attributes, body: Any) -> Decision:
        verb, sub = attrs.verb, attrs.subresource
        if sub == "" and verb in READ:
            return ALLOWED
        if (sub == "" and verb in ("create", "update", "patch")) or (sub == "status" and verb in ("update", "patch")):
            name = attrs.name or (_body_name(body) if verb == "create" else "")
            if name == node:
                too_far = skew.kubelet_error(_kubelet_version(body))
                return deny(f"node {_q(node)}: {too_far}") if too_far else ALLOWED
            return no_opinion(f"node {_q(node)} is not allowed to modify node {_q(name)}")
        return no_opinion()

    def _pod(self, node: str, attrs: Attributes) -> Decision:
        verb, sub = attrs.verb, attrs.subresource
        if sub == "":
            if verb in READ:
                return ALLOWED
            if verb == "delete":
                return self._own_pod(node, attrs, f"node {_q(node)} can only delete pods with spec.nodeName set to "
                                                  f"itself")
            return no_opinion()
        if sub == "status" and verb in ("update", "patch"):
            return self._own_pod(node, attrs, f"node {_q(node)} can only update pod status for pods with "
                                              f"spec.nodeName set to itself")
        return no_opinion()

    def _own_pod(self, node: str, attrs: Attributes, why: str) -> Decision:
        pod = self.graph.pod(attrs.namespace, attrs.name) if attrs.name else None
        return ALLOWED if pod is not None and pod.node == node else no_opinion(why)

    # -- rule listing (SelfSubjectRulesReview) --

    def review_rules(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], bool, list[str]]:
        if node_identity(user)[0]:
            return [], [], True, ["node authorizer does not support user rule resolution"]
        return [], [], False, []

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], bool]:
        res, nonres, incomplete, _ = self.review_rules(user, namespace)
        return res, nonres, incomplete



class ClusterAuthorizer:
    """What the API servers and the gateway authorize with (one composition, two places): the Node authorizer, then
    RBAC, over informer caches of the RBAC kinds and volumes from ``factory`` (``bus.informer.SharedInformerFactory``;
    start it, and wait for its sync, before deciding).

    The Node authorizer's graph is not fed by a watch of every pod (that would cost each API server and gateway a
    decoded event per pod write): a node's own pods are read on demand from its slice of the node view
    (``k8n-nodepods.<node>.>``, ``bus.resources.NODE_PODS``) when that node asks, and kept for
    :data:`NODE_PODS_TTL` seconds; a refusal is checked once more against a fresh read (a pod bound a moment ago).
    Call :meth:`authorize_async` for requests that may come from nodes."""

    NODE_PODS_TTL = 2.0
    RECHECK_AFTER = 0.05  # a refusal re-reads the node's pods when the copy is older than this

    def __init__(self, factory: Any) -> None:
        from bus.rbac import InformerRuleSource, RBACAuthorizer, UnionAuthorizer

        self.factory = factory
        self.rules = InformerRuleSource.from_factory(factory)
        self.rbac = RBACAuthorizer(self.rules)
        self.graph = NodeGraph()
        self.graph.watch_volumes(factory.informer("persistentvolumes"))
        self.union = UnionAuthorizer(NodeAuthorizer(self.graph), self.rbac)
        self._node_pods: dict[str, set[tuple[str, str]]] = {}  # node -> (namespace, name) of its pods in the graph
        self._read_at: dict[str, float] = {}
        self._reading: dict[str, Any] = {}  # node -> the read in progress (one at a time per node)

    def authorize(self, attrs: Attributes, body: Any = None) -> Decision:
        """A decision from what is cached (a node's pods as last read; see :meth:`authorize_async`)."""
        return self.union.authorize(attrs, body)

    async def authorize_async(self, attrs: Attributes, body: Any = None) -> Decision:
        """:meth:`authorize`, a node's pods read first when the copy is stale, and a refusal of a node re-checked
        against a fresh read."""
        ok, node = node_identity(attrs.user)
        if not ok or not node:
            return self.union.authorize(attrs, body)
        await self.refresh(node, self.NODE_PODS_TTL)
        d = self.union.authorize(attrs, body)
        if not d.allowed and await self.refresh(node, self.RECHECK_AFTER):
            d = self.union.authorize(attrs, body)
        return d

    async def refresh(self, node: str, max_age: float) -> bool:
        """Read ``node``'s pods into the graph unless the copy is younger than ``max_age``; True when read."""
        import asyncio
        import time

        if time.monotonic() - self._read_at.get(node, float("-inf")) < max_age:
            return False
        running = self._reading.get(node)
        if running is None:
            running = self._reading[node] = asyncio.ensure_future(self._read(node))
            running.add_done_callback(lambda _f: self._reading.pop(node, None))
        await asyncio.shield(running)
        return True

    async def _read(self, node: str) -> None:
        import time

        from bus import subjects
        from bus.resources import NODE_PODS

        started = time.monotonic()
        store = getattr(self.factory.client, "store", self.factory.client)
        pods, _ = await store.list(NODE_PODS, subjects.node_pods_namespace(node))
        now: set[tuple[str, str]] = set()
        for p in pods:
            meta = _d(p.get("metadata"))
            now.add((meta.get("namespace") or "", meta.get("name") or ""))
            self.graph.set_pod(p)
        for ns, name in self._node_pods.get(node, set()) - now:
            info = self.graph.pod(ns, name)
            if info is not None and info.node == node:
                self.graph.remove_pod({"metadata": {"namespace": ns, "name": name}})
        self._node_pods[node] = now
        self._read_at[node] = started

    def review_rules(self, user: Any, namespace: str):
        return self.union.review_rules(user, namespace)
