"""Field selectors (``metadata.name=web,status.phase!=Running``) over stored objects (plain camelCase dicts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

_COMMON = {"metadata.name", "metadata.namespace"}
_SUPPORTED: dict[str, frozenset[str]] = {
    kind: frozenset(_COMMON | extra)
    for kind, extra in {
        "Pod": {"spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName",
                "spec.serviceAccountName", "status.podIP", "status.nominatedNodeName", "spec.hostNetwork"},
        "Event": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                  "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                  "reason", "reportingComponent", "source", "type"},
        "Secret": {"type"},
        "Node": {"spec.unschedulable"},
        "Namespace": {"status.phase"},
        "Job": {"status.successful"},
        "ReplicaSet": {"status.replicas"},
        "ReplicationController": {"status.replicas"},
    }.items()
}
_DEFAULT = frozenset(_COMMON)


def supported_fields(kind: str) -> set[str]:
    return set(_SUPPORTED.get(kind, _DEFAULT))


def _lookup(obj: Mapping[str, Any], path: str) -> str:
    """The field's value as its selector string: missing is "", bools are true/false."""
    if path == "source":  # Event "source" selects on the reporting component
        v: Any = (obj.get("source") or {}).get("component") or obj.get("reportingComponent")
    elif path == "status.successful":  # Job: number of succeeded pods
        v = (obj.get("status") or {}).get("succeeded")
    else:
        v = obj
        for part in path.split("."):
            v = v.get(part) if isinstance(v, Mapping) else None
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # = == !=
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = _lookup(obj, self.field) == self.value
        return not equal if self.op == "!=" else equal

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> set[str]:
        return {r.field for r in self.requirements}

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def value_of(self, field: str) -> str | None:
        """The value an ``=``/``==`` requirement pins ``field`` to (for indexed lookups, e.g. spec.nodeName)."""
        for r in self.requirements:
            if r.field == field and r.op != "!=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_TERM_RE = re.compile(r"([^=!,\s]+)\s*(==|!=|=)\s*([^,]*)")


def parse_field_selector(text: str) -> FieldSelector:
    """``a=b``, ``a==b``, ``a!=b`` joined by commas; ``ValueError`` on anything else."""
    if not isinstance(text, str):
        raise ValueError("a field selector must be a string")
    reqs = []
    for term in text.split(","):
        term = term.strip()
        if not term:
            if text.strip():
                raise ValueError(f"invalid field selector {text!r}: empty term")
            continue
        m = _TERM_RE.fullmatch(term)
        if m is None:
            raise ValueError(f"invalid selector: '{term}'; can't understand '{term}'")
        reqs.append(FieldRequirement(m.group(1), m.group(2), m.group(3).strip()))
    return FieldSelector(tuple(reqs))


def validate_field_selector(kind: str, sel: FieldSelector) -> str | None:
    """Kubernetes' message for the first field ``kind`` cannot be selected on, else None."""
    allowed = _SUPPORTED.get(kind, _DEFAULT)
    for r in sel.requirements:
        if r.field not in allowed:
            return f"field label not supported: {r.field}"
    return None
