"""networking.k8s.io/v1 Ingress and IngressClass served as Kubernetes serves them, against a real nats-server and API
server: the built-in classes (``k8n``, the default, and ``nginx``), DefaultIngressClass admission, the status
subresource, 422s with field paths (snippet and canary annotations included); then, through the real HTTP gateway,
stock kubectl 1.32 (``create ingress``, ``get ingress``, ``get ingressclass``, ``api-resources``) and the official
Python client's NetworkingV1Api (create, read, list, a 422)."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from bus import errors
from bus.ingress import CANARY, CANARY_WEIGHT, DEFAULT_CLASS_ANNOTATION
from tests.integration.test_networkpolicies import kubectl, rows  # noqa: F401 - the gateway and kubectl fixture

NS = "ing"
SNIPPET = "nginx.ingress.kubernetes.io/configuration-snippet"


def ingress(name: str, spec: dict | None = None, annotations: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    spec = spec if spec is not None else {"rules": [{"host": f"{name}.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def ingress_class(name: str, default: bool = False) -> dict:
    meta: dict = {"name": name}
    if default:
        meta["annotations"] = {DEFAULT_CLASS_ANNOTATION: "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": "example.com/ingress"}}


@pytest.fixture
async def ns(client):
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return NS


# ---- over the bus ----------------------------------------------------------------------------------------------------

async def test_the_cluster_starts_with_k8n_as_default_class_and_nginx(client):
    items, _ = await client.list("ingressclasses")
    by_name = {c["metadata"]["name"]: c for c in items}
    assert {n: c["spec"]["controller"] for n, c in by_name.items()} == {"k8n": "k8n.io/ingress",
                                                                        "nginx": "k8s.io/ingress-nginx"}
    assert by_name["k8n"]["metadata"]["annotations"] == {DEFAULT_CLASS_ANNOTATION: "true"}
    assert "annotations" not in by_name["nginx"]["metadata"]


async def test_create_defaults_the_class_and_status_is_a_subresource(client, ns):
    out = await client.create(ingress("web"))
    assert out["spec"]["ingressClassName"] == "k8n"  # DefaultIngressClass
    assert out["status"] == {"loadBalancer": {}} and out["metadata"]["generation"] == 1
    named = await client.create(ingress("named", {**ingress("named")["spec"], "ingressClassName": "nginx"}))
    assert named["spec"]["ingressClassName"] == "nginx"

    out["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ports": [{"port": 443, "protocol": "TCP"}]}]}}
    st = await client.update_status(out)
    assert st["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.10", "ports": [{"port": 443,
                                                                                       "protocol": "TCP"}]}]
    assert st["metadata"]["generation"] == 1
    st["status"] = {}
    st["spec"]["rules"][0]["host"] = "other.example.com"
    updated = await client.update(st)  # the main resource keeps the status and moves the generation
    assert updated["metadata"]["generation"] == 2 and updated["spec"]["rules"][0]["host"] == "other.example.com"
    assert updated["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.10"


async def created_with_class(client, prefix: str, want: str | None) -> dict:
    """Create Ingresses until one gets ``want`` as its class: the API server's class cache follows its watch."""
    for i in range(50):
        out = await client.create(ingress(f"{prefix}{i}"))
        if out["spec"].get("ingressClassName") == want:
            return out
        await asyncio.sleep(0.1)
    raise AssertionError(f"no Ingress got class {want!r}")


async def test_the_newest_default_class_wins_and_none_leaves_the_class_empty(client, ns):
    await client.create(ingress_class("a-team", default=True))  # newer than k8n, or as new and first by name
    await created_with_class(client, "a", "a-team")
    for name in ("a-team", "k8n"):
        c = await client.get("ingressclasses", name)
        c["metadata"]["annotations"] = {}
        await client.update(c)
    await created_with_class(client, "b", None)


async def test_invalid_ingresses_are_422_with_kubernetes_field_paths(client, ns):
    bad = ingress("bad", {"rules": [{"host": "10.0.0.1", "http": {"paths": [
        {"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}},
        {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}],
        "tls": [{"hosts": ["*.*.example.com"]}]},
        {SNIPPET: "more_set_headers 'X: y';", CANARY: "true", CANARY_WEIGHT: "150"})
    with pytest.raises(errors.ApiError) as e:
        await client.create(bad)
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert e.value.message.startswith('Ingress.networking.k8s.io "bad" is invalid: ')
    assert {c["field"] for c in e.value.status()["details"]["causes"]} == {
        f"metadata.annotations[{SNIPPET}]", f"metadata.annotations[{CANARY_WEIGHT}]", "spec.rules[0].host",
        "spec.rules[0].http.paths[0].path", "spec.rules[0].http.paths[0].backend",
        "spec.rules[0].http.paths[1].pathType", "spec.tls[0].hosts[0]"}
    good = await client.create(ingress("good"))
    good["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/server-snippet": "listen 8080;"}
    with pytest.raises(errors.ApiError) as e:  # an update may not add one either
        await client.update(good)
    assert e.value.code == 422 and [c["field"] for c in e.value.status()["details"]["causes"]] == [
        "metadata.annotations[nginx.ingress.kubernetes.io/server-snippet]"]
    with pytest.raises(errors.ApiError) as e:
        await client.create(ingress_class("x") | {"spec": {"controller": "no-domain"}})
    assert e.value.code == 422 and e.value.message == (
        'IngressClass.networking.k8s.io "x" is invalid: spec.controller: Invalid value: "no-domain": '
        'must be a domain-prefixed path (such as "acme.io/foo")')


# ---- stock kubectl and the Python client through the gateway (test_networkpolicies' fixture, in namespace NS) ------

async def test_kubectl_create_get_ingress_and_ingressclass(kubectl):
    code, out, err = await kubectl("api-resources", "--api-group", "networking.k8s.io")
    assert code == 0, err
    assert ["ingresses", "ing", "networking.k8s.io/v1", "true", "Ingress"] in rows(out)
    assert ["ingressclasses", "networking.k8s.io/v1", "false", "IngressClass"] in rows(out)

    code, out, err = await kubectl("create", "ingress", "shop", "-n", NS, "--class=nginx",
                                   "--rule=shop.example.com/=web:80,tls=shop-tls",
                                   "--rule=api.example.com/v1*=api:http")
    assert (code, out.strip()) == (0, "ingress.networking.k8s.io/shop created"), err
    code, out, err = await kubectl("create", "ingress", "catch-all", "-n", NS, "--default-backend=web:80")
    assert code == 0, err
    code, out, err = await kubectl("get", "ingress", "-n", NS)
    assert code == 0, err
    table = rows(out)
    assert table[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    # no ADDRESS yet (no controller): an empty cell
    assert table[1][:4] == ["catch-all", "k8n", "*", "80"]
    assert table[2][:5] == ["shop", "nginx", "shop.example.com,api.example.com", "80,", "443"]
    code, out, err = await kubectl("get", "ing", "shop", "-n", NS, "-o", "jsonpath={.spec.rules[0].http.paths[0]."
                                   "pathType} {.spec.rules[1].http.paths[0].pathType} {.spec.rules[1].http.paths[0]."
                                   "backend.service.port.name} {.spec.tls[0].hosts[0]}={.spec.tls[0].secretName}")
    assert (code, out) == (0, "Exact Prefix http shop.example.com=shop-tls"), err

    code, out, err = await kubectl("get", "ingressclass")
    assert code == 0, err
    assert rows(out)[0] == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert [r[:3] for r in rows(out)[1:]] == [["k8n", "k8n.io/ingress", "<none>"],
                                             ["nginx", "k8s.io/ingress-nginx", "<none>"]]

    code, out, err = await kubectl("create", "ingress", "bad", "-n", NS, "--rule=10.0.0.1/=web:80")
    assert code == 1
    assert err.strip() == ('error: failed to create ingress: Ingress.networking.k8s.io "bad" is invalid: '
                           'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address')
    code, out, err = await kubectl("create", "ingress", "sneaky", "-n", NS, "--rule=a.example.com/=web:80",
                                   f"--annotation={SNIPPET}=return 200;")
    assert code == 1 and f"metadata.annotations[{SNIPPET}]: Forbidden: snippet annotations are refused" in err


def python_client(url: str, ca: str) -> k8s.NetworkingV1Api:
    cfg = k8s.Configuration()
    cfg.host, cfg.ssl_ca_cert = url, ca
    cfg.api_key = {"authorization": "admin-token"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return k8s.NetworkingV1Api(k8s.ApiClient(cfg))


def python_ingress(name: str) -> k8s.V1Ingress:
    backend = k8s.V1IngressBackend(service=k8s.V1IngressServiceBackend(
        name="web", port=k8s.V1ServiceBackendPort(number=8080)))
    return k8s.V1Ingress(metadata=k8s.V1ObjectMeta(name=name, annotations={CANARY: "true", CANARY_WEIGHT: "20"}),
                         spec=k8s.V1IngressSpec(ingress_class_name="nginx", rules=[k8s.V1IngressRule(
                             host="py.example.com", http=k8s.V1HTTPIngressRuleValue(paths=[k8s.V1HTTPIngressPath(
                                 path="/", path_type="Prefix", backend=backend)]))]))


async def test_the_python_client_creates_reads_and_lists_ingresses(kubectl):
    api = python_client(kubectl.args[1], kubectl.args[3])  # the gateway's URL and CA
    created = await asyncio.to_thread(api.create_namespaced_ingress, NS, python_ingress("py-canary"))
    assert isinstance(created, k8s.V1Ingress) and created.metadata.uid
    assert created.spec.rules[0].http.paths[0].backend.service.port.number == 8080
    got = await asyncio.to_thread(api.read_namespaced_ingress, "py-canary", NS)
    assert got.metadata.uid == created.metadata.uid and got.metadata.annotations[CANARY_WEIGHT] == "20"
    listed = await asyncio.to_thread(api.list_namespaced_ingress, NS)
    assert [i.metadata.name for i in listed.items] == ["py-canary"]
    classes = await asyncio.to_thread(api.list_ingress_class)
    assert {c.metadata.name: c.spec.controller for c in classes.items} == {"k8n": "k8n.io/ingress",
                                                                          "nginx": "k8s.io/ingress-nginx"}

    bad = python_ingress("py-bad")
    bad.metadata.annotations[CANARY_WEIGHT] = "heavy"
    bad.spec.rules[0].http.paths[0].path_type = "Regex"
    with pytest.raises(ApiException) as e:
        await asyncio.to_thread(api.create_namespaced_ingress, NS, bad)
    assert e.value.status == 422
    status = json.loads(e.value.body)
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    assert [(c["field"], c["message"]) for c in status["details"]["causes"]] == [
        (f"metadata.annotations[{CANARY_WEIGHT}]",
         'Invalid value: "heavy": must be an integer between 0 and 100 (canary-weight-total), inclusive'),
        ("spec.rules[0].http.paths[0].pathType",
         'Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"')]
