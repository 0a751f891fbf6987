"""Decode a dict into a model, turning every pydantic error into a Kubernetes ``Cause`` with a field path.

Decoding never raises: values of the wrong type are reported and dropped (the field then takes its default), and
decoding is retried so the caller still gets a model to run semantic validation on.
"""

from __future__ import annotations

import json
import types
import typing
from functools import lru_cache
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bus.errors import Cause

_MAX_PASSES = 4
_TYPE_NAMES = {"int": "integer", "string": "string", "bool": "boolean", "dict": "object", "model": "object",
               "list": "array", "float": "number", "model_attributes": "object"}


def fmt_value(v: Any, limit: int = 120) -> str:
    """A value as Kubernetes error messages print it: strings quoted, numbers bare, objects as JSON."""
    if isinstance(v, str):
        return json.dumps(v if len(v) <= limit else v[:limit] + "...")
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    name = "object" if isinstance(v, dict) else "array" if isinstance(v, list) else type(v).__name__
    try:
        s = json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) and len(v) <= 20 else ""
    except (TypeError, ValueError, RecursionError):
        s = ""
    return s if s and len(s) <= limit else json.dumps(name)


def _unwrap(t: Any) -> Any:
    """Strip Optional/Annotated: what is left is a model class, ``list[X]``, ``dict[str, X]`` or a scalar."""
    while True:
        origin = get_origin(t)
        if origin is typing.Annotated:
            t = get_args(t)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(t) if a is not type(None)]
            if len(args) != 1:
                return t
            t = args[0]
        else:
            return t


@lru_cache(maxsize=None)
def _fields_by_alias(cls: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        out[info.alias or name] = out[name] = info.annotation
    return out


def loc_to_path(cls: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``('spec', 'containers', 0, 'resources', 'limits', 'cpu')`` -> ``spec.containers[0].resources.limits[cpu]``."""
    path, t = "", cls
    for el in loc:
        t = _unwrap(t)
        origin = get_origin(t)
        if isinstance(el, int):
            path += f"[{el}]"
            t = get_args(t)[0] if origin is list and get_args(t) else Any
        elif el == "[key]":
            continue
        elif origin is dict:
            path += f"[{el}]"
            args = get_args(t)
            t = args[1] if len(args) == 2 else Any
        else:
            path = f"{path}.{el}" if path else str(el)
            t = _fields_by_alias(t).get(el, Any) if isinstance(t, type) and issubclass(t, BaseModel) else Any
    return path


def _message(err: dict[str, Any]) -> tuple[str, str]:
    typ, value = err["type"], err.get("input")
    if typ == "missing":
        return "Required value", "FieldValueRequired"
    base = typ.rsplit("_", 1)[0] if typ.endswith(("_type", "_parsing")) else None
    if base in _TYPE_NAMES or typ in ("int_from_float", "model_attributes_type"):
        want = _TYPE_NAMES.get(base or "", "integer" if typ == "int_from_float" else "object")
        return f"Invalid value: {fmt_value(value)}: must be of type {want}", "FieldValueTypeInvalid"
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"Invalid value: {fmt_value(value)}: {msg}", "FieldValueInvalid"


def _drop(data: Any, loc: tuple[Any, ...]) -> Any:
    """A copy of ``data`` without the dict entry nearest to (at or above) ``loc``; shares untouched branches."""
    steps: list[tuple[Any, Any]] = []  # (container, key) along the path, as far as it exists in data
    cur = data
    for el in loc:
        if el == "[key]":
            break
        if isinstance(cur, dict) and el in cur:
            steps.append((cur, el))
            cur = cur[el]
        elif isinstance(cur, list) and isinstance(el, int) and 0 <= el < len(cur):
            steps.append((cur, el))
            cur = cur[el]
        else:
            break
    last = max((i for i, (c, _) in enumerate(steps) if isinstance(c, dict)), default=None)
    if last is None:
        return data
    new: Any = None
    for i in range(last, -1, -1):
        container, key = steps[i]
        copy = dict(container) if isinstance(container, dict) else list(container)
        if i == last:
            del copy[key]
        else:
            copy[key] = new
        new = copy
    return new


def decode(cls: type[BaseModel], data: dict[str, Any]) -> tuple[BaseModel | None, list[Cause]]:
    """``cls.model_validate(data)`` collecting errors as causes; the model has invalid values dropped."""
    causes: list[Cause] = []
    for _ in range(_MAX_PASSES):
        try:
            return cls.model_validate(data), causes
        except ValidationError as e:
            errors = e.errors(include_url=False)
        except Exception as e:  # noqa: BLE001 - decoding must never raise (recursion limits and the like)
            causes.append(Cause("", f"Invalid value: {type(e).__name__}: the object could not be decoded"))
            return None, causes
        before = data
        for err in errors:
            loc = tuple(err["loc"])
            msg, reason = _message(err)
            cause = Cause(loc_to_path(cls, loc), msg, reason)
            if cause not in causes:
                causes.append(cause)
            data = _drop(data, loc)
        if data is before:
            break
    return None, causes
