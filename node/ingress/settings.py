"""The ingress controller's settings (``python -m node.ingress`` / ``k8n ingress`` flags, each also read from its
``K8N_…`` variable): where haproxy listens, which addresses go into ``status.loadBalancer``, which classes it serves."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bus.settings import SettingsError, setting
from node.ingress.config import SERVED_CLASSES

DEFAULT_CLASSES = ",".join(sorted(SERVED_CLASSES))


@dataclass(frozen=True)
class IngressSettings:
    http_port: int = setting(80, "host port of plain HTTP (redirects to HTTPS for hosts with TLS)",
                             name="ingress-http-port")
    https_port: int = setting(443, "host port of HTTPS (SNI picks each host's certificate)", name="ingress-https-port")
    bind_address: str = setting("0.0.0.0", "address haproxy listens on (0.0.0.0: every address of the node)",
                                name="ingress-bind-address")
    addresses: str = setting("", "comma-separated addresses written to each Ingress's status.loadBalancer "
                                 "(default: the node's address, the default route's source)", name="ingress-addresses")
    classes: str = setting(DEFAULT_CLASSES, "comma-separated IngressClass names this controller serves",
                           name="ingress-classes")

    def __post_init__(self) -> None:
        for flag, port in (("--ingress-http-port", self.http_port), ("--ingress-https-port", self.https_port)):
            if not 1 <= port <= 65535:
                raise SettingsError(f"{flag} {port}: expected a port, 1-65535")
        if self.http_port == self.https_port:
            raise SettingsError(f"--ingress-http-port and --ingress-https-port are both {self.http_port}")
        try:
            ipaddress.ip_address(self.bind_address)
        except ValueError:
            raise SettingsError(f"--ingress-bind-address {self.bind_address!r}: expected an IP address") from None
        if not self.class_set:
            raise SettingsError("--ingress-classes: name at least one IngressClass")

    @property
    def class_set(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.classes.split(",") if c.strip())

    @property
    def address_list(self) -> list[str]:
        return [a.strip() for a in self.addresses.split(",") if a.strip()]
