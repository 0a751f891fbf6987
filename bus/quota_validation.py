"""Validation of ResourceQuota, LimitRange (``pkg/apis/core/validation``) and PriorityClass
(``pkg/apis/scheduling/validation``), with Kubernetes' field paths and messages. Registered into
``bus.validation``'s per-kind checks when that module loads (it imports this one last)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bus.models.quota import LIMIT_TYPE_POD, LIMIT_TYPE_PVC, PREEMPTION_POLICIES, QUOTA_SCOPES
from bus.quantity import parse_quantity
from bus.quota import canonical
from bus.validation import _KIND_CHECKS, _UPDATE_CHECKS, Errors

SYSTEM_PREFIX = "system-"
HIGHEST_USER_PRIORITY = 1000000000
SYSTEM_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
SCOPE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_INTEGER_NAMES = ("pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
                  "persistentvolumeclaims", "services.nodeports", "services.loadbalancers")


def _qty(v: Any) -> Decimal:
    return parse_quantity(v)


_s = canonical


def _integer_name(name: str) -> bool:
    return name in _INTEGER_NAMES or name.startswith("count/")


def _resource_list(e: Errors, path: str, rl: dict | None) -> None:
    """``ValidateResourceQuantityValue`` for each entry: non-negative, whole for object counts."""
    for name, value in (rl or {}).items():
        q = _qty(value)
        if q < 0:
            e.invalid(f"{path}[{name}]", str(value), "must be greater than or equal to 0")
        if _integer_name(name) and q != q.to_integral_value():
            e.invalid(f"{path}[{name}]", str(value), "must be an integer")


def _resource_quota(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is not None:
        _resource_list(e, "spec.hard", spec.hard)
        for i, scope in enumerate(spec.scopes or ()):
            e.one_of(f"spec.scopes[{i}]", scope, QUOTA_SCOPES)
        sel = spec.scope_selector
        for i, req in enumerate((sel.match_expressions or ()) if sel is not None else ()):
            p = f"spec.scopeSelector.matchExpressions[{i}]"
            e.one_of(f"{p}.scopeName", req.scope_name, QUOTA_SCOPES)
            if req.operator not in SCOPE_OPERATORS:
                e.unsupported(f"{p}.operator", req.operator, SCOPE_OPERATORS)
            elif req.operator in ("In", "NotIn") and not req.values:
                e.required(f"{p}.values", "must be at least one value when `operator` is 'In' or 'NotIn' for scope "
                                          "selector")
            elif req.operator in ("Exists", "DoesNotExist") and req.values:
                e.invalid(f"{p}.values", req.values, "must be no value when `operator` is 'Exist' or "
                                                     "'DoesNotExist' for scope selector")
    if obj.status is not None:
        _resource_list(e, "status.hard", obj.status.hard)
        _resource_list(e, "status.used", obj.status.used)


# (the field that must not be larger, the one it is compared with, the field reported, whose value is shown, message)
_ORDER = (
    ("min", "max", "min", "min", "min value {a} is greater than max value {b}"),
    ("min", "defaultRequest", "defaultRequest", "defaultRequest", "min value {a} is greater than default request "
                                                                  "value {b}"),
    ("defaultRequest", "max", "defaultRequest", "defaultRequest", "default request value {a} is greater than max "
                                                                  "value {b}"),
    ("defaultRequest", "default", "defaultRequest", "defaultRequest", "default request value {a} is greater than "
                                                                      "default limit value {b}"),
    ("min", "default", "default", "min", "min value {a} is greater than default value {b}"),
    ("default", "max", "default", "max", "default value {a} is greater than max value {b}"),
)


def _limit_range(e: Errors, obj: Any) -> None:
    seen: set = set()
    for i, item in enumerate((obj.spec.limits or ()) if obj.spec is not None else ()):
        p = f"spec.limits[{i}]"
        if not item.type:
            e.required(f"{p}.type")
        else:
            e.unique(f"{p}.type", item.type, seen)
        fields = {"min": item.min or {}, "max": item.max or {},
                  "maxLimitRequestRatio": item.max_limit_request_ratio or {}}
        if item.type == LIMIT_TYPE_POD:
            for f, v in (("default", item.default), ("defaultRequest", item.default_request)):
                if v:
                    e.forbidden(f"{p}.{f}", "may not be specified when `type` is 'Pod'")
        else:
            fields["default"], fields["defaultRequest"] = item.default or {}, item.default_request or {}
        if item.type == LIMIT_TYPE_PVC and "storage" not in fields["min"] and "storage" not in fields["max"]:
            e.required(f"{p}.limits", "either minimum or maximum storage value is required, but neither was provided")
        for f, rl in fields.items():
            for k, v in rl.items():
                if _qty(v) < 0:
                    e.invalid(f"{p}.{f}[{k}]", str(v), "must be greater than or equal to 0")
        lo, hi, ratio = fields["min"], fields["max"], fields["maxLimitRequestRatio"]
        for k in sorted(set().union(*fields.values())):
            for small, large, at, shown, msg in _ORDER:
                a, b = fields.get(small, {}).get(k), fields.get(large, {}).get(k)
                if a is not None and b is not None and _qty(a) > _qty(b):
                    e.invalid(f"{p}.{at}[{k}]", _s(a if shown == small else b), msg.format(a=_s(a), b=_s(b)))
            if k in ratio and _qty(ratio[k]) < 1:
                e.invalid(f"{p}.maxLimitRequestRatio[{k}]", _s(ratio[k]), f"ratio {_s(ratio[k])} is less than 1")
            elif k in ratio and k in lo and k in hi and _qty(lo[k]) > 0:
                limit = float(_qty(hi[k]) / _qty(lo[k]))
                if float(_qty(ratio[k])) > limit:
                    e.invalid(f"{p}.maxLimitRequestRatio[{k}]", _s(ratio[k]),
                              f"ratio {_s(ratio[k])} is greater than max/min = {limit:f}")


def _priority_class(e: Errors, obj: Any) -> None:
    name = (obj.metadata.name if obj.metadata is not None else None) or ""
    value = obj.value or 0
    if name.startswith(SYSTEM_PREFIX):
        known = SYSTEM_CLASSES.get(name)
        why = (f"{name} is not a known system priority class" if known is None else
               f"value of {name} PriorityClass must be {known}" if value != known else
               f"globalDefault of {name} PriorityClass must be false" if obj.global_default else None)
        if why:
            e.forbidden("metadata.name", f"priority class names with '{SYSTEM_PREFIX}' prefix are reserved for "
                                         f"system use only. error: {why}")
    elif value > HIGHEST_USER_PRIORITY:
        e.forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}")
    e.one_of("preemptionPolicy", obj.preemption_policy, PREEMPTION_POLICIES)


def _priority_class_update(e: Errors, old: dict, new: Any) -> None:
    if (old.get("value") or 0) != (new.value or 0):
        e.forbidden("value", "may not be changed in an update.")
    old_policy = old.get("preemptionPolicy") or PREEMPTION_POLICIES[0]
    if new.preemption_policy != old_policy:
        e.invalid("preemptionPolicy", new.preemption_policy, "field is immutable")


_KIND_CHECKS.update({"ResourceQuota": _resource_quota, "LimitRange": _limit_range, "PriorityClass": _priority_class})
_UPDATE_CHECKS["PriorityClass"] = _priority_class_update
