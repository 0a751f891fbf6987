"""The common moves of a canary release on Ingresses carrying ingress-nginx's canary annotations (``k8n canary``):
set the weight, abort (the canary routes nothing), promote (the primaries' paths take the canary's backends, then
the canary routes nothing). Each function takes objects as read and returns new ones to write; the caller writes
them with the objects' resourceVersion (a write that lost a race is redone from fresh reads).

A *primary* of a canary is an Ingress of the same namespace and class (the default class for those naming none, as
the ingress controller reads it) that is not a canary itself and serves one of the canary's host+path pairs.

Pure: no I/O."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Mapping

from bus.ingress import (CANARY, CANARY_BY_COOKIE, CANARY_BY_HEADER, CANARY_BY_HEADER_PATTERN, CANARY_BY_HEADER_VALUE,
                         CANARY_WEIGHT, canary, class_name, default_class)

# what routes requests to a canary besides its weight: an aborted or promoted canary carries none of them
MATCH_ANNOTATIONS = (CANARY_BY_HEADER, CANARY_BY_HEADER_VALUE, CANARY_BY_HEADER_PATTERN, CANARY_BY_COOKIE)


class CanaryError(ValueError):
    """The move cannot be made (worded for the user); nothing was changed."""


@dataclass(frozen=True)
class Change:
    """One path of a primary that now goes to the canary's backend."""

    ingress: str  # the primary's name
    host: str  # "" for a rule without a host
    path: str
    old: str  # backends as ``describe_backend`` words them
    new: str


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def _annotations(obj: Mapping) -> Mapping[str, str]:
    return _meta(obj).get("annotations") or {}


def _name(obj: Mapping) -> str:
    return _meta(obj).get("name") or ""


def require_canary(ingress: Mapping) -> None:
    """CanaryError unless the Ingress is a canary (``nginx.ingress.kubernetes.io/canary: "true"``)."""
    if not canary(_annotations(ingress)).enabled:
        raise CanaryError(f'ingress "{_name(ingress)}" is not a canary: it has no annotation {CANARY}: "true"')


def with_weight(ingress: Mapping, weight: int) -> dict:
    """The canary with ``canary-weight`` set to ``weight`` (0 to its ``canary-weight-total``, inclusive)."""
    require_canary(ingress)
    total = canary(_annotations(ingress)).weight_total
    if not 0 <= weight <= total:
        raise CanaryError(f"invalid weight {weight}: must be between 0 and {total} (canary-weight-total), inclusive")
    out = copy.deepcopy(dict(ingress))
    out.setdefault("metadata", {}).setdefault("annotations", {})[CANARY_WEIGHT] = str(weight)
    return out


def routing_nothing(ingress: Mapping) -> dict:
    """The canary with weight 0 and no header or cookie rule: it stays, and routes no request."""
    out = with_weight(ingress, 0)
    anns = out["metadata"]["annotations"]
    for key in MATCH_ANNOTATIONS:
        anns.pop(key, None)
    return out


def effective_class(ingress: Mapping, classes: Iterable[Mapping]) -> str:
    """The class an Ingress belongs to: ``spec.ingressClassName``, the legacy annotation, else the default class
    (``""`` when there is none)."""
    name = class_name(ingress)
    if name:
        return name
    default = default_class(classes)
    return _name(default) if default is not None else ""


def _path_key(path: Mapping) -> str:
    return path.get("path") or "/"


def _pairs(ingress: Mapping) -> dict[tuple[str, str], dict]:
    """(host, path) → backend of the Ingress's rules; the first rule serving a pair wins."""
    out: dict[tuple[str, str], dict] = {}
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for p in (rule.get("http") or {}).get("paths") or []:
            out.setdefault((rule.get("host") or "", _path_key(p)), p.get("backend") or {})
    return out


def describe_backend(backend: Mapping) -> str:
    """``web:80``, ``web:http``, or ``Kind/name`` for a resource backend."""
    svc = backend.get("service")
    if svc:
        port = svc.get("port") or {}
        return f"{svc.get('name', '')}:{port.get('number', port.get('name', ''))}"
    res = backend.get("resource") or {}
    return f"{res.get('kind', '')}/{res.get('name', '')}"


def primaries(canary_ing: Mapping, ingresses: Iterable[Mapping], classes: Iterable[Mapping]) -> list[Mapping]:
    """The Ingresses (``ingresses``: those of the canary's namespace) the canary's paths are a canary of."""
    classes = list(classes)
    ns, cls, want = _meta(canary_ing).get("namespace"), effective_class(canary_ing, classes), set(_pairs(canary_ing))
    return [i for i in ingresses
            if _meta(i).get("namespace") == ns and _name(i) != _name(canary_ing)
            and not canary(_annotations(i)).enabled and effective_class(i, classes) == cls
            and want & set(_pairs(i))]


def promoted(canary_ing: Mapping, ingresses: Iterable[Mapping],
             classes: Iterable[Mapping]) -> tuple[list[dict], list[Change], list[tuple[str, str]]]:
    """Promote the canary: ``(primaries to write, what changed, (host, path) pairs no primary serves)``. Every path
    of a primary serving one of the canary's host+path pairs gets the canary's backend for it; primaries already
    serving the canary's backends are not returned (a promotion redone after a race changes nothing twice).
    CanaryError if the Ingress is no canary or no primary serves any of its paths. Write the canary
    :func:`routing_nothing` after the primaries."""
    require_canary(canary_ing)
    mine = _pairs(canary_ing)
    if not mine:
        raise CanaryError(f'ingress "{_name(canary_ing)}" has no rules with paths to promote')
    found = primaries(canary_ing, ingresses, classes)
    if not found:
        raise CanaryError(f'no primary Ingress of the same namespace and class serves the paths of ingress '
                          f'"{_name(canary_ing)}" ({", ".join(h + p for h, p in sorted(mine))})')
    served: set[tuple[str, str]] = set()
    out: list[dict] = []
    changes: list[Change] = []
    for prim in found:
        new = copy.deepcopy(dict(prim))
        changed = False
        for rule in (new.get("spec") or {}).get("rules") or []:
            host = rule.get("host") or ""
            for p in (rule.get("http") or {}).get("paths") or []:
                pair = (host, _path_key(p))
                if pair not in mine:
                    continue
                served.add(pair)
                backend = copy.deepcopy(mine[pair])
                if p.get("backend") != backend:
                    changes.append(Change(_name(prim), host, pair[1], describe_backend(p.get("backend") or {}),
                                          describe_backend(backend)))
                    p["backend"] = backend
                    changed = True
        if changed:
            out.append(new)
    return out, changes, sorted(set(mine) - served)
