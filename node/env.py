"""Container environment as the kubelet builds it: ``env`` (value, fieldRef, resourceFieldRef,
secretKeyRef, configMapKeyRef) and ``envFrom``, with ``$(VAR)`` expansion, on top of the Service
environment variables (``service_env``: Kubernetes' pkg/kubelet/envvars rules)."""

from __future__ import annotations

import base64
import re
from typing import Any, Awaitable, Callable

from bus import errors
from bus.quantity import cpu_millis, memory_bytes
from node.runtime.spec import expand

Getter = Callable[[str, str, str], Awaitable[dict]]  # (resource, name, namespace) -> object


MASTER_SERVICES = frozenset({"kubernetes"})  # from namespace default, in every pod


def _env_name(name: str) -> str:
    """envvars.makeEnvVariableName: upper case, ``-`` → ``_``."""
    return name.replace("-", "_").upper()


def _cluster_ip(svc: dict) -> str:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return "" if ip == "None" else ip


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"  # net.JoinHostPort


def vars_of_service(svc: dict) -> dict[str, str]:
    """envvars.FromServices for one Service: ``<NAME>_SERVICE_HOST``, ``<NAME>_SERVICE_PORT`` (first port),
    ``<NAME>_SERVICE_PORT_<PORTNAME>`` per named port and the Docker-link variables (``<NAME>_PORT``,
    ``<NAME>_PORT_<port>_<PROTO>`` with ``_PROTO``, ``_PORT``, ``_ADDR``). Empty without a cluster IP."""
    ip, ports = _cluster_ip(svc), (svc.get("spec") or {}).get("ports") or []
    if not ip or not ports:
        return {}
    prefix = _env_name((svc.get("metadata") or {}).get("name", ""))
    out = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0].get("port"))}
    for sp in ports:
        if sp.get("name"):
            out[f"{prefix}_SERVICE_PORT_{_env_name(sp['name'])}"] = str(sp.get("port"))
    for i, sp in enumerate(ports):
        proto = sp.get("protocol") or "TCP"
        url = f"{proto.lower()}://{_host_port(ip, sp.get('port'))}"
        if i == 0:
            out[f"{prefix}_PORT"] = url
        port_prefix = f"{prefix}_PORT_{sp.get('port')}_{proto.upper()}"
        out.update({port_prefix: url, f"{port_prefix}_PROTO": proto.lower(),
                    f"{port_prefix}_PORT": str(sp.get("port")), f"{port_prefix}_ADDR": ip})
    return out


def service_env(services: list[dict], namespace: str, enable_service_links: bool | None = True) -> dict[str, str]:
    """The kubelet's getServiceEnvVarMap: variables for the Services of ``namespace`` (unless
    ``enableServiceLinks`` is false) and, always, the master service ``kubernetes`` of ``default``; a
    Service of the pod's namespace wins over a master service of the same name. Services without a
    cluster IP (headless, ExternalName) give none."""
    chosen: dict[str, dict] = {}
    for svc in services:
        if not _cluster_ip(svc):
            continue
        meta = svc.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace") or "default"
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links is not False:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(vars_of_service(chosen[name]))
    return env


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
