"""Cluster DNS, one server per node (NodeLocal-DNS style): it listens on the node's bridge gateway address,
which every pod on the node reaches, and answers from informers on Services and Endpoints.

``resolver`` turns a query into an answer (pure), ``server`` carries queries over UDP and TCP, ``view``
holds the informers. :class:`NodeDns` puts them together for the agent."""

from __future__ import annotations

import logging
import time
from typing import Any

from .resolver import DEFAULT_DOMAIN, TTL, Catalog, Resolver
from .server import DnsServer
from .view import ClusterView

__all__ = ["NodeDns", "Resolver", "Catalog", "ClusterView", "DnsServer", "DEFAULT_DOMAIN", "TTL"]
log = logging.getLogger(__name__)


class NodeDns:
    """The node's DNS server on ``address:port`` for ``domain``. ``start`` never raises for a server that
    cannot bind: it logs why, and ``nameserver`` stays None (pods then get the host's resolv.conf, as the
    kubelet does without a cluster DNS)."""

    def __init__(self, client: Any, address: str, port: int = 53, domain: str = DEFAULT_DOMAIN) -> None:
        self.view = ClusterView(client)
        self.domain = domain
        self.server = DnsServer(Resolver(self.view, domain, serial=int(time.time())), address, port)
        self.nameserver: str | None = None

    async def start(self) -> bool:
        if not await self.view.start():
            log.warning("cluster DNS: the services/endpoints informers did not sync in time; answering from "
                        "what they hold so far")
        try:
            await self.server.start()
        except OSError as e:
            log.error("cluster DNS: cannot listen on %s:%d (%s); pods get the host's resolv.conf",
                      self.server.host, self.server.port, e)
            return False
        self.nameserver = self.server.host
        log.info("cluster DNS for %s listening on %s:%d (udp, tcp)", self.domain, self.server.host,
                 self.server.port)
        return True

    async def stop(self) -> None:
        self.nameserver = None
        await self.server.stop()
        await self.view.stop()
