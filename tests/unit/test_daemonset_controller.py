"""The DaemonSet reconciler against a fake client and informers whose cache lags behind: expectations
keep a second pass from creating a second pod on a node."""

from __future__ import annotations

import pytest

from master.controllers.daemonset import DaemonSetController
from tests.unit.test_job_controller import FakeClient, Recorder, informer

pytestmark = pytest.mark.asyncio


async def test_daemonset_expectations_prevent_duplicate_creates_while_the_cache_lags():
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "status": {},
          "metadata": {"name": "d", "namespace": "default", "uid": "d1", "generation": 1, "resourceVersion": "1"},
          "spec": {"selector": {"matchLabels": {"app": "d"}},
                   "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                   "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}}
    nodes = [{"metadata": {"name": n, "labels": {}}, "spec": {}} for n in ("a", "b", "c")]
    client = FakeClient()
    dss, pods, nodes_inf = await informer("daemonsets", [ds]), await informer("pods", []), await informer("nodes", nodes)
    dsc = DaemonSetController(client, dss, pods, nodes_inf, Recorder())
    await dsc.reconcile("default.d")
    await dsc.reconcile("default.d")
    targets = sorted(p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                     ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0] for p in client.created)
    assert targets == ["a", "b", "c"]
    assert client.statuses[-1]["desiredNumberScheduled"] == 3
    for inf in (dss, pods, nodes_inf):
        await inf.stop()
