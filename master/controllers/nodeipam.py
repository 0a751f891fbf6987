"""Node IPAM: gives every Node a podCIDR (a /24 by default) out of the cluster CIDR, once."""

from __future__ import annotations

import ipaddress
import logging

from bus.controller import Controller
from bus.informer import Informer
from master.controllers.settings import DEFAULT_CLUSTER_CIDR

log = logging.getLogger(__name__)


def setup(ctx) -> list:
    cidr = ctx.settings.cluster_cidr
    return [NodeIpam(ctx.client, ctx.informers.informer("nodes"), cidr).controller]


class NodeIpam:
    def __init__(self, client, nodes: Informer, cluster_cidr: str = DEFAULT_CLUSTER_CIDR, mask: int = 24) -> None:
        self.client = client
        self.nodes = nodes
        self.subnets = list(ipaddress.ip_network(cluster_cidr).subnets(new_prefix=mask))
        self.controller = Controller("nodeipam", self.reconcile)
        self.controller.watches(nodes)

    def _used(self) -> set[str]:
        return {n["spec"]["podCIDR"] for n in self.nodes.list() if (n.get("spec") or {}).get("podCIDR")}

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get_by_key(key)
        if node is None or (node.get("spec") or {}).get("podCIDR"):
            return
        used = self._used()
        # skip the first /24 (10.244.0.0/24): its .0/.1 look like the cluster network's own
        free = next((str(s) for s in self.subnets[1:] if str(s) not in used), None)
        if free is None:
            log.error("no podCIDR left for node %s", node["metadata"]["name"])
            return
        name = node["metadata"]["name"]
        await self.client.patch("nodes", name, {"spec": {"podCIDR": free, "podCIDRs": [free]}})
        log.info("assigned podCIDR %s to node %s", free, name)
