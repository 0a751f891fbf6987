"""Small read-only accessors over a pod's metadata and spec as plain camelCase dicts, and the wording helpers
the checks share (Kubernetes' ``visitContainers``, ``pluralize``, ``joinQuote``)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")  # visitContainers' order


def d(value: Any) -> dict:
    """``value`` when it is a dict, else an empty one (an absent or malformed field reads as unset)."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list:
    return value if isinstance(value, list) else []


def containers(spec: dict) -> Iterator[dict]:
    for kind in CONTAINER_KINDS:
        for c in items(spec.get(kind)):
            if isinstance(c, dict):
                yield c


def name(c: dict) -> str:
    return str(c.get("name") or "")


def containers_with(spec: dict, bad_values: Callable[[dict], Iterable[str]]) -> tuple[list[str], set[str]]:
    """The names of the containers for which ``bad_values(container)`` finds something, and all it found."""
    names: list[str] = []
    found: set[str] = set()
    for c in containers(spec):
        values = list(bad_values(c))
        if values:
            names.append(name(c))
            found.update(values)
    return names, found


def sc(obj: dict) -> dict:
    """The securityContext of a container or a pod spec."""
    return d(obj.get("securityContext"))


def annotations(metadata: dict) -> dict:
    return d(metadata.get("annotations"))


def pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def join_quote(values: list[str]) -> str:
    return '"' + '", "'.join(values) + '"' if values else ""


def setters(pod: bool, bad_containers: list[str]) -> str:
    """``pod``, ``container "a"``, ``pod and containers "a", "b"`` — who set a forbidden value."""
    out = ["pod"] if pod else []
    if bad_containers:
        out.append(f"{pluralize('container', 'containers', len(bad_containers))} {join_quote(bad_containers)}")
    return " and ".join(out)
