"""Kubernetes REST paths → what they address: resource, namespace, name, subresource, watch.

``/api/v1/namespaces/demo/pods/web/status``, ``/apis/apps/v1/deployments`` (every namespace),
``/api/v1/nodes/n1``, ``/api/v1/watch/namespaces/demo/pods`` (the old watch paths) …
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import errors
from bus.labels import is_dns1123_label
from bus.resources import METRICS_RESOURCES, RESOURCES, Resource, by_group_plural

_BY_GV_PLURAL: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r
                                                        for r in RESOURCES + METRICS_RESOURCES}


@dataclass(frozen=True)
class Target:
    res: Resource
    namespace: str | None = None  # None: cluster-scoped, or a namespaced kind across every namespace
    name: str | None = None
    subresource: str | None = None
    watch: bool = False  # an old-style /watch/ path

    @property
    def collection(self) -> bool:
        return self.name is None


def _not_found(path: str) -> errors.NotFound:
    return errors.NotFound(404, f"the server could not find the requested resource ({path})")


def _lookup(group: str, version: str, plural: str, path: str) -> Resource:
    res = _BY_GV_PLURAL.get((group, version, plural))
    if res is not None:
        return res
    custom = by_group_plural(group, plural) if group else None
    if custom is not None and custom.custom is not None:
        v = custom.custom.version(version)
        if v is not None and v.served:
            return custom.custom.at_version(custom, version)
    raise _not_found(path)


def custom_candidate(path: str) -> str | None:
    """The bus name of the custom resource a path would address (``/apis/stable.example.com/v1/crontabs`` ->
    ``crontabs_stable_example_com``), so a definition the watch has not delivered yet can be looked up."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 4 or parts[0] != "apis" or "." not in parts[1]:
        return None
    rest = parts[3:]
    if rest[:1] == ["watch"]:
        rest = rest[1:]
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    if not rest:
        return None
    return f"{rest[0]}.{parts[1]}".replace(".", "_")


# kube's path.IsValidPathSegmentName refuses these; a NATS subject token also may not hold a wildcard or blank
_NAME_MAY_NOT_BE = (".", "..")
_NAME_MAY_NOT_CONTAIN = ("/", "%", "*", ">")


def name_segment_errors(name: str) -> list[str]:
    """Why ``name`` cannot be an object name in a path (Kubernetes' IsValidPathSegmentName, plus NATS)."""
    if name in _NAME_MAY_NOT_BE:
        return [f"may not be '{name}'"]
    errs = [f"may not contain '{c}'" for c in _NAME_MAY_NOT_CONTAIN if c in name]
    if any(c.isspace() for c in name):
        errs.append("may not contain whitespace")
    return errs


def check_segments(namespace: str | None, name: str | None) -> None:
    """A namespace that cannot exist (not a DNS-1123 label: ``*``, ``>``) is not found, as kube-apiserver's
    NamespaceLifecycle answers; a name that is not a path segment is a 400 as kube-apiserver's key function."""
    if namespace is not None and not is_dns1123_label(namespace):
        raise errors.not_found("namespaces", namespace)
    if name is not None and (msgs := name_segment_errors(name)):
        raise errors.bad_request(f"Name parameter invalid: \"{name}\": {'; '.join(msgs)}")


def parse_path(path: str) -> Target:
    """Parse a resource path; raises NotFound (a Status) for anything else."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _not_found(path)
    watch = False
    if rest[:1] == ["watch"]:
        watch, rest = True, rest[1:]
    if not rest:
        raise _not_found(path)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and group == "" and (group, version, rest[2]) in _BY_GV_PLURAL:
        # /namespaces/<ns>/<plural>[/<name>[/<sub>]]
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) >= 3 and group != "":
        namespace, rest = rest[1], rest[2:]
    res = _lookup(group, version, rest[0], path)
    if namespace is not None and not res.namespaced:
        raise _not_found(path)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3 or (sub and watch):
        raise _not_found(path)
    if name is not None and res.namespaced and namespace is None:
        raise _not_found(path)  # /api/v1/pods/x: a namespaced object needs its namespace
    check_segments(namespace, name)
    return Target(res, namespace, name, sub, watch)
