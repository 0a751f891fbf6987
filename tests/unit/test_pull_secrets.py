"""Image pull secrets: which credentials the agent picks for an image (Kubernetes' credentialprovider keyring), the
credentials read from both secret types, the ServiceAccount admission copying the account's pull secrets into a
pod, the two types' validation, the node authorizer keeping a pull secret to the nodes of the pods naming it, and
the pod worker turning a missing secret into a warning event."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from bus import errors
from bus.authn import node_user
from bus.nodeauthz import NodeAuthorizer, NodeGraph
from bus.rbac import Attributes
from bus.resources import by_kind, by_plural
from bus.validation import validate_object
from master.apiserver.admission import admit_service_account
from node.podworker import PodWorker
from node.runtime.pullsecrets import AuthConfig, CredentialError, Keyring, docker_config, keyring, urls_match
from tests import builders


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config_json_secret(auths: dict, name: str = "regcred") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": "ns"},
            "data": {".dockerconfigjson": b64(json.dumps({"auths": auths}))}}


def ring(*keys: str) -> Keyring:
    r = Keyring()
    r.add({k: AuthConfig(k, "pw") for k in keys})
    return r


def users(r: Keyring, image: str) -> list[str]:
    return [a.username for a in r.lookup(image)]


# ---- keyring matching ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, image, matches", [
    ("registry.example.com", "registry.example.com/team/app:1.0", True),
    ("https://registry.example.com", "registry.example.com/app", True),
    ("http://registry.example.com/v2/", "registry.example.com/app", True),
    ("https://registry.example.com/v1/", "registry.example.com/app", True),
    ("registry.example.com/team", "registry.example.com/team/app", True),
    ("registry.example.com/team", "registry.example.com/other/app", False),
    ("registry.example.com", "example.com/app", False),
    ("*.example.com", "eu.example.com/app", True),
    ("*.example.com", "a.eu.example.com/app", False),
    ("127.0.0.1:5000", "127.0.0.1:5000/private/busybox:latest", True),
    ("127.0.0.1:5000", "127.0.0.1:5001/private/busybox", False),
    ("127.0.0.1:5000", "127.0.0.1/private/busybox", False),
    ("127.0.0.1", "127.0.0.1:5000/private/busybox", False),
    ("registry.example.com:443", "registry.example.com/app@sha256:" + "a" * 64, False),
    ("registry.example.com", "registry.example.com/app@sha256:" + "a" * 64, True),
])
def test_a_registry_key_matches_the_images_of_its_host_port_and_path(key, image, matches):
    assert users(ring(key), image) == ([key] if matches else [])


def test_docker_hub_credentials_serve_images_without_a_registry_host():
    r = ring("https://index.docker.io/v1/")
    for image in ("busybox", "busybox:1.36", "team/app:2", "docker.io/library/busybox", "index.docker.io/team/a"):
        assert users(r, image) == ["https://index.docker.io/v1/"], image
    for image in ("quay.io/team/app", "localhost:5000/app", "registry.example.com/app"):
        assert users(r, image) == [], image


def test_every_matching_credential_is_tried_the_most_specific_first():
    r = ring("quay.io", "quay.io/coreos", "quay.io/other", "*.io")
    assert users(r, "quay.io/coreos/etcd:v3") == ["quay.io/coreos", "quay.io", "*.io"]
    r.add({"quay.io": AuthConfig("second", "pw")})  # a second secret for the same registry: both, in order
    assert users(r, "quay.io/x") == ["quay.io", "second", "*.io"]
    assert urls_match("quay.io", "quay.io/x") and not urls_match("quay.io/x", "quay.io")


# ---- credentials from the two secret types -----------------------------------------------------------------------

def test_dockerconfigjson_auths_with_auth_field_and_username_password():
    secret = config_json_secret({
        "127.0.0.1:5000": {"auth": b64("alice:pa:ss"), "username": "ignored", "password": "ignored"},
        "https://index.docker.io/v1/": {"username": "bob", "password": "pw", "email": "bob@example.com"}})
    assert docker_config(secret) == {"127.0.0.1:5000": AuthConfig("alice", "pa:ss"),
                                     "https://index.docker.io/v1/": AuthConfig("bob", "pw", "bob@example.com")}
    (auth,) = keyring([secret]).lookup("127.0.0.1:5000/private/busybox:latest")
    assert auth.docker() == {"username": "alice", "password": "pa:ss"}
    assert keyring([secret]).lookup("busybox")[0].docker() == {"username": "bob", "password": "pw",
                                                               "email": "bob@example.com"}


def test_dockercfg_is_the_map_itself_and_string_data_counts():
    legacy = {"type": "kubernetes.io/dockercfg",
              "stringData": {".dockercfg": json.dumps({"registry.example.com": {"auth": b64("carol:pw")}})}}
    assert docker_config(legacy) == {"registry.example.com": AuthConfig("carol", "pw")}
    # the other key of the other type, an Opaque secret, an empty value: no credentials
    assert docker_config({**legacy, "type": "kubernetes.io/dockerconfigjson"}) == {}
    assert docker_config({"type": "Opaque", "data": {".dockerconfigjson": b64("{}")}}) == {}
    assert docker_config({"type": "kubernetes.io/dockercfg", "data": {".dockercfg": ""}}) == {}


@pytest.mark.parametrize("content, message", [
    ("not json", ".dockerconfigjson: "),
    ('{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}', "must be formatted as base64(username:password)"),
    ('{"auths": {"r": {"auth": "%%%"}}}', "illegal base64 data in auth field"),
    ('{"auths": []}', "auths is not a JSON object"),
])
def test_an_unreadable_pull_secret_is_an_error(content, message):
    secret = {"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": content}}
    with pytest.raises(CredentialError, match=message.replace("(", r"\(").replace(")", r"\)")):
        keyring([secret])


# ---- ServiceAccount admission ------------------------------------------------------------------------------------

class Accounts:
    def __init__(self, accounts: dict) -> None:
        self.accounts = accounts

    async def get(self, res, ns, name):
        if (ns, name) not in self.accounts:
            raise errors.not_found(res.plural, name)
        return self.accounts[(ns, name)]


async def test_admission_copies_the_accounts_pull_secrets_into_a_pod_without_any():
    store = Accounts({("ns", "puller"): {"imagePullSecrets": [{"name": "regcred"}, {"name": "other"}],
                                         "automountServiceAccountToken": False},
                      ("ns", "default"): {}})
    pod = builders.pod("p", None, serviceAccountName="puller")
    await admit_service_account(store, pod, "ns")
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert "volumes" not in pod["spec"]  # the account's automount is still read

    own = builders.pod("p", None, serviceAccountName="puller", imagePullSecrets=[{"name": "mine"}],
                       automountServiceAccountToken=True)
    await admit_service_account(store, own, "ns")
    assert own["spec"]["imagePullSecrets"] == [{"name": "mine"}]  # the pod's own list wins

    plain = builders.pod("p", None)
    await admit_service_account(store, plain, "ns")
    assert "imagePullSecrets" not in plain["spec"]
    missing = builders.pod("p", None, serviceAccountName="not-yet")
    await admit_service_account(store, missing, "ns")
    assert "imagePullSecrets" not in missing["spec"]


# ---- validation --------------------------------------------------------------------------------------------------

def causes(secret: dict) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in validate_object(by_kind("Secret"), secret)[1]]


@pytest.mark.parametrize("kind, key", [("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
                                       ("kubernetes.io/dockercfg", ".dockercfg")])
def test_pull_secret_types_require_their_key_holding_a_json_object(kind, key):
    def secret(**fields):
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}, "type": kind,
                **fields}

    assert causes(secret(data={key: b64('{"auths": {}}')})) == []
    assert causes(secret(stringData={key: "null"})) == []
    assert causes(secret(data={"other": b64("{}")})) == [(f"data[{key}]", "Required value")]
    redacted = 'Invalid value: "<secret contents redacted>": '
    assert causes(secret(data={key: b64("{not json}")})) == [
        (f"data[{key}]", redacted + "invalid character 'n' looking for beginning of object key string")]
    assert causes(secret(stringData={key: '{"auths": {}'})) == [
        (f"data[{key}]", redacted + "unexpected end of JSON input")]
    assert causes(secret(stringData={key: "[1]"})) == [
        (f"data[{key}]", redacted + "json: cannot unmarshal array into Go value of type map[string]interface {}")]
    assert causes({**secret(data={key: b64("x")}), "type": "Opaque"}) == []


# ---- node authorization ------------------------------------------------------------------------------------------

def test_a_node_reads_only_the_pull_secrets_of_pods_bound_to_it():
    graph = NodeGraph()
    for name, node, secret in (("a", "n1", "regcred-a"), ("b", "n2", "regcred-b")):
        graph.set_pod({"metadata": {"name": name, "namespace": "ns", "uid": name},
                       "spec": {"nodeName": node, "imagePullSecrets": [{"name": secret}], "containers": []}})
    authz = NodeAuthorizer(graph)

    def may_read(node: str, secret: str) -> bool:
        attrs = Attributes.for_resource(node_user(node), "get", by_plural("secrets"), "ns", secret, "")
        return authz.authorize(attrs, None).allowed

    assert may_read("n1", "regcred-a") and may_read("n2", "regcred-b")
    assert not may_read("n1", "regcred-b") and not may_read("n2", "regcred-a")


# ---- the pod worker --------------------------------------------------------------------------------------------

class Host:
    def __init__(self, secrets: dict) -> None:
        self.secrets, self.events, self.reads = secrets, [], []
        self.recorder = SimpleNamespace(event=self._event)

    async def _event(self, obj, type_, reason, message, field_path=None):
        self.events.append((type_, reason, message))

    async def get_object(self, resource, name, namespace):
        self.reads.append((resource, namespace, name))
        if name not in self.secrets:
            raise errors.not_found(resource, name)
        return self.secrets[name]


async def test_the_worker_pulls_with_the_matching_credentials_and_warns_of_missing_secrets():
    host = Host({"regcred": config_json_secret({"127.0.0.1:5000": {"username": "alice", "password": "pw"},
                                                "quay.io": {"username": "q", "password": "pw"}})})
    pod = builders.pod("p", "ns",
                       imagePullSecrets=[{"name": "gone"}, {"name": "regcred"}, {"name": "also-gone"}])
    worker = PodWorker(host, "uid-1", pod)
    assert await worker.pull_credentials("127.0.0.1:5000/private/busybox:latest") == [
        {"username": "alice", "password": "pw"}]
    assert host.reads == [("secrets", "ns", "gone"), ("secrets", "ns", "regcred"), ("secrets", "ns", "also-gone")]
    assert host.events == [("Warning", "FailedToRetrieveImagePullSecret",
                            "Unable to retrieve some image pull secrets (gone, also-gone); attempting to pull the "
                            "image may not succeed.")]
    assert await worker.pull_credentials("busybox") == []  # no credentials for Docker Hub in these
