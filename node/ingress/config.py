"""Ingresses + Services + EndpointSlices + TLS Secrets → one HAProxy configuration, as pure data.

``build(inputs)`` resolves the objects into a :class:`Plan` (routes, backends with their ready pod
endpoints, certificates, errors for the objects it refused); ``render_plan(plan)`` turns a plan into
``(haproxy_cfg, maps, certs)``; ``render(inputs)`` does both. ``runtime_commands(old, new)`` lists the
runtime-API commands that move a running haproxy from ``old`` to ``new`` without a reload, or None
when only a reload can (the backend pool grows, more endpoints than server slots, canary rules, certificates,
ports).

Backends are a pool of generic haproxy backends ``b1..bN``, each holding one Service port's endpoints
(``Backend.service``, e.g. ``default_web_80``) or spare. A Service keeps its pool backend from plan to plan; a
Service an Ingress starts using takes a spare, and a path that moves to another Service only changes
``backends.map`` (route → backend): all through the runtime API, with no reload, so no idle keep-alive connection
is closed by a worker handover. The pool grows (a reload) only when no spare fits, and then keeps as many spares
as backends in use (at least :data:`MIN_SPARES`).

Routing (Kubernetes Ingress semantics): the request key is ``host + path`` (host lowercased, port
stripped); it is looked up in ``exact.map`` (Exact paths, and Prefix paths' own value) and then in
``prefix.map`` (``host/p/`` for Prefix ``/p``: element-wise, haproxy's prefix tree picks the longest),
first for the Host itself, then its one-label wildcard ``*.rest``, then for rules without a host, and
finally the oldest Ingress' defaultBackend (else 404). A map value is a route id; a route is a main
backend plus at most one canary (ingress-nginx annotations: header, then cookie, then weight).

Safety: no annotation text reaches the config except validated canary header/cookie names and
single-quoted header values/regexes; snippet annotations get the whole Ingress refused (CVE-2025-1974).
Hosts, paths, names are validated before they reach a map or the config."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable

from bus.ingress import (BUILT_IN_CLASSES, NGINX_PREFIX, Canary, annotation_problems, canary, class_name,
                         default_class)
from node.ingress.tls import pem_pair, self_signed_pem  # noqa: F401 (self_signed_pem: part of this API)
from node.proxy.model import Endpoint  # (ip, port) of a ready pod, as the service proxy has it

SERVED_CLASSES = frozenset(name for name, _, _ in BUILT_IN_CLASSES)  # the IngressClasses k8n starts with
WEIGHT_SCALE = 1_000_000  # rand(WEIGHT_SCALE) < weight * WEIGHT_SCALE / total → canary
MIN_SLOTS = 4  # server slots per backend, so endpoint changes fit without a reload
MIN_SPARES = 8  # spare pool backends after a growth, so new Services need no reload

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PATH = re.compile(r"^/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*$")  # RFC 3986 pchar and '/': no space, quote, #, ?
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # header and cookie names
_CTRL = re.compile(r"[\x00-\x1f\x7f]")


def valid_host(host: str) -> bool:
    return isinstance(host, str) and len(host) <= 253 and bool(_HOST.fullmatch(host))


def valid_path(path: str) -> bool:
    return isinstance(path, str) and len(path) <= 4096 and bool(_PATH.fullmatch(path))


def quote(value: str) -> str:
    """One haproxy config word holding ``value`` literally: single quotes (no escapes, no env expansion
    inside), a quote itself as '\\''. Control characters (newlines) are refused by the callers."""
    if _CTRL.search(value):
        raise ValueError("control character in a config value")
    return "'" + value.replace("'", "'\\''") + "'"


def _canary_errors(c: Canary) -> list[str]:
    errs = []
    if c.header and not _TOKEN.fullmatch(c.header):
        errs.append("canary-by-header: not a valid header name")
    if c.cookie and not _TOKEN.fullmatch(c.cookie):
        errs.append("canary-by-cookie: not a valid cookie name")
    for key, v in (("canary-by-header-value", c.header_value), ("canary-by-header-pattern", c.header_pattern)):
        if _CTRL.search(v) or len(v) > 1024:
            errs.append(f"{key}: control characters or too long")
    if c.header_pattern:
        try:
            re.compile(c.header_pattern)
        except re.error as e:
            errs.append(f"canary-by-header-pattern: invalid regex: {e}")
    return errs


# --- model --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    name: str  # haproxy backend name in the pool: b1, b2, …
    endpoints: tuple[Endpoint | None, ...]  # by server slot; None (or past the end): a disabled slot
    slots: int  # server slots s1..sN
    service: str = ""  # the Service port it serves: ns_service_port (Kubernetes names have no '_'); "": spare

    @property
    def ready(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e is not None]


@dataclass(frozen=True)
class Route:
    id: str
    main: str  # backend name
    canary: str = ""  # backend name, "" none
    policy: Canary | None = None


@dataclass
class Inputs:
    ingresses: list[dict] = field(default_factory=list)
    ingress_classes: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    endpoint_slices: list[dict] = field(default_factory=list)
    secrets: list[dict] = field(default_factory=list)
    classes: frozenset[str] = SERVED_CLASSES
    state_dir: str = "/run/k8n-ingress"  # absolute: the admin socket lives here (maps, certs: next to the cfg)
    bind_address: str = "0.0.0.0"
    http_port: int = 80
    https_port: int = 443
    default_cert: bytes = b""  # PEM cert+key for unknown SNI (see self_signed_pem)


@dataclass
class Plan:
    inputs: Inputs
    backends: dict[str, Backend] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    exact: dict[str, str] = field(default_factory=dict)  # key → route id
    prefix: dict[str, str] = field(default_factory=dict)
    default_route: str = ""
    tls_hosts: dict[str, str] = field(default_factory=dict)  # host → cert file name
    redirect_hosts: set[str] = field(default_factory=set)
    certs: dict[str, bytes] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (kind/ns/name, message)

    def backend_of(self, service: str) -> Backend | None:
        """The pool backend serving ``ns_service_port``."""
        return next((b for b in self.backends.values() if b.service == service), None)


def _meta(o: dict) -> dict:
    return o.get("metadata") or {}


def _key(o: dict) -> str:
    m = _meta(o)
    return f"{m.get('namespace', 'default')}/{m.get('name', '')}"


def _age(o: dict) -> tuple[str, str]:
    return (_meta(o).get("creationTimestamp") or "", _key(o))


def ingress_class(ing: dict, classes: Iterable[dict]) -> str:
    """The class an Ingress belongs to: spec.ingressClassName, the legacy annotation, or the default class."""
    name = class_name(ing)
    if name:
        return str(name)
    default = default_class(classes)
    return _meta(default).get("name", "") if default is not None else ""


def _ready_endpoints(slices: list[dict], port_name: str) -> tuple[Endpoint, ...]:
    found: set[Endpoint] = set()
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        ports = [p["port"] for p in s.get("ports") or []
                 if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == "TCP"
                 and isinstance(p.get("port"), int) and 0 < p["port"] < 65536]
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for ip in ep.get("addresses") or []:
                try:
                    if ipaddress.ip_address(ip).version == 4:
                        found.update(Endpoint(ip, p) for p in ports)
                except ValueError:
                    pass
    return tuple(sorted(found))


def _slots(n: int) -> int:
    s = MIN_SLOTS
    while s < n:
        s *= 2
    return s


class _Resolver:
    def __init__(self, inputs: Inputs, previous: Plan | None):
        self.services = {_key(s): s for s in inputs.services}
        self.slices: dict[str, list[dict]] = {}
        for s in inputs.endpoint_slices:
            svc = (_meta(s).get("labels") or {}).get("kubernetes.io/service-name")
            if svc:
                self.slices.setdefault(f"{_meta(s).get('namespace', 'default')}/{svc}", []).append(s)
        self.wanted: dict[str, tuple[Endpoint, ...]] = {}  # ns_service_port → its ready endpoints

    def backend(self, ns: str, backend: dict | None) -> tuple[str, str]:
        """(backend name, error) for an IngressBackend in namespace ``ns``."""
        svc = (backend or {}).get("service") or {}
        name, port = svc.get("name") or "", svc.get("port") or {}
        if not _LABEL.fullmatch(name) or not _LABEL.fullmatch(ns):
            return "", "backend: only service backends with a valid name are supported"
        service = self.services.get(f"{ns}/{name}")
        if service is None:
            return "", f"service {ns}/{name} not found"
        sports = (service.get("spec") or {}).get("ports") or []
        if "number" in port:
            match = [p for p in sports if p.get("port") == port["number"]]
        else:
            match = [p for p in sports if p.get("name") == port.get("name")]
        if not match:
            return "", f"service {ns}/{name} has no port {port.get('number', port.get('name'))}"
        sp = match[0]
        if not isinstance(sp.get("port"), int) or not 0 < sp["port"] < 65536:
            return "", f"service {ns}/{name}: invalid port"
        bname = f"{ns}_{name}_{sp.get('port')}"
        if bname not in self.wanted:
            self.wanted[bname] = _ready_endpoints(self.slices.get(f"{ns}/{name}", []), sp.get("name") or "")
        return bname, ""


def _pool(wanted: dict[str, tuple[Endpoint, ...]], previous: Plan | None) -> dict[str, Backend]:
    """Pool backends for the wanted Service ports: each keeps its previous backend while its endpoints fit (in
    their slots: runtime updates stay small), newcomers take a fitting spare, else the pool grows and tops up
    its spares. Unused backends stay as spares (all slots disabled)."""
    prev = previous.backends if previous else {}
    by_service = {b.service: b for b in prev.values() if b.service}
    out: dict[str, Backend] = {}
    pending = []
    for svc, eps in sorted(wanted.items()):
        ob = by_service.get(svc)
        if ob is not None and len(eps) <= ob.slots:
            out[ob.name] = Backend(ob.name, _sticky(ob.endpoints, eps), ob.slots, svc)
        else:
            pending.append((svc, eps))
    # spares first, then backends released now (a path switching back and forth never reuses what it just left)
    free = sorted((b for name, b in prev.items() if name not in out), key=lambda b: bool(b.service))
    numbers = [int(n[1:]) for n in prev if n[1:].isdigit()]
    counter = max(numbers, default=0)
    grew = False
    for svc, eps in pending:
        fit = next((b for b in free if b.slots >= len(eps)), None)
        if fit is not None:
            free.remove(fit)
            out[fit.name] = Backend(fit.name, _sticky(fit.endpoints, eps), fit.slots, svc)
            continue
        counter += 1
        grew = True
        out[f"b{counter}"] = Backend(f"b{counter}", eps, _slots(len(eps)), svc)
    for b in free:
        out[b.name] = Backend(b.name, (), b.slots)
    if grew or not prev:
        used = sum(1 for b in out.values() if b.service)
        for _ in range(max(MIN_SPARES, used) - (len(out) - used)):
            counter += 1
            out[f"b{counter}"] = Backend(f"b{counter}", (), MIN_SLOTS)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][1:])))


def _sticky(old: tuple[Endpoint | None, ...], new: tuple[Endpoint, ...]) -> tuple[Endpoint | None, ...]:
    """``new`` laid out on the old slots: endpoints still present keep their slot, newcomers fill the
    holes in order, vanished ones leave a hole (None, a disabled server)."""
    keep, fresh = set(new), iter(e for e in new if e not in set(old))
    out = [e if e in keep else next(fresh, None) for e in old]
    out += list(fresh)
    return tuple(out)


def _paths(rule: dict) -> list[tuple[str, str, dict]]:
    return [(p.get("path") or "/", p.get("pathType") or "ImplementationSpecific", p.get("backend") or {})
            for p in ((rule.get("http") or {}).get("paths") or [])]


def build(inputs: Inputs, previous: Plan | None = None) -> Plan:
    """Resolve the objects into a Plan. ``previous`` keeps endpoints in their server slots."""
    plan = Plan(inputs)
    res = _Resolver(inputs, previous)
    ours = sorted((i for i in inputs.ingresses if ingress_class(i, inputs.ingress_classes) in inputs.classes),
                  key=_age)
    mains, canaries = [], []
    for ing in ours:
        ann = _meta(ing).get("annotations") or {}
        problems = annotation_problems(ann)  # the API server refuses these; an older object may still carry them
        if problems:
            plan.errors.extend((f"Ingress/{_key(ing)}", f"annotation {k}: {why}") for k, _, why in problems)
            continue
        c: Canary | None = canary(ann)
        c = c if c.enabled else None
        errs = _canary_errors(c) if c else []
        if errs:
            plan.errors.extend((f"Ingress/{_key(ing)}", e) for e in errs)
            continue
        (canaries if c else mains).append((ing, c))

    secrets = {_key(s): s for s in inputs.secrets}
    # an Exact path's entry beats the exact-map entry a Prefix path of the same value makes
    table: dict[tuple[str, str], tuple[str, str]] = {}  # (map, key) → (backend, pathType)
    for ing, _ in mains:
        ns, spec = _meta(ing).get("namespace", "default"), ing.get("spec") or {}
        where = f"Ingress/{_key(ing)}"
        for ri, rule in enumerate(spec.get("rules") or []):
            host = rule.get("host") or ""
            if host and not valid_host(host):
                plan.errors.append((where, f"spec.rules[{ri}].host: invalid host {host!r}"))
                continue
            for pi, (path, ptype, be) in enumerate(_paths(rule)):
                fp = f"spec.rules[{ri}].http.paths[{pi}]"
                if not valid_path(path) or ptype not in ("Exact", "Prefix", "ImplementationSpecific"):
                    plan.errors.append((where, f"{fp}.path: invalid path {path!r} or pathType {ptype!r}"))
                    continue
                bname, err = res.backend(ns, be)
                if err:
                    plan.errors.append((where, f"{fp}.backend: {err}"))
                    continue
                for m, k in _entries(host, path, ptype):
                    cur = table.get((m, k))
                    if cur is None or (cur[1] != "Exact" and ptype == "Exact"):
                        table[(m, k)] = (bname, ptype)
                    elif cur[0] != bname and cur[1] == ptype:
                        plan.errors.append((where, f"{fp}: {host}{path} already served by an older Ingress"))
        if spec.get("defaultBackend") and not plan.default_route:
            bname, err = res.backend(ns, spec["defaultBackend"])
            if err:
                plan.errors.append((where, f"spec.defaultBackend: {err}"))
            else:
                plan.default_route = bname  # fixed to a route id below
        for ti, tls in enumerate(spec.get("tls") or []):
            _tls(plan, where, ti, ns, tls, secrets, ing)

    # canaries: attach to the main route of the same map key; their own TLS/default are ignored
    canary_for: dict[tuple[str, str], tuple[str, Canary]] = {}
    for ing, c in canaries:
        ns, where = _meta(ing).get("namespace", "default"), f"Ingress/{_key(ing)}"
        for ri, rule in enumerate((ing.get("spec") or {}).get("rules") or []):
            host = rule.get("host") or ""
            if host and not valid_host(host):
                continue
            for pi, (path, ptype, be) in enumerate(_paths(rule)):
                if not valid_path(path):
                    continue
                keys = [mk for mk in _entries(host, path, ptype) if mk in table]
                if not keys:
                    plan.errors.append((where, f"spec.rules[{ri}].http.paths[{pi}]: no main Ingress for "
                                               f"{host}{path}: canary ignored"))
                    continue
                bname, err = res.backend(ns, be)
                if err:
                    plan.errors.append((where, f"spec.rules[{ri}].http.paths[{pi}].backend: {err}"))
                    continue
                for mk in keys:
                    canary_for.setdefault(mk, (bname, c))

    plan.backends = _pool(res.wanted, previous)
    pooled = {b.service: b.name for b in plan.backends.values() if b.service}
    # a route keeps its previous id (so canary rules, which name it, stay as they are; weights are a map)
    old_ids = {(r.main, r.canary, _acl_sig(r.policy)): r.id for r in (previous.routes.values() if previous else ())}
    next_id = max((int(r[1:]) for r in (previous.routes if previous else {})), default=0)
    routes: dict[tuple, str] = {}

    def route(main: str, canary: tuple[str, Canary] | None) -> str:
        nonlocal next_id
        main, canary = pooled[main], (pooled[canary[0]], canary[1]) if canary else None
        sig = (main, canary)
        if sig not in routes:
            rid = old_ids.get((main, canary[0] if canary else "", _acl_sig(canary[1] if canary else None)))
            if rid is None or rid in plan.routes:
                next_id += 1
                rid = f"r{next_id}"
            routes[sig] = rid
            plan.routes[rid] = Route(rid, main, *(canary or ("", None)))
        return routes[sig]

    for (m, k), (bname, _) in sorted(table.items()):
        (plan.exact if m == "exact" else plan.prefix)[k] = route(bname, canary_for.get((m, k)))
    if plan.default_route:
        plan.default_route = route(plan.default_route, None)
    return plan


def _entries(host: str, path: str, ptype: str) -> list[tuple[str, str]]:
    if ptype == "Exact":
        return [("exact", host + path)]
    p = path.rstrip("/")
    return [("exact", host + (p or "/")), ("prefix", host + p + "/")]


def _tls(plan: Plan, where: str, ti: int, ns: str, tls: dict, secrets: dict, ing: dict) -> None:
    name = tls.get("secretName") or ""
    if not name:
        return
    secret = secrets.get(f"{ns}/{name}")
    if secret is None:
        plan.errors.append((where, f"spec.tls[{ti}].secretName: secret {ns}/{name} not found"))
        return
    fname = f"{ns}_{name}.pem"
    if fname not in plan.certs:
        if not _LABEL.fullmatch(ns) or not re.fullmatch(r"[a-z0-9][-a-z0-9.]*", name):
            return
        pem, err = pem_pair(secret)
        if err:
            plan.errors.append((where, f"spec.tls[{ti}]: secret {ns}/{name}: {err}"))
            return
        plan.certs[fname] = pem
    redirect = str((_meta(ing).get("annotations") or {}).get(NGINX_PREFIX + "ssl-redirect", "true")).lower() != "false"
    for host in tls.get("hosts") or []:
        if not valid_host(host):
            plan.errors.append((where, f"spec.tls[{ti}].hosts: invalid host {host!r}"))
        elif host not in plan.tls_hosts:
            plan.tls_hosts[host] = fname
            if redirect:
                plan.redirect_hosts.add(host)


# --- rendering ----------------------------------------------------------------------------------------
def _servers(b: Backend) -> list[str]:
    lines = []
    for i in range(b.slots):
        e = b.endpoints[i] if i < len(b.endpoints) else None
        if e is not None:
            lines.append(f"    server s{i + 1} {e.ip}:{e.port}")
        else:
            lines.append(f"    server s{i + 1} 127.0.0.1:1 disabled")
    return lines


def _canary_rules(r: Route) -> list[str]:
    c, on = r.policy, f"{{ var(txn.route) -m str {r.id} }}"
    out = []
    if c.header:
        h = f"req.hdr({c.header})"
        if c.header_value:
            out.append(f"    use_backend {r.canary} if {on} {{ {h} -m str {quote(c.header_value)} }}")
        elif c.header_pattern:
            out.append(f"    use_backend {r.canary} if {on} {{ {h} -m reg {quote(c.header_pattern)} }}")
        else:
            out.append(f"    use_backend {r.canary} if {on} {{ {h} -m str always }}")
            out.append(f"    use_backend {r.main} if {on} {{ {h} -m str never }}")
    if c.cookie:
        out.append(f"    use_backend {r.canary} if {on} {{ req.cook({c.cookie}) -m str always }}")
        out.append(f"    use_backend {r.main} if {on} {{ req.cook({c.cookie}) -m str never }}")
    out.append(f"    use_backend {r.canary} if {on} {{ var(txn.rand),sub(txn.cw) lt 0 }}")
    return out


def weight_value(c: Canary | None) -> int:
    """The canary share on WEIGHT_SCALE (ingress-nginx: weight of weight-total, default total 100)."""
    if not c or not c.weight:
        return 0
    return c.weight * WEIGHT_SCALE // (c.weight_total or 100)


def maps_of(plan: Plan) -> dict[str, str]:
    def text(d: dict) -> str:
        return "".join(f"{k} {v}\n" for k, v in sorted(d.items()))

    return {"exact.map": text(plan.exact), "prefix.map": text(plan.prefix),
            "weights.map": text({r.id: weight_value(r.policy) for r in plan.routes.values() if r.canary}),
            "redirect.map": text({h: "1" for h in plan.redirect_hosts}),
            "backends.map": text(_mains(plan))}


def render_plan(plan: Plan) -> tuple[str, dict[str, str], dict[str, bytes]]:
    i, d = plan.inputs, plan.inputs.state_dir.rstrip("/")
    if not i.default_cert:
        raise ValueError("inputs.default_cert is empty: pass self_signed_pem()")
    ipaddress.ip_address(i.bind_address)  # ValueError for anything else: these are the operator's settings
    if not all(isinstance(p, int) and 0 < p < 65536 for p in (i.http_port, i.https_port)):
        raise ValueError("http_port/https_port must be TCP port numbers")
    certs = {"default.pem": i.default_cert, **{f"certs/{k}": v for k, v in plan.certs.items()}}
    crt_list = "".join(f"certs/{f} {h}\n" for h, f in sorted(plan.tls_hosts.items()))
    maps = {**maps_of(plan), "crt-list.txt": crt_list}
    port = "" if i.https_port == 443 else f":{i.https_port}"
    lines = [
        "# generated by k8n (node/ingress/config.py): do not edit",
        "global",
        "    master-worker",
        "    default-path config",  # maps and certs: relative to this file's directory
        f"    stats socket {quote(d + '/admin.sock')} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "    hard-stop-after 60s",
        "    tune.ssl.default-dh-param 2048",
        "defaults",
        "    mode http",
        "    option http-keep-alive",
        "    option forwardfor",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout client-fin 5s",
        "    retries 2",
        "    option redispatch",
        "frontend ingress",
        f"    bind {i.bind_address}:{i.http_port}",
        f"    bind {i.bind_address}:{i.https_port} ssl crt default.pem crt-list crt-list.txt alpn h2,http/1.1",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        "    http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
        "    http-request set-var(txn.rest) var(txn.host),field(2,.,0)",
        "    http-request set-var(txn.wild) str(*.),concat(,txn.rest,)",
        "    http-request set-var(txn.path) path",
        f"    http-request redirect location https://%[var(txn.host)]{port}%[capture.req.uri] code 308 "
        f"if !{{ ssl_fc }} {{ var(txn.host),map_str(redirect.map) -m found }}",
        f"    http-request redirect location https://%[var(txn.host)]{port}%[capture.req.uri] code 308 "
        f"if !{{ ssl_fc }} {{ var(txn.wild),map_str(redirect.map) -m found }}",
        "    http-request set-var(txn.hk) var(txn.host),concat(,txn.path,)",
        "    http-request set-var(txn.wk) var(txn.wild),concat(,txn.path,)",
    ]
    for var in ("txn.hk", "txn.wk", "txn.path"):
        for kind, conv in (("exact", "map_str"), ("prefix", "map_beg")):
            lines.append(f"    http-request set-var(txn.route) var({var}),{conv}({kind}.map) "
                         "unless { var(txn.route) -m found }")
    if plan.default_route:
        lines.append(f"    http-request set-var(txn.route) str({plan.default_route}) "
                     "unless { var(txn.route) -m found }")
    lines.append('    http-request return status 404 content-type text/plain string "default backend - 404\\n" '
                 "unless { var(txn.route) -m found }")
    lines.append("    http-request set-var(txn.backend) var(txn.route),map_str(backends.map)")
    if any(r.canary for r in plan.routes.values()):
        lines.append(f"    http-request set-var(txn.cw) var(txn.route),map_str_int(weights.map,0)")
        lines.append(f"    http-request set-var(txn.rand) rand({WEIGHT_SCALE})")
    for r in plan.routes.values():
        if r.canary:
            lines.extend(_canary_rules(r))
    lines.append("    use_backend %[var(txn.backend)]")  # the route's main backend (set-var above: a map
    # named inside a log-format is not looked up relative to this file)
    for b in plan.backends.values():
        # no ready endpoint: every server slot is disabled and haproxy answers 503 itself
        lines += ["", f"backend {b.name}", f"    # {b.service or 'spare'}", "    balance roundrobin", *_servers(b)]
    return "\n".join(lines) + "\n", maps, certs


def render(inputs: Inputs, previous: Plan | None = None) -> tuple[str, dict[str, str], dict[str, bytes]]:
    return render_plan(build(inputs, previous))


# --- runtime API --------------------------------------------------------------------------------------
def runtime_commands(old: Plan, new: Plan) -> list[str] | None:
    """Runtime-API commands turning ``old`` into ``new`` in a running haproxy, or None: reload needed
    (backends, routes, certificates or ports changed, or a backend outgrew its server slots)."""
    oi, ni = old.inputs, new.inputs
    if ((oi.bind_address, oi.http_port, oi.https_port, oi.state_dir, oi.default_cert)
            != (ni.bind_address, ni.http_port, ni.https_port, ni.state_dir, ni.default_cert)
            or old.certs != new.certs or old.tls_hosts != new.tls_hosts or old.default_route != new.default_route
            or old.backends.keys() != new.backends.keys() or _canary_routes(old) != _canary_routes(new)):
        return None
    cmds: list[str] = []
    last: list[str] = []  # servers leaving: after the maps stop sending requests there (no 503 in between)
    for name, nb in new.backends.items():
        ob = old.backends[name]
        if ob.slots != nb.slots:
            return None
        for s in range(nb.slots):
            oe = ob.endpoints[s] if s < len(ob.endpoints) else None
            ne = nb.endpoints[s] if s < len(nb.endpoints) else None
            if oe == ne:
                continue
            srv = f"{name}/s{s + 1}"
            if ne is None:
                last.append(f"set server {srv} state maint")
                continue
            cmds.append(f"set server {srv} addr {ne.ip} port {ne.port}")
            if oe is None:
                cmds.append(f"set server {srv} state ready")
    # a route exists (its backend, its weight) before a map entry names it, and goes after none does
    om, nm = _mains(old), _mains(new)
    cmds += _map_changes("backends.map", {k: v for k, v in om.items() if k in nm}, nm)
    for rid, r in new.routes.items():
        if r.canary and weight_value(r.policy) != weight_value(old.routes[rid].policy):
            cmds.append(f"set map weights.map {rid} {weight_value(r.policy)}")
    for fname, od, nd in (("exact.map", old.exact, new.exact), ("prefix.map", old.prefix, new.prefix),
                          ("redirect.map", {h: "1" for h in old.redirect_hosts}, {h: "1" for h in new.redirect_hosts})):
        cmds += _map_changes(fname, od, nd)
    cmds += [f"del map backends.map {k}" for k in sorted(om.keys() - nm.keys())]
    return cmds + last


def _map_changes(fname: str, od: dict[str, str], nd: dict[str, str]) -> list[str]:
    cmds = [f"del map {fname} {k}" for k in sorted(od.keys() - nd.keys())]
    for k in sorted(nd.keys()):
        if k not in od:
            cmds.append(f"add map {fname} {k} {nd[k]}")
        elif od[k] != nd[k]:
            cmds.append(f"set map {fname} {k} {nd[k]}")
    return cmds


def _mains(plan: Plan) -> dict[str, str]:
    return {r.id: r.main for r in plan.routes.values()}


def _canary_routes(plan: Plan) -> dict[str, tuple]:
    """What the configuration's canary rules say (a change needs a reload; their weights are a map)."""
    return {k: (r.main, r.canary, _acl_sig(r.policy)) for k, r in plan.routes.items() if r.canary}


def _acl_sig(c: Canary | None) -> tuple:
    return (c.header, c.header_value, c.header_pattern, c.cookie) if c else ()
