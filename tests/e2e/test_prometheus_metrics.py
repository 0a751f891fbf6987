"""``kubectl get --raw /metrics`` against ``k8n up`` with a real agent and a running pod that asked the cluster DNS: the
scrape, parsed as Prometheus text, has the kubelet's pod start, the proxy's syncs and the DNS answers of the agent
(labelled with its node) beside the control plane's families."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import container, pod
from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "prom"


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("prom"))
    c.env["K8N_TELEMETRY_SECONDS"] = "1"  # every component publishes each second
    try:
        c.start(agent=True)
        c.kubectl("create", "namespace", NS)
        script = "nslookup kubernetes.default.svc.cluster.local; sleep 3600"
        c.kubectl("create", "-f", "-", input=json.dumps(pod("asker", NS, containers=[container("main", script)],
                                                              grace=1)))
        c.kubectl("wait", "--for=condition=Ready", "pod/asker", "-n", NS, "--timeout=60s", timeout=90)
        yield c
    finally:
        c.stop()


def count(fams: dict, family: str, sample: str, **labels: str) -> float:
    f = fams.get(family)
    return sum(s.value for s in (f.samples if f else []) if s.name == sample
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_every_component_in_one_scrape(k):
    agent = {"component": "node", "node": k.node}

    def scraped():
        r = k.kubectl("get", "--raw", "/metrics", check=False)
        if r.returncode != 0:
            return None
        fams = {f.name: f for f in text_string_to_metric_families(r.stdout)}
        ok = (count(fams, "kubelet_pod_start_duration_seconds", "kubelet_pod_start_duration_seconds_count",
                    **agent) >= 1
              and count(fams, "kubeproxy_sync_proxy_rules_duration_seconds",
                        "kubeproxy_sync_proxy_rules_duration_seconds_count", **agent) >= 1
              and count(fams, "coredns_dns_responses", "coredns_dns_responses_total", rcode="NOERROR", **agent) >= 1
              and count(fams, "scheduler_schedule_attempts", "scheduler_schedule_attempts_total",
                        result="scheduled", component="scheduler") >= 1
              and count(fams, "apiserver_request", "apiserver_request_total", verb="POST", resource="pods",
                        code="201", component="apiserver") >= 1
              and count(fams, "workqueue_adds", "workqueue_adds_total", component="controller-manager") >= 1)
        return fams if ok else None

    fams = eventually_sync(scraped, 30, "the agent's, scheduler's, API server's and controllers' metrics")
    # the pod started within its wait: its start duration is in a bucket at most 90 s
    assert count(fams, "kubelet_pod_start_duration_seconds", "kubelet_pod_start_duration_seconds_sum", **agent) < 90
