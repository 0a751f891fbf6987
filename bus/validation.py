"""Object validation as the Kubernetes apiserver does it: decode (types, defaults) then per-kind semantic checks.

``validate_object`` returns the decoded model and *all* problems as ``Cause``s with Kubernetes field paths and
messages (``spec.containers[0].image: Required value``); it never raises. ``validate_update`` adds the checks that
compare an update with the stored object (immutable fields).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from typing import Any, Callable, Iterable

from bus import cron
from bus.errors import Cause
from bus.labels import (
    dns1123_label_errors, dns1123_subdomain_errors, is_dns1123_label, is_dns1123_subdomain, qualified_name_errors,
    selector_from_label_selector, selector_from_map, validate_label_key, validate_label_value,
)
from bus.models import model_for_kind, to_dict
from bus.models.batch import JobSpec
from bus.models.core import (
    PROBE_HANDLERS, Container, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, Probe, SecurityContext, Volume,
)
from bus.models.decode import decode, fmt_value
from bus.models.discovery import ADDRESS_TYPES
from bus.models.meta import ObjectMeta, OwnerReference
from bus.quantity import parse_quantity
from bus.resources import Resource

__all__ = [
    "validate_object", "validate_update", "validate_name", "is_dns1123_label", "is_dns1123_subdomain",
    "dns1123_label_errors", "dns1123_subdomain_errors", "dns1035_label_errors", "security_warnings",
]

_DNS1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(_DNS1035)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    f"character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    f"is '{_DNS1035}')"
)
_ENV_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_ENV_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must "
    "not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation "
    "is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)
_CONFIG_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_PERCENT_RE = re.compile(r"[0-9]+%")
_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used "
    "for validation is '[0-9]+%')"
)
_PORT_RANGE = "must be between 1 and 65535, inclusive"
_IMMUTABLE = "field is immutable"
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
_MAX_ANNOTATIONS = 256 * 1024
_MAX_SECRET = 1024 * 1024


def dns1035_label_errors(v: str) -> list[str]:
    errs = ["must be no more than 63 characters"] if len(v) > 63 else []
    if len(v) > 253 or not _DNS1035_RE.fullmatch(v):
        errs.append(_DNS1035_MSG)
    return errs


_NAME_FUNCS: dict[str, Callable[[str], list[str]]] = {"Namespace": dns1123_label_errors, "Service": dns1035_label_errors}


def validate_name(kind: str, name: str) -> list[str]:
    """Why ``name`` is not a valid name for ``kind`` (DNS-1123 subdomain; label for Namespace, DNS-1035 for Service)."""
    if not isinstance(name, str):
        return ["must be a string"]
    return _NAME_FUNCS.get(kind, dns1123_subdomain_errors)(name)


class Errors:
    """Collects causes; one method per Kubernetes ``field.Error`` type."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def required(self, path: str, detail: str = "") -> None:
        self.causes.append(Cause(path, f"Required value: {detail}" if detail else "Required value",
                                 "FieldValueRequired"))

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.causes.append(Cause(path, f"Invalid value: {fmt_value(value)}: {detail}", "FieldValueInvalid"))

    def unsupported(self, path: str, value: Any, supported: Iterable[str]) -> None:
        vals = ", ".join(f'"{s}"' for s in supported)
        self.causes.append(Cause(path, f"Unsupported value: {fmt_value(value)}: supported values: {vals}",
                                 "FieldValueNotSupported"))

    def duplicate(self, path: str, value: Any) -> None:
        self.causes.append(Cause(path, f"Duplicate value: {fmt_value(value)}", "FieldValueDuplicate"))

    def unique(self, path: str, value: Any, seen: set) -> None:
        """A Duplicate value when ``value`` is already in ``seen``; then it is."""
        if value in seen:
            self.duplicate(path, value)
        seen.add(value)

    def not_found(self, path: str, value: Any) -> None:
        self.causes.append(Cause(path, f"Not found: {fmt_value(value)}", "FieldValueNotFound"))

    def forbidden(self, path: str, detail: str) -> None:
        self.causes.append(Cause(path, f"Forbidden: {detail}", "FieldValueForbidden"))

    def too_long(self, path: str, limit: int) -> None:
        self.causes.append(Cause(path, f"Too long: must have at most {limit} bytes", "FieldValueTooLong"))

    # --- shared small checks ---

    def one_of(self, path: str, value: Any, supported: tuple[str, ...]) -> None:
        if value is not None and value not in supported:
            self.unsupported(path, value, supported)

    def non_negative(self, path: str, value: int | None) -> None:
        if value is not None and value < 0:
            self.invalid(path, value, "must be greater than or equal to 0")

    def at_least(self, path: str, value: int | None, low: int) -> None:
        if value is not None and value < low:
            self.invalid(path, value, f"must be greater than or equal to {low}")

    def messages(self, path: str, value: Any, msgs: Iterable[str]) -> None:
        for m in msgs:
            self.invalid(path, value, m)

    def port(self, path: str, value: int | None, required: bool = True) -> None:
        if value is None:
            if required:
                self.required(path)
        elif not 1 <= value <= 65535:
            self.invalid(path, value, _PORT_RANGE)

    def port_name(self, path: str, name: str) -> None:
        self.messages(path, name, iana_svc_name_errors(name))

    def int_or_port_name(self, path: str, value: int | str | None) -> None:
        if isinstance(value, str):
            self.port_name(path, value)
        elif value is not None:
            self.port(path, value)

    def label_map(self, path: str, labels: dict[str, str] | None) -> None:
        for k, v in (labels or {}).items():
            if err := validate_label_key(k):
                self.invalid(path, k, err)
            if err := validate_label_value(v):
                self.invalid(path, v, err)


_IANA_OK = re.compile(r"(?!.*--)(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def iana_svc_name_errors(name: str) -> list[str]:
    if len(name) <= 15 and _IANA_OK.fullmatch(name):
        return []
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


# --- metadata ---------------------------------------------------------------------------------------------------------


def _meta(e: Errors, meta: ObjectMeta | None, res: Resource, name_optional: bool, path: str = "metadata") -> None:
    meta = meta or ObjectMeta()
    if meta.name:
        e.messages(f"{path}.name", meta.name, validate_name(res.kind, meta.name))
    elif meta.generate_name:
        masked = meta.generate_name[:-1] + "a" if meta.generate_name.endswith("-") else meta.generate_name
        e.messages(f"{path}.generateName", meta.generate_name, validate_name(res.kind, masked))
    elif not name_optional:
        e.required(f"{path}.name", "name or generateName is required")
    if meta.namespace:
        if res.namespaced:
            e.messages(f"{path}.namespace", meta.namespace, dns1123_label_errors(meta.namespace))
        else:
            e.forbidden(f"{path}.namespace", "not allowed on this type")
    e.label_map(f"{path}.labels", meta.labels)
    _annotations(e, f"{path}.annotations", meta.annotations)
    e.non_negative(f"{path}.generation", meta.generation)
    for i, ref in enumerate(meta.owner_references or ()):
        for alias, field in _OWNER_REQUIRED:
            if not getattr(ref, field):
                e.required(f"{path}.ownerReferences[{i}].{alias}")
    for i, f in enumerate(meta.finalizers or ()):
        e.messages(f"{path}.finalizers[{i}]", f, qualified_name_errors(f))


def _annotations(e: Errors, path: str, annotations: dict[str, str] | None) -> None:
    if not annotations:
        return
    total = 0
    for k, v in annotations.items():
        total += len(k) + len(v)
        if err := validate_label_key(k.lower()):
            e.invalid(path, k, err)
    if total > _MAX_ANNOTATIONS:
        e.too_long(path, _MAX_ANNOTATIONS)


# --- pods -------------------------------------------------------------------------------------------------------------


def _aliases(cls: Any, fields: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple((cls.model_fields[f].alias or f, f) for f in fields)


_PROBE_HANDLERS = _aliases(Probe, PROBE_HANDLERS)
_PROBE_NUMBERS = _aliases(Probe, ("initial_delay_seconds", "timeout_seconds", "period_seconds",
                                  "success_threshold", "failure_threshold"))
_OWNER_REQUIRED = _aliases(OwnerReference, ("api_version", "kind", "name", "uid"))
_JOB_COUNTS = _aliases(JobSpec, ("parallelism", "completions", "backoff_limit", "ttl_seconds_after_finished"))


def _probe(e: Errors, path: str, probe: Any, liveness_like: bool) -> None:
    if probe is None:
        return
    handlers = [alias for alias, h in _PROBE_HANDLERS if getattr(probe, h) is not None]
    if not handlers:
        e.required(path, "must specify a handler type")
    for h in handlers[1:]:
        e.forbidden(f"{path}.{h}", "may not specify more than 1 handler type")
    if probe.http_get is not None:
        e.int_or_port_name(f"{path}.httpGet.port", probe.http_get.port)
        if probe.http_get.port is None:
            e.required(f"{path}.httpGet.port")
        e.one_of(f"{path}.httpGet.scheme", probe.http_get.scheme, ("HTTP", "HTTPS"))
    if probe.tcp_socket is not None:
        e.int_or_port_name(f"{path}.tcpSocket.port", probe.tcp_socket.port)
        if probe.tcp_socket.port is None:
            e.required(f"{path}.tcpSocket.port")
    if probe.exec is not None and not probe.exec.command:
        e.required(f"{path}.exec.command")
    if probe.grpc is not None:
        e.port(f"{path}.grpc.port", probe.grpc.port)
    for alias, field in _PROBE_NUMBERS:
        e.non_negative(f"{path}.{alias}", getattr(probe, field))
    if liveness_like and probe.success_threshold not in (None, 1):
        e.invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1")


def _env(e: Errors, path: str, c: Container) -> None:
    for i, var in enumerate(c.env or ()):
        p = f"{path}.env[{i}]"
        if not var.name:
            e.required(f"{p}.name")
        elif not _ENV_RE.fullmatch(var.name):
            e.invalid(f"{p}.name", var.name, _ENV_MSG)
        src = var.value_from
        if src is None:
            continue
        n = sum(x is not None for x in (src.field_ref, src.resource_field_ref, src.config_map_key_ref,
                                        src.secret_key_ref))
        if n != 1:
            e.invalid(f"{p}.valueFrom", "", "may not have more than one field specified at a time" if n else
                      "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`")
        if var.value:
            e.invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty")
        if src.field_ref is not None and not src.field_ref.field_path:
            e.required(f"{p}.valueFrom.fieldRef.fieldPath")
        if src.resource_field_ref is not None and not src.resource_field_ref.resource:
            e.required(f"{p}.valueFrom.resourceFieldRef.resource")
        for name, ref in (("configMapKeyRef", src.config_map_key_ref), ("secretKeyRef", src.secret_key_ref)):
            if ref is not None and not ref.key:
                e.required(f"{p}.valueFrom.{name}.key")


def _resources(e: Errors, path: str, c: Container) -> None:
    r = c.resources
    if r is None:
        return
    limits = r.limits or {}
    for kind, values in (("limits", limits), ("requests", r.requests or {})):
        for k, v in values.items():
            if v < 0 if not isinstance(v, str) else v.startswith("-"):
                e.invalid(f"{path}.resources.{kind}[{k}]", v, "must be greater than or equal to 0")
            elif kind == "requests" and k in limits and parse_quantity(v) > parse_quantity(limits[k]):
                e.invalid(f"{path}.resources.requests[{k}]", v, f"must be less than or equal to {k} limit of {limits[k]}")


def _container(e: Errors, path: str, c: Container, volumes: set[str], port_names: set[str]) -> None:
    if not c.name:
        e.required(f"{path}.name")
    else:
        e.messages(f"{path}.name", c.name, dns1123_label_errors(c.name))
    if not c.image or not c.image.strip():
        e.required(f"{path}.image")
    for i, p in enumerate(c.ports or ()):
        pp = f"{path}.ports[{i}]"
        if p.name:
            e.port_name(f"{pp}.name", p.name)
            e.unique(f"{pp}.name", p.name, port_names)
        e.port(f"{pp}.containerPort", p.container_port)
        if p.host_port:
            e.port(f"{pp}.hostPort", p.host_port)
        e.one_of(f"{pp}.protocol", p.protocol, _PROTOCOLS)
    _env(e, path, c)
    _resources(e, path, c)
    mount_paths: set[str] = set()
    for i, m in enumerate(c.volume_mounts or ()):
        mp = f"{path}.volumeMounts[{i}]"
        if not m.name:
            e.required(f"{mp}.name")
        elif m.name not in volumes:
            e.not_found(f"{mp}.name", m.name)
        if m.sub_path:
            _local_path(e, f"{mp}.subPath", m.sub_path)
        if m.sub_path and m.sub_path_expr:
            e.invalid(f"{mp}.subPathExpr", m.sub_path_expr, "subPathExpr and subPath are mutually exclusive")
        if not m.mount_path:
            e.required(f"{mp}.mountPath")
        elif m.mount_path in mount_paths:
            e.invalid(f"{mp}.mountPath", m.mount_path, "must be unique")
        else:
            mount_paths.add(m.mount_path)
    _probe(e, f"{path}.livenessProbe", c.liveness_probe, True)
    _probe(e, f"{path}.readinessProbe", c.readiness_probe, False)
    _probe(e, f"{path}.startupProbe", c.startup_probe, True)
    e.one_of(f"{path}.imagePullPolicy", c.image_pull_policy, ("Always", "IfNotPresent", "Never"))
    e.one_of(f"{path}.terminationMessagePolicy", c.termination_message_policy, ("File", "FallbackToLogsOnError"))
    _security_context(e, f"{path}.securityContext", c.security_context)


def _local_path(e: Errors, path: str, value: str, non_reserved: bool = False) -> None:
    """Kubernetes' validateLocalDescendingPath (and with ``non_reserved`` validateLocalNonReservedPath): a path
    inside a volume is relative and never steps out of it."""
    if value.startswith("/"):
        e.invalid(path, value, "must be a relative path")
    if ".." in value.split("/"):
        e.invalid(path, value, "must not contain '..'")
    if non_reserved and len(value) > 1 and value.startswith(".."):
        e.invalid(path, value, "must not start with '..'")


def _key_to_paths(e: Errors, path: str, items: Any, need_key: bool = True) -> None:
    """``items`` of a secret, configMap or downwardAPI source: each a non-reserved relative path."""
    if not isinstance(items, list):
        return
    for i, it in enumerate(items):
        ip = f"{path}[{i}]"
        get = (lambda k, it=it: it.get(k)) if isinstance(it, dict) else (lambda k, it=it: getattr(it, k, None))
        if need_key and not get("key"):
            e.required(f"{ip}.key")
        p = get("path")
        if not p:
            e.required(f"{ip}.path")
        elif isinstance(p, str):
            _local_path(e, f"{ip}.path", p, non_reserved=True)
        mode = get("mode")
        if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o777):
            e.invalid(f"{ip}.mode", mode, "must be a number between 0 and 0777 (octal), both inclusive")


def _volume_paths(e: Errors, vp: str, v: Any) -> None:
    """Every path a volume source names inside the volume (items, projections, the token's path)."""
    if v.secret is not None:
        _key_to_paths(e, f"{vp}.secret.items", v.secret.items)
    if v.config_map is not None:
        _key_to_paths(e, f"{vp}.configMap.items", v.config_map.items)
    if isinstance(v.downward_api, dict):
        _key_to_paths(e, f"{vp}.downwardAPI.items", v.downward_api.get("items"), need_key=False)
    if isinstance(v.projected, dict):
        for j, src in enumerate(v.projected.get("sources") or []):
            if not isinstance(src, dict):
                continue
            sp = f"{vp}.projected.sources[{j}]"
            for kind in ("secret", "configMap"):
                if isinstance(src.get(kind), dict):
                    _key_to_paths(e, f"{sp}.{kind}.items", src[kind].get("items"))
            if isinstance(src.get("downwardAPI"), dict):
                _key_to_paths(e, f"{sp}.downwardAPI.items", src["downwardAPI"].get("items"), need_key=False)
            token = src.get("serviceAccountToken")
            if isinstance(token, dict):
                if not token.get("path"):
                    e.required(f"{sp}.serviceAccountToken.path")
                elif isinstance(token["path"], str):
                    _local_path(e, f"{sp}.serviceAccountToken.path", token["path"], non_reserved=True)


def _volumes(e: Errors, path: str, spec: PodSpec) -> set[str]:
    names: set[str] = set()
    for i, v in enumerate(spec.volumes or ()):
        vp = f"{path}.volumes[{i}]"
        if not v.name:
            e.required(f"{vp}.name")
        else:
            e.messages(f"{vp}.name", v.name, dns1123_label_errors(v.name))
            e.unique(f"{vp}.name", v.name, names)
        sources = v.sources()
        if not sources:
            e.required(vp, "must specify a volume type")
        for s in sources[1:]:
            e.forbidden(f"{vp}.{s}", "may not specify more than 1 volume type")
        for src, field, attr, value in (
            ("hostPath", "path", v.host_path, "path"), ("secret", "secretName", v.secret, "secret_name"),
            ("configMap", "name", v.config_map, "name"),
            ("persistentVolumeClaim", "claimName", v.persistent_volume_claim, "claim_name"),
        ):
            if attr is not None and not getattr(attr, value):
                e.required(f"{vp}.{src}.{field}")
        _volume_paths(e, vp, v)
    return names


def _tolerations(e: Errors, path: str, spec: PodSpec) -> None:
    for i, t in enumerate(spec.tolerations or ()):
        tp = f"{path}.tolerations[{i}]"
        if t.key:
            e.messages(f"{tp}.key", t.key, qualified_name_errors(t.key))
        elif t.operator != "Exists":
            e.invalid(f"{tp}.operator", t.operator, "operator must be Exists when `key` is empty, which means "
                      "\"match all values and all keys\"")
        e.one_of(f"{tp}.operator", t.operator, ("Equal", "Exists"))
        if t.operator == "Exists" and t.value:
            e.invalid(f"{tp}.operator", t.value, "value must be empty when `operator` is 'Exists'")
        e.one_of(f"{tp}.effect", t.effect or None, ("NoSchedule", "PreferNoSchedule", "NoExecute"))
        if t.toleration_seconds is not None and t.effect != "NoExecute":
            e.invalid(f"{tp}.effect", t.effect or "", "effect must be 'NoExecute' when `tolerationSeconds` is set")


def pod_spec(e: Errors, path: str, spec: PodSpec | None, restart_policies: tuple[str, ...] | None = None) -> None:
    if spec is None:
        e.required(path)
        return
    volumes = _volumes(e, path, spec)
    if not spec.containers:
        e.required(f"{path}.containers")
    names: set[str] = set()
    port_names: set[str] = set()
    for field, containers in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, c in enumerate(containers or ()):
            _container(e, f"{path}.{field}[{i}]", c, volumes, port_names)
            if c.name:
                e.unique(f"{path}.{field}[{i}].name", c.name, names)
    supported = ("Always", "OnFailure", "Never")
    if spec.restart_policy not in supported:
        e.unsupported(f"{path}.restartPolicy", spec.restart_policy, supported)
    elif restart_policies and spec.restart_policy not in restart_policies:
        e.unsupported(f"{path}.restartPolicy", spec.restart_policy, restart_policies)
    e.one_of(f"{path}.dnsPolicy", spec.dns_policy, ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"))
    e.non_negative(f"{path}.terminationGracePeriodSeconds", spec.termination_grace_period_seconds)
    e.at_least(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds, 1)
    e.label_map(f"{path}.nodeSelector", spec.node_selector)
    _tolerations(e, path, spec)
    _pod_security_context(e, path, spec)
    _host_ports(e, path, spec)
    for field, value, check in (("serviceAccountName", spec.service_account_name, dns1123_subdomain_errors),
                                ("nodeName", spec.node_name, dns1123_subdomain_errors),
                                ("hostname", spec.hostname, dns1123_label_errors),
                                ("subdomain", spec.subdomain, dns1123_label_errors)):
        if value:
            e.messages(f"{path}.{field}", value, check(value))


# --- securityContext -------------------------------------------------------------------------------------------
# Kubernetes' ValidatePodSecurityContext / ValidateSecurityContext, plus what k8n refuses because ignoring it would
# weaken isolation (Localhost seccomp profiles, Windows hostProcess, user namespaces). What k8n stores but does not
# apply without weakening anything is answered with a warning (``security_warnings``).

_ID_RANGE = "must be between 0 and 2147483647, inclusive"
_SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
_SYSCTL_SEGMENT = r"[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL_FMT = rf"({_SYSCTL_SEGMENT}[\./])*{_SYSCTL_SEGMENT}"
_SYSCTL_RE = re.compile(_SYSCTL_FMT)
# Linux capabilities (capability(7)) in the order of their numbers; Kubernetes passes the names on, and the runtime
# refuses others at create time.
CAPABILITY_BITS = tuple(
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE "
    "NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT "
    "SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE".split())
LINUX_CAPABILITIES = frozenset(CAPABILITY_BITS)


def capability_name(name: str) -> str | None:
    """``net_admin``, ``CAP_NET_ADMIN`` -> ``NET_ADMIN``; ``ALL`` stays; None for a name that is no capability."""
    n = name.upper()
    n = n[4:] if n.startswith("CAP_") else n
    return n if n in LINUX_CAPABILITIES or n == "ALL" else None


def sysctl_dots(name: str) -> str:
    """``net/ipv4/conf/eth0.100/forwarding`` -> ``net.ipv4.conf.eth0/100.forwarding`` (component-helpers'
    ConvertSysctlVariableToDotsSeparator); a name written with dots is unchanged."""
    sep = next((ch for ch in name if ch in "./"), ".")
    return name if sep == "." else name.translate(str.maketrans("./", "/."))


def sysctl_namespace(name: str) -> str | None:
    """``net`` or ``ipc`` for a sysctl the kernel namespaces that way (component-helpers' NamespacedBy), else None."""
    name = sysctl_dots(name)
    if name.startswith("net."):
        return "net"
    if name == "kernel.sem" or name.startswith(("kernel.shm", "kernel.msg", "fs.mqueue.")):
        return "ipc"
    return None


def _ids(e: Errors, path: str, sc: Any, fields: tuple[str, ...]) -> None:
    for f in fields:
        v = getattr(sc, f)
        if v is not None and not 0 <= v <= 2147483647:
            e.invalid(f"{path}.{_alias(type(sc), f)}", v, _ID_RANGE)


def _alias(cls: Any, name: str) -> str:
    return cls.model_fields[name].alias or name


def _profile(e: Errors, path: str, p: Any, apparmor: bool) -> None:
    """seccompProfile / appArmorProfile: the type, and localhostProfile only (and always) with Localhost."""
    if p is None:
        return
    if not p.type:
        e.required(f"{path}.type", f"type is required when {'appArmorProfile' if apparmor else 'seccompProfile'} "
                                   "is set")
    elif p.type not in _SECCOMP_TYPES:
        e.unsupported(f"{path}.type", p.type, _SECCOMP_TYPES)
    if p.type == "Localhost":
        if p.localhost_profile is None or (apparmor and not p.localhost_profile.strip()):
            e.required(f"{path}.localhostProfile", "must be set when " +
                       ("AppArmor type is Localhost" if apparmor else "seccomp type is Localhost"))
        elif apparmor:
            if len(p.localhost_profile) > 4095:
                e.too_long(f"{path}.localhostProfile", 4095)
        else:
            _local_path(e, f"{path}.localhostProfile", p.localhost_profile)
            e.forbidden(f"{path}.type", "k8n cannot apply Localhost seccomp profiles (its nodes load no profile "
                                        "files); use RuntimeDefault, or Unconfined")
    elif p.localhost_profile is not None:
        e.invalid(f"{path}.localhostProfile", p.localhost_profile,
                  f"can only be set when {'AppArmor' if apparmor else 'seccomp'} type is Localhost")


def _windows(e: Errors, path: str, w: Any) -> None:
    if w is not None and w.host_process:
        e.forbidden(f"{path}.hostProcess", "k8n runs Linux containers only: Windows hostProcess containers are not "
                                           "supported")


def _security_context(e: Errors, path: str, sc: SecurityContext | None) -> None:
    if sc is None:
        return
    _ids(e, path, sc, ("run_as_user", "run_as_group"))
    if sc.proc_mount is not None:
        e.one_of(f"{path}.procMount", sc.proc_mount, ("Default", "Unmasked"))
        if sc.proc_mount == "Unmasked":  # needs a user namespace (hostUsers: false), which k8n has not
            e.invalid(f"{path}.procMount", sc.proc_mount, "`hostUsers` must be false to use `Unmasked`")
    _profile(e, f"{path}.seccompProfile", sc.seccomp_profile, False)
    _profile(e, f"{path}.appArmorProfile", sc.app_armor_profile, True)
    caps = sc.capabilities
    for field in ("add", "drop"):
        for i, name in enumerate(getattr(caps, field) or () if caps is not None else ()):
            if capability_name(name) is None:
                e.invalid(f"{path}.capabilities.{field}[{i}]", name,
                          "must be a Linux capability (e.g. 'NET_ADMIN' or 'CAP_NET_ADMIN') or 'ALL'")
    if sc.allow_privilege_escalation is False:
        if sc.privileged:
            e.invalid(path, to_dict(sc), "cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
        for name in (caps.add or ()) if caps is not None else ():
            if name == "CAP_SYS_ADMIN":
                e.invalid(path, to_dict(sc), "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                                             "CAP_SYS_ADMIN")
    _windows(e, f"{path}.windowsOptions", sc.windows_options)


def _pod_security_context(e: Errors, spec_path: str, spec: PodSpec) -> None:
    sc, path = spec.security_context, f"{spec_path}.securityContext"
    if spec.host_users is False:
        e.forbidden(f"{spec_path}.hostUsers", "k8n cannot run pods in a user namespace: leave hostUsers unset or "
                                              "true")
    if sc is None:
        return
    _ids(e, path, sc, ("fs_group", "run_as_user", "run_as_group"))
    for i, gid in enumerate(sc.supplemental_groups or ()):
        if not 0 <= gid <= 2147483647:
            e.invalid(f"{path}.supplementalGroups[{i}]", gid, _ID_RANGE)
    if spec.share_process_namespace and spec.host_pid:
        e.invalid(f"{path}.shareProcessNamespace", True, "ShareProcessNamespace and HostPID cannot both be enabled")
    names: set[str] = set()
    for i, s in enumerate(sc.sysctls or ()):
        sp = f"{path}.sysctls[{i}].name"
        if not s.name:
            e.required(sp)
            continue
        if len(s.name) > 253 or not _SYSCTL_RE.fullmatch(s.name):
            e.invalid(sp, s.name, f"must have at most 253 characters and match regex {_SYSCTL_FMT}")
        elif s.name in names:
            e.duplicate(sp, s.name)
        names.add(s.name)
        ns = sysctl_namespace(s.name)
        if ns == "net" and spec.host_network:
            e.invalid(sp, s.name, "may not be specified when 'hostNetwork' is true")
        elif ns == "ipc" and spec.host_ipc:
            e.invalid(sp, s.name, "may not be specified when 'hostIPC' is true")
    e.one_of(f"{path}.fsGroupChangePolicy", sc.fs_group_change_policy, ("Always", "OnRootMismatch"))
    e.one_of(f"{path}.supplementalGroupsPolicy", sc.supplemental_groups_policy, ("Merge", "Strict"))
    if sc.supplemental_groups_policy == "Strict":
        e.forbidden(f"{path}.supplementalGroupsPolicy", "k8n cannot apply Strict: Docker always adds the groups the "
                                                        "image's /etc/group gives the user; use Merge")
    e.one_of(f"{path}.seLinuxChangePolicy", sc.se_linux_change_policy, ("MountOption", "Recursive"))
    _profile(e, f"{path}.seccompProfile", sc.seccomp_profile, False)
    _profile(e, f"{path}.appArmorProfile", sc.app_armor_profile, True)
    _windows(e, f"{path}.windowsOptions", sc.windows_options)


def _host_ports(e: Errors, path: str, spec: PodSpec) -> None:
    """checkHostPortConflicts (per hostIP, hostPort and protocol, across the app containers; each init container
    alone) and validateHostNetwork (with hostNetwork, hostPort is the containerPort)."""
    groups = [("containers", list(enumerate(spec.containers or ())))]
    groups += [("initContainers", [(i, c)]) for i, c in enumerate(spec.init_containers or ())]
    for field, containers in groups:
        seen: set[str] = set()
        for i, c in containers:
            for j, p in enumerate(c.ports or ()):
                if spec.host_network and p.host_port != p.container_port:
                    e.invalid(f"{path}.{field}[{i}].ports[{j}].containerPort", p.container_port,
                              "must match `hostPort` when `hostNetwork` is true")
                if p.host_ip:
                    _ip(e, f"{path}.{field}[{i}].ports[{j}].hostIP", p.host_ip)
                if p.host_port:
                    key = f"{p.protocol or ''}/{p.host_ip or ''}/{p.host_port}"
                    if key in seen:
                        e.duplicate(f"{path}.{field}[{i}].ports[{j}].hostPort", key)
                    seen.add(key)


def _unenforced(path: str, sc: Any, out: list[str]) -> None:
    if sc is None:
        return
    if sc.se_linux_options is not None:
        out.append(f"{path}.seLinuxOptions: k8n does not apply SELinux labels; the field is stored and ignored")
    aa = sc.app_armor_profile
    if aa is not None and aa.type == "Localhost":
        out.append(f"{path}.appArmorProfile: k8n does not load AppArmor profiles (Docker applies its default "
                   "profile where the host has AppArmor); the field is stored and ignored")
    w = sc.windows_options
    if w is not None and (w.gmsa_credential_spec_name or w.gmsa_credential_spec or w.run_as_user_name):
        out.append(f"{path}.windowsOptions: k8n runs Linux containers only; the field is stored and ignored")


def _pod_specs(model: Any) -> list[tuple[str, PodSpec]]:
    """Every pod spec an object carries, with its path (a Pod's ``spec``, a template's ``spec.template.spec``,
    a CronJob-like ``spec.jobTemplate.spec.template.spec``)."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, PodSpec):
        return [("spec", spec)]
    tmpl = getattr(spec, "template", None)
    if isinstance(getattr(tmpl, "spec", None), PodSpec):
        return [("spec.template.spec", tmpl.spec)]
    return []


def security_warnings(model: Any) -> list[str]:
    """Warnings for securityContext fields k8n stores but does not apply, where ignoring them weakens nothing
    (as the apiserver's ``GetWarningsForPod`` answers): SELinux options, Localhost AppArmor profiles, Windows
    options."""
    out: list[str] = []
    for path, spec in _pod_specs(model):
        _unenforced(f"{path}.securityContext", spec.security_context, out)
        for field, containers in (("initContainers", spec.init_containers), ("containers", spec.containers)):
            for i, c in enumerate(containers or ()):
                _unenforced(f"{path}.{field}[{i}].securityContext", c.security_context, out)
    return out


def _template(e: Errors, path: str, tmpl: PodTemplateSpec | None, policies: tuple[str, ...]) -> None:
    if tmpl is None:
        e.required(path)
        return
    if tmpl.metadata is not None:
        e.label_map(f"{path}.metadata.labels", tmpl.metadata.labels)
        _annotations(e, f"{path}.metadata.annotations", tmpl.metadata.annotations)
    pod_spec(e, f"{path}.spec", tmpl.spec, policies)


def _template_labels(tmpl: PodTemplateSpec | None) -> dict[str, str] | None:
    return tmpl.metadata.labels if tmpl is not None and tmpl.metadata is not None else None


def _selector_matches(e: Errors, kind: str, spec: Any, required: bool) -> None:
    """apps/v1 and Job selectors: present (if required), non-empty, valid, and matching the template's labels."""
    sel = spec.selector
    if sel is None:
        if required:
            e.required("spec.selector")
        return
    if not sel.match_labels and not sel.match_expressions:
        e.invalid("spec.selector", {}, f"empty selector is invalid for {kind.lower()}")
        return
    for i, req in enumerate(sel.match_expressions or ()):
        p = f"spec.selector.matchExpressions[{i}]"
        e.one_of(f"{p}.operator", req.operator, ("In", "NotIn", "Exists", "DoesNotExist"))
        if req.operator in ("In", "NotIn") and not req.values:
            e.required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        elif req.operator in ("Exists", "DoesNotExist") and req.values:
            e.forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
    e.label_map("spec.selector.matchLabels", sel.match_labels)
    try:
        selector = selector_from_label_selector(sel)
    except ValueError as exc:
        e.invalid("spec.selector", to_dict(sel), str(exc))
        return
    labels = _template_labels(spec.template)
    if spec.template is not None and not selector.matches(labels):
        e.invalid("spec.template.metadata.labels", labels or {}, "`selector` does not match template `labels`")


def _int_or_percent(e: Errors, path: str, value: int | str | None) -> int | None:
    """Validate an int-or-percent; return its number (percent or count) or None."""
    if value is None:
        return None
    if isinstance(value, str):
        if not _PERCENT_RE.fullmatch(value):
            e.invalid(path, value, _PERCENT_MSG)
            return None
        n = int(value[:-1])
    else:
        n = value
    if n < 0:
        e.invalid(path, value, "must be greater than or equal to 0")
    return n


def _rolling(e: Errors, path: str, max_surge: Any, max_unavailable: Any) -> None:
    surge = _int_or_percent(e, f"{path}.maxSurge", max_surge)
    unavailable = _int_or_percent(e, f"{path}.maxUnavailable", max_unavailable)
    if isinstance(max_unavailable, str) and unavailable is not None and unavailable > 100:
        e.invalid(f"{path}.maxUnavailable", max_unavailable, "must not be greater than 100%")
    if surge == 0 and unavailable == 0:
        e.invalid(f"{path}.maxUnavailable", max_unavailable, "may not be 0 when `maxSurge` is 0")


# --- per kind -----------------------------------------------------------------------------------------------------------


def _pod(e: Errors, obj: Any) -> None:
    pod_spec(e, "spec", obj.spec)


def _deployment(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    e.non_negative("spec.replicas", spec.replicas)
    _selector_matches(e, "Deployment", spec, True)
    _template(e, "spec.template", spec.template, ("Always",))
    e.non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    e.non_negative("spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.progress_deadline_seconds is not None and spec.progress_deadline_seconds <= (spec.min_ready_seconds or 0):
        e.invalid("spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                  "must be greater than minReadySeconds")
    st = spec.strategy
    if st is not None:
        e.one_of("spec.strategy.type", st.type, ("Recreate", "RollingUpdate"))
        if st.type == "Recreate" and st.rolling_update is not None:
            e.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
        elif st.rolling_update is not None:
            _rolling(e, "spec.strategy.rollingUpdate", st.rolling_update.max_surge, st.rolling_update.max_unavailable)


def _replicaset(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    e.non_negative("spec.replicas", spec.replicas)
    e.non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    _selector_matches(e, "ReplicaSet", spec, True)
    _template(e, "spec.template", spec.template, ("Always",))


def _daemonset(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    _selector_matches(e, "DaemonSet", spec, True)
    _template(e, "spec.template", spec.template, ("Always",))
    e.non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    e.non_negative("spec.revisionHistoryLimit", spec.revision_history_limit)
    st = spec.update_strategy
    if st is not None:
        e.one_of("spec.updateStrategy.type", st.type, ("RollingUpdate", "OnDelete"))
        if st.rolling_update is not None:
            ru = st.rolling_update
            _rolling(e, "spec.updateStrategy.rollingUpdate", ru.max_surge, ru.max_unavailable)


def _statefulset(e: Errors, obj: Any) -> None:
    """ValidateStatefulSetSpec."""
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    if not spec.pod_management_policy:
        e.required("spec.podManagementPolicy")
    elif spec.pod_management_policy not in ("OrderedReady", "Parallel"):
        e.invalid("spec.podManagementPolicy", spec.pod_management_policy, "must be 'OrderedReady' or 'Parallel'")
    st = spec.update_strategy
    if st is not None:
        if not st.type:
            e.required("spec.updateStrategy")
        elif st.type == "OnDelete" and st.rolling_update is not None:
            e.invalid("spec.updateStrategy.rollingUpdate", to_dict(st.rolling_update),
                      "only allowed for updateStrategy 'RollingUpdate'")
        elif st.type not in ("RollingUpdate", "OnDelete"):
            e.invalid("spec.updateStrategy", st.type, "must be 'RollingUpdate' or 'OnDelete'")
        if st.rolling_update is not None:
            e.non_negative("spec.updateStrategy.rollingUpdate.partition", st.rolling_update.partition)
            if st.rolling_update.max_unavailable is not None:
                n = _int_or_percent(e, "spec.updateStrategy.rollingUpdate.maxUnavailable",
                                    st.rolling_update.max_unavailable)
                if n == 0:
                    e.invalid("spec.updateStrategy.rollingUpdate.maxUnavailable", st.rolling_update.max_unavailable,
                              "must be greater than 0")
    policy = spec.persistent_volume_claim_retention_policy
    if policy is not None:
        p = "spec.persistentVolumeClaimRetentionPolicy"
        e.one_of(f"{p}.whenDeleted", policy.when_deleted, ("Retain", "Delete"))
        e.one_of(f"{p}.whenScaled", policy.when_scaled, ("Retain", "Delete"))
    e.non_negative("spec.replicas", spec.replicas)
    e.non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    if spec.ordinals is not None:
        e.non_negative("spec.ordinals.start", spec.ordinals.start)
    _selector_matches(e, "StatefulSet", spec, True)
    _template(e, "spec.template", _with_claim_volumes(spec.template, spec.volume_claim_templates), ("Always",))
    if spec.template is not None and spec.template.spec is not None \
            and spec.template.spec.active_deadline_seconds is not None:
        e.forbidden("spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in StatefulSet is not Supported")
    for i, claim in enumerate(spec.volume_claim_templates or ()):
        if claim.metadata is None or not claim.metadata.name:
            e.required(f"spec.volumeClaimTemplates[{i}].metadata.name")
        if claim.spec is None:
            e.required(f"spec.volumeClaimTemplates[{i}].spec")
        else:
            _claim_spec(e, f"spec.volumeClaimTemplates[{i}].spec", claim.spec)


def _with_claim_volumes(tmpl: PodTemplateSpec | None, claims: list[Any] | None) -> PodTemplateSpec | None:
    """The template as the pods get it: each volumeClaimTemplates entry is a volume their containers may mount."""
    names = [c.metadata.name for c in claims or () if c.metadata is not None and c.metadata.name]
    if tmpl is None or tmpl.spec is None or not names:
        return tmpl
    tmpl = tmpl.model_copy(deep=True)
    have = {v.name for v in tmpl.spec.volumes or ()}
    tmpl.spec.volumes = list(tmpl.spec.volumes or []) + [
        Volume(name=n, persistent_volume_claim=PersistentVolumeClaimVolumeSource(claim_name=n)) for n in names
        if n not in have]
    return tmpl


def _controller_revision(e: Errors, obj: Any) -> None:
    if obj.data is None:
        e.required("data", "data is mandatory")
    e.non_negative("revision", obj.revision)


def _rc(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    e.non_negative("spec.replicas", spec.replicas)
    e.non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    if not spec.selector:
        e.required("spec.selector")
    else:
        e.label_map("spec.selector", spec.selector)
        labels = _template_labels(spec.template)
        if spec.template is not None and not selector_from_map(spec.selector).matches(labels):
            e.invalid("spec.template.metadata.labels", labels or {}, "`selector` does not match template `labels`")
    _template(e, "spec.template", spec.template, ("Always",))


def _job(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    for alias, field in _JOB_COUNTS:
        e.non_negative(f"spec.{alias}", getattr(spec, field))
    e.at_least("spec.activeDeadlineSeconds", spec.active_deadline_seconds, 1)
    e.one_of("spec.completionMode", spec.completion_mode, ("NonIndexed", "Indexed"))
    if spec.completion_mode == "Indexed" and spec.completions is None:
        e.required("spec.completions", "when completion mode is Indexed")
    _selector_matches(e, "Job", spec, False)
    _template(e, "spec.template", spec.template, ("OnFailure", "Never"))


_METRIC_TYPES = ("Object", "Pods", "Resource", "ContainerResource", "External")


def _hpa(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    ref = spec.scale_target_ref
    for field in ("kind", "name"):
        if ref is None or not getattr(ref, field):
            e.required(f"spec.scaleTargetRef.{field}")
    e.at_least("spec.minReplicas", spec.min_replicas, 1)
    if spec.max_replicas is None:
        e.required("spec.maxReplicas")
    elif spec.max_replicas < 1:
        e.invalid("spec.maxReplicas", spec.max_replicas, "must be greater than 0")
    elif spec.min_replicas is not None and spec.max_replicas < spec.min_replicas:
        e.invalid("spec.maxReplicas", spec.max_replicas, "must be greater than or equal to `minReplicas`")
    for i, m in enumerate(spec.metrics or ()):
        p = f"spec.metrics[{i}]"
        if not m.type:
            e.required(f"{p}.type")
            continue
        e.one_of(f"{p}.type", m.type, _METRIC_TYPES)
        for kind, src, field in (("Resource", m.resource, "resource"),
                                 ("ContainerResource", m.container_resource, "containerResource")):
            if m.type != kind:
                continue
            if src is None:
                e.required(f"{p}.{field}", "must populate information for the given metric source")
                continue
            if not src.name:
                e.required(f"{p}.{field}.name")
            t = src.target
            if t is None:
                e.required(f"{p}.{field}.target")
                continue
            e.one_of(f"{p}.{field}.target.type", t.type, ("Utilization", "Value", "AverageValue"))
            if t.type == "Utilization" and t.average_utilization is None:
                e.required(f"{p}.{field}.target.averageUtilization")
            e.at_least(f"{p}.{field}.target.averageUtilization", t.average_utilization, 1)


_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_MAX_AFFINITY_TIMEOUT = 86400


def _service(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    e.one_of("spec.type", spec.type, _SERVICE_TYPES)
    stype = spec.type or "ClusterIP"
    headless = spec.cluster_ip == "None"
    if stype == "ExternalName":
        if not spec.external_name:
            e.required("spec.externalName")
        else:
            e.messages("spec.externalName", spec.external_name, dns1123_subdomain_errors(spec.external_name))
    elif not spec.ports and not headless:
        e.required("spec.ports")
    _service_ports(e, spec, stype)
    affinity = spec.session_affinity
    e.one_of("spec.sessionAffinity", affinity, ("ClientIP", "None"))
    cfg = spec.session_affinity_config
    if cfg and affinity != "ClientIP":
        e.forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
    elif isinstance(cfg, dict) and isinstance(cfg.get("clientIP"), dict) and "timeoutSeconds" in cfg["clientIP"]:
        t = cfg["clientIP"]["timeoutSeconds"]
        if not isinstance(t, int) or isinstance(t, bool) or not 0 < t <= _MAX_AFFINITY_TIMEOUT:
            e.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", t,
                      f"must be greater than 0 and less than {_MAX_AFFINITY_TIMEOUT}")
    e.one_of("spec.externalTrafficPolicy", spec.external_traffic_policy, ("Cluster", "Local"))
    e.one_of("spec.internalTrafficPolicy", spec.internal_traffic_policy, ("Cluster", "Local"))
    e.label_map("spec.selector", spec.selector)
    _service_ips(e, spec, stype)
    for i, ip in enumerate(spec.external_ips or ()):
        _ip(e, f"spec.externalIPs[{i}]", ip)


def _service_ports(e: Errors, spec: Any, stype: str) -> None:
    ports = spec.ports or ()
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        pp = f"spec.ports[{i}]"
        if not p.name:
            if len(ports) > 1:
                e.required(f"{pp}.name")
        else:
            e.messages(f"{pp}.name", p.name, dns1123_label_errors(p.name))
            e.unique(f"{pp}.name", p.name, names)
        e.port(f"{pp}.port", p.port)
        e.one_of(f"{pp}.protocol", p.protocol, _PROTOCOLS)
        if p.port is not None and (p.port, p.protocol) in seen:
            e.duplicate(pp, {"port": p.port, "protocol": p.protocol})
        seen.add((p.port, p.protocol))
        e.int_or_port_name(f"{pp}.targetPort", p.target_port)
        if p.node_port:
            e.port(f"{pp}.nodePort", p.node_port)
            if stype not in ("NodePort", "LoadBalancer"):
                e.forbidden(f"{pp}.nodePort", f"may not be used when `type` is '{stype}'")
            elif (p.node_port, p.protocol) in node_ports:
                e.duplicate(f"{pp}.nodePort", p.node_port)
            node_ports.add((p.node_port, p.protocol))


def _service_ips(e: Errors, spec: Any, stype: str) -> None:
    """clusterIP: "", "None" (headless) or an IPv4 address; clusterIPs agrees with it; single-stack IPv4."""
    ips = list(spec.cluster_ips or ())
    if stype == "ExternalName":
        if spec.cluster_ip or ips:
            e.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
        return
    if spec.cluster_ip and ips and ips[0] != spec.cluster_ip:
        e.invalid("spec.clusterIPs[0]", ips[0], "must be same as clusterIP")
    if len(ips) > 1:
        e.invalid("spec.clusterIPs", ips, "this cluster is single-stack IPv4: at most one clusterIP may be given")
    ip = spec.cluster_ip or (ips[0] if ips else "")
    if ip == "None":
        if stype in ("NodePort", "LoadBalancer"):
            e.invalid("spec.clusterIPs[0]", ip, f"may not be set to 'None' for {stype} services")
    elif ip:
        try:
            if not isinstance(ipaddress.ip_address(ip), ipaddress.IPv4Address):
                e.invalid("spec.clusterIPs[0]", ip, "expected an IPv4 value as indicated by `ipFamilies[0]`")
        except ValueError:
            e.invalid("spec.clusterIPs[0]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
    for i, fam in enumerate(spec.ip_families or ()):
        if fam == "IPv6":
            e.invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster")
        else:
            e.one_of(f"spec.ipFamilies[{i}]", fam, ("IPv4", "IPv6"))
    e.one_of("spec.ipFamilyPolicy", spec.ip_family_policy, ("SingleStack", "PreferDualStack", "RequireDualStack"))
    if spec.ip_family_policy == "RequireDualStack":
        e.invalid("spec.ipFamilyPolicy", spec.ip_family_policy,
                  "this cluster is not configured for dual-stack services")


def _ip(e: Errors, path: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        e.invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")


_SPECIAL_IPS = (  # Kubernetes' ValidateNonSpecialIP: endpoints may not point the proxy at the node itself
    (lambda ip: ip.is_unspecified, "may not be unspecified (0.0.0.0, ::)"),
    (lambda ip: ip.is_loopback, "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
    (lambda ip: ip.is_link_local, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    (lambda ip: ip.is_multicast and (ip in ipaddress.ip_network("224.0.0.0/24")
                                     or ip in ipaddress.ip_network("ff02::/16")),
     "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
)


def _non_special_ip(e: Errors, path: str, value: str) -> None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        e.invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        return
    for test, detail in _SPECIAL_IPS:
        if test(ip):
            e.invalid(path, value, detail)


def _endpoints(e: Errors, obj: Any) -> None:
    for i, s in enumerate(obj.subsets or ()):
        for field, addrs in (("addresses", s.addresses), ("notReadyAddresses", s.not_ready_addresses)):
            for j, a in enumerate(addrs or ()):
                if not a.ip:
                    e.required(f"subsets[{i}].{field}[{j}].ip")
                else:
                    _non_special_ip(e, f"subsets[{i}].{field}[{j}].ip", a.ip)
        for j, p in enumerate(s.ports or ()):
            e.port(f"subsets[{i}].ports[{j}].port", p.port)
            e.one_of(f"subsets[{i}].ports[{j}].protocol", p.protocol, _PROTOCOLS)


def _node(e: Errors, obj: Any) -> None:
    for i, t in enumerate((obj.spec.taints if obj.spec else None) or ()):
        if not t.key:
            e.required(f"spec.taints[{i}].key")
        e.one_of(f"spec.taints[{i}].effect", t.effect, ("NoSchedule", "PreferNoSchedule", "NoExecute"))
        if t.effect is None:
            e.required(f"spec.taints[{i}].effect")


def _config_keys(e: Errors, field: str, data: dict[str, str] | None, b64: bool) -> int:
    size = 0
    for k, v in (data or {}).items():
        if len(k) > 253 or not _CONFIG_KEY_RE.fullmatch(k):
            e.invalid(f"{field}[{k}]", k, _CONFIG_KEY_MSG)
        if b64:
            try:
                size += len(base64.b64decode(v, validate=True))
            except (binascii.Error, ValueError):
                e.invalid(f"{field}[{k}]", "<value omitted>", "must be valid base64 data")
        else:
            size += len(v)
    return size


def _secret(e: Errors, obj: Any) -> None:
    size = _config_keys(e, "data", obj.data, True) + _config_keys(e, "stringData", obj.string_data, False)
    if size > _MAX_SECRET:
        e.too_long("data", _MAX_SECRET)
    if key := _DOCKER_CONFIG_KEYS.get(obj.type or ""):
        _docker_config(e, key, obj)


_DOCKER_CONFIG_KEYS = {"kubernetes.io/dockerconfigjson": ".dockerconfigjson", "kubernetes.io/dockercfg": ".dockercfg"}
# Python's JSON error openings as Go's encoding/json words them ("invalid character 'x' <these>")
_GO_JSON_SYNTAX = (("Expecting value", "looking for beginning of value"),
                   ("Extra data", "after top-level value"),
                   ("Expecting property name", "looking for beginning of object key string"),
                   ("Expecting ':'", "after object key"), ("Expecting ','", "after object key:value pair"))


def _docker_config(e: Errors, key: str, obj: Any) -> None:
    """ValidateSecret for the two pull-secret types: the key is required and must hold a JSON object."""
    path = f"data[{key}]"
    if key in (obj.string_data or {}):  # the API merges stringData over data
        raw = str(obj.string_data[key]).encode()
    elif key in (obj.data or {}):
        try:
            raw = base64.b64decode(obj.data[key])
        except (binascii.Error, ValueError):
            return  # said by _config_keys
    else:
        return e.required(path)
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        pos = getattr(err, "pos", len(raw))
        text = raw.decode("utf-8", "replace")
        if pos >= len(text.rstrip()):
            return e.invalid(path, "<secret contents redacted>", "unexpected end of JSON input")
        words = next((go for py, go in _GO_JSON_SYNTAX if str(err).startswith(py)), "looking for beginning of value")
        return e.invalid(path, "<secret contents redacted>", f"invalid character '{text[pos]}' {words}")
    if parsed is not None and not isinstance(parsed, dict):
        go_type = {list: "array", str: "string", bool: "bool"}.get(type(parsed), "number")
        e.invalid(path, "<secret contents redacted>",
                  f"json: cannot unmarshal {go_type} into Go value of type map[string]interface {{}}")


def _configmap(e: Errors, obj: Any) -> None:
    size = _config_keys(e, "data", obj.data, False) + _config_keys(e, "binaryData", obj.binary_data, True)
    for k in set(obj.data or ()) & set(obj.binary_data or ()):
        e.invalid(f"data[{k}]", k, "duplicate of key present in binaryData")
    if size > _MAX_SECRET:
        e.too_long("", _MAX_SECRET)


def _access_modes(e: Errors, path: str, modes: list[str] | None) -> None:
    if not modes:
        e.required(path)
    for i, m in enumerate(modes or ()):
        e.one_of(f"{path}[{i}]", m, _ACCESS_MODES)


def _pv(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    if not spec.capacity:
        e.required("spec.capacity")
    elif "storage" not in spec.capacity:
        e.required("spec.capacity[storage]")
    _access_modes(e, "spec.accessModes", spec.access_modes)
    sources = spec.sources()
    if not sources:
        e.required("spec", "must specify a volume type")
    for s in sources[1:]:
        e.forbidden(f"spec.{s}", "may not specify more than 1 volume type")
    if spec.host_path is not None and not spec.host_path.path:
        e.required("spec.hostPath.path")
    e.one_of("spec.persistentVolumeReclaimPolicy", spec.persistent_volume_reclaim_policy,
             ("Retain", "Delete", "Recycle"))
    e.one_of("spec.volumeMode", spec.volume_mode, ("Block", "Filesystem"))


def _pvc(e: Errors, obj: Any) -> None:
    if obj.spec is None:
        return e.required("spec")
    _claim_spec(e, "spec", obj.spec)


def _claim_spec(e: Errors, path: str, spec: PersistentVolumeClaimSpec) -> None:
    _access_modes(e, f"{path}.accessModes", spec.access_modes)
    requests = spec.resources.requests if spec.resources is not None else None
    if not requests or "storage" not in requests:
        e.required(f"{path}.resources[storage]")
    e.one_of(f"{path}.volumeMode", spec.volume_mode, ("Block", "Filesystem"))


def _event(e: Errors, obj: Any) -> None:
    io = obj.involved_object
    if io is None:
        return e.required("involvedObject")
    ns = obj.metadata.namespace if obj.metadata is not None else None
    if io.namespace and ns and io.namespace != ns:
        e.invalid("involvedObject.namespace", io.namespace, "does not match event.namespace")
    e.one_of("type", obj.type or None, ("Normal", "Warning"))


def _lease(e: Errors, obj: Any) -> None:
    if obj.spec is not None:
        e.at_least("spec.leaseDurationSeconds", obj.spec.lease_duration_seconds, 1)
        e.non_negative("spec.leaseTransitions", obj.spec.lease_transitions)


_MAX_SLICE_ENDPOINTS, _MAX_SLICE_ADDRESSES, _MAX_SLICE_PORTS = 1000, 100, 100


def _endpoint_slice(e: Errors, obj: Any) -> None:
    """discovery.k8s.io/v1 EndpointSlice, as Kubernetes' ValidateEndpointSlice (minus topology hints)."""
    atype = obj.address_type
    if not atype:
        e.required("addressType")
    else:
        e.one_of("addressType", atype, ADDRESS_TYPES)
    eps = obj.endpoints or ()
    if len(eps) > _MAX_SLICE_ENDPOINTS:
        e.causes.append(Cause("endpoints", f"Too many: {len(eps)}: must have at most {_MAX_SLICE_ENDPOINTS} items",
                              "FieldValueTooMany"))
    for i, ep in enumerate(eps):
        p = f"endpoints[{i}]"
        addrs = ep.addresses or ()
        if not addrs:
            e.required(f"{p}.addresses", "must contain at least 1 address")
        elif len(addrs) > _MAX_SLICE_ADDRESSES:
            e.causes.append(Cause(f"{p}.addresses", f"Too many: {len(addrs)}: must have at most "
                                  f"{_MAX_SLICE_ADDRESSES} items", "FieldValueTooMany"))
        for j, a in enumerate(addrs):
            ap = f"{p}.addresses[{j}]"
            if atype in ("IPv4", "IPv6"):
                try:
                    ip = ipaddress.ip_address(a)
                except ValueError:
                    e.invalid(ap, a, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
                    continue
                if (ip.version == 4) != (atype == "IPv4"):
                    e.invalid(ap, a, f"must be an {atype} address")
            elif atype == "FQDN":
                e.messages(ap, a, dns1123_subdomain_errors(a))
        if ep.hostname:
            e.messages(f"{p}.hostname", ep.hostname, dns1123_label_errors(ep.hostname))
        if ep.node_name:
            e.messages(f"{p}.nodeName", ep.node_name, dns1123_subdomain_errors(ep.node_name))
    ports = obj.ports or ()
    if len(ports) > _MAX_SLICE_PORTS:
        e.causes.append(Cause("ports", f"Too many: {len(ports)}: must have at most {_MAX_SLICE_PORTS} items",
                              "FieldValueTooMany"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"ports[{i}]"
        name = port.name or ""
        if name:
            e.messages(f"{p}.name", name, dns1123_label_errors(name))
        e.unique(f"{p}.name", name, names)
        if port.port is not None and not 0 <= port.port <= 65535:
            e.invalid(f"{p}.port", port.port, "must be between 0 and 65535, inclusive")
        if not port.protocol:
            e.required(f"{p}.protocol")
        else:
            e.one_of(f"{p}.protocol", port.protocol, _PROTOCOLS)
        if port.app_protocol:
            e.messages(f"{p}.appProtocol", port.app_protocol, qualified_name_errors(port.app_protocol))


_KIND_CHECKS: dict[str, Callable[[Errors, Any], None]] = {
    "Pod": _pod, "Deployment": _deployment, "ReplicaSet": _replicaset, "DaemonSet": _daemonset,
    "ReplicationController": _rc, "Job": _job, "HorizontalPodAutoscaler": _hpa, "Service": _service,
    "Endpoints": _endpoints, "Node": _node, "Secret": _secret, "ConfigMap": _configmap, "PersistentVolume": _pv,
    "PersistentVolumeClaim": _pvc, "Event": _event, "Lease": _lease, "EndpointSlice": _endpoint_slice,
    "StatefulSet": _statefulset, "ControllerRevision": _controller_revision,
}


# --- batch/v1 CronJob (pkg/apis/batch/validation: ValidateCronJobCreate) ----------------------------------------------

_CRONJOB_NAME_MAX = 52  # 63 less the 11 characters of the "-<minutes>" suffix its Jobs are named with
_TIME_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


def _cronjob(e: Errors, obj: Any) -> None:
    name = obj.metadata.name if obj.metadata is not None else None
    if name and len(name) > _CRONJOB_NAME_MAX:
        e.invalid("metadata.name", name, f"must be no more than {_CRONJOB_NAME_MAX} characters")
    spec = obj.spec
    if spec is None:
        return e.required("spec")
    if not spec.schedule:
        e.required("spec.schedule")
    else:
        if (err := cron.validate(spec.schedule)) is not None:
            e.invalid("spec.schedule", spec.schedule, err)
        if "TZ" in spec.schedule:
            e.invalid("spec.schedule", spec.schedule,
                      "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    e.non_negative("spec.startingDeadlineSeconds", spec.starting_deadline_seconds)
    _time_zone(e, "spec.timeZone", spec.time_zone)
    if spec.concurrency_policy == "":
        e.required("spec.concurrencyPolicy")
    e.one_of("spec.concurrencyPolicy", spec.concurrency_policy or None, ("Allow", "Forbid", "Replace"))
    _job_template(e, "spec.jobTemplate", spec.job_template)
    e.non_negative("spec.successfulJobsHistoryLimit", spec.successful_jobs_history_limit)
    e.non_negative("spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit)


def _time_zone(e: Errors, path: str, tz: str | None) -> None:
    if tz is None:
        return
    if not tz:
        return e.invalid(path, tz, "timeZone must be nil or non-empty string")
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.fullmatch(part):
            return e.invalid(path, tz, f"unknown time zone {tz}")
    if tz.lower() == "local":
        e.invalid(path, tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")
    try:
        cron.load_zone(tz)
    except ValueError as exc:
        e.invalid(path, tz, str(exc))


def _job_template(e: Errors, path: str, tmpl: Any) -> None:
    """ValidateJobTemplateSpec: the Job spec (its selector is generated, so none may be given)."""
    spec = tmpl.spec if tmpl is not None and tmpl.spec is not None else JobSpec()
    p = f"{path}.spec"
    for alias, field in _JOB_COUNTS:
        e.non_negative(f"{p}.{alias}", getattr(spec, field))
    e.non_negative(f"{p}.activeDeadlineSeconds", spec.active_deadline_seconds)
    _template(e, f"{p}.template", spec.template, ("OnFailure", "Never"))
    if spec.selector is not None:
        e.invalid(f"{p}.selector", to_dict(spec.selector), "`selector` will be auto-generated")
    if spec.manual_selector:
        e.unsupported(f"{p}.manualSelector", spec.manual_selector, ("nil", "false"))


_KIND_CHECKS["CronJob"] = _cronjob


def _overlaps(path: str, reported: list[str]) -> bool:
    for r in reported:
        if path == r or not r or path.startswith((r + ".", r + "[")) or r.startswith((path + ".", path + "[")):
            return True
    return False


def validate_object(res: Resource, data: Any, name_optional: bool = False) -> tuple[Any, list[Cause]]:
    """Decode ``data`` into ``res``'s model (defaults applied) and return it with every validation cause.

    The model is None only if ``data`` cannot be decoded at all (not an object). ``name_optional`` skips the
    "name or generateName is required" check (e.g. when the name comes from the request).
    """
    if not isinstance(data, dict):
        return None, [Cause("", f"Invalid value: {fmt_value(data)}: must be of type object", "FieldValueTypeInvalid")]
    model, causes = decode(model_for_kind(res.kind), data)
    if model is None:
        return None, causes
    e = Errors()
    try:
        _meta(e, model.metadata, res, name_optional)
        check = _KIND_CHECKS.get(res.kind)
        if check is not None:
            check(e, model)
    except Exception as exc:  # noqa: BLE001 - validation reports, it never raises
        e.causes.append(Cause("", f"Internal error occurred: validation failed: {type(exc).__name__}: {exc}",
                              "InternalError"))
    if causes:  # a value dropped for its type must not be reported again as missing
        reported = [c.field for c in causes]
        causes.extend(c for c in e.causes if not _overlaps(c.field, reported))
        return model, causes
    return model, e.causes


# --- updates ------------------------------------------------------------------------------------------------------------

_POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _get(d: Any, *path: str) -> Any:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d


def _normalized(cls: Any, value: Any) -> dict[str, Any] | None:
    """``value`` (a stored dict) decoded and re-encoded, so defaults on both sides compare equal."""
    if value is None:
        return None
    model, causes = decode(cls, value) if isinstance(value, dict) else (None, [])
    return to_dict(model) if model is not None and not causes else value


def _masked_pod_spec(spec: dict[str, Any], tolerations: Any) -> dict[str, Any]:
    spec = dict(spec)
    for field in ("containers", "initContainers"):
        if isinstance(spec.get(field), list):
            spec[field] = [{**c, "image": None} for c in spec[field] if isinstance(c, dict)]
    spec.pop("activeDeadlineSeconds", None)
    spec["tolerations"] = tolerations
    return spec


def _pod_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    old_spec = _normalized(PodSpec, old.get("spec")) or {}
    new_spec = to_dict(new.spec) if new.spec is not None else {}
    old_tol = old_spec.get("tolerations") or []
    new_tol = new_spec.get("tolerations") or []
    tol = old_tol if all(t in new_tol for t in old_tol) else None  # additions only
    if _masked_pod_spec(old_spec, old_tol) != _masked_pod_spec(new_spec, tol if tol is not None else new_tol):
        e.forbidden("spec", _POD_UPDATE_MSG)
    old_deadline, new_deadline = old_spec.get("activeDeadlineSeconds"), new_spec.get("activeDeadlineSeconds")
    if old_deadline is not None and (new_deadline is None or new_deadline > old_deadline):
        e.invalid("spec.activeDeadlineSeconds", new_deadline, "must be less than or equal to previous value")


def _immutable(e: Errors, path: str, old: Any, new: Any) -> None:
    if old != new:
        e.invalid(path, new, _IMMUTABLE)


def _selector_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    old_sel = _get(old, "spec", "selector")
    new_sel = new.spec.selector if new.spec is not None else None
    if old_sel is not None and new_sel is not None:
        _immutable(e, "spec.selector", old_sel, to_dict(new_sel))


def _job_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    _selector_update(e, old, new)
    old_t = _normalized(PodTemplateSpec, _get(old, "spec", "template"))
    new_t = to_dict(new.spec.template) if new.spec is not None and new.spec.template is not None else None
    if old_t is not None and new_t is not None and _get(old, "spec", "selector") is None:
        new_t = _without_added_labels(new_t, old_t)  # the Job controller's one-time selector defaulting
    if old_t is not None and new_t != old_t:
        e.invalid("spec.template", new_t or {}, _IMMUTABLE)


def _without_added_labels(new_t: dict[str, Any], old_t: dict[str, Any]) -> dict[str, Any]:
    """``new_t`` less the template labels ``old_t`` did not have (a Job that had no selector gets the generated
    selector's labels added to its template once, as Kubernetes adds them at creation)."""
    old_labels = _get(old_t, "metadata", "labels")
    labels = {k: v for k, v in (_get(new_t, "metadata", "labels") or {}).items() if k in (old_labels or {})}
    meta = {k: v for k, v in (new_t.get("metadata") or {}).items() if k != "labels"}
    if old_labels is not None:
        meta["labels"] = labels
    out = {k: v for k, v in new_t.items() if k != "metadata"}
    if meta or "metadata" in old_t:
        out["metadata"] = meta
    return out


def _service_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    """A ClusterIP (or headless "None") stays until the Service becomes ExternalName; an update that
    leaves it out keeps it (the apiserver fills it in before this check)."""
    old_ip = _get(old, "spec", "clusterIP")
    spec = new.spec
    if spec is None or spec.type == "ExternalName" or not old_ip or _get(old, "spec", "type") == "ExternalName":
        return
    if spec.cluster_ip and spec.cluster_ip != old_ip:
        e.invalid("spec.clusterIP", spec.cluster_ip, _IMMUTABLE)
    elif spec.cluster_ips and spec.cluster_ips[0] != old_ip:
        e.invalid("spec.clusterIPs[0]", spec.cluster_ips[0], _IMMUTABLE)


def _pvc_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    old_spec = dict(_normalized(PersistentVolumeClaimSpec, old.get("spec")) or {})
    new_spec = to_dict(new.spec) if new.spec is not None else {}
    for s in (old_spec, new_spec):
        s["resources"] = {**(s.get("resources") or {}), "requests": None}
    if not old_spec.get("volumeName"):  # binding sets the volume name once
        old_spec.pop("volumeName", None)
        new_spec.pop("volumeName", None)
    if old_spec != new_spec:
        e.forbidden("spec", "spec is immutable after creation except resources.requests for bound claims")


def _data_update(e: Errors, old: dict[str, Any], new: Any, fields: tuple[tuple[str, str], ...]) -> None:
    if old.get("immutable") is True:
        if new.immutable is not True:
            e.forbidden("immutable", "field is immutable when `immutable` is set")
        for field, attr in fields:
            if (old.get(field) or {}) != (getattr(new, attr) or {}):
                e.forbidden(field, "field is immutable when `immutable` is set")


def _secret_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    _immutable(e, "type", old.get("type", "Opaque"), new.type)
    _data_update(e, old, new, (("data", "data"),))


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds")


def _statefulset_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    """ValidateStatefulSetUpdate: only some spec fields may change."""
    new_spec = to_dict(new.spec) if new.spec is not None else {}
    old_spec = dict(old.get("spec") or {})
    if {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE} != \
            {k: v for k, v in new_spec.items() if k not in _STS_MUTABLE}:
        e.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                            "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                            "forbidden")


_UPDATE_CHECKS: dict[str, Callable[[Errors, dict[str, Any], Any], None]] = {
    "Pod": _pod_update, "Deployment": _selector_update, "ReplicaSet": _selector_update,
    "DaemonSet": _selector_update, "StatefulSet": _statefulset_update, "Job": _job_update, "Service": _service_update,
    "PersistentVolumeClaim": _pvc_update, "Secret": _secret_update,
    "EndpointSlice": lambda e, old, new: _immutable(e, "addressType", old.get("addressType"), new.address_type),
    "ConfigMap": lambda e, old, new: _data_update(e, old, new, (("data", "data"), ("binaryData", "binary_data"))),
    "ControllerRevision": lambda e, old, new: _immutable(e, "data", old.get("data"), new.data),
}


def validate_update(res: Resource, old: dict[str, Any], new_model: Any) -> list[Cause]:
    """Causes for changes an update may not make (run after ``validate_object`` on the new object).

    ``old`` is the stored object (a dict); ``new_model`` the decoded new object or its dict form. Never raises.
    """
    e = Errors()
    if res.custom is not None:  # its metadata's immutable fields come from the stored object (strategy)
        return e.causes
    try:
        if isinstance(new_model, dict):
            new_model, _ = decode(model_for_kind(res.kind), new_model)
            if new_model is None:
                return e.causes  # validate_object reports why it does not decode
        old_meta = old.get("metadata") or {}
        new_meta = new_model.metadata or ObjectMeta()
        for field, attr in (("name", "name"), ("namespace", "namespace"), ("uid", "uid"),
                            ("creationTimestamp", "creation_timestamp")):
            old_v, new_v = old_meta.get(field), getattr(new_meta, attr)
            if old_v and new_v and old_v != new_v:
                e.invalid(f"metadata.{field}", new_v, _IMMUTABLE)
        check = _UPDATE_CHECKS.get(res.kind)
        if check is not None:
            check(e, old, new_model)
    except Exception as exc:  # noqa: BLE001
        e.causes.append(Cause("", f"Internal error occurred: validation failed: {type(exc).__name__}: {exc}",
                              "InternalError"))
    return e.causes


# --- rbac.authorization.k8s.io/v1 (pkg/apis/rbac/validation) ----------------------------------------------------------

_RBAC_GROUP = "rbac.authorization.k8s.io"


def rbac_name_errors(name: str) -> list[str]:
    """ValidateRBACName (path.IsValidPathSegmentName), plus what a k8n KV key cannot hold: ``_`` (a ``.`` in a name
    is written as ``_``, so both would share a key), whitespace, ``*`` and ``>`` (keys are NATS subject tokens)."""
    for bad in (".", ".."):
        if name == bad:
            return [f"may not be '{bad}'"]
    errs = [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    if "_" in name:
        errs.append("may not contain '_' (k8n stores a '.' of a name as '_')")
    if any(c.isspace() or c in "*>" or not c.isprintable() for c in name):
        errs.append("may not contain whitespace, '*' or '>' (k8n keys are NATS subject tokens)")
    return errs


for _kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
    _NAME_FUNCS[_kind] = rbac_name_errors


def _policy_rules(e: Errors, rules: Any, namespaced: bool) -> None:
    for i, rule in enumerate(rules or ()):
        p = f"rules[{i}]"
        if not rule.verbs:
            e.required(f"{p}.verbs", "verbs must contain at least one value")
        if rule.non_resource_urls:
            if namespaced:
                e.invalid(f"{p}.nonResourceURLs", rule.non_resource_urls,
                          "namespaced rules cannot apply to non-resource URLs")
            if rule.api_groups or rule.resources or rule.resource_names:
                e.invalid(f"{p}.nonResourceURLs", rule.non_resource_urls,
                          "rules cannot apply to both regular resources and non-resource URLs")
            continue
        if not rule.api_groups:
            e.required(f"{p}.apiGroups", "resource rules must supply at least one api group")
        if not rule.resources:
            e.required(f"{p}.resources", "resource rules must supply at least one resource")


def _label_selector(e: Errors, path: str, sel: Any) -> None:
    """metav1 validation.ValidateLabelSelector, then LabelSelectorAsSelector must succeed."""
    before = len(e.causes)
    for i, req in enumerate(sel.match_expressions or ()):
        p = f"{path}.matchExpressions[{i}]"
        if req.operator in ("In", "NotIn"):
            if not req.values:
                e.required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        elif req.operator in ("Exists", "DoesNotExist"):
            if req.values:
                e.forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        else:
            e.invalid(f"{p}.operator", req.operator or "", "not a valid selector operator")
        if err := validate_label_key(req.key or ""):
            e.invalid(f"{p}.key", req.key or "", err)
        for j, value in enumerate(req.values or ()):  # LabelSelectorValidationOptions{} checks values too
            if err := validate_label_value(value):
                e.invalid(f"{p}.values[{j}]", value, err)
    e.label_map(f"{path}.matchLabels", sel.match_labels)
    if len(e.causes) == before:
        try:
            selector_from_label_selector(sel)
        except ValueError:
            e.invalid(path, to_dict(sel), "invalid label selector.")


def _role(e: Errors, obj: Any) -> None:
    _policy_rules(e, obj.rules, True)


def _cluster_role(e: Errors, obj: Any) -> None:
    _policy_rules(e, obj.rules, False)
    agg = obj.aggregation_rule
    if agg is not None:
        if not agg.cluster_role_selectors:
            e.required("aggregationRule.clusterRoleSelectors",
                       "at least one clusterRoleSelector required if aggregationRule is non-nil")
        for i, sel in enumerate(agg.cluster_role_selectors or ()):
            _label_selector(e, f"aggregationRule.clusterRoleSelectors[{i}]", sel)


def _binding(e: Errors, obj: Any, namespaced: bool) -> None:
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    ref = obj.role_ref
    group, kind, name = (ref.api_group or _RBAC_GROUP, ref.kind or "", ref.name or "") if ref else (_RBAC_GROUP, "", "")
    if group != _RBAC_GROUP:
        e.unsupported("roleRef.apiGroup", group, (_RBAC_GROUP,))
    if kind not in kinds:
        e.unsupported("roleRef.kind", kind, kinds)
    if not name:
        e.required("roleRef.name")
    else:
        e.messages("roleRef.name", name, rbac_name_errors(name))
    for i, s in enumerate(obj.subjects or ()):
        p = f"subjects[{i}]"
        if not s.name:
            e.required(f"{p}.name")
        if s.kind == "ServiceAccount":
            if s.name:
                e.messages(f"{p}.name", s.name, dns1123_subdomain_errors(s.name))
            if s.api_group:
                e.unsupported(f"{p}.apiGroup", s.api_group, ("",))
            if not namespaced and not s.namespace:
                e.required(f"{p}.namespace")
        elif s.kind in ("User", "Group"):
            if s.api_group != _RBAC_GROUP:
                e.unsupported(f"{p}.apiGroup", s.api_group or "", (_RBAC_GROUP,))
        else:
            e.unsupported(f"{p}.kind", s.kind or "", ("ServiceAccount", "User", "Group"))


def _roleref_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    from bus.rbac import roleref_changed

    if roleref_changed(old, new):
        ref = to_dict(new.role_ref) if new.role_ref is not None else {}
        e.invalid("roleRef", ref, "cannot change roleRef")


_KIND_CHECKS.update({
    "Role": _role, "ClusterRole": _cluster_role,
    "RoleBinding": lambda e, obj: _binding(e, obj, True),
    "ClusterRoleBinding": lambda e, obj: _binding(e, obj, False),
})
_UPDATE_CHECKS.update({"RoleBinding": _roleref_update, "ClusterRoleBinding": _roleref_update})


# --- networking.k8s.io/v1 (pkg/apis/networking/validation: ValidateNetworkPolicy) -------------------------------------

_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_IPV4_SLOPPY = re.compile(r"[0-9]+(\.[0-9]+){3}")


def parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``netutils.ParseCIDRSloppy``: ``addr/prefix`` with host bits allowed (``10.0.0.1/8`` is 10.0.0.0/8) and
    leading zeros in IPv4 octets read as decimal; None when Kubernetes would not parse it."""
    if not isinstance(value, str):
        return None
    addr, sep, bits = value.partition("/")
    if not sep or not bits.isascii() or not bits.isdigit() or len(bits) > 3 or "%" in addr:
        return None
    if _IPV4_SLOPPY.fullmatch(addr):
        octets = [int(o) for o in addr.split(".")]
        if any(o > 255 for o in octets):
            return None
        addr = ".".join(map(str, octets))
    try:
        return ipaddress.ip_network((ipaddress.ip_address(addr), int(bits)), strict=False)
    except ValueError:
        return None


def _ip_block(e: Errors, path: str, ipb: Any) -> None:
    if not ipb.cidr:
        return e.required(f"{path}.cidr")
    cidr = parse_cidr(ipb.cidr)
    if cidr is None:
        return e.invalid(f"{path}.cidr", ipb.cidr, _CIDR_MSG)
    for i, exc in enumerate(ipb.except_ or ()):
        p = f"{path}.except[{i}]"
        sub = parse_cidr(exc)
        if sub is None:
            e.invalid(p, exc, _CIDR_MSG)
        elif sub.version != cidr.version or sub.network_address not in cidr or cidr.prefixlen >= sub.prefixlen:
            e.invalid(p, exc, "must be a strict subset of `cidr`")


def _np_peer(e: Errors, path: str, peer: Any) -> None:
    parts = [(f, sel) for f, sel in (("podSelector", peer.pod_selector), ("namespaceSelector", peer.namespace_selector))
             if sel is not None]
    for field, sel in parts:
        _label_selector(e, f"{path}.{field}", sel)
    if peer.ip_block is not None:
        _ip_block(e, f"{path}.ipBlock", peer.ip_block)
    if not parts and peer.ip_block is None:
        e.required(path, "must specify a peer")
    elif parts and peer.ip_block is not None:
        e.forbidden(path, "may not specify both ipBlock and another peer")


def _np_port(e: Errors, path: str, port: Any) -> None:
    if port.protocol is not None:
        e.one_of(f"{path}.protocol", port.protocol, _PROTOCOLS)
    end = port.end_port
    if port.port is None:
        if end is not None:
            e.invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified")
    elif isinstance(port.port, str):
        if end is not None:
            e.invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric")
        e.port_name(f"{path}.port", port.port)
    else:
        e.port(f"{path}.port", port.port)
        if end is not None:
            if end < port.port:
                e.invalid(f"{path}.endPort", end, "must be greater than or equal to `port`")
            e.port(f"{path}.endPort", end)


def _network_policy(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if spec is None:
        return
    _label_selector(e, "spec.podSelector", spec.pod_selector)
    for direction, peers_attr, peers_field in (("ingress", "from_", "from"), ("egress", "to", "to")):
        for i, r in enumerate(getattr(spec, direction) or ()):
            rp = f"spec.{direction}[{i}]"
            for j, port in enumerate(r.ports or ()):
                _np_port(e, f"{rp}.ports[{j}]", port)
            for j, peer in enumerate(getattr(r, peers_attr) or ()):
                _np_peer(e, f"{rp}.{peers_field}[{j}]", peer)
    types = spec.policy_types or []
    if len(types) > 2:
        return e.invalid("spec.policyTypes", types, "may not specify more than two policyTypes")
    for i, t in enumerate(types):
        e.one_of(f"spec.policyTypes[{i}]", t, ("Ingress", "Egress"))


_KIND_CHECKS["NetworkPolicy"] = _network_policy


# --- certificates.k8s.io/v1 (pkg/apis/certificates/validation: ValidateCertificateSigningRequestCreate) -------------

KEY_USAGES = ("signing", "digital signature", "content commitment", "key encipherment", "key agreement",
              "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
              "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
              "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc")


def _csr(e: Errors, obj: Any) -> None:
    spec = obj.spec
    if not spec.request:
        e.required("spec.request")
    if not spec.signer_name:
        e.required("spec.signerName")
    else:
        domain, sep, path = spec.signer_name.partition("/")
        if not sep or not path or dns1123_subdomain_errors(domain) or len(spec.signer_name) > 571:
            e.invalid("spec.signerName", spec.signer_name,
                      "must be a fully qualified domain and path of the form 'example.com/signer-name'")
    if not spec.usages:
        e.required("spec.usages")
    for i, u in enumerate(spec.usages or ()):
        e.one_of(f"spec.usages[{i}]", u, KEY_USAGES)
    if spec.expiration_seconds is not None and spec.expiration_seconds < 600:
        e.invalid("spec.expirationSeconds", spec.expiration_seconds,
                  "may not specify a duration less than 600 seconds (10 minutes)")


_KIND_CHECKS["CertificateSigningRequest"] = _csr


def _crd(e: Errors, obj: Any) -> None:
    from bus.crd import check_crd

    check_crd(e, obj)


def _crd_update(e: Errors, old: dict[str, Any], new: Any) -> None:
    _immutable(e, "spec.scope", (old.get("spec") or {}).get("scope"), new.spec.scope)
    stored = ((old.get("status") or {}).get("storedVersions")) or []
    names = {v.name for v in new.spec.versions or ()}
    for i, v in enumerate(stored):
        if v not in names:
            e.invalid(f"status.storedVersions[{i}]", v, "must appear in spec.versions")


_KIND_CHECKS["CustomResourceDefinition"] = _crd
_UPDATE_CHECKS["CustomResourceDefinition"] = _crd_update


# --- policy/v1 (pkg/apis/policy/validation: ValidatePodDisruptionBudget, ...StatusUpdate) -------------------------

def _pdb(e: Errors, obj: Any) -> None:
    from bus.models.policy import UNHEALTHY_POD_EVICTION_POLICIES

    spec = obj.spec
    if spec is not None:
        if spec.min_available is not None and spec.max_unavailable is not None:
            e.invalid("spec", to_dict(spec), "minAvailable and maxUnavailable cannot be both set")
        for field, value in (("minAvailable", spec.min_available), ("maxUnavailable", spec.max_unavailable)):
            n = _int_or_percent(e, f"spec.{field}", value)
            if isinstance(value, str) and n is not None and n > 100:
                e.invalid(f"spec.{field}", value, "must not be greater than 100%")
        if spec.selector is not None:
            _label_selector(e, "spec.selector", spec.selector)
        e.one_of("spec.unhealthyPodEvictionPolicy", spec.unhealthy_pod_eviction_policy,
                 UNHEALTHY_POD_EVICTION_POLICIES)
    status = obj.status
    if status is not None:
        for field in ("disruptions_allowed", "current_healthy", "desired_healthy", "expected_pods"):
            e.non_negative(f"status.{_alias(type(status), field)}", getattr(status, field))


_KIND_CHECKS["PodDisruptionBudget"] = _pdb


def validate_custom(res: Resource, data: Any, name_optional: bool = False) -> tuple[dict[str, Any] | None, list[Cause]]:
    """A custom resource: its metadata as every object's, then its definition's schema for the version the request
    names (``bus.crdschema``: unknown fields pruned, defaults set, values checked). ``(object, causes)``."""
    from bus import crdschema

    if not isinstance(data, dict):
        return None, [Cause("", f"Invalid value: {fmt_value(data)}: must be of type object", "FieldValueTypeInvalid")]
    raw_meta = data.get("metadata")
    meta, causes = decode(ObjectMeta, raw_meta if isinstance(raw_meta, dict) else {})
    if raw_meta is not None and not isinstance(raw_meta, dict):
        causes.append(Cause("metadata", "Invalid value: must be of type object", "FieldValueTypeInvalid"))
    e = Errors()
    _meta(e, meta, res, name_optional)
    version = res.custom.version(res.version)
    obj, schema_causes = crdschema.apply(data, version.schema if version is not None else None)
    if meta is not None:
        obj["metadata"] = to_dict(meta)
    return obj, causes + e.causes + schema_causes


from bus import quota_validation  # noqa: E402,F401 - registers the ResourceQuota, LimitRange, PriorityClass checks
from bus import webhook_validation  # noqa: E402,F401 - registers the webhook configurations' checks
from bus import ingress_validation  # noqa: E402,F401 - registers the Ingress and IngressClass checks
