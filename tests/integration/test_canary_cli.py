"""``k8n canary ingress/NAME --weight N | --abort | --promote`` run as a user runs it (the CLI in its own process)
against a real nats-server and API server with authentication and RBAC on; then the Ingresses are read back: their
annotations, their backends, and ingress-nginx's canary view of them (``bus.ingress.canary``)."""

from __future__ import annotations

import os

import pytest

from bus.ingress import CANARY, CANARY_BY_COOKIE, CANARY_BY_HEADER, CANARY_BY_HEADER_VALUE, CANARY_WEIGHT, canary
from tests.integration.test_history import k8n
from tests.integration.test_ingresses import ingress

NS = "canary"


def rules(*hosts_services: tuple[str, str]) -> dict:
    return {"ingressClassName": "nginx", "rules": [
        {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": svc, "port": {"number": 80}}}}]}} for host, svc in hosts_services]}


def made(name: str, spec: dict, annotations: dict | None = None) -> dict:
    obj = ingress(name, spec, annotations)
    obj["metadata"]["namespace"] = NS
    return obj


@pytest.fixture
async def env(client, nats_server):
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return {**os.environ, "K8N_SERVER": nats_server.url}


async def anns(client, name: str) -> dict:
    return (await client.get("ingresses", name, NS))["metadata"].get("annotations") or {}


def backends(obj: dict) -> dict[str, str]:
    return {r["host"]: r["http"]["paths"][0]["backend"]["service"]["name"] for r in obj["spec"]["rules"]}


async def test_weight_then_abort(client, env):
    await client.create(made("web", rules(("shop.example.com", "web"))))
    await client.create(made("web-canary", rules(("shop.example.com", "web-v2")),
                             {CANARY: "true", CANARY_BY_HEADER: "X-Canary", CANARY_BY_HEADER_VALUE: "yes",
                              CANARY_BY_COOKIE: "beta"}))

    code, out, err = await k8n(env, "canary", "ingress/web-canary", "-n", NS, "--weight", "20")
    assert (code, out, err) == (0, "ingress.networking.k8s.io/web-canary weight 20/100\n", "")
    a = await anns(client, "web-canary")
    assert a[CANARY_WEIGHT] == "20" and canary(a).share == 0.2 and canary(a).rules == ("header", "cookie", "weight")

    for args, message in [
            (["--weight", "101"], "error: invalid weight 101: must be between 0 and 100 (canary-weight-total), "
                                  "inclusive\n"),
            (["--weight=-5"], "error: invalid weight -5: must be 0 or more\n"),
            (["--weight", "5", "--abort"], "error: exactly one of --weight, --promote or --abort is required\n")]:
        code, out, err = await k8n(env, "canary", "ingress/web-canary", "-n", NS, *args)
        assert (code, out, err) == (1, "", message)
    code, _, err = await k8n(env, "canary", "ingress/web", "-n", NS, "--weight", "10")
    assert code == 1 and err == ('error: ingress "web" is not a canary: it has no annotation '
                                 'nginx.ingress.kubernetes.io/canary: "true"\n')
    code, _, err = await k8n(env, "canary", "ingress/nope", "-n", NS, "--abort")
    assert code == 1 and err == 'Error from server (NotFound): ingresses.networking.k8s.io "nope" not found\n'
    code, _, err = await k8n(env, "canary", "svc/web", "-n", NS, "--abort")
    assert code == 1 and "canary works on Ingresses" in err
    assert (await anns(client, "web-canary"))[CANARY_WEIGHT] == "20" and await anns(client, "web") == {}

    code, out, err = await k8n(env, "canary", "ingress/web-canary", "-n", NS, "--abort")
    assert (code, err) == (0, "") and out == ("ingress.networking.k8s.io/web-canary aborted: weight 0/100, "
                                              "no header or cookie rule\n")
    a = await anns(client, "web-canary")
    assert a == {CANARY: "true", CANARY_WEIGHT: "0"}
    view = canary(a)
    assert view.enabled and view.weight == 0 and view.share == 0.0 and view.rules == ()
    assert backends(await client.get("ingresses", "web", NS)) == {"shop.example.com": "web"}  # primary untouched


async def test_promote_two_primaries(client, env):
    await client.create(made("a", rules(("a.example.com", "a-v1"))))
    await client.create(made("b", rules(("b.example.com", "b-v1"), ("c.example.com", "c"))))
    other_class = made("a-k8n", {**rules(("a.example.com", "a-k8n")), "ingressClassName": "k8n"})
    await client.create(other_class)
    await client.create(made("next", rules(("a.example.com", "a-v2"), ("b.example.com", "b-v2")),
                             {CANARY: "true", CANARY_WEIGHT: "30", CANARY_BY_COOKIE: "beta"}))

    code, out, err = await k8n(env, "canary", "ingress/next", "-n", NS, "--promote")
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [
        "ingress.networking.k8s.io/a a.example.com/: a-v1:80 -> a-v2:80",
        "ingress.networking.k8s.io/b b.example.com/: b-v1:80 -> b-v2:80",
        "ingress.networking.k8s.io/next promoted: weight 0/100, no header or cookie rule"]
    assert backends(await client.get("ingresses", "a", NS)) == {"a.example.com": "a-v2"}
    assert backends(await client.get("ingresses", "b", NS)) == {"b.example.com": "b-v2", "c.example.com": "c"}
    assert backends(await client.get("ingresses", "a-k8n", NS)) == {"a.example.com": "a-k8n"}  # another class
    a = await anns(client, "next")
    assert a == {CANARY: "true", CANARY_WEIGHT: "0"} and canary(a).share == 0.0 and canary(a).rules == ()


async def test_promote_without_a_primary_changes_nothing(client, env):
    before = await client.create(made("lonely", rules(("lonely.example.com", "v2")),
                                      {CANARY: "true", CANARY_WEIGHT: "50"}))
    code, out, err = await k8n(env, "canary", "ingress/lonely", "-n", NS, "--promote")
    assert (code, out) == (1, "")
    assert err == ('error: no primary Ingress of the same namespace and class serves the paths of ingress "lonely" '
                   "(lonely.example.com/)\n")
    after = await client.get("ingresses", "lonely", NS)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
