"""Admission webhooks against a real nats-server and API server, calling a real HTTPS webhook server this test runs
on 127.0.0.1 (its certificate signed by a CA made for the test, given as the webhooks' caBundle): a mutating webhook
labelling pods and a custom resource, a validating one refusing ConfigMaps with a given key (Kubernetes' message and
the webhook's code), failurePolicy Fail and Ignore with the webhook down, the timeout honoured, and the namespace and
object selectors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import time
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web

from bus import errors, pki
from tests import builders
from tests.integration.test_crds import GROUP, crontab, definition
from tests.waiting import eventually

LABEL = "webhooked"
FORBIDDEN_KEY = "forbidden"
DENY_MESSAGE = f"ConfigMaps may not have the key {FORBIDDEN_KEY!r}"


def add_label_patch(obj: dict) -> list[dict]:
    labels = (obj.get("metadata") or {}).get("labels")
    if labels is None:
        return [{"op": "add", "path": "/metadata/labels", "value": {LABEL: "yes"}}]
    return [{"op": "add", "path": f"/metadata/labels/{LABEL}", "value": "yes"}]


async def label_everything(req: dict) -> dict:
    patch = base64.b64encode(json.dumps(add_label_patch(req["object"])).encode()).decode()
    return {"allowed": True, "patchType": "JSONPatch", "patch": patch}


async def deny_forbidden_key(req: dict) -> dict:
    obj = req.get("object") or {}
    if FORBIDDEN_KEY in (obj.get("data") or {}):
        return {"allowed": False, "status": {"code": 403, "message": DENY_MESSAGE}}
    return {"allowed": True, "warnings": ["looked at by deny.example.com"]}


async def too_slow(req: dict) -> dict:
    await asyncio.sleep(5)
    return {"allowed": True}


class WebhookServer:
    """An HTTPS AdmissionReview server on 127.0.0.1: POST /<path> is answered by ``handlers[path]``; every request
    received is kept in ``calls`` (path, request)."""

    def __init__(self, pki_dir) -> None:
        self.cert, self.key, self.ca = pki.ensure(pki_dir, ("127.0.0.1",), name="webhook", common_name="webhook")
        self.handlers: dict[str, Callable[[dict], Awaitable[dict]]] = {
            "label": label_everything, "deny": deny_forbidden_key, "slow": too_slow}
        self.calls: list[tuple[str, dict]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.read_bytes()).decode()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/{path}"

    async def _serve(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        review = await request.json()
        self.calls.append((path, review["request"]))
        resp = await self.handlers[path](review["request"])
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                  "response": {"uid": review["request"]["uid"], **resp}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._serve)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=ctx)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@contextlib.asynccontextmanager
async def webhook_server(pki_dir):
    srv = WebhookServer(pki_dir)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def webhook(name: str, url: str, ca_bundle: str | None, rules: list[dict], **kw: Any) -> dict:
    cc: dict = {"url": url}
    if ca_bundle:
        cc["caBundle"] = ca_bundle
    return {"name": name, "clientConfig": cc, "rules": rules, "sideEffects": "None",
            "admissionReviewVersions": ["v1"], **kw}


def rule(resources: list[str], group: str = "", version: str = "v1", operations=("CREATE", "UPDATE")) -> dict:
    return {"operations": list(operations), "apiGroups": [group], "apiVersions": [version], "resources": resources}


def configuration(kind: str, name: str, *hooks: dict) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": list(hooks)}


def pod(name: str, ns: str = "default", **kw) -> dict:
    return builders.pod(name, ns, containers=[builders.container("app")], automountServiceAccountToken=False, **kw)


@pytest.fixture
async def hooks(tmp_path):
    async with webhook_server(tmp_path / "webhook-pki") as srv:
        yield srv


async def refused(coro) -> errors.ApiError | None:
    """The error a write gets, None if it is accepted."""
    try:
        await coro
    except errors.ApiError as e:
        return e
    return None


async def test_a_mutating_webhook_labels_pods_and_custom_resources(client, hooks):
    await client.create(definition())
    await client.create(configuration("MutatingWebhookConfiguration", "labeller", webhook(
        "label.example.com", hooks.url("label"), hooks.ca_bundle,
        [rule(["pods"]), rule(["crontabs"], GROUP)])))

    async def labelled_on_dry_run():
        out = await client.create(pod("probe"), dry_run=True)
        return out["metadata"].get("labels", {}).get(LABEL) == "yes"

    await eventually(labelled_on_dry_run, 10, "the mutating webhook to be in force")
    created = await client.create(pod("web", labels={"app": "web"}))
    assert created["metadata"]["labels"] == {"app": "web", LABEL: "yes"}
    assert (await client.get("pods", "web", "default"))["metadata"]["labels"][LABEL] == "yes"

    path, req = hooks.calls[-1]
    assert path == "label" and req["operation"] == "CREATE" and req["namespace"] == "default"
    assert req["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert req["object"]["metadata"]["name"] == "web" and req["oldObject"] is None
    assert req["userInfo"]["username"] and req["dryRun"] is False

    ct = await eventually(lambda: client.create(crontab("nightly")), 10, "the custom resource to be served",
                          ignore=(errors.NotFound,))
    assert ct["metadata"]["labels"][LABEL] == "yes"
    _, req = hooks.calls[-1]
    assert req["resource"] == {"group": GROUP, "version": "v1", "resource": "crontabs"}

    # an update is sent with the old object
    cur = await client.get("pods", "web", "default")
    cur["metadata"]["labels"] = {"app": "web2"}
    updated = await client.update(cur)
    assert updated["metadata"]["labels"] == {"app": "web2", LABEL: "yes"}
    _, req = hooks.calls[-1]
    assert req["operation"] == "UPDATE" and req["oldObject"]["metadata"]["labels"]["app"] == "web"


async def test_a_validating_webhook_refuses_with_its_message_and_code(client, hooks):
    await client.create(configuration("ValidatingWebhookConfiguration", "checker", webhook(
        "deny.example.com", hooks.url("deny"), hooks.ca_bundle,
        [rule(["configmaps"], operations=("*",))])))
    bad = builders.configmap("bad", data={FORBIDDEN_KEY: "x"})
    err = await eventually(lambda: refused(client.create(bad, dry_run=True)), 10, "the validating webhook in force")
    assert err.code == 403
    assert err.message == f'admission webhook "deny.example.com" denied the request: {DENY_MESSAGE}'
    err = await refused(client.create(bad))
    assert err is not None and err.code == 403
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "bad", "default")
    # an allowed one goes through; an update adding the key is refused too
    warnings: list[str] = []
    ok = await client.create(builders.configmap("ok", data={"fine": "1"}), warnings=warnings)
    assert "looked at by deny.example.com" in warnings  # a webhook's warnings reach the client
    ok["data"][FORBIDDEN_KEY] = "x"
    err = await refused(client.update(ok))
    assert err is not None and err.code == 403 and DENY_MESSAGE in err.message
    # a delete is sent too (operations "*"), with the object as oldObject
    await client.delete("configmaps", "ok", "default")
    path, req = hooks.calls[-1]
    assert req["operation"] == "DELETE" and req["object"] is None and req["oldObject"]["metadata"]["name"] == "ok"
    assert req["options"]["kind"] == "DeleteOptions"


async def test_failure_policy_fail_refuses_and_ignore_lets_through_when_the_webhook_is_down(client, hooks):
    down = hooks.url("deny").replace(f":{hooks.port}/", ":1/")  # nothing listens there
    await client.create(configuration("ValidatingWebhookConfiguration", "down", webhook(
        "down.example.com", down, hooks.ca_bundle, [rule(["configmaps"])],
        objectSelector={"matchLabels": {"policy": "fail"}})))
    await client.create(configuration("ValidatingWebhookConfiguration", "down-ignored", webhook(
        "ignored.example.com", down, hooks.ca_bundle, [rule(["configmaps"])], failurePolicy="Ignore")))
    failing = builders.configmap("f", labels={"policy": "fail"})
    err = await eventually(lambda: refused(client.create(failing, dry_run=True)), 10, "the webhook in force")
    assert err.code == 500 and err.reason == "InternalError"
    assert err.message.startswith('Internal error occurred: failed calling webhook "down.example.com": '
                                  f'failed to call webhook: Post "{down}')
    assert await client.create(builders.configmap("i"))  # only the Ignore webhook matches it


async def test_a_slow_webhook_is_given_up_after_its_timeout(client, hooks):
    await client.create(configuration("ValidatingWebhookConfiguration", "slow", webhook(
        "slow.example.com", hooks.url("slow"), hooks.ca_bundle, [rule(["configmaps"])], timeoutSeconds=1)))
    await eventually(lambda: refused(client.create(builders.configmap("probe"), dry_run=True)), 15,
                     "the slow webhook to be in force")
    start = time.monotonic()
    err = await refused(client.create(builders.configmap("s")))
    took = time.monotonic() - start
    assert err is not None and err.code == 500
    assert 'failed calling webhook "slow.example.com"' in err.message and "context deadline exceeded" in err.message
    assert took < 3.0, f"the request took {took:.1f}s with a 1s webhook timeout"


async def test_namespace_and_object_selectors(client, hooks):
    await client.create(builders.namespace("chosen", labels={"webhooks": "on"}))
    await client.create(builders.namespace("other"))
    await client.create(configuration("MutatingWebhookConfiguration", "by-namespace", webhook(
        "label.example.com", hooks.url("label"), hooks.ca_bundle, [rule(["configmaps"])],
        namespaceSelector={"matchLabels": {"webhooks": "on"}})))
    await client.create(configuration("ValidatingWebhookConfiguration", "by-object", webhook(
        "deny.example.com", hooks.url("deny"), hooks.ca_bundle, [rule(["configmaps"])],
        objectSelector={"matchExpressions": [{"key": "check", "operator": "In", "values": ["yes"]}]})))

    async def in_force():
        out = await client.create(builders.configmap("probe", "chosen"), dry_run=True)
        err = await refused(client.create(builders.configmap("p", labels={"check": "yes"},
                                                             data={FORBIDDEN_KEY: "x"}), dry_run=True))
        return out["metadata"].get("labels", {}).get(LABEL) and err is not None

    await eventually(in_force, 10, "both webhooks to be in force")
    chosen = await client.create(builders.configmap("a", "chosen"))
    other = await client.create(builders.configmap("a", "other"))
    assert chosen["metadata"]["labels"] == {LABEL: "yes"}
    assert LABEL not in (other["metadata"].get("labels") or {})
    # the object selector: the same data passes without the label, is refused with it
    assert await client.create(builders.configmap("unchecked", data={FORBIDDEN_KEY: "x"}))
    err = await refused(client.create(builders.configmap("checked", labels={"check": "yes"},
                                                         data={FORBIDDEN_KEY: "x"})))
    assert err is not None and err.code == 403


async def test_configurations_are_validated_and_never_intercepted(client, hooks):
    with pytest.raises(errors.Invalid) as e:
        await client.create(configuration("ValidatingWebhookConfiguration", "bad", webhook(
            "short.name", "http://127.0.0.1/x", None, [rule(["pods"])], timeoutSeconds=60)))
    fields = {c["field"] for c in e.value.causes}
    assert {"webhooks[0].name", "webhooks[0].clientConfig.url", "webhooks[0].timeoutSeconds"} <= fields
    # a webhook for everything, down and failing closed, does not stop its own configuration being removed
    down = "https://127.0.0.1:1/x"
    everything = {"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}
    await client.create(configuration("ValidatingWebhookConfiguration", "all", webhook(
        "all.example.com", down, hooks.ca_bundle, [everything])))
    err = await eventually(lambda: refused(client.create(builders.configmap("x"), dry_run=True)), 10,
                           "the webhook in force")
    assert err.code == 500
    await client.delete("validatingwebhookconfigurations", "all")
    await eventually(lambda: _accepted(client), 10, "writes to be accepted again")


async def _accepted(client) -> bool:
    return await refused(client.create(builders.configmap("y"), dry_run=True)) is None
