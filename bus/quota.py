"""ResourceQuota evaluation, shared by the API server's quota admission and the resourcequota controller:
what an object uses (Kubernetes' quota evaluators: pods, services, persistentvolumeclaims, and object counts for
everything else), whether a quota's scopes match it, and the arithmetic and wording on resource lists.

Everything here is pure and works on plain dicts; quantities are exact ``Decimal``s.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterable, Mapping

from bus.meta import parse_time
from bus.quantity import format_quantity, parse_quantity
from bus.resources import Resource

Usage = dict[str, Decimal]

PODS, SERVICES, PVCS = "pods", "services", "persistentvolumeclaims"
NODEPORTS, LOADBALANCERS = "services.nodeports", "services.loadbalancers"
REQUESTS_STORAGE = "requests.storage"
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
# Resources quota has always counted under their bare name as well as ``count/<plural>``.
LEGACY_COUNTS = ("pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "replicationcontrollers",
                 "resourcequotas")
# The pod resources a quota on which requires every container to say how much it asks for (``must specify``).
VALIDATION_SET = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
_POD_NAMES = frozenset(("pods", "count/pods", "cpu", "memory", "ephemeral-storage", "requests.cpu",
                        "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
                        "limits.ephemeral-storage"))
_SERVICE_NAMES = frozenset(("services", "count/services", NODEPORTS, LOADBALANCERS))
TERMINAL_PHASES = ("Succeeded", "Failed")
ONE = Decimal(1)


def count_name(res: Resource) -> str:
    """``count/pods``, ``count/deployments.apps``: the object-count name of a resource."""
    return f"count/{res.qualified}"


# ---- which quota resources each evaluator tracks --------------------------------------------------------------


def _is_pod_name(name: str) -> bool:
    if name in _POD_NAMES or name.startswith(("hugepages-", "requests.hugepages-", "limits.hugepages-")):
        return True
    return name.startswith("requests.") and "/" in name  # extended resources: requests.example.com/gpu


def _is_pvc_name(name: str) -> bool:
    return name in (PVCS, "count/persistentvolumeclaims", REQUESTS_STORAGE) or (
        STORAGE_CLASS_SUFFIX in name and name.endswith(("/requests.storage", "/persistentvolumeclaims")))


def matching_resources(res: Resource, names: Iterable[str]) -> list[str]:
    """Those of ``names`` (a quota's hard resources) that objects of ``res`` use."""
    count = count_name(res)
    if res.kind == "Pod":
        pred = _is_pod_name
    elif res.kind == "Service":
        pred = _SERVICE_NAMES.__contains__
    elif res.kind == "PersistentVolumeClaim":
        pred = _is_pvc_name
    else:
        legacy = res.plural if not res.group and res.plural in LEGACY_COUNTS else None
        return sorted(n for n in names if n in (count, legacy))
    return sorted(n for n in names if pred(n))


def tracked_resources(names: Iterable[str], resolve) -> set[Resource]:
    """The resources whose objects a quota over ``names`` counts (``resolve``: plural or ``plural.group`` ->
    Resource or None)."""
    out: set[Resource] = set()
    for n in names:
        if _is_pod_name(n):
            r = resolve("pods")
        elif n in _SERVICE_NAMES:
            r = resolve("services")
        elif _is_pvc_name(n):
            r = resolve("persistentvolumeclaims")
        elif n.startswith("count/"):
            r = resolve(n[len("count/"):])
        else:
            r = resolve(n) if n in LEGACY_COUNTS else None
        if r is not None:
            out.add(r)
    return out


# ---- usage --------------------------------------------------------------------------------------------------


def _q(v) -> Decimal:
    try:
        return parse_quantity(v)
    except (ValueError, ArithmeticError):
        return Decimal(0)


def _containers(spec: dict, key: str) -> list[dict]:
    return [c for c in spec.get(key) or [] if isinstance(c, dict)]


def _resources(c: dict, which: str) -> dict:
    return (c.get("resources") or {}).get(which) or {}


def pod_resources(spec: dict, which: str) -> Usage:
    """A pod's effective ``requests`` or ``limits`` (``resourcehelper.PodRequests``): the containers' sum, at least
    each init container's, plus the overhead."""
    total: Usage = {}
    for c in _containers(spec, "containers"):
        for k, v in _resources(c, which).items():
            total[k] = total.get(k, Decimal(0)) + _q(v)
    for c in _containers(spec, "initContainers"):
        for k, v in _resources(c, which).items():
            total[k] = max(total.get(k, Decimal(0)), _q(v))
    for k, v in (spec.get("overhead") or {}).items():
        if k in total or which == "requests":
            total[k] = total.get(k, Decimal(0)) + _q(v)
    return total


def compute_usage(requests: Mapping[str, Decimal], limits: Mapping[str, Decimal]) -> Usage:
    """``podComputeUsageHelper``: the quota names a pod (or one container) with these requests and limits uses."""
    out: Usage = {PODS: ONE}
    for r in ("cpu", "memory", "ephemeral-storage"):
        if r in requests:
            out[r] = out[f"requests.{r}"] = requests[r]
        if r in limits:
            out[f"limits.{r}"] = limits[r]
    for r, v in requests.items():
        if r.startswith("hugepages-"):
            out[r] = out[f"requests.{r}"] = v
        elif "/" in r and not r.startswith("kubernetes.io/"):
            out[f"requests.{r}"] = v
    return out


def pod_counted(pod: dict, now: datetime | None = None) -> bool:
    """``QuotaV1Pod``: a pod uses compute quota (and ``pods``) until it is terminal or stuck terminating past its
    grace period."""
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return False
    meta = pod.get("metadata") or {}
    deleted, grace = parse_time(meta.get("deletionTimestamp")), meta.get("deletionGracePeriodSeconds")
    if deleted is not None and isinstance(grace, int):
        now = now or datetime.now(timezone.utc)
        if now > deleted + timedelta(seconds=grace):
            return False
    return True


def _service_usage(svc: dict) -> Usage:
    spec = svc.get("spec") or {}
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    out: Usage = {SERVICES: ONE, NODEPORTS: Decimal(0), LOADBALANCERS: Decimal(0)}
    stype = spec.get("type") or "ClusterIP"
    if stype == "NodePort":
        out[NODEPORTS] = Decimal(len(ports))
    elif stype == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is False:
            out[NODEPORTS] = Decimal(sum(1 for p in ports if p.get("nodePort")))
        else:
            out[NODEPORTS] = Decimal(len(ports))
        out[LOADBALANCERS] = ONE
    return out


def _pvc_usage(pvc: dict) -> Usage:
    spec = pvc.get("spec") or {}
    out: Usage = {PVCS: ONE}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    cls = spec.get("storageClassName")
    if cls:
        out[f"{cls}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
    if storage is not None:
        out[REQUESTS_STORAGE] = _q(storage)
        if cls:
            out[f"{cls}{STORAGE_CLASS_SUFFIX}requests.storage"] = _q(storage)
    return out


def usage(res: Resource, obj: dict, now: datetime | None = None) -> Usage:
    """Everything ``obj`` (of ``res``) uses, by quota resource name (zero entries included)."""
    out: Usage = {count_name(res): ONE}
    if res.kind == "Pod":
        if pod_counted(obj, now):
            spec = obj.get("spec") or {}
            out.update(compute_usage(pod_resources(spec, "requests"), pod_resources(spec, "limits")))
    elif res.kind == "Service":
        out.update(_service_usage(obj))
    elif res.kind == "PersistentVolumeClaim":
        out.update(_pvc_usage(obj))
    elif not res.group and res.plural in LEGACY_COUNTS:
        out[res.plural] = ONE
    return out


# ---- scopes -------------------------------------------------------------------------------------------------


def scope_selectors(quota: dict) -> list[dict]:
    """``spec.scopes`` (as ``Exists``) and ``spec.scopeSelector.matchExpressions``, as Kubernetes combines them."""
    spec = quota.get("spec") or {}
    out = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    out += [e for e in ((spec.get("scopeSelector") or {}).get("matchExpressions") or []) if isinstance(e, dict)]
    return out


def _best_effort(spec: dict) -> bool:
    for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
        if _resources(c, "requests") or _resources(c, "limits"):
            return False
    return True


def _cross_namespace_affinity(spec: dict) -> bool:
    aff = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = aff.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        preferred = a.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        terms += [t.get("podAffinityTerm") or {} for t in preferred if isinstance(t, dict)]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms if isinstance(t, dict)):
            return True
    return False


def pod_in_scope(sel: dict, pod: dict) -> bool:
    """``podMatchesScopeFunc``."""
    spec = pod.get("spec") or {}
    scope, op = sel.get("scopeName"), sel.get("operator")
    deadline = spec.get("activeDeadlineSeconds")
    terminating = isinstance(deadline, int) and deadline >= 0
    if scope == "Terminating":
        return terminating
    if scope == "NotTerminating":
        return not terminating
    if scope == "BestEffort":
        return _best_effort(spec)
    if scope == "NotBestEffort":
        return not _best_effort(spec)
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        values = sel.get("values") or []
        return {"Exists": bool(name), "DoesNotExist": not name, "In": name in values,
                "NotIn": bool(name) and name not in values}.get(op, False)
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(spec)
    return False


def quota_matches(quota: dict, res: Resource, obj: dict, hard_of: str = "status") -> bool:
    """``evaluator.Matches``: the quota limits (in its ``status.hard``, or ``spec.hard`` for the controller)
    something ``res`` uses, and ``obj`` is in every one of its scopes (only pods have scopes: a scoped quota never
    matches other objects)."""
    hard = (quota.get(hard_of) or {}).get("hard") or {}
    if not matching_resources(res, hard):
        return False
    selectors = scope_selectors(quota)
    if not selectors:
        return True
    return res.kind == "Pod" and all(pod_in_scope(s, obj) for s in selectors)


# ---- constraints (pods) -------------------------------------------------------------------------------------


def pod_constraints(required: Iterable[str], pod: dict) -> str | None:
    """The podEvaluator's ``Constraints``: with cpu or memory quota'd, every container must state what it
    asks for; the message names what is missing for which containers, or None."""
    needed = set(required) & set(VALIDATION_SET)
    if not needed:
        return None
    spec = pod.get("spec") or {}
    missing: dict[str, set[str]] = {}
    for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
        req = {k: _q(v) for k, v in _resources(c, "requests").items()}
        lim = {k: _q(v) for k, v in _resources(c, "limits").items()}
        have = set(compute_usage(req, lim))
        for r in needed - have:
            missing.setdefault(r, set()).add(c.get("name") or "")
    if not missing:
        return None
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(missing[r]))}" for r in sorted(missing))


# ---- arithmetic and wording -----------------------------------------------------------------------------------


def parse_list(rl: Mapping | None) -> Usage:
    return {k: _q(v) for k, v in (rl or {}).items()}


def add(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> Usage:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Decimal(0)) + v
    return out


def subtract_non_negative(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> Usage:
    return {k: max(Decimal(0), v - b.get(k, Decimal(0))) for k, v in a.items()}


def mask(a: Mapping[str, Decimal], names: Iterable[str]) -> Usage:
    keep = set(names)
    return {k: v for k, v in a.items() if k in keep}


def non_zero(a: Mapping[str, Decimal]) -> Usage:
    return {k: v for k, v in a.items() if v != 0}


def exceeded(new: Mapping[str, Decimal], hard: Mapping[str, Decimal]) -> list[str]:
    """``LessThanOrEqual``'s failures: the names where ``new`` is above ``hard``."""
    return sorted(k for k, v in hard.items() if k in new and new[k] > v)


def _binary(text) -> bool:
    return isinstance(text, str) and text.rstrip().endswith(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))


def format_amount(value: Decimal, like=None) -> str:
    """A quantity as Kubernetes prints it: binary suffixes when ``like`` (the hard limit it is measured against,
    or the request itself) was written with them."""
    return format_quantity(value, binary=_binary(like))


def canonical(value) -> str:
    """``Quantity.String()`` of a quantity as written: ``0.5`` -> ``500m``, ``1024Mi`` -> ``1Gi``."""
    return format_amount(_q(value), value)


def format_list(amounts: Mapping[str, Decimal], like: Mapping | None = None) -> dict[str, str]:
    like = like or {}
    return {k: format_amount(v, like.get(k)) for k, v in sorted(amounts.items())}


def pretty(rl: Mapping[str, str]) -> str:
    """``prettyPrint``: ``name=value`` sorted by name, comma-separated."""
    return ",".join(f"{k}={rl[k]}" for k in sorted(rl))
