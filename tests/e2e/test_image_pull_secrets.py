"""Image pull secrets end to end, as a user of a private registry sees them: ``kubectl create secret
docker-registry`` (kubectl's protobuf body), a pod naming the secret in ``imagePullSecrets`` pulled with
``imagePullPolicy: Always`` from a registry that demands Basic auth (``tests.registry``: the registry records who
pulled), a pod without usable credentials failing with ErrImagePull/ImagePullBackOff and the registry's refusal
in its events (a missing secret is a warning, not a failure), and a pod whose ServiceAccount carries the pull
secret. One ``k8n up`` with one node agent serves the module; the pulled image is removed afterwards."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from kubernetes import client, config

from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER
from tests.registry import Registry
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "ips"
USER, PASSWORD = "alice", "s3cret"


@pytest.fixture(scope="module")
def registry():
    with Registry.from_image("k8n/busybox:latest", "private/busybox", "latest", {USER: PASSWORD}) as reg:
        try:
            yield reg
        finally:
            subprocess.run(["docker", "rmi", f"{reg.host}/private/busybox:latest"], capture_output=True)


@pytest.fixture(scope="module")
def k(tmp_path_factory, registry):
    c = UpCluster(tmp_path_factory.mktemp("pullsecrets"))
    try:
        c.start()
        c.kubectl("create", "namespace", NS)
        yield c
    finally:
        c.stop()


def pod_yaml(name: str, image: str, **spec: str) -> str:
    extra = "".join(f"  {k}: {v}\n" for k, v in spec.items())
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NS}
spec:
{extra}  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Always
    command: ["sleep", "3600"]
"""


def phase(k: UpCluster, name: str) -> str:
    return k.kubectl("get", "pod", name, "-n", NS, "-o", "jsonpath={.status.phase}", check=False).stdout


def events(k: UpCluster, name: str) -> list[tuple[str, str, str]]:
    items = json.loads(k.kubectl("get", "events", "-n", NS, "-o", "json").stdout)["items"]
    return [(e.get("type"), e.get("reason"), e.get("message")) for e in items
            if e["involvedObject"].get("name") == name]


def test_private_registry_pulls_with_pod_and_serviceaccount_pull_secrets(k, registry):
    image = f"{registry.host}/private/busybox:latest"
    r = k.kubectl("create", "secret", "docker-registry", "regcred", "-n", NS, f"--docker-server={registry.host}",
                  f"--docker-username={USER}", f"--docker-password={PASSWORD}")
    assert r.stdout.strip() == "secret/regcred created"
    assert k.kubectl("get", "secret", "regcred", "-n", NS, "-o", "jsonpath={.type}").stdout == \
        "kubernetes.io/dockerconfigjson"

    # the pod's own pull secret: pulled (Always) from the registry as alice, and running
    k.kubectl("apply", "-f", "-", input=pod_yaml("with-secret", image, imagePullSecrets='[{"name": "regcred"}]'))
    eventually_sync(lambda: phase(k, "with-secret") == "Running", 60, "the pod with the pull secret to run")
    assert USER in registry.users
    assert ("Normal", "Pulled", f'Successfully pulled image "{image}"') in events(k, "with-secret")

    # no usable credentials (the one named does not exist): the registry's refusal, although the image is on the
    # node now (Always must not run what the registry refused)
    k.kubectl("apply", "-f", "-", input=pod_yaml("no-secret", image, imagePullSecrets='[{"name": "nosuch"}]'))
    refused = registry.refused.copy()
    eventually_sync(lambda: k.kubectl("get", "pod", "no-secret", "-n", NS, "-o",
                                      "jsonpath={.status.containerStatuses[0].state.waiting.reason}").stdout
                    in ("ErrImagePull", "ImagePullBackOff"), 60, "the pod without credentials to fail its pull")
    seen = events(k, "no-secret")
    assert ("Warning", "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets (nosuch); "
            "attempting to pull the image may not succeed.") in seen
    failed = [m for t, reason, m in seen if reason == "Failed" and m.startswith(f'Failed to pull image "{image}": ')]
    assert failed and "no basic auth credentials" in failed[0], seen
    assert len(registry.refused) > len(refused)
    assert phase(k, "no-secret") == "Pending"

    # the ServiceAccount's pull secret, copied into the pod at admission
    k.kubectl("create", "serviceaccount", "puller", "-n", NS)
    k.kubectl("patch", "serviceaccount", "puller", "-n", NS, "-p", '{"imagePullSecrets": [{"name": "regcred"}]}')
    pulls = registry.users.count(USER)
    k.kubectl("apply", "-f", "-", input=pod_yaml("via-sa", image, serviceAccountName="puller"))
    assert k.kubectl("get", "pod", "via-sa", "-n", NS, "-o", "jsonpath={.spec.imagePullSecrets[*].name}").stdout \
        == "regcred"
    eventually_sync(lambda: phase(k, "via-sa") == "Running", 60, "the pod of the pulling account to run")
    assert registry.users.count(USER) > pulls

    config.load_kube_config(config_file=str(k.kubeconfig))
    core = client.CoreV1Api()
    assert [r.name for r in core.read_namespaced_service_account("puller", NS).image_pull_secrets] == ["regcred"]
    secret = core.read_namespaced_secret("regcred", NS)
    auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
    assert auths[registry.host]["username"] == USER and secret.type == "kubernetes.io/dockerconfigjson"


def test_pull_secret_content_is_validated(k):
    r = k.kubectl("create", "secret", "generic", "broken", "-n", NS, "--type=kubernetes.io/dockerconfigjson",
                  "--from-literal=.dockerconfigjson={not json}", check=False)
    assert r.returncode == 1
    assert ('Secret "broken" is invalid: data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": '
            "invalid character 'n' looking for beginning of object key string") in r.stderr, r.stderr
