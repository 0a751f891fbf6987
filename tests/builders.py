"""Builders of the API objects tests create or hand to pure logic: Kubernetes-shaped documents with only the fields
a test names (plus the few every object of the kind needs), so a test reads as what it is about.

    pod("web", node="n1", phase="Running", ready=True, ip="10.244.0.5")
    pod("job-1", script="exit 3", grace=1, restartPolicy="Never")        # extra keywords are pod spec fields
    deployment("web", replicas=3, script="sleep 3600", strategy=rolling(1, 1))
    node("n1", ready=True, taints=[taint("dedicated", "NoSchedule", "x")])

Timestamps are RFC 3339 strings or epoch seconds (converted). Metadata keywords (``labels``, ``annotations``,
``uid``, ``owners``, ``created``, ``deleting``, ``rv``, ``generation``, ``finalizers``) work on every object builder.
Images are k8n's own tags (``deploy/images/build.sh``), never a name a user's machine may hold something else under.
"""

from __future__ import annotations

import copy
from typing import Any

from bus.meta import format_time

IMAGE = "k8n/busybox:latest"
IMAGE_ALIAS = "k8n/busybox:1.36"  # a second tag of the same image
PAUSE_IMAGE = "k8n/pause:3.9"
DELETING = "2024-01-01T00:00:01Z"  # the deletionTimestamp of ``deleting=True``


def ts(t: float | str) -> str:
    """An API timestamp: ``t`` as is when it is a string, else epoch seconds formatted."""
    return t if isinstance(t, str) else format_time(t)


def owner_ref(owner: dict | str, name: str | None = None, uid: str | None = None, *, api_version: str | None = None,
              controller: bool | None = True, block: bool | None = None) -> dict:
    """An ownerReference to ``owner`` (an object) or to ``owner`` = kind, ``name``, ``uid``."""
    if isinstance(owner, dict):
        kind, api_version = owner["kind"], api_version or owner.get("apiVersion")
        name, uid = owner["metadata"]["name"], owner["metadata"]["uid"]
    else:
        kind = owner
    ref: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}
    if api_version is None:
        del ref["apiVersion"]
    if controller is not None:
        ref["controller"] = controller
    if block is not None:
        ref["blockOwnerDeletion"] = block
    return ref


def meta(name: str, ns: str | None = "default", *, labels: dict | None = None, annotations: dict | None = None,
         uid: str | None = None, owners: list[dict] | dict | None = None, created: float | str | None = None,
         deleting: bool | float | str | None = None, rv: str | int | None = None, generation: int | None = None,
         finalizers: list[str] | None = None) -> dict:
    """``metadata``: ``ns=None`` for cluster-scoped kinds; ``deleting`` True (a fixed time) or a timestamp."""
    m: dict[str, Any] = {"name": name}
    if ns is not None:
        m["namespace"] = ns
    if uid is not None:
        m["uid"] = uid
    if labels is not None:
        m["labels"] = dict(labels)
    if annotations is not None:
        m["annotations"] = dict(annotations)
    if owners is not None:
        m["ownerReferences"] = [owners] if isinstance(owners, dict) else list(owners)
    if created is not None:
        m["creationTimestamp"] = ts(created)
    if deleting:
        m["deletionTimestamp"] = DELETING if deleting is True else ts(deleting)
    if rv is not None:
        m["resourceVersion"] = str(rv)
    if generation is not None:
        m["generation"] = generation
    if finalizers is not None:
        m["finalizers"] = list(finalizers)
    return m


_META = ("labels", "annotations", "uid", "owners", "created", "deleting", "rv", "generation", "finalizers")


def _split_meta(kw: dict) -> dict:
    return {k: kw.pop(k) for k in _META if k in kw}


def container(name: str = "main", script: str | None = None, *, image: str | None = IMAGE,
              pull: str | None = "Never", **fields: Any) -> dict:
    """A container of ``image`` (k8n's busybox; ``None`` for none); ``script`` runs as ``sh -c script``;
    ``pull`` is its imagePullPolicy (``Never``: k8n's images are local; ``None`` leaves it out); other
    keywords are container fields (``ports=``, ``env=``, ``readinessProbe=``...)."""
    c: dict[str, Any] = {"name": name}
    if image is not None:
        c["image"] = image
    if pull is not None:
        c["imagePullPolicy"] = pull
    if script is not None:
        c["command"] = ["sh", "-c", script]
    c.update(fields)
    return c


def requests(cpu: str | None = None, memory: str | None = None) -> dict:
    """``resources`` with these requests."""
    return {"requests": {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}}


def ready_condition(ready: bool | str, since: float | str | None = None, **fields: Any) -> dict:
    c = {"type": "Ready", "status": ready if isinstance(ready, str) else ("True" if ready else "False"), **fields}
    if since is not None:
        c["lastTransitionTime"] = ts(since)
    return c


def pod_spec(containers: list[dict | str] | None = None, script: str | None = None, *, node: str | None = None,
             grace: int | None = None, **spec: Any) -> dict:
    """A pod spec: ``containers`` (dicts, or names made into ``container(name)``), else one ``main`` container
    (running ``script`` if given); ``node`` is nodeName, ``grace`` terminationGracePeriodSeconds; other keywords
    are spec fields."""
    s: dict[str, Any] = {}
    if node is not None:
        s["nodeName"] = node
    if grace is not None:
        s["terminationGracePeriodSeconds"] = grace
    if containers is None:
        containers = [container("main", script)]
    s["containers"] = [container(c) if isinstance(c, str) else copy.deepcopy(c) for c in containers]
    s.update(copy.deepcopy(spec))
    return s


def pod(name: str = "p", ns: str = "default", *, containers: list[dict | str] | None = None,
        script: str | None = None, node: str | None = None, grace: int | None = None, phase: str | None = None,
        ready: bool | str | None = None, ready_since: float | str | None = None, ip: str | None = None,
        started: float | str | None = None, statuses: list[dict] | None = None, status: dict | None = None,
        bare: bool = False, **kw: Any) -> dict:
    """A Pod. Spec: see ``pod_spec`` (``bare`` leaves ``containers`` out: for logic that never looks at them).
    Status, only when one of these is given: ``phase``, ``ready`` (the Ready condition, changed ``ready_since``),
    ``ip`` (podIP and podIPs), ``started`` (startTime), ``statuses`` (containerStatuses); ``status`` adds fields."""
    m = meta(name, ns, **_split_meta(kw))
    spec = pod_spec(containers, script, node=node, grace=grace, **kw)
    if bare and containers is None:
        del spec["containers"]
    p: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec}
    st = pod_status(phase, ready, ready_since=ready_since, ip=ip, started=started, statuses=statuses, **(status or {}))
    if st or status is not None:
        p["status"] = st
    return p


def pod_status(phase: str | None = None, ready: bool | str | None = None, *, ready_since: float | str | None = None,
               ip: str | None = None, started: float | str | None = None, statuses: list[dict] | None = None,
               **fields: Any) -> dict:
    """A pod's status (see ``pod``), as a node agent writes it."""
    st: dict[str, Any] = {}
    if phase is not None:
        st["phase"] = phase
    if ready is not None:
        st["conditions"] = [ready_condition(ready, ready_since)]
    if ip is not None:
        st.update(podIP=ip, podIPs=[{"ip": ip}])
    if started is not None:
        st["startTime"] = ts(started)
    if statuses is not None:
        st["containerStatuses"] = statuses
    st.update(fields)
    return st


def taint(key: str, effect: str, value: str | None = None, **fields: Any) -> dict:
    t = {"key": key, "effect": effect, **fields}
    if value is not None:
        t["value"] = value
    return t


def node(name: str = "n1", *, ready: bool | str | None = None, ready_since: float | str | None = None,
         taints: list[dict] | None = None, unschedulable: bool | None = None, conditions: list[dict] | None = None,
         **kw: Any) -> dict:
    """A Node; ``ready`` adds the Ready condition after ``conditions``; other keywords are spec fields."""
    n: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": meta(name, None, **_split_meta(kw))}
    spec = dict(kw)
    if taints is not None:
        spec["taints"] = taints
    if unschedulable is not None:
        spec["unschedulable"] = unschedulable
    if spec:
        n["spec"] = spec
    conds = list(conditions or [])
    if ready is not None:
        conds.append(ready_condition(ready, ready_since))
    if conds:
        n["status"] = {"conditions": conds}
    return n


def template(labels: dict, containers: list[dict | str] | None = None, script: str | None = None, *,
             grace: int | None = None, **spec: Any) -> dict:
    """A pod template labelled ``labels``."""
    return {"metadata": {"labels": dict(labels)}, "spec": pod_spec(containers, script, grace=grace, **spec)}


def rolling(surge: int | str, unavailable: int | str) -> dict:
    """A Deployment's RollingUpdate strategy."""
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


def _workload(api: str, kind: str, name: str, ns: str, replicas: int | None, app: dict | None,
              containers: list | None, script: str | None, grace: int | None, pod: dict | None, tmpl: dict | None,
              selector: bool, kw: dict) -> dict:
    m = meta(name, ns, **_split_meta(kw))
    app = {"app": name} if app is None else app
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
    if selector:
        spec["selector"] = {"matchLabels": dict(app)}
    spec["template"] = tmpl if tmpl is not None else template(app, containers, script, grace=grace, **(pod or {}))
    spec.update(kw)
    return {"apiVersion": api, "kind": kind, "metadata": m, "spec": spec}


def deployment(name: str = "web", ns: str = "default", *, replicas: int | None = None, app: dict | None = None,
               containers: list | None = None, script: str | None = None, grace: int | None = None,
               pod: dict | None = None, template: dict | None = None, **kw: Any) -> dict:
    """A Deployment selecting and labelling its pods ``app`` (default ``{"app": name}``); the template's
    pod spec from ``containers``/``script``/``grace`` plus the fields in ``pod``, or ``template`` as given;
    other keywords are metadata (see ``meta``) or spec fields (``strategy=rolling(1, 0)``...)."""
    return _workload("apps/v1", "Deployment", name, ns, replicas, app, containers, script, grace, pod, template,
                     True, kw)


def replicaset(name: str = "web", ns: str = "default", *, replicas: int | None = None, app: dict | None = None,
               containers: list | None = None, script: str | None = None, grace: int | None = None,
               pod: dict | None = None, template: dict | None = None, **kw: Any) -> dict:
    """A ReplicaSet, as ``deployment``."""
    return _workload("apps/v1", "ReplicaSet", name, ns, replicas, app, containers, script, grace, pod, template,
                     True, kw)


def daemonset(name: str = "ds", ns: str = "default", *, app: dict | None = None, containers: list | None = None,
              script: str | None = None, grace: int | None = None, pod: dict | None = None,
              template: dict | None = None, **kw: Any) -> dict:
    """A DaemonSet, as ``deployment``."""
    return _workload("apps/v1", "DaemonSet", name, ns, None, app, containers, script, grace, pod, template, True, kw)


def statefulset(name: str = "web", ns: str = "default", *, replicas: int | None = None, app: dict | None = None,
                containers: list | None = None, script: str | None = None, grace: int | None = None,
                pod: dict | None = None, template: dict | None = None, **kw: Any) -> dict:
    """A StatefulSet, as ``deployment`` (``serviceName``, ``volumeClaimTemplates``... as keywords)."""
    return _workload("apps/v1", "StatefulSet", name, ns, replicas, app, containers, script, grace, pod, template,
                     True, kw)


def job(name: str = "job", ns: str = "default", *, restart: str = "Never", containers: list | None = None,
        script: str | None = None, grace: int | None = None, pod: dict | None = None, **kw: Any) -> dict:
    """A Job (no selector: the API server generates it) whose pods restart ``restart``."""
    tmpl = {"spec": pod_spec(containers, script, grace=grace, restartPolicy=restart, **(pod or {}))}
    return _workload("batch/v1", "Job", name, ns, None, {}, None, None, None, None, tmpl, False, kw)


def service(name: str = "web", ns: str = "default", *, selector: dict | None = None, ports: list[dict] | None = None,
            cluster_ip: str | None = None, **kw: Any) -> dict:
    """A Service; ``ports`` default to 80 → 8080; other keywords are metadata or spec fields (``type=``...)."""
    m = meta(name, ns, **_split_meta(kw))
    spec: dict[str, Any] = {}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if selector is not None:
        spec["selector"] = dict(selector)
    spec["ports"] = ports if ports is not None else [{"port": 80, "targetPort": 8080}]
    spec.update(kw)
    return {"apiVersion": "v1", "kind": "Service", "metadata": m, "spec": spec}


def configmap(name: str, ns: str = "default", data: dict | None = None, **kw: Any) -> dict:
    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns, **kw)}
    if data is not None:
        cm["data"] = dict(data)
    return cm


def secret(name: str, ns: str = "default", data: dict | None = None, **kw: Any) -> dict:
    """A Secret; ``data`` values are bytes or str (base64-encoded here)."""
    import base64

    s: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta(name, ns, **kw)}
    if data is not None:
        s["data"] = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in data.items()}
    return s


def namespace(name: str, **kw: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, None, **kw)}
