"""The bootstrap RBAC policy: the ClusterRoles and ClusterRoleBindings Kubernetes 1.32 creates at start
(plugin/pkg/auth/authorizer/rbac/bootstrappolicy: policy.go and controller_policy.go), for the resources k8n
serves plus the usual others (rules on kinds k8n does not serve are harmless and keep upstream's shape).

Every object carries the label ``kubernetes.io/bootstrapping: rbac-defaults`` and the annotation
``rbac.authorization.kubernetes.io/autoupdate: "true"``. ``admin``, ``edit`` and ``view`` are aggregated from the
ClusterRoles labelled ``rbac.authorization.k8s.io/aggregate-to-admin|edit|view`` (``system:aggregate-to-*``, and
``edit`` into ``admin``, ``view`` into ``edit``) by the ClusterRole aggregation controller; their rules are also
filled in here, with the same function, so they are complete from the first start.

k8n differences, each deliberate:
- k8n's controller manager runs every controller under one identity (``system:kube-controller-manager``, no
  per-controller service account credentials), so that user is a subject of each ``system:controller:*`` binding
  next to upstream's ``kube-system`` service account.
- ``system:k8n-gateway`` (the HTTP gateway's own user) may create TokenReviews and SubjectAccessReviews.
- ``system:node`` is bound to nobody, as upstream: node agents are authorized by ``bus.nodeauthz`` (the Node
  authorizer), which also grants what k8n's agent needs as a service proxy.

``bootstrap_objects()`` is what the API server creates (``master.apiserver.bootstrap.ensure_rbac``).
"""

from __future__ import annotations

import copy

from bus import clusterinfo
from bus.authn import (
    ANONYMOUS, AUTHENTICATED, CONTROLLER_MANAGER_USER, GATEWAY_USER, INGRESS_USER, NODES_GROUP, SCHEDULER_USER,
    SERVICEACCOUNTS_GROUP, SYSTEM_MASTERS, UNAUTHENTICATED,
)
from bus.bootstraptoken import CONTROL_PLANE_GROUP as CONTROL_PLANE_TOKEN_GROUP
from bus.bootstraptoken import CONTROL_PLANE_SECRET
from bus.bootstraptoken import NODE_GROUP as NODE_TOKEN_GROUP
from bus.rbac import GROUP as RBAC_GROUP
from bus.rbac import aggregate_rules, covers
from bus.resources import Resource, by_plural

BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-{}"
CONTROLLER_PREFIX = "system:controller:"
KUBE_PROXY_USER = "system:kube-proxy"
MONITORING_GROUP = "system:monitoring"

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
READ_WRITE = READ + WRITE
READ_UPDATE = ["get", "list", "watch", "update", "patch"]

LEGACY, APPS, AUTHENTICATION, AUTHORIZATION = "", "apps", "authentication.k8s.io", "authorization.k8s.io"
AUTOSCALING, BATCH, CERTIFICATES, COORDINATION = "autoscaling", "batch", "certificates.k8s.io", "coordination.k8s.io"
DISCOVERY, EXTENSIONS, POLICY, STORAGE = "discovery.k8s.io", "extensions", "policy", "storage.k8s.io"
NETWORKING, EVENTS, NODE_API = "networking.k8s.io", "events.k8s.io", "node.k8s.io"
RES_METRICS, CUSTOM_METRICS, EXTERNAL_METRICS = "metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io"


def rule(verbs: list[str] | str, groups: tuple[str, ...] = (), resources: tuple[str, ...] = (),
         names: tuple[str, ...] = (), urls: tuple[str, ...] = ()) -> dict:
    """A PolicyRule (rbacv1helpers.NewRule(verbs).Groups(...).Resources(...).Names(...).URLs(...))."""
    r: dict = {"verbs": [verbs] if isinstance(verbs, str) else list(verbs)}
    if groups:
        r["apiGroups"] = list(groups)
    if resources:
        r["resources"] = list(resources)
    if names:
        r["resourceNames"] = list(names)
    if urls:
        r["nonResourceURLs"] = list(urls)
    return r


def events_rule() -> dict:
    return rule(["create", "update", "patch"], (LEGACY, EVENTS), ("events",))


def _meta(name: str, labels: dict | None = None) -> dict:
    return {"name": name, "labels": {**(labels or {}), **BOOTSTRAP_LABEL},
            "annotations": {AUTOUPDATE_ANNOTATION: "true"}}


def cluster_role(name: str, rules: list[dict] | None = None, labels: dict | None = None,
                 aggregate_from: str | None = None) -> dict:
    obj: dict = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": _meta(name, labels),
                 "rules": list(rules or [])}
    if aggregate_from:
        selector = {"matchLabels": {AGGREGATE_TO.format(aggregate_from): "true"}}
        obj["aggregationRule"] = {"clusterRoleSelectors": [selector]}
    return obj


def _subject(kind: str, name: str, namespace: str = "") -> dict:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"kind": kind, "apiGroup": RBAC_GROUP, "name": name}


def cluster_role_binding(name: str, subjects: list[dict], role: str | None = None) -> dict:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role or name}, "subjects": subjects}


def groups(*names: str) -> list[dict]:
    return [_subject("Group", n) for n in names]


def users(*names: str) -> list[dict]:
    return [_subject("User", n) for n in names]


# ---- policy.go ------------------------------------------------------------------------------------------------------


def node_rules() -> list[dict]:
    """NodeRules: what Kubernetes' node authorizer grants every node statically (k8n's bus.nodeauthz grants a node
    its own subset; this role is kept for reference and is bound to nobody)."""
    return [
        rule("create", (AUTHENTICATION,), ("tokenreviews",)),
        rule("create", (AUTHORIZATION,), ("subjectaccessreviews", "localsubjectaccessreviews")),
        rule(READ, (LEGACY,), ("services",)),
        rule(["create", "get", "list", "watch"], (LEGACY,), ("nodes",)),
        rule(["update", "patch"], (LEGACY,), ("nodes/status",)),
        rule(["update", "patch"], (LEGACY,), ("nodes",)),
        rule(["create", "update", "patch"], (LEGACY,), ("events",)),
        rule(READ, (LEGACY,), ("pods",)),
        rule(["create", "delete"], (LEGACY,), ("pods",)),
        rule(["update", "patch"], (LEGACY,), ("pods/status",)),
        rule("create", (LEGACY,), ("pods/eviction",)),
        rule(["get", "list", "watch"], (LEGACY,), ("secrets", "configmaps")),
        rule("get", (LEGACY,), ("persistentvolumeclaims", "persistentvolumes")),
        rule("get", (LEGACY,), ("endpoints",)),
        rule(["create", "get", "list", "watch"], (CERTIFICATES,), ("certificatesigningrequests",)),
        rule(["get", "create", "update", "patch", "delete"], (COORDINATION,), ("leases",)),
        rule("get", (STORAGE,), ("volumeattachments",)),
        rule("create", (LEGACY,), ("serviceaccounts/token",)),
        rule(["get", "update", "patch"], (LEGACY,), ("persistentvolumeclaims/status",)),
        rule(["get", "watch", "list"], (STORAGE,), ("csidrivers",)),
        rule(["get", "create", "update", "patch", "delete"], (STORAGE,), ("csinodes",)),
        rule(["get", "list", "watch"], (NODE_API,), ("runtimeclasses",)),
    ]


def _aggregate_to_edit() -> list[dict]:
    return [
        # read on escalating resources
        rule(READ, (LEGACY,), ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                                "services/proxy")),
        rule("impersonate", (LEGACY,), ("serviceaccounts",)),
        rule(WRITE, (LEGACY,), ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")),
        rule("create", (LEGACY,), ("pods/eviction",)),
        # no endpoints: write access to Endpoints was removed from edit/admin (CVE-2021-25740)
        rule(WRITE, (LEGACY,), ("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                                 "services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets")),
        rule("create", (LEGACY,), ("serviceaccounts/token",)),
        rule(WRITE, (APPS,), ("statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
                              "deployments/rollback", "replicasets", "replicasets/scale")),
        rule(WRITE, (AUTOSCALING,), ("horizontalpodautoscalers",)),
        rule(WRITE, (BATCH,), ("jobs", "cronjobs")),
        rule(WRITE, (EXTENSIONS,), ("daemonsets", "deployments", "deployments/scale", "deployments/rollback",
                                    "ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale",
                                    "networkpolicies")),
        rule(WRITE, (POLICY,), ("poddisruptionbudgets",)),
        rule(WRITE, (NETWORKING,), ("networkpolicies", "ingresses")),
    ]


def _aggregate_to_view() -> list[dict]:
    return [
        rule(READ, (LEGACY,), ("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                               "services", "services/status", "endpoints", "persistentvolumeclaims",
                               "persistentvolumeclaims/status", "configmaps")),
        rule(READ, (LEGACY,), ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                               "resourcequotas/status", "namespaces/status", "replicationcontrollers/status",
                               "pods/log")),
        # read access to namespaces at the namespace scope means you can read *this* namespace
        rule(READ, (LEGACY,), ("namespaces",)),
        rule(READ, (DISCOVERY,), ("endpointslices",)),
        rule(READ, (APPS,), ("controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                             "daemonsets", "daemonsets/status", "deployments", "deployments/status",
                             "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale")),
        rule(READ, (AUTOSCALING,), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
        rule(READ, (BATCH,), ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
        rule(READ, (EXTENSIONS,), ("daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                   "deployments/status", "ingresses", "ingresses/status", "replicasets",
                                   "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
                                   "networkpolicies")),
        rule(READ, (POLICY,), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
        rule(READ, (NETWORKING,), ("networkpolicies", "ingresses", "ingresses/status")),
    ]


def _scheduler_rules() -> list[dict]:
    return [
        events_rule(),
        # leader election
        rule("create", (COORDINATION,), ("leases",)),
        rule(["get", "update"], (COORDINATION,), ("leases",), ("kube-scheduler",)),
        # fundamental resources
        rule(READ, (LEGACY,), ("nodes",)),
        rule(["get", "list", "watch", "delete"], (LEGACY,), ("pods",)),
        rule("create", (LEGACY,), ("pods/binding", "bindings")),
        rule(["patch", "update"], (LEGACY,), ("pods/status",)),
        # things that select pods
        rule(READ, (LEGACY,), ("services", "replicationcontrollers")),
        rule(READ, (APPS, EXTENSIONS), ("replicasets",)),
        rule(READ, (APPS,), ("statefulsets",)),
        # things that pods use or that apply to them
        rule(READ, (POLICY,), ("poddisruptionbudgets",)),
        rule(READ, (LEGACY,), ("persistentvolumeclaims", "persistentvolumes")),
        # checking API access (non-mutating creates)
        rule("create", (AUTHENTICATION,), ("tokenreviews",)),
        rule("create", (AUTHORIZATION,), ("subjectaccessreviews",)),
        # volume limits, namespaceSelector of pod affinity, storage capacity
        rule(READ, (STORAGE,), ("csinodes",)),
        rule(READ, (LEGACY,), ("namespaces",)),
        rule(READ, (STORAGE,), ("csidrivers",)),
        rule(READ, (STORAGE,), ("csistoragecapacities",)),
    ]


def cluster_roles() -> list[dict]:
    """policy.go's ClusterRoles (those that matter to k8n, and a few harmless usual ones)."""
    agg = lambda kind: {AGGREGATE_TO.format(kind): "true"}  # noqa: E731
    return [
        cluster_role("cluster-admin", [rule("*", ("*",), ("*",)), rule("*", urls=("*",))]),
        cluster_role("system:discovery", [rule("get", urls=(
            "/livez", "/readyz", "/healthz", "/version", "/version/", "/openapi", "/openapi/*", "/api", "/api/*",
            "/apis", "/apis/*"))]),
        cluster_role("system:monitoring", [rule("get", urls=(
            "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"))]),
        cluster_role("system:basic-user", [
            rule("create", (AUTHORIZATION,), ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            rule("create", (AUTHENTICATION,), ("selfsubjectreviews",)),
        ]),
        cluster_role("system:public-info-viewer", [rule("get", urls=(
            "/livez", "/readyz", "/healthz", "/version", "/version/"))]),
        cluster_role("admin", aggregate_from="admin"),
        cluster_role("edit", labels=agg("admin"), aggregate_from="edit"),
        cluster_role("view", labels=agg("edit"), aggregate_from="view"),
        cluster_role("system:aggregate-to-admin", [
            rule("create", (AUTHORIZATION,), ("localsubjectaccessreviews",)),
            rule(READ_WRITE, (RBAC_GROUP,), ("roles", "rolebindings")),
        ], labels=agg("admin")),
        cluster_role("system:aggregate-to-edit", _aggregate_to_edit(), labels=agg("edit")),
        cluster_role("system:aggregate-to-view", _aggregate_to_view(), labels=agg("view")),
        # metrics-server's (components.yaml): the resource metrics API for every admin, edit and view role
        cluster_role("system:aggregated-metrics-reader", [rule(READ, (RES_METRICS,), ("pods", "nodes"))],
                     labels={**agg("admin"), **agg("edit"), **agg("view")}),
        cluster_role("system:node", node_rules()),
        cluster_role("system:node-proxier", [
            rule(["list", "watch"], (LEGACY,), ("services", "endpoints")),
            rule(["get", "list", "watch"], (LEGACY,), ("nodes",)),
            events_rule(),
            rule(["list", "watch"], (DISCOVERY,), ("endpointslices",)),
        ]),
        cluster_role("system:auth-delegator", [
            rule("create", (AUTHENTICATION,), ("tokenreviews",)),
            rule("create", (AUTHORIZATION,), ("subjectaccessreviews",)),
        ]),
        cluster_role("system:kube-controller-manager", [
            events_rule(),
            # leader election
            rule("create", (COORDINATION,), ("leases",)),
            rule(["get", "update"], (COORDINATION,), ("leases",), ("kube-controller-manager",)),
            # fundamental resources
            rule("create", (LEGACY,), ("secrets", "serviceaccounts")),
            rule("delete", (LEGACY,), ("secrets",)),
            rule("get", (LEGACY,), ("namespaces", "secrets", "serviceaccounts", "configmaps")),
            rule("update", (LEGACY,), ("secrets", "serviceaccounts")),
            # checking API access (non-mutating creates)
            rule("create", (AUTHENTICATION,), ("tokenreviews",)),
            rule("create", (AUTHORIZATION,), ("subjectaccessreviews",)),
            # every shared informer
            rule(["list", "watch"], ("*",), ("*",)),
            rule("create", (LEGACY,), ("serviceaccounts/token",)),
        ]),
        cluster_role("system:kube-dns", [rule(["list", "watch"], (LEGACY,), ("endpoints", "services"))]),
        # k8n's HTTP gateway: it checks bearer tokens (TokenReview), answers access reviews for its callers and
        # finds the node of a pod whose logs or exec a caller was authorized for; it keeps its address in the
        # `kubernetes` Endpoints (made empty by the API servers)
        cluster_role("system:k8n-gateway", [
            rule("get", (LEGACY,), ("pods",)),
            rule(["get", "update"], (LEGACY,), ("endpoints",), ("kubernetes",)),
            rule("create", (AUTHENTICATION,), ("tokenreviews",)),
            rule("create", (AUTHORIZATION,), ("subjectaccessreviews",)),
        ]),
        # k8n's ingress controller (as ingress-nginx's ClusterRole): what routing reads, Ingress status, its events
        cluster_role("system:k8n-ingress", [
            rule(READ, (LEGACY,), ("services", "secrets")),
            rule(READ, (DISCOVERY,), ("endpointslices",)),
            rule(READ, (NETWORKING,), ("ingresses", "ingressclasses")),
            rule(["get", "update", "patch"], (NETWORKING,), ("ingresses/status",)),
            events_rule(),
        ]),
        cluster_role("system:kube-scheduler", _scheduler_rules()),
        cluster_role("system:volume-scheduler", [
            rule(READ_UPDATE, (LEGACY,), ("persistentvolumes",)),
            rule(READ, (STORAGE,), ("storageclasses",)),
            rule(READ_UPDATE, (LEGACY,), ("persistentvolumeclaims",)),
        ]),
        cluster_role("system:node-bootstrapper", [
            rule(["create", "get", "list", "watch"], (CERTIFICATES,), ("certificatesigningrequests",))]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
            rule("create", (CERTIFICATES,), ("certificatesigningrequests/nodeclient",))]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
            rule("create", (CERTIFICATES,), ("certificatesigningrequests/selfnodeclient",))]),
        # k8n's own: bus credentials for a joining node's ingress controller (identity ingress: reads every Secret)
        cluster_role("k8n:certificatesigningrequests:ingressclient", [
            rule("create", (CERTIFICATES,), ("certificatesigningrequests/ingressclient",))]),
        cluster_role("system:service-account-issuer-discovery", [rule("get", urls=(
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
            "/openid/v1/jwks/"))]),
    ]


def cluster_role_bindings() -> list[dict]:
    return [
        cluster_role_binding("cluster-admin", groups(SYSTEM_MASTERS)),
        cluster_role_binding("system:monitoring", groups(MONITORING_GROUP)),
        cluster_role_binding("system:discovery", groups(AUTHENTICATED)),
        cluster_role_binding("system:basic-user", groups(AUTHENTICATED)),
        cluster_role_binding("system:public-info-viewer", groups(AUTHENTICATED, UNAUTHENTICATED)),
        cluster_role_binding("system:node-proxier", users(KUBE_PROXY_USER)),
        cluster_role_binding("system:kube-controller-manager", users(CONTROLLER_MANAGER_USER)),
        cluster_role_binding("system:kube-dns", [_subject("ServiceAccount", "kube-dns", "kube-system")]),
        cluster_role_binding("system:kube-scheduler", users(SCHEDULER_USER)),
        cluster_role_binding("system:k8n-gateway", users(GATEWAY_USER)),
        cluster_role_binding("system:k8n-ingress", users(INGRESS_USER)),
        cluster_role_binding("system:volume-scheduler", users(SCHEDULER_USER)),
        # deprecated since the Node authorizer: kept without subjects, as upstream
        cluster_role_binding("system:node", []),
        cluster_role_binding("system:service-account-issuer-discovery", groups(SERVICEACCOUNTS_GROUP)),
        # what kubeadm binds for joining nodes (kubeadm:kubelet-bootstrap, kubeadm:node-autoapprove-*): a node
        # token may ask for its node's bus credentials and have them approved; a node may renew its own
        cluster_role_binding("k8n:node-bootstrap", groups(NODE_TOKEN_GROUP), "system:node-bootstrapper"),
        cluster_role_binding("k8n:node-autoapprove-bootstrap", groups(NODE_TOKEN_GROUP),
                             "system:certificates.k8s.io:certificatesigningrequests:nodeclient"),
        cluster_role_binding("k8n:node-autoapprove-certificate-rotation", groups(NODES_GROUP),
                             "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"),
        # a joining machine (not a node on its own) may ask for its ingress controller's; delete it to stop that
        cluster_role_binding("k8n:node-autoapprove-ingress", groups(NODE_TOKEN_GROUP),
                             "k8n:certificatesigningrequests:ingressclient"),
    ]


CLUSTER_INFO_ROLE = "k8n:bootstrap-signer-clusterinfo"
CONTROL_PLANE_CERTS_ROLE = "k8n:control-plane-certs"
NODEVIEW_USER = "system:k8n-nodeview"  # the node view's user (bus.authn.user_for_identity): its Lease, nothing else


def public_info_objects() -> list[dict]:
    """kube-public's Role and RoleBinding letting anyone (``system:anonymous``) read ``cluster-info``, the document
    a joining machine starts from (kubeadm's ``kubeadm:bootstrap-signer-clusterinfo``); kube-system's letting a
    control-plane join token read the sealed control-plane keys (kubeadm's ``kubeadm:kubeadm-certs``), the node
    view use its leader-election Lease, and the ingress controllers keep their presence Leases."""
    meta = {**_meta(CLUSTER_INFO_ROLE), "namespace": clusterinfo.NAMESPACE}
    role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": meta,
            "rules": [rule("get", (LEGACY,), ("configmaps",), (clusterinfo.NAME,))]}
    binding = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding", "metadata": copy.deepcopy(meta),
               "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": CLUSTER_INFO_ROLE},
               "subjects": users(ANONYMOUS)}
    cp_meta = {**_meta(CONTROL_PLANE_CERTS_ROLE), "namespace": "kube-system"}
    cp_role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": cp_meta,
               "rules": [rule("get", (LEGACY,), ("secrets",), (CONTROL_PLANE_SECRET,))]}
    cp_binding = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding", "metadata": copy.deepcopy(cp_meta),
                  "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": CONTROL_PLANE_CERTS_ROLE},
                  "subjects": groups(CONTROL_PLANE_TOKEN_GROUP)}
    nv_meta = {**_meta(NODEVIEW_USER), "namespace": "kube-system"}
    nv_role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": nv_meta,
               "rules": [rule("create", (COORDINATION,), ("leases",)),
                         rule(["get", "update", "patch"], (COORDINATION,), ("leases",), ("k8n-nodeview",))]}
    nv_binding = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding", "metadata": copy.deepcopy(nv_meta),
                  "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": NODEVIEW_USER},
                  "subjects": users(NODEVIEW_USER)}
    # the ingress controllers' presence Leases (node/ingress/presence.py), as ingress-nginx's namespaced Role
    ing_meta = {**_meta(INGRESS_USER), "namespace": "kube-system"}
    ing_role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": ing_meta,
                "rules": [rule(["get", "list", "watch", "create", "update", "delete"], (COORDINATION,), ("leases",))]}
    ing_binding = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding", "metadata": copy.deepcopy(ing_meta),
                   "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": INGRESS_USER},
                   "subjects": users(INGRESS_USER)}
    return [role, binding, cp_role, cp_binding, nv_role, nv_binding, ing_role, ing_binding]


# ---- controller_policy.go (the controllers k8n runs) ------------------------------------------------------------


def controller_roles() -> list[dict]:
    c = CONTROLLER_PREFIX
    return [cluster_role(c + name, rules) for name, rules in (
        ("clusterrole-aggregation-controller", [
            # full permissions on clusterroles, to mutate them in any way
            rule(["escalate", "get", "list", "watch", "update", "patch"], (RBAC_GROUP,), ("clusterroles",)),
        ]),
        ("cronjob-controller", [
            rule(["get", "list", "watch", "update"], (BATCH,), ("cronjobs",)),
            rule(["get", "list", "watch", "create", "update", "delete", "patch"], (BATCH,), ("jobs",)),
            rule("update", (BATCH,), ("cronjobs/status",)),
            rule("update", (BATCH,), ("cronjobs/finalizers",)),
            rule(["list", "delete"], (LEGACY,), ("pods",)),
            events_rule(),
        ]),
        ("daemon-set-controller", [
            rule(READ, (EXTENSIONS, APPS), ("daemonsets",)),
            rule("update", (EXTENSIONS, APPS), ("daemonsets/status",)),
            rule("update", (EXTENSIONS, APPS), ("daemonsets/finalizers",)),
            rule(["list", "watch"], (LEGACY,), ("nodes",)),
            rule(["list", "watch", "create", "delete", "patch"], (LEGACY,), ("pods",)),
            rule("create", (LEGACY,), ("pods/binding",)),
            rule(["get", "list", "watch", "create", "delete", "update", "patch"], (APPS,), ("controllerrevisions",)),
            events_rule(),
        ]),
        ("deployment-controller", [
            rule(["get", "list", "watch", "update"], (EXTENSIONS, APPS), ("deployments",)),
            rule("update", (EXTENSIONS, APPS), ("deployments/status",)),
            rule("update", (EXTENSIONS, APPS), ("deployments/finalizers",)),
            rule(["get", "list", "watch", "create", "update", "patch", "delete"], (APPS, EXTENSIONS), ("replicasets",)),
            rule(["get", "list", "watch", "update"], (LEGACY,), ("pods",)),
            events_rule(),
        ]),
        ("disruption-controller", [
            rule(["get", "list", "watch"], (EXTENSIONS, APPS), ("deployments",)),
            rule(["get", "list", "watch"], (APPS, EXTENSIONS), ("replicasets",)),
            rule(["get", "list", "watch"], (LEGACY,), ("replicationcontrollers",)),
            rule(["get", "list", "watch"], (POLICY,), ("poddisruptionbudgets",)),
            rule(["get", "list", "watch"], (APPS,), ("statefulsets",)),
            rule("update", (POLICY,), ("poddisruptionbudgets/status",)),
            rule("get", ("*",), ("*/scale",)),
            events_rule(),
        ]),
        ("endpoint-controller", [
            rule(READ, (LEGACY,), ("services", "pods")),
            rule(["get", "list", "watch", "create", "update", "delete"], (LEGACY,), ("endpoints",)),
            rule("create", (LEGACY,), ("endpoints/restricted",)),
            events_rule(),
        ]),
        ("endpointslice-controller", [
            rule(READ, (LEGACY,), ("services", "pods", "nodes")),
            rule("update", (LEGACY,), ("services/finalizers",)),
            rule(["get", "list", "watch", "create", "update", "delete"], (DISCOVERY,), ("endpointslices",)),
            events_rule(),
        ]),
        ("generic-garbage-collector", [
            rule(["get", "list", "watch", "patch", "update", "delete"], ("*",), ("*",)),
            events_rule(),
        ]),
        ("horizontal-pod-autoscaler", [
            rule(READ, (AUTOSCALING,), ("horizontalpodautoscalers",)),
            rule("update", (AUTOSCALING,), ("horizontalpodautoscalers/status",)),
            rule(["get", "update"], ("*",), ("*/scale",)),
            rule(["list", "watch"], (LEGACY,), ("pods",)),
            rule(["list", "watch"], (RES_METRICS,), ("pods",)),
            rule(READ, (CUSTOM_METRICS,), ("*",)),
            rule(READ, (EXTERNAL_METRICS,), ("*",)),
            events_rule(),
        ]),
        ("job-controller", [
            rule(["get", "list", "watch", "update", "patch"], (BATCH,), ("jobs",)),
            rule("update", (BATCH,), ("jobs/status",)),
            rule("update", (BATCH,), ("jobs/finalizers",)),
            rule(["list", "watch", "create", "delete", "patch"], (LEGACY,), ("pods",)),
            events_rule(),
        ]),
        ("namespace-controller", [
            rule(["get", "list", "watch", "delete"], (LEGACY,), ("namespaces",)),
            rule("update", (LEGACY,), ("namespaces/finalize", "namespaces/status")),
            rule(["get", "list", "watch", "delete", "deletecollection"], ("*",), ("*",)),
        ]),
        ("node-controller", [
            rule(["get", "list", "watch", "update", "delete", "patch"], (LEGACY,), ("nodes",)),
            rule(["patch", "update"], (LEGACY,), ("nodes/status",)),
            rule(["patch", "update"], (LEGACY,), ("pods/status",)),
            rule(["list", "watch", "get", "delete"], (LEGACY,), ("pods",)),
            events_rule(),
        ]),
        ("persistent-volume-binder", [
            rule(["get", "list", "watch", "update", "create", "delete"], (LEGACY,), ("persistentvolumes",)),
            rule("update", (LEGACY,), ("persistentvolumes/status",)),
            rule(["get", "list", "watch", "update"], (LEGACY,), ("persistentvolumeclaims",)),
            rule("update", (LEGACY,), ("persistentvolumeclaims/status",)),
            rule(["list", "watch", "get", "create", "delete"], (LEGACY,), ("pods",)),
            rule(READ, (STORAGE,), ("storageclasses",)),
            rule(["list", "watch"], (LEGACY,), ("nodes",)),
            events_rule(),
            rule("watch", (LEGACY,), ("events",)),
            rule("get", (LEGACY,), ("services",)),
        ]),
        ("pod-garbage-collector", [
            rule(["list", "watch", "delete"], (LEGACY,), ("pods",)),
            rule(READ, (LEGACY,), ("nodes",)),
            rule("patch", (LEGACY,), ("pods/status",)),
        ]),
        ("replicaset-controller", [
            rule(["get", "list", "watch", "update"], (APPS, EXTENSIONS), ("replicasets",)),
            rule("update", (APPS, EXTENSIONS), ("replicasets/status",)),
            rule("update", (APPS, EXTENSIONS), ("replicasets/finalizers",)),
            rule(["list", "watch", "patch", "create", "delete"], (LEGACY,), ("pods",)),
            events_rule(),
        ]),
        ("replication-controller", [
            rule(["get", "list", "watch", "update"], (LEGACY,), ("replicationcontrollers",)),
            rule("update", (LEGACY,), ("replicationcontrollers/status",)),
            rule("update", (LEGACY,), ("replicationcontrollers/finalizers",)),
            rule(["list", "watch", "patch", "create", "delete"], (LEGACY,), ("pods",)),
            events_rule(),
        ]),
        ("resourcequota-controller", [
            # quota can count quota on anything for reconciliation, so it needs full viewing powers
            rule(["list", "watch"], ("*",), ("*",)),
            rule("update", (LEGACY,), ("resourcequotas/status",)),
            events_rule(),
        ]),
        ("root-ca-cert-publisher", [
            rule(["create", "update"], (LEGACY,), ("configmaps",)),
            events_rule(),
        ]),
        ("service-account-controller", [
            rule("create", (LEGACY,), ("serviceaccounts",)),
            events_rule(),
        ]),
        ("statefulset-controller", [
            rule(["list", "watch"], (LEGACY,), ("pods",)),
            rule(READ, (APPS,), ("statefulsets",)),
            rule("update", (APPS,), ("statefulsets/status",)),
            rule("update", (APPS,), ("statefulsets/finalizers",)),
            rule(["get", "create", "delete", "update", "patch"], (LEGACY,), ("pods",)),
            rule(["get", "create", "delete", "update", "patch", "list", "watch"], (APPS,), ("controllerrevisions",)),
            rule(["get", "create"], (LEGACY,), ("persistentvolumeclaims",)),
            rule(["update", "delete", "patch", "list", "watch"], (LEGACY,), ("persistentvolumeclaims",)),
            events_rule(),
        ]),
    )]


def controller_role_bindings(roles: list[dict] | None = None) -> list[dict]:
    """One binding per controller role: upstream's ``kube-system`` service account, and (k8n) the controller
    manager's own user, which runs them all."""
    out = []
    for r in roles if roles is not None else controller_roles():
        name = r["metadata"]["name"]
        sa = name[len(CONTROLLER_PREFIX):]
        out.append(cluster_role_binding(name, [_subject("ServiceAccount", sa, "kube-system"),
                                               *users(CONTROLLER_MANAGER_USER)]))
    return out


# ---- what the API server creates --------------------------------------------------------------------------------


def aggregated(roles: list[dict]) -> list[dict]:
    """``roles`` with every aggregated ClusterRole's rules filled in as the aggregation controller would (repeated
    until nothing changes, so aggregates of aggregates — view into edit into admin — are complete)."""
    roles = copy.deepcopy(roles)
    for _ in range(len(roles)):
        changed = False
        for r in roles:
            new = aggregate_rules(r, roles)
            if new is not None and new != r.get("rules"):
                r["rules"] = new
                changed = True
        if not changed:
            break
    return roles


def bootstrap_objects() -> list[tuple[Resource, dict]]:
    """Every bootstrap ClusterRole (aggregates filled in), every ClusterRoleBinding, then kube-public's Role and
    RoleBinding for cluster-info, each with its Resource."""
    roles = aggregated(cluster_roles() + controller_roles())
    bindings = cluster_role_bindings() + controller_role_bindings()
    crs, crbs = by_plural("clusterroles"), by_plural("clusterrolebindings")
    namespaced = [(by_plural(o["kind"].lower() + "s"), o) for o in public_info_objects()]
    return [(crs, r) for r in roles] + [(crbs, b) for b in bindings] + namespaced


def reconcile(expected: dict, existing: dict) -> dict | None:
    """What an existing bootstrap object should become (Kubernetes' reconciliation of its default policy, without
    removing anything): missing labels and annotations added (existing values win), and, unless the object says
    ``rbac.authorization.kubernetes.io/autoupdate: "false"``, a ClusterRole's missing rules (or, for an aggregated
    one, its missing selectors) and a binding's missing subjects added. None when nothing changes. A binding whose
    roleRef differs is left alone (a roleRef cannot change; Kubernetes recreates it)."""
    meta = existing.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE_ANNOTATION) == "false":
        return None
    out = copy.deepcopy(existing)
    om = out.setdefault("metadata", {})
    for field in ("labels", "annotations"):
        want = expected["metadata"].get(field) or {}
        if any(k not in (om.get(field) or {}) for k in want):
            om[field] = {**want, **(om.get(field) or {})}
    if expected["kind"] in ("ClusterRole", "Role"):
        if "aggregationRule" in expected:
            have = (out.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
            missing = [s for s in expected["aggregationRule"]["clusterRoleSelectors"] if s not in have]
            if missing or not isinstance(out.get("aggregationRule"), dict):
                out["aggregationRule"] = {"clusterRoleSelectors": have + missing}
        else:
            ok, _ = covers(out.get("rules") or [], expected.get("rules") or [])
            if not ok:
                have_rules = out.get("rules") or []
                out["rules"] = have_rules + [r for r in expected["rules"]
                                             if not covers(have_rules, [r])[0]]
    else:
        if (out.get("roleRef") or {}).get("name") != expected["roleRef"]["name"]:
            return None
        have_subjects = out.get("subjects") or []
        missing = [s for s in expected.get("subjects") or [] if not any(_same_subject(s, h) for h in have_subjects)]
        if missing:
            out["subjects"] = have_subjects + missing
    return None if out == existing else out


def _same_subject(a: dict, b: dict) -> bool:
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("kind", "name", "namespace"))


__all__ = ["bootstrap_objects", "cluster_roles", "cluster_role_bindings", "controller_roles",
           "controller_role_bindings", "node_rules", "aggregated", "reconcile", "BOOTSTRAP_LABEL",
           "AUTOUPDATE_ANNOTATION"]
