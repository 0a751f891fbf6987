"""The API server's settings: one typed, documented field per setting (``bus.settings``), read from the
environment (``K8N_SERVICE_CIDR=10.100.0.0/16``). The README's table is generated from them with the bucket
settings of ``bus.store.StoreSettings`` (``python -m master.settings --write``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from bus import settings as _s
from bus.settings import setting

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"


@dataclass(frozen=True)
class ApiServerSettings:
    service_cidr: str = setting(
        DEFAULT_SERVICE_CIDR, "the range Service ClusterIPs come from (the `kubernetes` Service takes its first "
        "address); claims live in bucket `k8n-serviceallocations`")
    node_port_range: str = setting(DEFAULT_NODE_PORT_RANGE, "`FIRST-LAST`: the ports NodePort Services come from")

    @classmethod
    def load(cls, options: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "ApiServerSettings":
        """From ``options`` (by option name), else the environment, else the defaults (an empty value counts as
        unset); a value that does not parse raises ``bus.settings.SettingsError`` naming its variable."""
        return _s.load(cls, options, environ)
