"""Container environment as the kubelet builds it: ``env`` (value, fieldRef, resourceFieldRef,
secretKeyRef, configMapKeyRef) and ``envFrom``, with ``$(VAR)`` expansion."""

from __future__ import annotations

import base64
import re
from typing import Any, Awaitable, Callable

from bus import errors
from bus.quantity import cpu_millis, memory_bytes
from node.runtime.spec import expand

Getter = Callable[[str, str, str], Awaitable[dict]]  # (resource, name, namespace) -> object


class ConfigError(Exception):
    """What Kubernetes reports as CreateContainerConfigError."""


def field_ref(pod: dict, path: str, host_ip: str, pod_ip: str = "") -> str:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"), "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"), "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip or status.get("podIP"), "status.hostIP": host_ip or status.get("hostIP"),
        "status.podIPs": pod_ip or ",".join(p.get("ip", "") for p in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def resource_ref(container: dict, ref: dict) -> str:
    res = container.get("resources") or {}
    kind, _, what = str(ref.get("resource", "")).partition(".")
    value = (res.get(kind) or {}).get(what)
    if value is None:
        return "0"
    divisor = ref.get("divisor") or "1"
    if what == "cpu":
        return str(-(-cpu_millis(value) // max(1, cpu_millis(divisor))))
    return str(-(-memory_bytes(value) // max(1, memory_bytes(divisor))))


async def _key_of(get: Getter, kind: str, name: str, ns: str, key: str, optional: bool) -> str | None:
    resource = "secrets" if kind == "secret" else "configmaps"
    try:
        obj = await get(resource, name, ns)
    except errors.NotFound:
        if optional:
            return None
        raise ConfigError(f'{kind} "{name}" not found') from None
    if kind == "secret":
        data = obj.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode("utf-8", "replace")
        if key in (obj.get("stringData") or {}):
            return str(obj["stringData"][key])
    else:
        if key in (obj.get("data") or {}):
            return str(obj["data"][key])
    if optional:
        return None
    raise ConfigError(f"couldn't find key {key} in {kind.capitalize() if kind == 'secret' else 'ConfigMap'} {ns}/{name}")


async def build_env(pod: dict, container: dict, get: Getter, host_ip: str = "",
                    service_env: dict[str, str] | None = None, pod_ip: str = "") -> dict[str, str]:
    """The container's environment; raises ConfigError for a missing secret/configMap/key."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    env: dict[str, str] = dict(service_env or {})
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix") or ""
        for kind, ref in (("configMap", src.get("configMapRef")), ("secret", src.get("secretRef"))):
            if not ref:
                continue
            resource = "secrets" if kind == "secret" else "configmaps"
            try:
                obj = await get(resource, ref.get("name", ""), ns)
            except errors.NotFound:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref.get("name")}" not found') from None
            for k, v in (obj.get("data") or {}).items():
                env[prefix + k] = base64.b64decode(v).decode("utf-8", "replace") if kind == "secret" else str(v)
    for var in container.get("env") or []:
        name = var.get("name")
        if not name:
            continue
        if "value" in var and var["value"] is not None:
            env[name] = expand(str(var["value"]), env)
            continue
        src: dict[str, Any] = var.get("valueFrom") or {}
        value: str | None = ""
        if src.get("fieldRef"):
            value = field_ref(pod, src["fieldRef"].get("fieldPath", ""), host_ip, pod_ip)
        elif src.get("resourceFieldRef"):
            value = resource_ref(container, src["resourceFieldRef"])
        elif src.get("secretKeyRef"):
            r = src["secretKeyRef"]
            value = await _key_of(get, "secret", r.get("name", ""), ns, r.get("key", ""), bool(r.get("optional")))
        elif src.get("configMapKeyRef"):
            r = src["configMapKeyRef"]
            value = await _key_of(get, "configMap", r.get("name", ""), ns, r.get("key", ""), bool(r.get("optional")))
        if value is not None:
            env[name] = value
    return env
