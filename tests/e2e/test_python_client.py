"""The official ``kubernetes`` Python client (from PyPI) against ``k8n up`` with the kubeconfig it writes: CRUD on
pods, deployments and services (create, read, list by label, patch, replace, delete) and a watch that sees ADDED,
MODIFIED and DELETED — written as a user of that client writes it."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests import builders
from tests.builders import IMAGE, container
from tests.e2e.upcluster import UpCluster
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

NS = "default"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("pyclient"))
    try:
        c.start(agent=False)  # objects only: no pod has to run
        config.load_kube_config(config_file=str(c.kubeconfig))
        yield c
    finally:
        c.stop()


@pytest.fixture
def core(cluster):
    return client.CoreV1Api()


@pytest.fixture
def apps(cluster):
    return client.AppsV1Api()


def pod(name: str, labels: dict) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels=labels), spec=client.V1PodSpec(
        containers=[client.V1Container(name="c", image=IMAGE, command=["sleep", "3600"])]))


def names(items) -> list[str]:
    return sorted(o.metadata.name for o in items)


def test_pod_crud(core):
    created = core.create_namespaced_pod(NS, pod("py-a", {"app": "py", "tier": "a"}))
    assert isinstance(created, client.V1Pod) and created.metadata.uid and created.status.phase == "Pending"
    core.create_namespaced_pod(NS, pod("py-b", {"app": "py", "tier": "b"}))
    core.create_namespaced_pod(NS, pod("other", {"app": "other"}))

    got = core.read_namespaced_pod("py-a", NS)
    assert got.metadata.uid == created.metadata.uid and got.spec.containers[0].image == IMAGE
    assert names(core.list_namespaced_pod(NS, label_selector="app=py").items) == ["py-a", "py-b"]
    assert names(core.list_namespaced_pod(NS, label_selector="app=py,tier!=a").items) == ["py-b"]
    assert "py-a" in names(core.list_pod_for_all_namespaces(label_selector="app").items)

    # the client's default patch type for a list body is a JSON patch
    patched = core.patch_namespaced_pod("py-a", NS, [{"op": "add", "path": "/metadata/labels/stage", "value": "1"}])
    assert patched.metadata.labels == {"app": "py", "tier": "a", "stage": "1"}
    merged = core.patch_namespaced_pod("py-a", NS, {"metadata": {"labels": {"stage": None, "x": "y"}}},
                                       _content_type=MERGE)
    assert merged.metadata.labels == {"app": "py", "tier": "a", "x": "y"}

    def annotate(p: client.V1Pod) -> None:
        p.metadata.annotations = {"note": "replaced"}

    replaced = replace_retrying(lambda: core.read_namespaced_pod("py-a", NS), annotate,
                                lambda p: core.replace_namespaced_pod("py-a", NS, p))
    assert replaced.metadata.annotations == {"note": "replaced"}
    core.patch_namespaced_pod("py-a", NS, {"metadata": {"labels": {"later": "1"}}}, _content_type=MERGE)
    with pytest.raises(ApiException) as e:  # a replace carrying a stale resourceVersion: a conflict
        core.replace_namespaced_pod("py-a", NS, replaced)
    assert e.value.status == 409 and "Conflict" in e.value.body

    for name in ("py-a", "py-b", "other"):
        core.delete_namespaced_pod(name, NS)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("py-a", NS)
    assert e.value.status == 404
    assert core.list_namespaced_pod(NS, label_selector="app=py").items == []


def replace_retrying(read, change, replace, attempts: int = 5):
    for _ in range(attempts - 1):
        obj = read()
        change(obj)
        try:
            return replace(obj)
        except ApiException as e:
            if e.status != 409:
                raise
    obj = read()
    change(obj)
    return replace(obj)


def deployment(name: str) -> dict:
    return builders.deployment(name, None, replicas=1, labels={"app": name},
                               containers=[container("web", pull=None, command=["sleep", "3600"])])


def test_deployment_crud(apps):
    created = apps.create_namespaced_deployment(NS, deployment("pyweb"))
    assert isinstance(created, client.V1Deployment) and created.spec.replicas == 1
    assert apps.read_namespaced_deployment("pyweb", NS).metadata.uid == created.metadata.uid
    assert names(apps.list_namespaced_deployment(NS, label_selector="app=pyweb").items) == ["pyweb"]

    scaled = apps.patch_namespaced_deployment("pyweb", NS, {"spec": {"replicas": 3}}, _content_type=STRATEGIC)
    assert scaled.spec.replicas == 3 and scaled.metadata.generation == 2
    # strategic merge: the container is merged by name, the other fields stay
    image = apps.patch_namespaced_deployment("pyweb", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "k8n/busybox:v2"}]}}}}, _content_type=STRATEGIC)
    ctr = image.spec.template.spec.containers[0]
    assert (ctr.name, ctr.image, ctr.command) == ("web", "k8n/busybox:v2", ["sleep", "3600"])

    def change(d: client.V1Deployment) -> None:
        d.spec.replicas = 2
        d.metadata.labels["replaced"] = "yes"

    # the controllers write the status meanwhile: read-modify-replace retried on 409, as client-go's RetryOnConflict
    replaced = replace_retrying(lambda: apps.read_namespaced_deployment("pyweb", NS), change,
                                lambda d: apps.replace_namespaced_deployment("pyweb", NS, d))
    assert replaced.spec.replicas == 2 and replaced.metadata.labels["replaced"] == "yes"
    scale = apps.read_namespaced_deployment_scale("pyweb", NS)
    assert scale.spec.replicas == 2

    with pytest.raises(ApiException) as e:  # invalid: a Status with the field path, not a crash
        apps.patch_namespaced_deployment("pyweb", NS, {"spec": {"replicas": -1}}, _content_type=MERGE)
    assert e.value.status == 422 and "spec.replicas" in e.value.body

    apps.delete_namespaced_deployment("pyweb", NS)
    eventually_sync(lambda: not apps.list_namespaced_deployment(NS, label_selector="app=pyweb").items, 20,
                    "the deployment gone from the list")
    with pytest.raises(ApiException) as e:
        apps.read_namespaced_deployment("pyweb", NS)
    assert e.value.status == 404


def test_service_crud(core):
    svc = client.V1Service(metadata=client.V1ObjectMeta(name="pysvc", labels={"app": "pysvc"}),
                           spec=client.V1ServiceSpec(selector={"app": "pysvc"}, ports=[
                               client.V1ServicePort(name="http", port=80, target_port=8080)]))
    created = core.create_namespaced_service(NS, svc)
    assert created.spec.ports[0].port == 80 and created.spec.ports[0].target_port == 8080
    assert core.read_namespaced_service("pysvc", NS).metadata.uid == created.metadata.uid
    assert names(core.list_namespaced_service(NS, label_selector="app=pysvc").items) == ["pysvc"]

    patched = core.patch_namespaced_service("pysvc", NS, {"metadata": {"annotations": {"a": "1"}}},
                                            _content_type=MERGE)
    assert patched.metadata.annotations == {"a": "1"}
    current = core.read_namespaced_service("pysvc", NS)
    current.spec.ports.append(client.V1ServicePort(name="metrics", port=9090, target_port=9090))
    replaced = core.replace_namespaced_service("pysvc", NS, current)
    assert [(p.name, p.port) for p in replaced.spec.ports] == [("http", 80), ("metrics", 9090)]
    assert replaced.spec.cluster_ip == created.spec.cluster_ip

    core.delete_namespaced_service("pysvc", NS)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_service("pysvc", NS)
    assert e.value.status == 404


def test_watch_sees_added_modified_deleted(core):
    selector = "app=watched"
    rv = core.list_namespaced_pod(NS, label_selector=selector).metadata.resource_version
    errors: list[BaseException] = []

    def act() -> None:
        try:
            core.create_namespaced_pod(NS, pod("w1", {"app": "watched"}))
            core.patch_namespaced_pod("w1", NS, {"metadata": {"labels": {"step": "two"}}}, _content_type=MERGE)
            core.delete_namespaced_pod("w1", NS)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    actor = threading.Thread(target=act)
    w = watch.Watch()
    seen: list[tuple[str, str, dict]] = []
    actor.start()
    try:
        for event in w.stream(core.list_namespaced_pod, namespace=NS, label_selector=selector,
                              resource_version=rv, timeout_seconds=30):
            obj = event["object"]
            seen.append((event["type"], obj.metadata.name, dict(obj.metadata.labels or {})))
            if event["type"] == "DELETED":
                w.stop()
    finally:
        actor.join(30)
    assert not errors, errors
    types = [t for t, _, _ in seen]
    assert types[0] == "ADDED" and types[-1] == "DELETED" and "MODIFIED" in types, seen
    assert all(name == "w1" for _, name, _ in seen)
    assert any(t == "MODIFIED" and labels.get("step") == "two" for t, _, labels in seen), seen


def test_eviction(core):
    core.create_namespaced_pod(NS, pod("evictme", {"app": "evict"}))
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name="evictme", namespace=NS),
                             delete_options=client.V1DeleteOptions(grace_period_seconds=0))
    core.create_namespaced_pod_eviction("evictme", NS, body)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("evictme", NS)
    assert e.value.status == 404
    with pytest.raises(ApiException) as e:  # gone: a 404 Status
        core.create_namespaced_pod_eviction("evictme", NS, body)
    assert e.value.status == 404 and "NotFound" in e.value.body


def test_a_role_limited_token_gets_exactly_its_rights(cluster, core):
    """The official client with a ServiceAccount token from TokenRequest (create_namespaced_service_account_token,
    i.e. `kubectl create token`) and a Role allowing only get/list of configmaps in one namespace."""
    rbac = client.RbacAuthorizationV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-rbac")))
    core.create_namespaced_service_account("py-rbac", client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="limited")))
    core.create_namespaced_config_map("py-rbac", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1")))
    rbac.create_namespaced_role("py-rbac", client.V1Role(
        metadata=client.V1ObjectMeta(name="cm-reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])]))
    rbac.create_namespaced_role_binding("py-rbac", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="limited"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="limited", namespace="py-rbac")],
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader")))
    tr = core.create_namespaced_service_account_token("limited", "py-rbac", client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)))
    assert tr.status.token and tr.status.expiration_timestamp is not None
    admin = client.Configuration.get_default_copy()
    limited = client.Configuration()
    limited.host, limited.ssl_ca_cert = admin.host, admin.ssl_ca_cert
    limited.api_key = {"authorization": f"Bearer {tr.status.token}"}
    as_sa = client.CoreV1Api(client.ApiClient(limited))
    got = eventually_sync(lambda: _or_none(lambda: as_sa.list_namespaced_config_map("py-rbac")), 20,
                          "the binding to take effect")
    assert "c1" in names(got.items)
    with pytest.raises(ApiException) as e:
        as_sa.create_namespaced_config_map("py-rbac", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c2")))
    assert e.value.status == 403 and json.loads(e.value.body)["message"] == (
        'configmaps is forbidden: User "system:serviceaccount:py-rbac:limited" cannot create resource "configmaps" '
        'in API group "" in the namespace "py-rbac"')
    with pytest.raises(ApiException) as e:
        as_sa.list_namespaced_secret("kube-system")
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        as_sa.list_namespaced_config_map("default")
    assert e.value.status == 403
    review = client.AuthorizationV1Api(client.ApiClient(limited)).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(namespace="py-rbac", verb="list",
                                                            resource="configmaps"))))
    assert review.status.allowed is True
    core.delete_namespace("py-rbac")


def _or_none(fn):
    try:
        return fn()
    except ApiException:
        return None
