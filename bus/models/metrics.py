"""metrics.k8s.io/v1beta1 (k8s.io/metrics): NodeMetrics and PodMetrics.

The node agents publish them on the bus (``bus.subjects.node_metrics`` / ``pod_metrics``: ``usage.cpu`` in
nanocores, ``usage.memory`` in Ki, ``timestamp``, ``window``); the gateway serves them as metrics-server does
(``master/gateway/metricsapi.py``). Never stored.
"""

from __future__ import annotations

from bus.models.base import K8sModel, O, ResourceList
from bus.models.meta import TopLevel

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"


class ContainerMetrics(K8sModel):
    name: O[str] = None
    usage: O[ResourceList] = None


class NodeMetrics(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "NodeMetrics"
    timestamp: O[str] = None  # RFC3339: the end of the window the usage was measured over
    window: O[str] = None  # a Go duration, "10s"
    usage: O[ResourceList] = None


class PodMetrics(TopLevel):
    api_version: O[str] = API_VERSION
    kind: O[str] = "PodMetrics"
    timestamp: O[str] = None
    window: O[str] = None
    containers: O[list[ContainerMetrics]] = None
