"""A validating admission webhook through stock kubectl and the official Python client against ``k8n up``: ``kubectl
apply`` of a ValidatingWebhookConfiguration pointing at this test's HTTPS webhook server (url form, its CA as the
caBundle), ``kubectl create configmap`` refused with the webhook's message, ``kubectl get`` showing the
configuration's table, and the Python client listing it through AdmissionregistrationV1Api.

One ``k8n up`` without a node agent serves the module: admission does not need pods to run."""

from __future__ import annotations

import asyncio
import threading

import pytest
from kubernetes import client, config

from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.integration.test_webhooks import DENY_MESSAGE, FORBIDDEN_KEY, WebhookServer
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "wh"


@pytest.fixture(scope="module")
def hooks(tmp_path_factory):
    """The webhook server, on its own event loop in a thread (the test itself is synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv = WebhookServer(tmp_path_factory.mktemp("webhook-pki"))
    asyncio.run_coroutine_threadsafe(srv.start(), loop).result(10)
    try:
        yield srv
    finally:
        asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("webhooks"))
    try:
        c.start(agent=False)
        c.kubectl("create", "namespace", NS)
        yield c
    finally:
        c.stop()


def configuration_yaml(url: str, ca_bundle: str) -> str:
    return f"""apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: configmap-checker
webhooks:
- name: deny.example.com
  clientConfig:
    url: {url}
    caBundle: {ca_bundle}
  rules:
  - operations: ["CREATE", "UPDATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["configmaps"]
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {NS}
  sideEffects: None
  admissionReviewVersions: ["v1"]
  timeoutSeconds: 5
"""


def test_kubectl_create_is_refused_by_a_validating_webhook(k, hooks):
    out = k.kubectl("apply", "-f", "-", input=configuration_yaml(hooks.url("deny"), hooks.ca_bundle)).stdout
    assert out.strip() == "validatingwebhookconfiguration.admissionregistration.k8s.io/configmap-checker created"
    rows = [ln.split() for ln in k.kubectl("get", "validatingwebhookconfigurations").stdout.strip().splitlines()]
    assert rows[0] == ["NAME", "WEBHOOKS", "AGE"] and rows[1][:2] == ["configmap-checker", "1"]

    def refused():
        r = k.kubectl("create", "configmap", "bad", "-n", NS, f"--from-literal={FORBIDDEN_KEY}=x", check=False)
        return r if r.returncode != 0 else None

    r = eventually_sync(refused, 30, "kubectl create configmap to be refused by the webhook")
    assert f'admission webhook "deny.example.com" denied the request: {DENY_MESSAGE}' in r.stderr, r.stderr
    assert k.kubectl("get", "configmap", "bad", "-n", NS, check=False).returncode != 0
    assert k.kubectl("create", "configmap", "good", "-n", NS, "--from-literal=fine=1").returncode == 0
    assert any(req["namespace"] == NS and req["name"] == "good" for _, req in hooks.calls)

    config.load_kube_config(config_file=str(k.kubeconfig))
    api = client.AdmissionregistrationV1Api()
    items = api.list_validating_webhook_configuration().items
    assert [i.metadata.name for i in items] == ["configmap-checker"]
    hook = items[0].webhooks[0]
    assert (hook.name, hook.failure_policy, hook.timeout_seconds, hook.client_config.url) == (
        "deny.example.com", "Fail", 5, hooks.url("deny"))
    assert api.list_mutating_webhook_configuration().items == []
