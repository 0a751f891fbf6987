"""Filter: the pod's hostPorts must be free on the node (same protocol and port, and the same
hostIP or either one 0.0.0.0, is a conflict)."""

from __future__ import annotations

import numpy as np

from master.scheduler.framework import SKIP, SUCCESS, CycleState, FilterResult, Status, register
from master.scheduler.nodetable import NodeTable
from master.scheduler.podinfo import PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"
ANY = "0.0.0.0"


def conflicts(wanted: tuple[str, str, int], used) -> bool:
    proto, ip, port = wanted
    for uproto, uip, uport in used:
        if uport == port and uproto == proto and (uip == ip or uip == ANY or ip == ANY):
            return True
    return False


@register("NodePorts")
class NodePorts:
    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        return SUCCESS if pod.host_ports else SKIP

    def filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable, alive: np.ndarray) -> FilterResult:
        fail = np.zeros(len(nodes), dtype=bool)
        for slot, used in enumerate(nodes.ports):
            if used and alive[slot] and any(conflicts(w, used) for w in pod.host_ports):
                fail[slot] = True
        return [(REASON, fail)]
