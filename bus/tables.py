"""The "tables" vocabulary shared by ``k8n get`` and the gateway's server-side Tables: kubectl's columns
per kind (header, cell function; ``-o wide`` appends more), the cell renderers, and age formatting.

Cell functions are pure: they take the object (a plain dict) and ``now`` so output is deterministic under
test. ``bus.cli.printers`` lays the cells out as text; ``master.gateway.tables`` returns them as a
``meta.k8s.io/v1`` Table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from bus.meta import TERMINAL_POD_PHASES, meta, parse_time
from bus.quota import canonical

NONE = "<none>"
Cell = Callable[[dict, datetime], str]
Column = tuple[str, Cell]


# ---- time ---------------------------------------------------------------------------------------

def human_duration(seconds: float) -> str:
    """kubectl's ``duration.HumanDuration``: 5s, 3m2s, 10m, 2h5m, 10h, 3d4h, 12d, 2y3d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def since(ts: Any, now: datetime) -> str:
    """Age of a timestamp, ``<unknown>`` when absent."""
    t = parse_time(ts)
    return human_duration((now - t).total_seconds()) if t else "<unknown>"


def age(obj: dict, now: datetime) -> str:
    return since(meta(obj).get("creationTimestamp"), now)


# ---- small accessors (``meta`` is bus.meta's) -------------------------------------------------------

def spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def status(obj: dict) -> dict:
    return obj.get("status") or {}


def name(obj: dict, _now: datetime | None = None) -> str:
    return meta(obj).get("name", "")


def format_labels(labels: dict | None) -> str:
    """``a=1,b=2`` (sorted), ``<none>`` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or NONE


def format_selector(sel: dict | None) -> str:
    """A LabelSelector as kubectl prints it (``app=web,tier in (a,b)``)."""
    if not sel:
        return NONE
    parts = [(k, f"{k}={v}") for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key", ""), e.get("operator", ""), ",".join(sorted(e.get("values") or []))
        text = {"In": f"{k} in ({vals})", "NotIn": f"{k} notin ({vals})", "Exists": k,
                "DoesNotExist": f"!{k}"}.get(op, f"{k} {op} ({vals})")
        parts.append((k, text))
    return ",".join(t for _, t in sorted(parts)) or NONE


def _field(path: str, default: Any = 0) -> Cell:
    """A cell reading a dotted path (``status.readyReplicas``)."""
    keys = path.split(".")

    def cell(obj: dict, _now: datetime) -> str:
        v: Any = obj
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return str(default if v is None or v == "" else v)

    return cell


def _template_containers(obj: dict) -> list[dict]:
    return ((spec(obj).get("template") or {}).get("spec") or {}).get("containers") or []


def _containers(obj: dict, _now: datetime) -> str:
    return ",".join(c.get("name", "") for c in _template_containers(obj)) or NONE


def _images(obj: dict, _now: datetime) -> str:
    return ",".join(c.get("image", "") for c in _template_containers(obj)) or NONE


def _selector(obj: dict, _now: datetime) -> str:
    return format_selector(spec(obj).get("selector"))


def _pod_selector(obj: dict, _now: datetime) -> str:
    """A NetworkPolicy's POD-SELECTOR (``metav1.FormatLabelSelector``: ``<none>`` for the empty selector)."""
    return format_selector(spec(obj).get("podSelector"))


def _map_selector(obj: dict, _now: datetime) -> str:
    return format_labels(spec(obj).get("selector"))


WORKLOAD_WIDE: list[Column] = [("CONTAINERS", _containers), ("IMAGES", _images), ("SELECTOR", _selector)]
AGE: Column = ("AGE", age)


# ---- pods ---------------------------------------------------------------------------------------

def _restart_finished(cs: dict) -> datetime | None:
    return parse_time((((cs.get("lastState") or {}).get("terminated")) or {}).get("finishedAt"))


def _terminated_reason(term: dict, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def condition_true(obj: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status(obj).get("conditions") or [])


def pod_summary(pod: dict) -> tuple[str, str, int, datetime | None]:
    """(READY, STATUS, restarts, last restart time) computed as kubectl's ``printPod``."""
    st, sp = status(pod), spec(pod)
    reason = st.get("reason") or st.get("phase") or "Pending"
    ready = restarts = 0
    last_restart: datetime | None = None
    total = len(sp.get("containers") or [])

    def count_restart(cs: dict) -> None:
        nonlocal restarts, last_restart
        restarts += int(cs.get("restartCount") or 0)
        t = _restart_finished(cs)
        if t and (last_restart is None or t > last_restart):
            last_restart = t

    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in st.get("conditions") or []):
        reason = "SchedulingGated"
    init_specs = sp.get("initContainers") or []
    initializing = False
    for i, cs in enumerate(st.get("initContainerStatuses") or []):
        count_restart(cs)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode", 0) == 0:
            continue
        if term:
            reason = _terminated_reason(term, "Init:")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or condition_true(pod, "Initialized"):
        restarts, last_restart = 0, None
        has_running = False
        for cs in reversed(st.get("containerStatuses") or []):
            count_restart(cs)
            state = cs.get("state") or {}
            wait, term = state.get("waiting") or {}, state.get("terminated")
            if wait.get("reason"):
                reason = wait["reason"]
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if condition_true(pod, "Ready") else "NotReady"
    if meta(pod).get("deletionTimestamp"):
        if st.get("reason") == "NodeLost":
            reason = "Unknown"
        elif st.get("phase") not in TERMINAL_POD_PHASES:
            reason = "Terminating"
    return f"{ready}/{total}", reason, restarts, last_restart


def _pod_ready(pod: dict, _now: datetime) -> str:
    return pod_summary(pod)[0]


def _pod_status(pod: dict, _now: datetime) -> str:
    return pod_summary(pod)[1]


def _pod_restarts(pod: dict, now: datetime) -> str:
    _, _, restarts, last = pod_summary(pod)
    return f"{restarts} ({human_duration((now - last).total_seconds())} ago)" if last else str(restarts)


def _readiness_gates(pod: dict, _now: datetime) -> str:
    gates = spec(pod).get("readinessGates") or []
    if not gates:
        return NONE
    conds = {c.get("type"): c.get("status") for c in status(pod).get("conditions") or []}
    ok = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
    return f"{ok}/{len(gates)}"


# ---- services, endpoints ------------------------------------------------------------------------

def service_ports(svc: dict, _now: datetime | None = None) -> str:
    out = []
    for p in spec(svc).get("ports") or []:
        proto = p.get("protocol") or "TCP"
        node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node_port}/{proto}")
    return ",".join(out) or NONE


def _external_ip(svc: dict, _now: datetime) -> str:
    sp = spec(svc)
    stype = sp.get("type") or "ClusterIP"
    ext = list(sp.get("externalIPs") or [])
    if stype == "ExternalName":
        return sp.get("externalName") or NONE
    if stype == "LoadBalancer":
        ingress = (status(svc).get("loadBalancer") or {}).get("ingress") or []
        ips = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        return ",".join(ips + ext) or "<pending>"
    return ",".join(ext) or NONE


def endpoints_summary(ep: dict, _now: datetime, limit: int = 3) -> str:
    items = []
    for subset in ep.get("subsets") or []:
        ports = subset.get("ports") or [None]
        for addr in subset.get("addresses") or []:
            for p in ports:
                items.append(f"{addr.get('ip')}:{p.get('port')}" if p else str(addr.get("ip")))
    if not items:
        return NONE
    more = f" + {len(items) - limit} more..." if len(items) > limit else ""
    return ",".join(items[:limit]) + more


def _more(items: list[str], limit: int = 3) -> str:
    """kubectl's listWithMoreString: the first ``limit`` items, ``+ N more...``, ``<unset>`` when none."""
    if len(items) > limit:
        return ",".join(items[:limit]) + f" + {len(items) - limit} more..."
    return ",".join(items) or "<unset>"


def slice_ports(es: dict, _now: datetime | None = None) -> str:
    return _more([str(p["port"]) if p.get("port") is not None else (p.get("name") or "*")
                  for p in es.get("ports") or []])


def slice_endpoints(es: dict, _now: datetime | None = None) -> str:
    return _more([str(a) for ep in es.get("endpoints") or [] for a in ep.get("addresses") or []])


# ---- nodes --------------------------------------------------------------------------------------

ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_status(node: dict, _now: datetime) -> str:
    ready = next((c for c in status(node).get("conditions") or [] if c.get("type") == "Ready"), None)
    text = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    return text + (",SchedulingDisabled" if spec(node).get("unschedulable") else "")


def node_roles(node: dict, _now: datetime | None = None) -> str:
    roles = set()
    for k, v in (meta(node).get("labels") or {}).items():
        if k.startswith(ROLE_PREFIX) and k[len(ROLE_PREFIX):]:
            roles.add(k[len(ROLE_PREFIX):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or NONE


def _address(kind: str) -> Cell:
    def cell(node: dict, _now: datetime) -> str:
        return next((a.get("address") for a in status(node).get("addresses") or [] if a.get("type") == kind), NONE)
    return cell


# ---- jobs, storage, events, hpa -----------------------------------------------------------------

def _job_status(job: dict, _now: datetime) -> str:
    if condition_true(job, "Complete"):
        return "Complete"
    if condition_true(job, "Failed"):
        return "Failed"
    if meta(job).get("deletionTimestamp"):
        return "Terminating"
    for ctype in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if condition_true(job, ctype):
            return ctype
    return "Running"


def _job_completions(job: dict, _now: datetime) -> str:
    succeeded = status(job).get("succeeded") or 0
    if spec(job).get("completions") is not None:
        return f"{succeeded}/{spec(job)['completions']}"
    parallelism = spec(job).get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(job: dict, now: datetime) -> str:
    start = parse_time(status(job).get("startTime"))
    if start is None:
        return ""
    end = parse_time(status(job).get("completionTime")) or now
    return human_duration((end - start).total_seconds())


def _cronjob_template(cj: dict) -> dict:
    """A CronJob's ``spec.jobTemplate``, which its wide columns read as a Job's (containers, images, selector)."""
    return spec(cj).get("jobTemplate") or {}


def _cronjob_suspend(cj: dict, _now: datetime) -> str:
    v = spec(cj).get("suspend")
    return "<unset>" if v is None else str(bool(v))  # printBoolPtr


def _cronjob_last_schedule(cj: dict, now: datetime) -> str:
    ts = status(cj).get("lastScheduleTime")
    return since(ts, now) if ts else NONE


_CRONJOB_WIDE: list[Column] = [(title, lambda o, n, cell=cell: cell(_cronjob_template(o), n))
                               for title, cell in WORKLOAD_WIDE]


ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _access_modes(where: Callable[[dict], dict]) -> Cell:
    def cell(obj: dict, _now: datetime) -> str:
        return ",".join(ACCESS_MODES.get(m, m) for m in where(obj).get("accessModes") or [])
    return cell


def _pv_claim(pv: dict, _now: datetime) -> str:
    ref = spec(pv).get("claimRef") or {}
    return f"{ref.get('namespace')}/{ref.get('name')}" if ref.get("name") else ""


def _pvc_capacity(pvc: dict, _now: datetime) -> str:
    return str((status(pvc).get("capacity") or {}).get("storage", "")) if spec(pvc).get("volumeName") else ""


def event_last_seen(ev: dict, now: datetime) -> str:
    first = ev.get("firstTimestamp") or ev.get("eventTime")
    last = ev.get("lastTimestamp") or first
    count = ev.get("count") or 1
    if ev.get("series"):
        last, count = ev["series"].get("lastObservedTime"), ev["series"].get("count") or count
    text = since(last, now)
    return f"{text} (x{count} over {since(first, now)})" if count > 1 else text


def _event_object(ev: dict, _now: datetime) -> str:
    io = ev.get("involvedObject") or {}
    kind = (io.get("kind") or "").lower()
    return f"{kind}/{io['name']}" if io.get("name") else kind


def _csr_condition(csr: dict, _now: datetime) -> str:
    """printers.go's CSR CONDITION: Approved/Denied/Failed (each once), then Issued once it has a certificate."""
    st = status(csr)
    seen = [c.get("type") for c in st.get("conditions") or [] if c.get("type") in ("Approved", "Denied", "Failed")]
    names = list(dict.fromkeys(seen)) + (["Issued"] if st.get("certificate") else [])
    return ",".join(names) or "Pending"


def _csr_duration(csr: dict, _now: datetime) -> str:
    seconds = spec(csr).get("expirationSeconds")
    return human_duration(seconds) if isinstance(seconds, int) else NONE


def _hpa_reference(hpa: dict, _now: datetime) -> str:
    ref = spec(hpa).get("scaleTargetRef") or {}
    return f"{ref.get('kind')}/{ref.get('name')}"


def _hpa_targets(hpa: dict, _now: datetime, limit: int = 3) -> str:
    current = {((m.get("resource") or {}).get("name")): (m.get("resource") or {}).get("current") or {}
               for m in status(hpa).get("currentMetrics") or [] if m.get("type") == "Resource"}
    out = []
    for m in spec(hpa).get("metrics") or []:
        if m.get("type") != "Resource":
            out.append(f"{m.get('type')}: <unknown>")
            continue
        res = m.get("resource") or {}
        target, cur = res.get("target") or {}, current.get(res.get("name")) or {}
        if target.get("averageUtilization") is not None:
            val = cur.get("averageUtilization")
            now_s = f"{val}%" if val is not None else "<unknown>"
            out.append(f"{res.get('name')}: {now_s}/{target['averageUtilization']}%")
        else:
            want = target.get("averageValue") or target.get("value")
            out.append(f"{res.get('name')}: {cur.get('averageValue') or cur.get('value') or '<unknown>'}/{want}")
    if not out:
        return NONE
    return ", ".join(out[:limit]) + (f" + {len(out) - limit} more..." if len(out) > limit else "")


def _data_count(*fields: str) -> Cell:
    """Distinct keys of maps (data, stringData), or entries of a list (a ServiceAccount's secrets)."""
    def cell(obj: dict, _now: datetime) -> str:
        keys: set = set()
        for f in fields:
            value = obj.get(f) or {}
            keys.update(value if isinstance(value, dict) else range(len(value)))
        return str(len(keys))
    return cell


def _deploy_ready(d: dict, _now: datetime) -> str:
    desired = spec(d).get("replicas")
    return f"{status(d).get('readyReplicas') or 0}/{1 if desired is None else desired}"


def _controller_ref(obj: dict, _now: datetime) -> str:
    """kubectl's CONTROLLER of a ControllerRevision: ``<kind>.<group>/<name>`` of its controller, else ``<none>``."""
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            group = (ref.get("apiVersion") or "").rpartition("/")[0]
            kind = (ref.get("kind") or "").lower()
            return f"{kind}.{group}/{ref.get('name', '')}" if group else f"{kind}/{ref.get('name', '')}"
    return NONE


def _quota_usage(limits: bool) -> Cell:
    """kubectl's REQUEST / LIMIT of a ResourceQuota: ``name: used/hard`` of each hard resource (sorted), the
    ``limits.*`` ones in LIMIT, the others in REQUEST."""
    def cell(q: dict, _now: datetime) -> str:
        used, hard = status(q).get("used") or {}, status(q).get("hard") or {}
        return ", ".join(f"{r}: {canonical(used.get(r, 0))}/{canonical(hard.get(r, 0))}"
                         for r in sorted(spec(q).get("hard") or {}) if (r.split(".")[0] == "limits") == limits)
    return cell


def _created_at(obj: dict, _now: datetime) -> str:
    """kubectl's CREATED AT of roles: the creation time in RFC 3339 (UTC)."""
    t = parse_time(meta(obj).get("creationTimestamp"))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


def _role_ref(obj: dict, _now: datetime) -> str:
    ref = obj.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _subjects(kind: str) -> Cell:
    """A binding's subjects of one kind, as kubectl's wide columns list them (a ServiceAccount as ns/name)."""
    def cell(obj: dict, _now: datetime) -> str:
        subs = [s for s in obj.get("subjects") or [] if isinstance(s, dict) and s.get("kind") == kind]
        if kind == "ServiceAccount":
            return ", ".join(f"{s.get('namespace', '')}/{s.get('name', '')}" for s in subs)
        return ", ".join(s.get("name", "") for s in subs)
    return cell


_BINDING_WIDE: list[Column] = [("USERS", _subjects("User")), ("GROUPS", _subjects("Group")),
                               ("SERVICEACCOUNTS", _subjects("ServiceAccount"))]


def _ingress_hosts(ing: dict, _now: datetime, limit: int = 3) -> str:
    """printers.go's formatHosts: the rules' hosts up to three (``+ N more...`` when a rule follows the third,
    N counting rules), ``*`` when no rule names one."""
    rules = [r for r in spec(ing).get("rules") or [] if isinstance(r, dict)]
    hosts: list[str] = []
    more = False
    for r in rules:
        more = more or len(hosts) == limit
        if not more and r.get("host"):
            hosts.append(r["host"])
    if not hosts:
        return "*"
    return ",".join(hosts) + (f" + {len(rules) - limit} more..." if more else "")


def _ingress_address(ing: dict, _now: datetime) -> str:
    """ingressLoadBalancerStatusStringer as the API server calls it (wide: not clipped): each IP, else hostname,
    sorted and unique."""
    lb = (status(ing).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(sorted({i.get("ip") or i.get("hostname") for i in lb
                            if isinstance(i, dict) and (i.get("ip") or i.get("hostname"))}))


def _ingress_class_parameters(ic: dict, _now: datetime) -> str:
    p = spec(ic).get("parameters")
    if not p:
        return NONE
    group = f".{p['apiGroup']}" if p.get("apiGroup") is not None else ""
    return f"{p.get('kind', '')}{group}/{p.get('name', '')}"


# ---- the column table ---------------------------------------------------------------------------

NAME: Column = ("NAME", name)

COLUMNS: dict[str, tuple[list[Column], list[Column]]] = {
    "Pod": ([NAME, ("READY", _pod_ready), ("STATUS", _pod_status), ("RESTARTS", _pod_restarts), AGE],
            [("IP", _field("status.podIP", NONE)), ("NODE", _field("spec.nodeName", NONE)),
             ("NOMINATED NODE", _field("status.nominatedNodeName", NONE)), ("READINESS GATES", _readiness_gates)]),
    "Deployment": ([NAME, ("READY", _deploy_ready), ("UP-TO-DATE", _field("status.updatedReplicas")),
                    ("AVAILABLE", _field("status.availableReplicas")), AGE], WORKLOAD_WIDE),
    "ReplicaSet": ([NAME, ("DESIRED", _field("spec.replicas", 1)), ("CURRENT", _field("status.replicas")),
                    ("READY", _field("status.readyReplicas")), AGE], WORKLOAD_WIDE),
    "ReplicationController": ([NAME, ("DESIRED", _field("spec.replicas", 1)), ("CURRENT", _field("status.replicas")),
                               ("READY", _field("status.readyReplicas")), AGE],
                              WORKLOAD_WIDE[:2] + [("SELECTOR", _map_selector)]),
    "DaemonSet": ([NAME, ("DESIRED", _field("status.desiredNumberScheduled")),
                   ("CURRENT", _field("status.currentNumberScheduled")), ("READY", _field("status.numberReady")),
                   ("UP-TO-DATE", _field("status.updatedNumberScheduled")),
                   ("AVAILABLE", _field("status.numberAvailable")),
                   ("NODE SELECTOR", lambda o, _n: format_labels((spec(o).get("template") or {}).get("spec", {})
                                                                 .get("nodeSelector"))), AGE], WORKLOAD_WIDE),
    "StatefulSet": ([NAME, ("READY", _deploy_ready), AGE], WORKLOAD_WIDE[:2]),
    "ControllerRevision": ([NAME, ("CONTROLLER", _controller_ref), ("REVISION", _field("revision")), AGE], []),
    "Job": ([NAME, ("STATUS", _job_status), ("COMPLETIONS", _job_completions), ("DURATION", _job_duration), AGE],
            WORKLOAD_WIDE),
    "CronJob": ([NAME, ("SCHEDULE", _field("spec.schedule", "")), ("TIMEZONE", _field("spec.timeZone", NONE)),
                 ("SUSPEND", _cronjob_suspend), ("ACTIVE", lambda o, _n: str(len(status(o).get("active") or []))),
                 ("LAST SCHEDULE", _cronjob_last_schedule), AGE], _CRONJOB_WIDE),
    "Service": ([NAME, ("TYPE", _field("spec.type", "ClusterIP")), ("CLUSTER-IP", _field("spec.clusterIP", NONE)),
                 ("EXTERNAL-IP", _external_ip), ("PORT(S)", service_ports), AGE], [("SELECTOR", _map_selector)]),
    "Endpoints": ([NAME, ("ENDPOINTS", endpoints_summary), AGE], []),
    "EndpointSlice": ([NAME, ("ADDRESSTYPE", _field("addressType", "")), ("PORTS", slice_ports),
                       ("ENDPOINTS", slice_endpoints), AGE], []),
    "Node": ([NAME, ("STATUS", _node_status), ("ROLES", node_roles), AGE,
              ("VERSION", _field("status.nodeInfo.kubeletVersion", ""))],
             [("INTERNAL-IP", _address("InternalIP")), ("EXTERNAL-IP", _address("ExternalIP")),
              ("OS-IMAGE", _field("status.nodeInfo.osImage", "<unknown>")),
              ("KERNEL-VERSION", _field("status.nodeInfo.kernelVersion", "<unknown>")),
              ("CONTAINER-RUNTIME", _field("status.nodeInfo.containerRuntimeVersion", "<unknown>"))]),
    "Namespace": ([NAME, ("STATUS", _field("status.phase", "Active")), AGE], []),
    "ServiceAccount": ([NAME, ("SECRETS", _data_count("secrets")), AGE], []),
    "Secret": ([NAME, ("TYPE", _field("type", "Opaque")), ("DATA", _data_count("data", "stringData")), AGE], []),
    "ConfigMap": ([NAME, ("DATA", _data_count("data", "binaryData")), AGE], []),
    "PersistentVolume": ([NAME, ("CAPACITY", _field("spec.capacity.storage", "")),
                          ("ACCESS MODES", _access_modes(spec)),
                          ("RECLAIM POLICY", _field("spec.persistentVolumeReclaimPolicy", "")),
                          ("STATUS", _field("status.phase", "")), ("CLAIM", _pv_claim),
                          ("STORAGECLASS", _field("spec.storageClassName", "")),
                          ("VOLUMEATTRIBUTESCLASS", _field("spec.volumeAttributesClassName", "<unset>")),
                          ("REASON", _field("status.reason", "")), AGE],
                         [("VOLUMEMODE", _field("spec.volumeMode", "Filesystem"))]),
    "PersistentVolumeClaim": ([NAME, ("STATUS", _field("status.phase", "")), ("VOLUME", _field("spec.volumeName", "")),
                               ("CAPACITY", _pvc_capacity), ("ACCESS MODES", _access_modes(status)),
                               ("STORAGECLASS", _field("spec.storageClassName", "")),
                               ("VOLUMEATTRIBUTESCLASS", _field("spec.volumeAttributesClassName", "<unset>")), AGE],
                              [("VOLUMEMODE", _field("spec.volumeMode", "Filesystem"))]),
    "Event": ([("LAST SEEN", event_last_seen), ("TYPE", _field("type", "")), ("REASON", _field("reason", "")),
               ("OBJECT", _event_object), ("MESSAGE", lambda o, _n: (o.get("message") or "").strip())], []),
    "HorizontalPodAutoscaler": ([NAME, ("REFERENCE", _hpa_reference), ("TARGETS", _hpa_targets),
                                 ("MINPODS", _field("spec.minReplicas", 1)), ("MAXPODS", _field("spec.maxReplicas")),
                                 ("REPLICAS", _field("status.currentReplicas")), AGE], []),
    "Lease": ([NAME, ("HOLDER", _field("spec.holderIdentity", "")), AGE], []),
    "NetworkPolicy": ([NAME, ("POD-SELECTOR", _pod_selector), AGE], []),
    "Ingress": ([NAME, ("CLASS", _field("spec.ingressClassName", NONE)), ("HOSTS", _ingress_hosts),
                 ("ADDRESS", _ingress_address), ("PORTS", lambda o, _n: "80, 443" if spec(o).get("tls") else "80"),
                 AGE], []),
    "IngressClass": ([NAME, ("CONTROLLER", _field("spec.controller", "")),
                      ("PARAMETERS", _ingress_class_parameters), AGE], []),
    "PodDisruptionBudget": ([NAME, ("MIN AVAILABLE", _field("spec.minAvailable", "N/A")),
                             ("MAX UNAVAILABLE", _field("spec.maxUnavailable", "N/A")),
                             ("ALLOWED DISRUPTIONS", _field("status.disruptionsAllowed")), AGE], []),
    "CertificateSigningRequest": ([NAME, AGE, ("SIGNERNAME", _field("spec.signerName", "")),
                                   ("REQUESTOR", _field("spec.username", "")), ("REQUESTEDDURATION", _csr_duration),
                                   ("CONDITION", _csr_condition)], []),
    "Role": ([NAME, ("CREATED AT", _created_at)], []),
    "ResourceQuota": ([NAME, AGE, ("REQUEST", _quota_usage(False)), ("LIMIT", _quota_usage(True))], []),
    "LimitRange": ([NAME, ("CREATED AT", _created_at)], []),
    "PriorityClass": ([NAME, ("VALUE", _field("value")),
                       ("GLOBAL-DEFAULT", lambda o, _n: str(bool(o.get("globalDefault"))).lower()), AGE,
                       ("PREEMPTIONPOLICY", _field("preemptionPolicy", "<unset>"))], []),
    "ClusterRole": ([NAME, ("CREATED AT", _created_at)], []),
    "ValidatingWebhookConfiguration": ([NAME, ("WEBHOOKS", _data_count("webhooks")), AGE], []),
    "MutatingWebhookConfiguration": ([NAME, ("WEBHOOKS", _data_count("webhooks")), AGE], []),
    "RoleBinding": ([NAME, ("ROLE", _role_ref), AGE], _BINDING_WIDE),
    "ClusterRoleBinding": ([NAME, ("ROLE", _role_ref), AGE], _BINDING_WIDE),
    "CustomResourceDefinition": ([NAME, ("CREATED AT", _created_at)], []),
}


def kind_columns(kind: str) -> tuple[list[Column], list[Column]]:
    """(the default columns, the ones ``-o wide`` adds) of ``kind``; NAME and AGE for a kind without its own."""
    return COLUMNS.get(kind, ([NAME, AGE], []))


def resource_columns(res: Any) -> tuple[list[Column], list[Column]]:
    """:func:`kind_columns`, or a custom resource's: its definition's additionalPrinterColumns (``bus.crd``)."""
    if getattr(res, "custom", None) is None:
        return kind_columns(res.kind)
    from bus import crd

    defs = crd.column_definitions(res)

    def cell(i: int) -> Callable[[dict, datetime], str]:
        def fn(obj: dict, now: datetime) -> str:
            v = crd.cells(res, obj, now)[i]
            return "<none>" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        return fn

    cols = [(d["name"].upper(), NAME[1] if i == 0 else cell(i), d["priority"]) for i, d in enumerate(defs)]
    return [(h, fn) for h, fn, p in cols if not p], [(h, fn) for h, fn, p in cols if p]


def columns(kind: str, wide: bool = False, res: Any = None) -> list[Column]:
    base, more = resource_columns(res) if res is not None else kind_columns(kind)
    return base + more if wide else list(base)
