"""The node agent's Prometheus metrics (``bus.telemetry``; published on ``k8n.telemetry.node.<node>``), with the
names Kubernetes' kubelet, kube-proxy and CoreDNS use:

- ``kubelet_pod_start_duration_seconds``: from the agent first seeing a pod to its first status with phase
  Running (a pod already running when the agent started is not counted);
- ``kubeproxy_sync_proxy_rules_duration_seconds``: one sync of the service datapath (render, diff, nft);
- ``coredns_dns_requests_total{proto}`` and ``coredns_dns_responses_total{rcode}`` of the node's cluster DNS.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

#: the kubelet's pod start buckets (seconds)
POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200,
                     1800, 2700, 3600)
#: kube-proxy's sync buckets: 1 ms doubling, 15 of them
SYNC_BUCKETS = tuple(0.001 * 2**i for i in range(15))


class KubeletMetrics:
    def __init__(self, registry: Any) -> None:
        self.pod_start = Histogram("kubelet_pod_start_duration_seconds", "Duration in seconds from kubelet seeing "
                                   "a pod for the first time to the pod starting to run", buckets=POD_START_BUCKETS,
                                   registry=registry)


class ProxyMetrics:
    def __init__(self, registry: Any) -> None:
        self.sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds",
                              buckets=SYNC_BUCKETS, registry=registry)


class DnsMetrics:
    def __init__(self, registry: Any) -> None:
        self.requests = Counter("coredns_dns_requests_total", "Counter of DNS requests made per protocol.",
                                ("proto",), registry=registry)
        self.responses = Counter("coredns_dns_responses_total", "Counter of response status codes.", ("rcode",),
                                 registry=registry)
