"""A CustomResourceDefinition's ``openAPIV3Schema`` applied to an object, as kube-apiserver applies it: unknown
fields pruned (structural pruning), defaults filled in, then the value validated, each failure a
:class:`bus.errors.Cause` with Kubernetes' field path and message (``spec.replicas: Invalid value: "string":
spec.replicas in body must be of type integer: "string"``).

Pure functions over plain dicts. The Kubernetes extensions honoured: ``x-kubernetes-preserve-unknown-fields``,
``x-kubernetes-int-or-string``, ``x-kubernetes-embedded-resource`` and ``nullable``. ``x-kubernetes-validations``
(CEL rules) are not evaluated: :func:`unsupported` names them so the CRD's creator is warned.

:func:`structural_errors` checks the schema itself when a CRD is written (what apiextensions' validation refuses).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from bus.errors import Cause
from bus.meta import deep_copy
from bus.models.decode import fmt_value

TYPES = ("object", "array", "string", "integer", "number", "boolean")
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"
CEL = "x-kubernetes-validations"
_ROOT_META = ("apiVersion", "kind", "metadata")  # never pruned at the root (nor in an embedded resource)
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_VALUE_KEYS = ("enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
               "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems", "minProperties",
               "maxProperties", "required")


# ---- values as Kubernetes prints them ---------------------------------------------------------------

def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _type_ok(want: str, v: Any) -> bool:
    got = json_type(v)
    return got == want or (want == "number" and got == "integer")


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


# ---- formats (those apiextensions validates) ---------------------------------------------------------

def _is_datetime(s: str) -> bool:
    try:
        datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
        return "T" in s.upper() or " " in s
    except ValueError:
        return False


def _is_date(s: str) -> bool:
    try:
        datetime.strptime(s, "%Y-%m-%d")
        return True
    except ValueError:
        return False


_FORMATS = {
    "int32": lambda v: isinstance(v, int) and -2**31 <= v < 2**31,
    "int64": lambda v: isinstance(v, int) and -2**63 <= v < 2**63,
    "date-time": lambda v: isinstance(v, str) and _is_datetime(v),
    "datetime": lambda v: isinstance(v, str) and _is_datetime(v),
    "date": lambda v: isinstance(v, str) and _is_date(v),
    "uuid": lambda v: isinstance(v, str) and re.fullmatch(
        r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}", v) is not None,
    "byte": lambda v: isinstance(v, str) and re.fullmatch(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|"
                                                          r"[A-Za-z0-9+/]{3}=)?", v) is not None,
}


# ---- prune and default --------------------------------------------------------------------------------

def _child_schema(schema: dict, key: str) -> dict | None:
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    ap = schema.get("additionalProperties")
    if isinstance(ap, dict):
        return ap
    if ap is True:
        return {}
    return None


def prune(value: Any, schema: dict, root: bool = False) -> Any:
    """Drop every field the schema does not specify (in place; returns ``value``), unless the schema preserves
    unknown fields there. ``apiVersion``, ``kind`` and ``metadata`` survive at the root and in embedded
    resources."""
    if schema is None:
        return value
    if isinstance(value, dict):
        keep_meta = root or schema.get(EMBEDDED)
        preserve = schema.get(PRESERVE) is True
        for key in list(value):
            if keep_meta and key in _ROOT_META:
                if key == "metadata" and isinstance(value[key], dict) and not root:
                    _prune_embedded_meta(value[key])
                continue
            child = _child_schema(schema, key)
            if child is None:
                if not preserve:
                    del value[key]
                continue
            prune(value[key], child)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                prune(item, items)
    return value


_EMBEDDED_META = ("name", "generateName", "namespace", "labels", "annotations", "finalizers", "ownerReferences")


def _prune_embedded_meta(meta: dict) -> None:
    for k in list(meta):
        if k not in _EMBEDDED_META:
            del meta[k]


def default(value: Any, schema: dict) -> Any:
    """Fill in ``default`` where a field is missing (or null and not nullable), parents first, in place."""
    if schema is None:
        return value
    if isinstance(value, dict):
        for key, child in (schema.get("properties") or {}).items():
            if not isinstance(child, dict):
                continue
            if "default" in child and (key not in value or (value[key] is None and not child.get("nullable"))):
                value[key] = deep_copy(child["default"])
            if key in value:
                default(value[key], child)
        ap = schema.get("additionalProperties")
        if isinstance(ap, dict):
            props = schema.get("properties") or {}
            for key in value:
                if key not in props:
                    default(value[key], ap)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                default(item, items)
    return value


# ---- validate ------------------------------------------------------------------------------------------

def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def validate(value: Any, schema: dict, path: str = "", root: bool = False) -> list[Cause]:
    """Every way ``value`` fails ``schema``, as Kubernetes words it."""
    out: list[Cause] = []
    _validate(value, schema or {}, path, out, root)
    return out


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, f"Invalid value: {fmt_value(value)}: {detail}", "FieldValueInvalid")


def _type_error(path: str, want: str, v: Any) -> Cause:
    got = json_type(v)
    return Cause(path, f'Invalid value: "{got}": {path} in body must be of type {want}: "{got}"',
                 "FieldValueTypeInvalid")


def _validate(v: Any, s: dict, path: str, out: list[Cause], root: bool = False) -> None:
    if v is None:
        if s.get("nullable") or s.get(PRESERVE) and not s.get("type"):
            return
        if s.get("type") or s.get(INT_OR_STRING):
            out.append(_type_error(path, s.get("type") or "integer,string", v))
        return
    t = s.get("type")
    if s.get(INT_OR_STRING):
        if json_type(v) not in ("integer", "string"):
            out.append(_type_error(path, "integer,string", v))
            return
    elif t:
        if not _type_ok(t, v):
            out.append(_type_error(path, t, v))
            return
    _values(v, s, path, out)
    if isinstance(v, dict):
        _object(v, s, path, out, root)
    elif isinstance(v, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(v):
                _validate(item, items, f"{path}[{i}]", out)
    for key in ("allOf",):
        for sub in s.get(key) or []:
            _validate(v, sub, path, out)
    if s.get("anyOf"):
        if all(validate(v, sub, path) for sub in s["anyOf"]):
            out.append(_invalid(path, v, f"{path} in body must match at least one schema in anyOf"))
    if s.get("oneOf"):
        matches = sum(1 for sub in s["oneOf"] if not validate(v, sub, path))
        if matches != 1:
            out.append(_invalid(path, v, f"{path} in body must match exactly one schema in oneOf"))
    if isinstance(s.get("not"), dict) and not validate(v, s["not"], path):
        out.append(_invalid(path, v, f"{path} in body must not be valid against the schema in not"))


def _object(v: dict, s: dict, path: str, out: list[Cause], root: bool) -> None:
    for req in s.get("required") or []:
        if req not in v:
            out.append(Cause(_path(path, req), "Required value", "FieldValueRequired"))
    n = len(v)
    if "minProperties" in s and n < s["minProperties"]:
        out.append(_invalid(path, n, f"{path} in body should have at least {s['minProperties']} properties"))
    if "maxProperties" in s and n > s["maxProperties"]:
        out.append(Cause(path, f"Too many: {n}: must have at most {s['maxProperties']} items", "FieldValueTooMany"))
    props = s.get("properties") or {}
    ap = s.get("additionalProperties")
    for key, item in v.items():
        if root and key in _ROOT_META and key not in props:
            continue
        child = props.get(key)
        if child is None and isinstance(ap, dict):
            child = ap
        if child is not None:
            _validate(item, child, _path(path, key), out)


def _values(v: Any, s: dict, path: str, out: list[Cause]) -> None:
    if "enum" in s and v not in s["enum"]:
        allowed = ", ".join(f'"{e}"' if isinstance(e, str) else fmt_value(e) for e in s["enum"])
        out.append(Cause(path, f"Unsupported value: {fmt_value(v)}: supported values: {allowed}",
                         "FieldValueNotSupported"))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        _numeric(v, s, path, out)
    if isinstance(v, str):
        if "maxLength" in s and len(v) > s["maxLength"]:
            out.append(Cause(path, f"Too long: must have at most {s['maxLength']} bytes", "FieldValueTooLong"))
        if "minLength" in s and len(v) < s["minLength"]:
            out.append(_invalid(path, v, f"{path} in body should be at least {s['minLength']} chars long"))
        pat = s.get("pattern")
        if isinstance(pat, str):
            try:
                if re.search(pat, v) is None:
                    out.append(_invalid(path, v, f"{path} in body should match '{pat}'"))
            except re.error:
                pass  # refused when the CRD was written (structural_errors)
    fmt = s.get("format")
    check = _FORMATS.get(fmt or "")
    if check is not None and not check(v) and not (fmt in ("int32", "int64") and not isinstance(v, int)):
        out.append(_invalid(path, v, f"{path} in body must be of type {fmt}: {fmt_value(v)}"))
    if isinstance(v, list):
        if "maxItems" in s and len(v) > s["maxItems"]:
            out.append(Cause(path, f"Too many: {len(v)}: must have at most {s['maxItems']} items",
                             "FieldValueTooMany"))
        if "minItems" in s and len(v) < s["minItems"]:
            out.append(_invalid(path, v, f"{path} in body should have at least {s['minItems']} items"))
        if s.get("uniqueItems") or s.get("x-kubernetes-list-type") == "set":
            seen: list[Any] = []
            for i, item in enumerate(v):
                if item in seen:
                    out.append(Cause(f"{path}[{i}]", f"Duplicate value: {fmt_value(item)}", "FieldValueDuplicate"))
                else:
                    seen.append(item)


def _numeric(v: float, s: dict, path: str, out: list[Cause]) -> None:
    lo, hi = s.get("minimum"), s.get("maximum")
    if lo is not None:
        if s.get("exclusiveMinimum") and v <= lo:
            out.append(_invalid(path, v, f"{path} in body should be greater than {_num(lo)}"))
        elif v < lo:
            out.append(_invalid(path, v, f"{path} in body should be greater than or equal to {_num(lo)}"))
    if hi is not None:
        if s.get("exclusiveMaximum") and v >= hi:
            out.append(_invalid(path, v, f"{path} in body should be less than {_num(hi)}"))
        elif v > hi:
            out.append(_invalid(path, v, f"{path} in body should be less than or equal to {_num(hi)}"))
    m = s.get("multipleOf")
    if m and not math.isclose(v / m, round(v / m), abs_tol=1e-9):
        out.append(_invalid(path, v, f"{path} in body should be a multiple of {_num(m)}"))


# ---- all three, in Kubernetes' order ---------------------------------------------------------------

def apply(obj: dict, schema: dict | None) -> tuple[dict, list[Cause]]:
    """Prune, default and validate a custom resource (a copy of ``obj``); ``(object, causes)``."""
    out = deep_copy(obj)
    if not schema:
        return out, []
    prune(out, schema, root=True)
    default(out, schema)
    return out, validate(out, schema, root=True)


# ---- the schema itself -------------------------------------------------------------------------------

def structural_errors(schema: Any, path: str) -> list[Cause]:
    """Why ``schema`` is not a structural schema Kubernetes would accept (a subset of apiextensions' checks:
    a type everywhere a value is specified, known types, the root an object, valid patterns, defaults that
    pass their own schema)."""
    out: list[Cause] = []
    if not isinstance(schema, dict):
        return [Cause(path, "Required value: schemas are required", "FieldValueRequired")]
    if schema.get("type") != "object":
        out.append(Cause(f"{path}.type", 'Invalid value: "%s": must be object at the root' % schema.get("type", ""),
                         "FieldValueInvalid") if schema.get("type") else
                   Cause(f"{path}.type", "Required value: must not be empty at the root", "FieldValueRequired"))
    _structural(schema, path, out, root=True)
    return out


def _structural(s: Any, path: str, out: list[Cause], root: bool = False, in_junctor: bool = False) -> None:
    if not isinstance(s, dict):
        out.append(Cause(path, "Invalid value: must be an object", "FieldValueInvalid"))
        return
    t = s.get("type")
    if t is not None and t not in TYPES:
        out.append(Cause(f"{path}.type", f'Unsupported value: "{t}": supported values: '
                                         + ", ".join(f'"{x}"' for x in TYPES), "FieldValueNotSupported"))
    if not in_junctor and not t and not s.get(INT_OR_STRING) and not s.get(PRESERVE):
        out.append(Cause(f"{path}.type", "Required value: must not be empty for specified object fields",
                         "FieldValueRequired"))
    if s.get("$ref") is not None:
        out.append(Cause(f"{path}.$ref", "Forbidden: $ref is not supported", "FieldValueForbidden"))
    pat = s.get("pattern")
    if pat is not None:
        try:
            re.compile(str(pat))
        except re.error as e:
            out.append(Cause(f"{path}.pattern", f"Invalid value: {fmt_value(pat)}: must be a valid regular "
                                                f"expression, but isn't: {e}", "FieldValueInvalid"))
    if isinstance(s.get("properties"), dict) and isinstance(s.get("additionalProperties"), dict):
        out.append(Cause(f"{path}.additionalProperties", "Forbidden: additionalProperties and properties are "
                                                         "mutual exclusive", "FieldValueForbidden"))
    if t == "array" and not in_junctor and not isinstance(s.get("items"), dict):
        out.append(Cause(f"{path}.items", "Required value: must be specified", "FieldValueRequired"))
    for key, child in (s.get("properties") or {}).items():
        _structural(child, f"{path}.properties[{key}]", out, in_junctor=in_junctor)
    if isinstance(s.get("additionalProperties"), dict):
        _structural(s["additionalProperties"], f"{path}.additionalProperties", out, in_junctor=in_junctor)
    if isinstance(s.get("items"), dict):
        _structural(s["items"], f"{path}.items", out, in_junctor=in_junctor)
    for j in _JUNCTORS:
        subs = s.get(j)
        for i, sub in enumerate(subs if isinstance(subs, list) else [subs] if isinstance(subs, dict) else []):
            _structural(sub, f"{path}.{j}[{i}]", out, in_junctor=True)
    if "default" in s and not in_junctor:
        if root:
            out.append(Cause(f"{path}.default", "Forbidden: must not be set at the root", "FieldValueForbidden"))
        else:
            d = deep_copy(s["default"])
            prune(d, s)
            default(d, s)
            for c in validate(d, s, f"{path}.default"):
                out.append(Cause(c.field, c.message, c.reason))


def unsupported(schema: Any, path: str = "openAPIV3Schema") -> list[str]:
    """Paths of schema features k8n stores but does not enforce (CEL validation rules)."""
    out: list[str] = []
    if isinstance(schema, dict):
        if schema.get(CEL):
            out.append(f"{path}.{CEL}")
        for key, child in (schema.get("properties") or {}).items():
            out += unsupported(child, f"{path}.properties[{key}]")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                out += unsupported(schema[key], f"{path}.{key}")
    return out
