"""Pod Security admission against a real nats-server and a real control plane (``python -m master`` with the API
server and the controllers, as ``k8n server`` runs them; settings from the environment): baseline enforced by
default, namespace labels for enforce/warn, workloads warned at create and their pods refused (FailedCreate),
kube-system and configured exempt namespaces privileged, bad labels a 422, a raised enforce level warning about
running pods — and once through ``k8n up``'s HTTP API with stock kubectl."""

from __future__ import annotations

import pytest

from bus.client import ApiClient, resource_of
from bus.proc import stop_process
from tests.builders import container, deployment, namespace, pod
from tests.conftest import wait_for_api
from tests.e2e.upcluster import UpCluster
from tests.harness import Cluster, get_or_none
from tests.waiting import eventually

PODS = resource_of("pods")
ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"
HOSTPATH = [{"name": "h", "hostPath": {"path": "/"}}]
RESTRICTED_DEFAULT_POD = (
    'allowPrivilegeEscalation != false (container "main" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "main" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "main" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "main" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')


@pytest.fixture
async def api(nats_server, tmp_path):
    """A control plane whose Pod Security settings come from the environment, as with ``k8n server``."""
    c = Cluster(nats_server, tmp_path, "none", "10.244.0.0/24")
    c.start_control("apiserver,controllers", env={"K8N_POD_SECURITY_EXEMPT_NAMESPACES": "kube-system,infra"})
    await wait_for_api(nats_server.url)
    client = await ApiClient.connect(nats_server.url)
    yield client
    await client.close()
    stop_process(c.control)


def hardened(name: str = "main") -> dict:
    return container(name, securityContext={"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                            "capabilities": {"drop": ["ALL"]},
                                            "seccompProfile": {"type": "RuntimeDefault"}})


async def test_baseline_is_enforced_by_default_and_exempt_namespaces_stay_privileged(api):
    code, body, _ = await api.call(PODS, "create", "default", body=pod("x", hostNetwork=True, volumes=HOSTPATH))
    assert (code, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('pods "x" is forbidden: violates PodSecurity "baseline:latest": '
                               'host namespaces (hostNetwork=true), hostPath volumes (volume "h")')
    assert await get_or_none(api, "pods", "x") is None
    priv = [container("main", securityContext={"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}})]
    code, body, _ = await api.call(PODS, "create", "default", body=pod("p", containers=priv))
    assert code == 403 and body["message"] == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "main" '
        'must not include "SYS_ADMIN" in securityContext.capabilities.add), privileged (container "main" must not set '
        'securityContext.privileged=true)')
    # an ordinary pod passes baseline without a word
    code, _, warnings = await api.call(PODS, "create", "default", body=pod("ok"))
    assert (code, warnings) == (201, [])
    # kube-system, and the namespaces the setting exempts, take anything
    await api.create(namespace("infra"))
    for ns in ("kube-system", "infra"):
        code, body, warnings = await api.call(PODS, "create", ns, body=pod(
            "agent", ns, containers=priv, hostNetwork=True, hostPID=True, volumes=HOSTPATH))
        assert (code, warnings) == (201, []), body


async def test_restricted_namespace_refuses_a_default_pod_and_admits_a_hardened_one(api):
    await api.create(namespace("secure", labels={ENFORCE: "restricted"}))
    code, body, _ = await api.call(PODS, "create", "secure", body=pod("plain", "secure"))
    assert code == 403
    assert body["message"] == f'pods "plain" is forbidden: violates PodSecurity "restricted:latest": ' \
                              f'{RESTRICTED_DEFAULT_POD}'
    code, _, warnings = await api.call(PODS, "create", "secure", body=pod("hard", "secure", containers=[hardened()]))
    assert (code, warnings) == (201, [])
    # a version label pins the checks of that release: runAsUser=0 is allowed at v1.22, refused from v1.23
    root = pod("root", "secure", containers=[hardened()], securityContext={"runAsUser": 0})
    code, body, _ = await api.call(PODS, "create", "secure", body=root)
    assert code == 403 and body["message"].endswith('runAsUser=0 (pod must not set runAsUser=0)')
    await api.patch("namespaces", "secure", {"metadata": {"labels": {f"{ENFORCE}-version": "v1.22"}}})
    assert (await api.call(PODS, "create", "secure", body=root))[0] == 201


async def test_warn_label_warns_and_workload_pods_are_refused_with_failed_create(api):
    await api.create(namespace("team", labels={WARN: "restricted"}))
    code, _, warnings = await api.call(PODS, "create", "team", body=pod("w", "team"))
    assert code == 201 and warnings == [f'would violate PodSecurity "restricted:latest": {RESTRICTED_DEFAULT_POD}']
    # a Deployment is only warned about (against warn: restricted, which also names the hostPath volume) ...
    d = deployment("web", "team", replicas=1, pod={"volumes": HOSTPATH})
    code, _, warnings = await api.call(resource_of("deployments"), "create", "team", body=d)
    assert code == 201 and len(warnings) == 1
    assert warnings[0].startswith('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false')
    assert 'restricted volume types (volume "h" uses restricted volume type "hostPath")' in warnings[0]
    # ... and in the default namespace against the default warn level, baseline
    code, _, warnings = await api.call(resource_of("deployments"), "create", "default",
                                       body=deployment("web", replicas=1, pod={"volumes": HOSTPATH}))
    assert code == 201 and warnings == ['would violate PodSecurity "baseline:latest": hostPath volumes (volume "h")']

    # its ReplicaSet's pods meet enforce: refused, recorded as FailedCreate on the ReplicaSet
    async def failed_create():
        events, _ = await api.list("events", "default")
        return [e for e in events if e.get("reason") == "FailedCreate"
                and (e.get("involvedObject") or {}).get("kind") == "ReplicaSet"]

    events = await eventually(failed_create, 30, "a FailedCreate event on the Deployment's ReplicaSet")
    message = events[0]["message"]
    assert message.startswith('Error creating: pods "web-') and message.endswith(
        ' is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "h")'), message
    assert (await api.list("pods", "default"))[0] == []


async def test_bad_labels_are_422_and_raising_enforce_warns_about_running_pods(api):
    code, body, _ = await api.call(resource_of("namespaces"), "create", body=namespace(
        "typo", labels={ENFORCE: "baseine"}))
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["message"] == ('Namespace "typo" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
                               'Invalid value: "baseine": must be one of privileged, baseline, restricted')
    assert body["details"]["causes"][0]["field"] == "metadata.labels[pod-security.kubernetes.io/enforce]"

    await api.create(namespace("legacy", labels={ENFORCE: "privileged"}))
    code, body, _ = await api.call(resource_of("namespaces"), "patch", None, "legacy",
                                   body={"metadata": {"labels": {f"{ENFORCE}-version": "1.30"}}},
                                   options={"patchType": "merge"})
    assert code == 422 and body["message"] == (
        'Namespace "legacy" is invalid: metadata.labels[pod-security.kubernetes.io/enforce-version]: '
        'Invalid value: "1.30": must be "latest" or "v1.x"')
    for name, extra in (("h", {"volumes": HOSTPATH}), ("n1", {"hostNetwork": True}), ("n2", {"hostNetwork": True}),
                        ("plain", {})):
        await api.create(pod(name, "legacy", **extra))
    warnings: list[str] = []
    await api.patch("namespaces", "legacy", {"metadata": {"labels": {ENFORCE: "baseline"}}}, warnings=warnings)
    assert warnings == ['existing pods in namespace "legacy" violate the new PodSecurity enforce level '
                        '"baseline:latest"', "h: hostPath volumes", "n1 (and 1 other pod): host namespaces"]
    assert (await api.get("namespaces", "legacy"))["metadata"]["labels"][ENFORCE] == "baseline"  # the change holds
    # running pods stay; metadata-only updates of them pass; a new violating pod does not
    h = await api.get("pods", "h", "legacy")
    h["metadata"].setdefault("labels", {})["seen"] = "yes"
    h = await api.update(h)
    assert h["metadata"]["labels"]["seen"] == "yes"
    h["spec"]["containers"][0]["image"] = "k8n/busybox:1.36"  # an image change is evaluated again
    code, body, _ = await api.call(PODS, "update", "legacy", "h", body=h)
    assert code == 403 and body["message"] == ('pods "h" is forbidden: violates PodSecurity "baseline:latest": '
                                               'hostPath volumes (volume "h")')
    code, _, _ = await api.call(PODS, "create", "legacy", body=pod("h2", "legacy", volumes=HOSTPATH))
    assert code == 403


POD_YAML = """
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: kt}
spec:
  hostNetwork: true
  containers: [{name: main, image: k8n/busybox:latest}]
"""
DEPLOY_YAML = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: kt}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: k8n/busybox:latest}]
"""


def test_kubectl_prints_kubernetes_warnings_and_errors(tmp_path):
    """``k8n up`` (no agent) with a warn level from its environment; stock kubectl through its HTTP API."""
    k = UpCluster(tmp_path)
    k.env["K8N_POD_SECURITY_WARN"] = "restricted"  # k8n up hands it to the API server it starts
    try:
        k.start(agent=False)
        k.kubectl("create", "namespace", "kt")
        r = k.kubectl("apply", "-f", "-", input=POD_YAML, check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == (
            'Error from server (Forbidden): error when creating "STDIN": pods "hostnet" is forbidden: violates '
            'PodSecurity "baseline:latest": host namespaces (hostNetwork=true)')
        r = k.kubectl("apply", "-f", "-", input=DEPLOY_YAML)
        assert r.stdout.strip() == "deployment.apps/web created"
        assert r.stderr.strip() == ('Warning: would violate PodSecurity "restricted:latest": ' +
                                    RESTRICTED_DEFAULT_POD)
        r = k.kubectl("label", "namespace", "kt", "pod-security.kubernetes.io/enforce=strict", check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == (
            'The Namespace "kt" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
            '"strict": must be one of privileged, baseline, restricted')
        r = k.kubectl("label", "namespace", "kt", "pod-security.kubernetes.io/enforce=privileged")
        assert r.stdout.strip() == "namespace/kt labeled"
        assert k.kubectl("apply", "-f", "-", input=POD_YAML).stdout.strip() == "pod/hostnet created"
    finally:
        k.stop()
