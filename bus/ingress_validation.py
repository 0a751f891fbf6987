"""Validation of Ingress and IngressClass (``pkg/apis/networking/validation``: ValidateIngressSpec,
ValidateIngressClass, ValidateIngressClassUpdate) with Kubernetes' field paths and messages, plus k8n's checks of an
Ingress's annotations (``bus.ingress``: snippet annotations refused, canary values checked), reported at
``metadata.annotations[<key>]``. Registered into ``bus.validation``'s per-kind checks when that module loads (it
imports this one last)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from bus.errors import Cause
from bus.ingress import SNIPPET_MESSAGE, annotation_problems
from bus.labels import _DNS_LABEL, dns1123_subdomain_errors, max_len_msg
from bus.models.networking import (
    PARAMETER_SCOPES, PATH_TYPE_IMPL, PATH_TYPES, SCOPE_CLUSTER, SCOPE_NAMESPACE, IngressSpec,
)
from bus.validation import (
    _IMMUTABLE, _KIND_CHECKS, _UPDATE_CHECKS, Errors, dns1035_label_errors, dns1123_label_errors,
    iana_svc_name_errors,
)

_WILDCARD_FMT = rf"\*\.{_DNS_LABEL}(\.{_DNS_LABEL})*"
_WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must "
                 "consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character "
                 f"(e.g. '*.example.com', regex used for validation is '{_WILDCARD_FMT}')")
_HTTP_PATH_FMT = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_INVALID_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_SUFFIXES = ("/..", "/.")
_MAX_CONTROLLER = 250
_NOT_IP = "must be a DNS name, not an IP address"


def _wildcard_errors(host: str) -> list[str]:
    """``IsWildcardDNS1123Subdomain``."""
    errs = [max_len_msg(253)] if len(host) > 253 else []
    if not host.startswith("*.") or dns1123_subdomain_errors(host[2:]) or len(host) > 1024:
        errs.append(_WILDCARD_MSG)
    return errs


def _is_ip(value: str) -> bool:
    """``netutils.ParseIPSloppy`` succeeds (IPv4 octets with leading zeros too)."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        parts = value.split(".")
        return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)


def _segment_errors(name: str) -> list[str]:
    """``content.IsPathSegmentName``."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _host(e: Errors, path: str, host: str) -> None:
    e.messages(path, host, _wildcard_errors(host) if "*" in host else dns1123_subdomain_errors(host))


def _backend(e: Errors, path: str, backend: Any) -> None:
    """``validateIngressBackend``: exactly one of service and resource; a service's port by number or by name."""
    svc, res = backend.service, backend.resource
    if svc is not None and res is not None:
        return e.invalid(path, "", "cannot set both resource and service backends")
    if res is not None:
        return _typed_reference(e, f"{path}.resource", res)
    if svc is None:
        return e.invalid(path, "", "resource or service backend is required")
    if not svc.name:
        e.required(f"{path}.service.name")
    else:
        e.messages(f"{path}.service.name", svc.name, dns1035_label_errors(svc.name))
    port = svc.port
    name, number = (port.name, port.number) if port is not None else (None, None)
    if name and number:
        e.invalid(path, "", "cannot set both port name & port number")
    elif name:
        e.messages(f"{path}.service.port.name", name, iana_svc_name_errors(name))
    elif number:
        if not 1 <= number <= 65535:
            e.invalid(f"{path}.service.port.number", number, "must be between 1 and 65535, inclusive")
    else:
        e.required(path, "port name or number is required")


def _typed_reference(e: Errors, path: str, ref: Any) -> None:
    if ref.api_group is not None:
        e.messages(f"{path}.apiGroup", ref.api_group, dns1123_subdomain_errors(ref.api_group))
    for field in ("kind", "name"):
        value = getattr(ref, field)
        if not value:
            e.required(f"{path}.{field}")
        else:
            e.messages(f"{path}.{field}", value, _segment_errors(value))


def _http_path(e: Errors, path: str, p: Any) -> None:
    """``validateHTTPIngressPath``."""
    if p.path_type is None:
        return e.required(f"{path}.pathType", "pathType must be specified")
    value = p.path or ""
    if p.path_type == PATH_TYPE_IMPL:
        if value and not value.startswith("/"):
            e.invalid(f"{path}.path", value, "must be an absolute path")
    elif p.path_type in PATH_TYPES:
        if not value.startswith("/"):
            e.invalid(f"{path}.path", value, "must be an absolute path")
        for seq in _INVALID_SEQUENCES:
            if seq in value:
                e.invalid(f"{path}.path", value, f"must not contain '{seq}'")
        for suffix in _INVALID_SUFFIXES:
            if value.endswith(suffix):
                e.invalid(f"{path}.path", value, f"cannot end with '{suffix}'")
    else:
        e.unsupported(f"{path}.pathType", p.path_type, PATH_TYPES)
    _backend(e, f"{path}.backend", p.backend)


def _rules(e: Errors, rules: list[Any]) -> None:
    for i, rule in enumerate(rules):
        rp = f"spec.rules[{i}]"
        if rule.host:
            if _is_ip(rule.host):
                e.invalid(f"{rp}.host", rule.host, _NOT_IP)
            _host(e, f"{rp}.host", rule.host)
        if rule.http is not None:
            if not rule.http.paths:
                e.required(f"{rp}.http.paths")
            for j, p in enumerate(rule.http.paths or ()):
                _http_path(e, f"{rp}.http.paths[{j}]", p)


def _annotations(e: Errors, annotations: dict[str, str] | None) -> None:
    for key, value, why in annotation_problems(annotations):
        path = f"metadata.annotations[{key}]"
        if why == SNIPPET_MESSAGE:
            e.forbidden(path, why)
        else:
            e.invalid(path, value, why)


def _ingress(e: Errors, obj: Any) -> None:
    _annotations(e, obj.metadata.annotations if obj.metadata is not None else None)
    spec = obj.spec or IngressSpec()  # a struct in Kubernetes: ``spec: null`` is the empty spec
    if not spec.rules and spec.default_backend is None:
        go_value = "[]networking.IngressRule(nil)" if spec.rules is None else "[]networking.IngressRule{}"
        e.causes.append(Cause("spec", f"Invalid value: {go_value}: either `defaultBackend` or `rules` must be "
                                      "specified", "FieldValueInvalid"))  # Go's %#v of the rules
    if spec.default_backend is not None:
        _backend(e, "spec.defaultBackend", spec.default_backend)
    _rules(e, spec.rules or [])
    for i, tls in enumerate(spec.tls or ()):
        for j, host in enumerate(tls.hosts or ()):
            _host(e, f"spec.tls[{i}].hosts[{j}]", host)
        if tls.secret_name:
            e.messages(f"spec.tls[{i}].secretName", tls.secret_name, dns1123_subdomain_errors(tls.secret_name))
    if spec.ingress_class_name is not None:
        e.messages("spec.ingressClassName", spec.ingress_class_name,
                   dns1123_subdomain_errors(spec.ingress_class_name))


def domain_prefixed_path_errors(value: str) -> list[tuple[str, str]]:
    """``IsDomainPrefixedPath``: ``(bad value, why)`` for ``acme.io/foo``-style names."""
    host, sep, rest = value.partition("/")
    if not sep or not host or not rest:
        return [(value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    out = [(host, m) for m in dns1123_subdomain_errors(host)]
    if not re.fullmatch(_HTTP_PATH_FMT, rest):
        out.append((rest, f"Invalid path (regex used for validation is '{_HTTP_PATH_FMT}')"))
    return out


def _ingress_class(e: Errors, obj: Any) -> None:
    spec = obj.spec
    controller = spec.controller if spec is not None else None
    if not controller:
        e.required("spec.controller")
    else:
        if len(controller) > _MAX_CONTROLLER:
            e.too_long("spec.controller", _MAX_CONTROLLER)
        for bad, why in domain_prefixed_path_errors(controller):
            e.invalid("spec.controller", bad, why)
    params = spec.parameters if spec is not None else None
    if params is None:
        return
    p = "spec.parameters"
    _typed_reference(e, p, params)
    if params.scope not in PARAMETER_SCOPES:
        return e.unsupported(f"{p}.scope", params.scope, PARAMETER_SCOPES)
    if params.scope == SCOPE_NAMESPACE:
        if params.namespace is None:
            e.required(f"{p}.namespace", "`parameters.scope` is set to 'Namespace'")
        else:
            e.messages(f"{p}.namespace", params.namespace, dns1123_label_errors(params.namespace))
    elif params.scope == SCOPE_CLUSTER and params.namespace is not None:
        e.forbidden(f"{p}.namespace", "`parameters.scope` is set to 'Cluster'")


def _ingress_class_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    old_c = (old.get("spec") or {}).get("controller")
    new_c = new.spec.controller if new.spec is not None else None
    if old_c != new_c:
        e.invalid("spec.controller", new_c, _IMMUTABLE)


_KIND_CHECKS.update({"Ingress": _ingress, "IngressClass": _ingress_class})
_UPDATE_CHECKS["IngressClass"] = _ingress_class_update
