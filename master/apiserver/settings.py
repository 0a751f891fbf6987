"""The API server's settings: one typed, documented field per setting (``bus.settings``), read from the
environment (``K8N_SERVICE_CIDR=10.100.0.0/16``). The README's table is generated from them with the bucket
settings of ``bus.store.StoreSettings`` (``python -m master.settings --write``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from bus import settings as _s
from bus.config import data_dir
from bus.settings import setting
from master.apiserver.podsecurity.api import PolicyError, parse_level, parse_version

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
ALWAYS_ALLOW = "AlwaysAllow"
AUTHORIZATION_MODES = ("Node,RBAC", ALWAYS_ALLOW)


@dataclass(frozen=True)
class ApiServerSettings:
    service_cidr: str = setting(
        DEFAULT_SERVICE_CIDR, "the range Service ClusterIPs come from (the `kubernetes` Service takes its first "
        "address); claims live in bucket `k8n-serviceallocations`")
    node_port_range: str = setting(DEFAULT_NODE_PORT_RANGE, "`FIRST-LAST`: the ports NodePort Services come from")
    service_account_key_file: str | None = setting(
        None, "the ServiceAccount token signing key (EC P-256 private key, PEM; its public key is the `.pub` file "
        "beside it, with the former keys still accepted); made on first start when absent (0600, in a 0700 directory), "
        "reread when its files change (`k8n certs rotate-sa-key`). Unset: `<data dir>/pki/sa.key`. Never stored in the "
        "API")
    bus_auth_dir: str = setting(
        "", "the directory of the cluster's bus keys (operator, accounts, signing key): with them the API server "
        "signs joining nodes' bus credentials and revokes them when their Node is deleted. Unset: "
        "`<data dir>/nats-auth` when it exists; without keys joining is refused (503)")
    authorization_mode: str = setting(
        "Node,RBAC", "`Node,RBAC`: every request authorized by the Node authorizer then RBAC; `AlwaysAllow` turns "
        "authorization off, for measuring what it costs (`tests/perf/bench_authz.py`) and nothing else")

    pod_security_enforce: str = setting(
        "baseline", "Pod Security level enforced in namespaces without a `pod-security.kubernetes.io/enforce` "
        "label: `privileged`, `baseline` or `restricted`; a violating pod is refused (403)")
    pod_security_enforce_version: str = setting(
        "latest", "the Pod Security Standards version of that default: `latest` or `v1.<minor>`")
    pod_security_audit: str = setting(
        "baseline", "default audit level: a violating pod or pod template is logged by the API server (INFO, "
        "`pod-security.kubernetes.io/audit-violations`)")
    pod_security_audit_version: str = setting("latest", "the version of the default audit level")
    pod_security_warn: str = setting(
        "baseline", "default warn level: a violating pod or pod template is admitted with a warning")
    pod_security_warn_version: str = setting("latest", "the version of the default warn level")
    pod_security_exempt_namespaces: str = setting(
        "kube-system", "comma-separated namespaces Pod Security admission leaves alone (privileged)")
    pod_security_exempt_usernames: str = setting(
        "", "comma-separated user names whose requests Pod Security admission leaves alone")

    def __post_init__(self) -> None:
        if self.authorization_mode not in AUTHORIZATION_MODES:
            raise _s.SettingsError(f"K8N_AUTHORIZATION_MODE: {self.authorization_mode!r} is not one of "
                                   f"{', '.join(AUTHORIZATION_MODES)}")
        for f, parse in (("pod_security_enforce", parse_level), ("pod_security_audit", parse_level),
                         ("pod_security_warn", parse_level), ("pod_security_enforce_version", parse_version),
                         ("pod_security_audit_version", parse_version), ("pod_security_warn_version", parse_version)):
            try:
                parse(getattr(self, f))
            except PolicyError as e:
                raise _s.SettingsError(f"K8N_{f.upper()}={getattr(self, f)!r}: {e}") from None

    @property
    def authorizes(self) -> bool:
        return self.authorization_mode != ALWAYS_ALLOW

    @classmethod
    def load(cls, options: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "ApiServerSettings":
        """From ``options`` (by option name), else the environment, else the defaults (an empty value counts as
        unset); a value that does not parse raises ``bus.settings.SettingsError`` naming its variable."""
        return _s.load(cls, options, environ)

    def bus_auth_path(self) -> Path | None:
        """Where the bus keys are (None: this API server has none)."""
        if self.bus_auth_dir:
            return Path(self.bus_auth_dir).expanduser()
        default = data_dir(None) / "nats-auth"
        return default if default.is_dir() else None

    def service_account_key_path(self) -> Path:
        """The private key file: ``service_account_key_file``, else ``<data dir>/pki/sa.key``."""
        if self.service_account_key_file:
            return Path(self.service_account_key_file).expanduser()
        return data_dir(None) / "pki" / "sa.key"
