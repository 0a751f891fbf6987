"""The LimitRanger admission plugin (``plugin/pkg/admission/limitranger``) on pod and PersistentVolumeClaim creates.

Mutation first: a container missing a request or limit the namespace's LimitRanges give a ``defaultRequest`` or
``default`` for gets it (and the pod the ``kubernetes.io/limit-ranger`` annotation saying so). Then validation:
every Container, Pod and PersistentVolumeClaim item's ``min``, ``max`` and ``maxLimitRequestRatio``, refused with
Kubernetes' messages (``maximum cpu usage per Container is 500m, but limit is 1``) in a 403.

Before both, as Kubernetes' Pod defaulting does, a container with a limit and no request for a resource requests
its limit.
"""

from __future__ import annotations

from decimal import Decimal

from bus import errors
from bus.quantity import parse_quantity
from bus.quota import canonical, format_amount, pod_resources
from bus.resources import by_plural
from bus.store import NatsStore
from bus.validation import validate_object
from master.apiserver.listers import CachedLister

ANNOTATION = "kubernetes.io/limit-ranger"
PODS = by_plural("pods")
MAX_MILLI = Decimal(2**63 - 1) / 1000  # resource.MaxMilliValue


def _q(v) -> Decimal:
    return parse_quantity(v)


def _containers(spec: dict) -> list[tuple[str, dict]]:
    return [(prefix, c) for key, prefix in (("containers", "container"), ("initContainers", "init container"))
            for c in spec.get(key) or [] if isinstance(c, dict)]


def requests_from_limits(pod: dict) -> None:
    """``SetDefaults_Pod``: a container's request for a resource it has a limit for and no request defaults to it."""
    for _p, c in _containers(pod.get("spec") or {}):
        res = c.get("resources")
        if not isinstance(res, dict) or not res.get("limits"):
            continue
        req = res.setdefault("requests", {})
        for k, v in res["limits"].items():
            req.setdefault(k, v)


def _items(ranges: list[dict], kind: str) -> list[dict]:
    return [item for lr in ranges for item in ((lr.get("spec") or {}).get("limits") or [])
            if isinstance(item, dict) and item.get("type") == kind]


def apply_defaults(ranges: list[dict], pod: dict) -> bool:
    """``PodMutateLimitFunc`` for each range in turn; whether it set anything."""
    changed = False
    for lr in ranges:
        items = _items([lr], "Container")
        defaults = {"requests": {}, "limits": {}}
        for item in items:
            defaults["requests"].update(item.get("defaultRequest") or {})
            defaults["limits"].update(item.get("default") or {})
        if not defaults["requests"] and not defaults["limits"]:
            continue
        notes = []
        for prefix, c in _containers(pod.get("spec") or {}):
            res = c.get("resources")
            if not isinstance(res, dict):
                res = c["resources"] = {}
            set_: dict[str, list[str]] = {"requests": [], "limits": []}
            for which in ("limits", "requests"):
                have = res.get(which) or {}
                for k, v in defaults[which].items():
                    if k not in have:
                        have[k] = v
                        set_[which].append(k)
                if have:
                    res[which] = have
            if set_["requests"]:
                notes.append(f"{', '.join(sorted(set_['requests']))} request for {prefix} {c.get('name', '')}")
            if set_["limits"]:
                notes.append(f"{', '.join(sorted(set_['limits']))} limit for {prefix} {c.get('name', '')}")
        if notes:
            changed = True
            meta = pod.setdefault("metadata", {})
            meta.setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
    return changed


def revalidate(pod: dict) -> None:
    """A 422 for a pod the defaults made invalid (a request above the limit set for it)."""
    _model, causes = validate_object(PODS, pod)
    if causes:
        raise errors.invalid("Pod", (pod.get("metadata") or {}).get("name") or "", causes)


# ---- constraints -------------------------------------------------------------------------------------------------


_s = canonical  # a quantity as ``Quantity.String()`` prints it


def _values(req, lim, enforced) -> tuple[Decimal, Decimal, Decimal]:
    """``requestLimitEnforcedValues``: milli-units when nothing overflows, else whole units (rounded up)."""
    vals = [_q(x) if x is not None else Decimal(0) for x in (req, lim, enforced)]
    whole = [v.to_integral_value(rounding="ROUND_CEILING") for v in vals]
    if all(w <= MAX_MILLI for w in whole):
        return tuple((v * 1000).to_integral_value(rounding="ROUND_CEILING") for v in vals)  # type: ignore[return-value]
    return tuple(whole)  # type: ignore[return-value]


def min_constraint(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, l_, e = _values(req, lim, enforced)
    if req is None:
        return f"minimum {name} usage per {kind} is {_s(enforced)}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {kind} is {_s(enforced)}, but request is {_s(req)}"
    if lim is not None and l_ < e:
        return f"minimum {name} usage per {kind} is {_s(enforced)}, but limit is {_s(lim)}"
    return None


def max_constraint(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, l_, e = _values(req, lim, enforced)
    if lim is None:
        return f"maximum {name} usage per {kind} is {_s(enforced)}.  No limit is specified"
    if l_ > e:
        return f"maximum {name} usage per {kind} is {_s(enforced)}, but limit is {_s(lim)}"
    if req is not None and r > e:
        return f"maximum {name} usage per {kind} is {_s(enforced)}, but request is {_s(req)}"
    return None


def max_request_constraint(kind: str, name: str, enforced, requests: dict) -> str | None:
    req = requests.get(name)
    r, _l, e = _values(req, None, enforced)
    if req is None:
        return f"maximum {name} usage per {kind} is {_s(enforced)}.  No request is specified"
    if r > e:
        return f"maximum {name} usage per {kind} is {_s(enforced)}, but request is {_s(req)}"
    return None


def ratio_constraint(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, l_, _e = _values(req, lim, enforced)
    if req is None or r == 0:
        return (f"{name} max limit to request ratio per {kind} is {_s(enforced)}, but no request is specified or "
                "request is 0")
    if lim is None or l_ == 0:
        return (f"{name} max limit to request ratio per {kind} is {_s(enforced)}, but no limit is specified or "
                "limit is 0")
    observed = float(l_) / float(r)
    maximum = _q(enforced)
    whole = maximum.to_integral_value(rounding="ROUND_CEILING")
    if whole <= MAX_MILLI:
        over = observed * 1000 > float((maximum * 1000).to_integral_value(rounding="ROUND_CEILING"))
    else:
        over = observed > float(whole)
    if over:
        return f"{name} max limit to request ratio per {kind} is {_s(enforced)}, but provided ratio is {observed:f}"
    return None


def _pod_totals(spec: dict, which: str) -> dict[str, str]:
    """A pod's requests or limits as quantities printed in the format its containers wrote them in (a sum of
    ``Mi`` amounts prints in ``Mi``, as Kubernetes' Quantity arithmetic keeps the first operand's format)."""
    written = {k: v for _p, c in reversed(_containers(spec))
               for k, v in ((c.get("resources") or {}).get(which) or {}).items()}
    return {k: format_amount(v, written.get(k)) for k, v in pod_resources(spec, which).items()}


def _check(kind: str, item: dict, requests: dict, limits: dict, out: list[str]) -> None:
    for field, fn in (("min", min_constraint), ("max", max_constraint), ("maxLimitRequestRatio", ratio_constraint)):
        for name in sorted(item.get(field) or {}):
            msg = fn(kind, name, item[field][name], requests, limits)
            if msg:
                out.append(msg)


def pod_violations(ranges: list[dict], pod: dict) -> list[str]:
    """``PodValidateLimitFunc`` over every range."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    for lr in ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "Container":
                for _p, c in _containers(spec):
                    res = c.get("resources") or {}
                    _check("Container", item, res.get("requests") or {}, res.get("limits") or {}, out)
            elif item.get("type") == "Pod":
                _check("Pod", item, _pod_totals(spec, "requests"), _pod_totals(spec, "limits"), out)
    return out


def pvc_violations(ranges: list[dict], pvc: dict) -> list[str]:
    """``PersistentVolumeClaimValidateLimitFunc``: min and max on the claim's requests."""
    requests = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
    out: list[str] = []
    for item in _items(ranges, "PersistentVolumeClaim"):
        for name in sorted(item.get("min") or {}):
            if msg := min_constraint("PersistentVolumeClaim", name, item["min"][name], requests, {}):
                out.append(msg)
        for name in sorted(item.get("max") or {}):
            if msg := max_request_constraint("PersistentVolumeClaim", name, item["max"][name], requests):
                out.append(msg)
    return out


def aggregate(msgs: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message alone, several as ``[a, b]`` (repeats once)."""
    seen: list[str] = []
    for m in msgs:
        if m not in seen:
            seen.append(m)
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


class LimitRanger:
    def __init__(self, store: NatsStore) -> None:
        self.ranges = CachedLister(store, "limitranges")

    async def start(self) -> None:
        await self.ranges.start()

    async def stop(self) -> None:
        await self.ranges.stop()

    async def admit(self, kind: str, namespace: str, obj: dict) -> None:
        """Default and check a new Pod or PersistentVolumeClaim (in place); a 403 for what the ranges refuse."""
        if kind == "Pod":
            requests_from_limits(obj)
        if kind not in ("Pod", "PersistentVolumeClaim"):
            return
        ranges = await self.ranges.in_namespace(namespace)
        if not ranges:
            return
        if kind == "Pod" and apply_defaults(ranges, obj):
            revalidate(obj)  # as Kubernetes validates after mutating admission: a defaulted limit under a request
        for lr in ranges:  # the first range refusing it answers, with all it refuses
            msgs = pod_violations([lr], obj) if kind == "Pod" else pvc_violations([lr], obj)
            if msgs:
                plural = "pods" if kind == "Pod" else "persistentvolumeclaims"
                raise errors.forbidden(plural, (obj.get("metadata") or {}).get("name") or "", aggregate(msgs))
