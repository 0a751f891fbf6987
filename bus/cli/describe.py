"""``k8n describe``: a human description of one object, kubectl-like, ending with its events."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Optional

import typer

from bus import errors, tables
from bus.cli import printers
from bus.cli.common import (DataDirOpt, Failures, NamespaceOpt, ServerOpt, namespace_of, parse_targets, run)
from bus.cli.main import app
from bus.meta import parse_time
from bus.resources import Resource
from bus.tables import NONE, meta, spec, status

if TYPE_CHECKING:
    from bus.client import ApiClient

class Writer:
    """Lines of ``Label:  value`` at indent levels; values align within a run of same-level lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, str | None]] = []

    def add(self, label: str, value: object = None, level: int = 0) -> None:
        self.lines.append((level, label, None if value is None else str(value)))

    def map(self, label: str, items: dict | None, level: int = 0, sep: str = "=") -> None:
        """``Labels:  a=1`` with further entries on their own lines, aligned."""
        text = "\n".join(f"{k}{sep}{v}" for k, v in sorted((items or {}).items())) or NONE
        self.add(label, text, level)

    def items(self, label: str, lines: list[str], level: int = 0) -> None:
        """``Label:`` with one entry per line below it, or ``Label:  <none>``."""
        if not lines:
            self.add(label, NONE, level)
            return
        self.add(f"{label}:", level=level)
        for line in lines:
            self.add(line, level=level + 1)

    def table(self, headers: list[str], rows: list[list[str]], level: int = 1) -> None:
        rule = ["-" * len(h) for h in headers]
        for line in printers.render(headers, [rule, *rows], pad=2, min_width=0).split("\n"):
            self.add(line.rstrip(), level=level)

    def text(self) -> str:
        out: list[str] = []
        i = 0
        while i < len(self.lines):
            level = self.lines[i][0]
            j = i
            while j < len(self.lines) and self.lines[j][0] == level and self.lines[j][2] is not None:
                j += 1
            run_ = self.lines[i:j] or [self.lines[i]]
            width = max(len(label) for _, label, _ in run_) + 3
            for lvl, label, value in run_:
                pad = "  " * lvl
                if value is None:
                    out.append(pad + label)
                    continue
                first, *rest = value.split("\n")
                out.append(f"{pad}{(label + ':').ljust(width)}{first}".rstrip())
                out.extend(" " * (len(pad) + width) + r for r in rest)
            i = max(j, i + 1)
        return "\n".join(out)


def timestamp(ts: object) -> str:
    t = parse_time(ts)
    return t.strftime("%a, %d %b %Y %H:%M:%S %z") if t else NONE


# ---- shared pieces ------------------------------------------------------------------------------

def _header(w: Writer, obj: dict, res: Resource) -> None:
    m = meta(obj)
    w.add("Name", m.get("name", ""))
    if res.namespaced:
        w.add("Namespace", m.get("namespace", ""))
    w.map("Labels", m.get("labels"))
    w.map("Annotations", {k: v for k, v in (m.get("annotations") or {}).items()
                          if k != "kubectl.kubernetes.io/last-applied-configuration"}, sep=": ")
    w.add("CreationTimestamp", timestamp(m.get("creationTimestamp")))
    owner = next((o for o in m.get("ownerReferences") or [] if o.get("controller")), None)
    if owner:
        w.add("Controlled By", f"{owner.get('kind')}/{owner.get('name')}")


def _ports(c: dict) -> str:
    return ", ".join(f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in c.get("ports") or []) or NONE


def _state(w: Writer, label: str, state: dict | None, level: int) -> None:
    if not state:
        w.add(label, "Waiting", level)
        return
    kind, detail = next(iter(state.items()))
    w.add(label, kind.capitalize(), level)
    detail = detail or {}
    for key in ("reason", "message", "exitCode", "startedAt", "finishedAt"):
        if detail.get(key) not in (None, ""):
            value = timestamp(detail[key]) if key.endswith("At") else detail[key]
            label2 = {"startedAt": "Started", "finishedAt": "Finished", "exitCode": "Exit Code"}.get(key, key.capitalize())
            w.add(label2, value, level + 1)


def _containers(w: Writer, label: str, containers: list[dict], statuses: list[dict] | None, level: int) -> None:
    w.add(f"{label}:", level=level)
    by_name = {s.get("name"): s for s in statuses or []}
    for c in containers:
        w.add(f"{c.get('name')}:", level=level + 1)
        cs = by_name.get(c.get("name"))
        lvl = level + 2
        w.add("Image", c.get("image", ""), lvl)
        w.add("Port", _ports(c), lvl)
        if c.get("command"):
            w.add("Command", "\n".join(c["command"]), lvl)
        if c.get("args"):
            w.add("Args", "\n".join(c["args"]), lvl)
        if statuses is not None:
            _state(w, "State", (cs or {}).get("state"), lvl)
            if (cs or {}).get("lastState"):
                _state(w, "Last State", cs["lastState"], lvl)
            w.add("Ready", str(bool((cs or {}).get("ready"))), lvl)
            w.add("Restart Count", (cs or {}).get("restartCount", 0), lvl)
        for kind in ("limits", "requests"):
            if (c.get("resources") or {}).get(kind):
                w.map(kind.capitalize(), c["resources"][kind], lvl, sep=":  ")
        w.items("Environment", [f"{e.get('name')}:  {e.get('value', '<set from valueFrom>')}"
                                for e in c.get("env") or []], lvl)
        w.items("Mounts", [f"{m.get('mountPath')} from {m.get('name')} ({'ro' if m.get('readOnly') else 'rw'})"
                           for m in c.get("volumeMounts") or []], lvl)


def _conditions(w: Writer, obj: dict, with_reason: bool = False) -> None:
    conds = status(obj).get("conditions") or []
    if not conds:
        return
    w.add("Conditions:")
    headers = ["Type", "Status"] + (["Reason"] if with_reason else [])
    rows = [[c.get("type", ""), c.get("status", "")] + ([c.get("reason", "")] if with_reason else [])
            for c in conds]
    w.table(headers, rows)


# ---- per kind -----------------------------------------------------------------------------------

def _pod(w: Writer, pod: dict) -> None:
    sp, st = spec(pod), status(pod)
    w.add("Service Account", sp.get("serviceAccountName", "default"))
    node = sp.get("nodeName")
    w.add("Node", f"{node}/{st.get('hostIP', '')}" if node else NONE)
    w.add("Start Time", timestamp(st.get("startTime")))
    w.add("Status", tables.pod_summary(pod)[1])
    w.add("IP", st.get("podIP", ""))
    if sp.get("initContainers"):
        _containers(w, "Init Containers", sp["initContainers"], st.get("initContainerStatuses") or [], 0)
    _containers(w, "Containers", sp.get("containers") or [], st.get("containerStatuses") or [], 0)
    _conditions(w, pod)
    w.add("Volumes:" if sp.get("volumes") else "Volumes:  <none>")
    for v in sp.get("volumes") or []:
        w.add(f"{v.get('name')}:", level=1)
        kind = next((k for k in v if k != "name"), "")
        w.add("Type", kind, 2)
    w.add("QoS Class", st.get("qosClass", "BestEffort"))
    w.map("Node-Selectors", sp.get("nodeSelector"), sep=":")
    tolerations = [f"{t.get('key', '')}:{t.get('effect', '')} op={t.get('operator', 'Equal')}"
                   for t in sp.get("tolerations") or []]
    w.add("Tolerations", "\n".join(tolerations) or NONE)


def _deployment(w: Writer, d: dict) -> None:
    sp, st = spec(d), status(d)
    want = sp.get("replicas", 1)
    w.add("Selector", tables.format_selector(sp.get("selector")))
    w.add("Replicas", f"{want} desired | {st.get('updatedReplicas', 0)} updated | {st.get('replicas', 0)} total | "
                      f"{st.get('availableReplicas', 0)} available | {st.get('unavailableReplicas', 0)} unavailable")
    strategy = sp.get("strategy") or {}
    w.add("StrategyType", strategy.get("type", "RollingUpdate"))
    w.add("MinReadySeconds", sp.get("minReadySeconds", 0))
    ru = strategy.get("rollingUpdate")
    if ru:
        w.add("RollingUpdateStrategy", f"{ru.get('maxUnavailable', '25%')} max unavailable, "
                                       f"{ru.get('maxSurge', '25%')} max surge")
    _pod_template(w, sp.get("template") or {})
    _conditions(w, d, with_reason=True)


def _pod_template(w: Writer, template: dict) -> None:
    w.add("Pod Template:")
    w.map("Labels", meta(template).get("labels"), 1)
    _containers(w, "Containers", spec(template).get("containers") or [], None, 1)


def _service(w: Writer, svc: dict, endpoints: dict | None) -> None:
    sp = spec(svc)
    w.map("Selector", sp.get("selector"))
    w.add("Type", sp.get("type", "ClusterIP"))
    w.add("IP", sp.get("clusterIP", NONE))
    if sp.get("externalIPs"):
        w.add("External IPs", ",".join(sp["externalIPs"]))
    for p in sp.get("ports") or []:
        w.add("Port", f"{p.get('name') or '<unset>'}  {p.get('port')}/{p.get('protocol') or 'TCP'}")
        w.add("TargetPort", f"{p.get('targetPort', p.get('port'))}/{p.get('protocol') or 'TCP'}")
        if p.get("nodePort"):
            w.add("NodePort", f"{p.get('name') or '<unset>'}  {p['nodePort']}/{p.get('protocol') or 'TCP'}")
    w.add("Endpoints", tables.endpoints_summary(endpoints, None) if endpoints else "")
    w.add("Session Affinity", sp.get("sessionAffinity", "None"))


def _node(w: Writer, node: dict) -> None:
    sp, st = spec(node), status(node)
    w.add("Roles", tables.node_roles(node))
    taints = [f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
              for t in sp.get("taints") or []]
    w.add("Taints", "\n".join(taints) or NONE)
    w.add("Unschedulable", str(bool(sp.get("unschedulable"))).lower())
    conds = st.get("conditions") or []
    if conds:
        w.add("Conditions:")
        w.table(["Type", "Status", "LastHeartbeatTime", "Reason", "Message"],
                [[c.get("type", ""), c.get("status", ""), timestamp(c.get("lastHeartbeatTime")),
                  c.get("reason", ""), c.get("message", "")] for c in conds])
    w.add("Addresses:")
    for a in st.get("addresses") or []:
        w.add(a.get("type", ""), a.get("address", ""), 1)
    for label, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        w.add(f"{label}:")
        for k, v in (st.get(key) or {}).items():
            w.add(k, v, 1)
    info = st.get("nodeInfo") or {}
    if info:
        w.add("System Info:")
        for k, v in info.items():
            w.add(k[:1].upper() + k[1:], v, 1)
    w.add("PodCIDR", sp.get("podCIDR", ""))
    w.add("PodCIDRs", ",".join(sp.get("podCIDRs") or []))


def _np_rules(w: Writer, rules: list[dict], peers_key: str, peer_label: str, direction: str, any_peer: str) -> None:
    """kubectl's printNetworkPolicySpecIngressFrom / ...EgressTo, line for line."""
    if not rules:
        w.add(f"<none> (Selected pods are isolated for {direction} connectivity)", level=2)
        return
    for i, r in enumerate(rules):
        ports = r.get("ports") or []
        if not ports:
            w.add("To Port: <any> (traffic allowed to all ports)", level=2)
        for p in ports:
            port = p.get("port")
            port_text = "<nil>" if port is None else str(port)
            if p.get("endPort") is not None:
                port_text += f"-{p['endPort']}"
            w.add(f"To Port: {port_text}/{p.get('protocol') or 'TCP'}", level=2)
        peers = r.get(peers_key) or []
        if not peers:
            w.add(f"{peer_label}: <any> ({any_peer})", level=2)
        for peer in peers:
            w.add(f"{peer_label}:", level=2)
            if peer.get("namespaceSelector") is not None:
                w.add(f"NamespaceSelector: {tables.format_selector(peer['namespaceSelector'])}", level=3)
            if peer.get("podSelector") is not None:
                w.add(f"PodSelector: {tables.format_selector(peer['podSelector'])}", level=3)
            block = peer.get("ipBlock")
            if block is not None and peer.get("namespaceSelector") is None and peer.get("podSelector") is None:
                w.add("IPBlock:", level=3)
                w.add(f"CIDR: {block.get('cidr', '')}", level=4)
                w.add(f"Except: {', '.join(block.get('except') or [])}".rstrip(), level=4)
        if i != len(rules) - 1:
            w.add("----------", level=2)


def _network_policy(w: Writer, np: dict) -> None:
    """kubectl's describeNetworkPolicySpec."""
    sp = spec(np)
    sel = sp.get("podSelector") or {}
    w.add("Spec:")
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        w.add("PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)", level=1)
    else:
        w.add(f"PodSelector:     {tables.format_selector(sel)}", level=1)
    types = sp.get("policyTypes") or []
    for kind, peers, label, any_peer in (("ingress", "from", "From", "traffic not restricted by source"),
                                         ("egress", "to", "To", "traffic not restricted by destination")):
        if kind.capitalize() in types:
            w.add(f"Allowing {kind} traffic:", level=1)
            _np_rules(w, sp.get(kind) or [], peers, label, kind, any_peer)
        else:
            w.add(f"Not affecting {kind} traffic", level=1)
    w.add(f"Policy Types: {', '.join(types)}", level=1)


def _generic(w: Writer, obj: dict) -> None:
    from bus import codec

    for label, key in (("Spec", "spec"), ("Status", "status"), ("Data", "data")):
        if obj.get(key):
            w.add(f"{label}:")
            for line in codec.to_yaml(obj[key]).rstrip("\n").split("\n"):
                w.add(line, level=1)


# ---- events -------------------------------------------------------------------------------------

def _involves(ev: dict, obj: dict, kind: str) -> bool:
    io = ev.get("involvedObject") or {}
    uid = meta(obj).get("uid")
    if io.get("uid") and uid:
        return io["uid"] == uid
    return io.get("name") == meta(obj).get("name") and io.get("kind") == kind


def _events(w: Writer, events: list[dict], now: datetime) -> None:
    if not events:
        w.add("Events", NONE)
        return
    w.add("Events:")
    events = sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    w.table(["Type", "Reason", "Age", "From", "Message"],
            [[e.get("type", ""), e.get("reason", ""), tables.event_last_seen(e, now),
              (e.get("source") or {}).get("component") or e.get("reportingComponent", ""),
              (e.get("message") or "").strip()] for e in events])


def describe_object(res: Resource, obj: dict, events: list[dict], extra: dict | None = None,
                    now: datetime | None = None) -> str:
    """The description of ``obj`` (pure: everything it needs is passed in)."""
    w = Writer()
    _header(w, obj, res)
    if res.kind == "Pod":
        _pod(w, obj)
    elif res.kind == "Deployment":
        _deployment(w, obj)
    elif res.kind == "Service":
        _service(w, obj, extra)
    elif res.kind == "Node":
        _node(w, obj)
    elif res.kind == "NetworkPolicy":
        _network_policy(w, obj)
    else:
        _generic(w, obj)
    _events(w, events, now or datetime.now(timezone.utc))
    return w.text()


async def _describe(client: ApiClient, res: Resource, name: str, ns: str | None) -> str:
    obj = await client.get(res, name, ns)
    evs, _ = await client.list("events", meta(obj).get("namespace") or "default")
    events = [e for e in evs if _involves(e, obj, res.kind)]
    extra = None
    if res.kind == "Service":
        try:
            extra = await client.get("endpoints", name, ns)
        except errors.NotFound:
            pass
    return describe_object(res, obj, events, extra)


@app.command()
def describe(
    args: Optional[list[str]] = typer.Argument(None, metavar="KIND NAME | KIND/NAME"),
    namespace: Optional[str] = NamespaceOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Show details of a specific resource."""

    async def body(client: ApiClient) -> int:
        failures = Failures()
        texts = []
        for res, names in parse_targets(args or [], "describe"):
            ns = namespace_of(res, None, namespace)
            if not names:
                names = [meta(o).get("name") for o in (await client.list(res, ns))[0]]
            for name in names:
                try:
                    texts.append(await _describe(client, res, name, ns))
                except errors.ApiError as e:
                    failures.report(e)
        if texts:
            print("\n\n\n".join(texts), flush=True)
        return 1 if failures.count else 0

    run(server, data_dir, body)
