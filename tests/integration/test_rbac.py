"""RBAC and the Node authorizer, enforced: through the real HTTP gateway (in process, on its own bus identity) with
ServiceAccount tokens from TokenRequest, and on the bus with node identities. Each denial is a 403 Status worded as
Kubernetes words it; granted paths work; privilege escalation is refused; access reviews answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bus import errors, roles
from bus.client import ApiClient, resource_of
from bus.roles import Identity
from master.gateway.app import make_app
from master.gateway.auth import User
from tests.builders import pod, secret

ADMIN_TOKEN = "admin-token"
NS = "demo"
SA_USER = f"system:serviceaccount:{NS}:default"


@pytest.fixture
async def http(nats_server, client):
    gateway = await ApiClient.connect(nats_server.url, Identity(roles.GATEWAY))
    app = make_app(nats_server.url, {ADMIN_TOKEN: User("admin", "admin", ("system:masters", "system:authenticated"))},
                   client=gateway)
    tc = TestClient(TestServer(app))
    await tc.start_server()
    yield tc
    await tc.close()
    await gateway.close()


@pytest.fixture
async def demo(client):
    """Namespace demo with its default ServiceAccount (no controllers run here)."""
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default",
                                                                                     "namespace": NS}})
    await client.create(secret("db", "kube-system", data={"password": "hunter2"}))
    return NS


async def sa_token(client, name: str = "default", ns: str = NS) -> str:
    out = await client.request(resource_of("serviceaccounts"), "create", ns, name, subresource="token",
                               body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
    return out["status"]["token"]


def bearer(token: str, **extra: str) -> dict:
    return {"Authorization": f"Bearer {token}", **extra}


async def status_of(resp) -> tuple[int, dict]:
    return resp.status, await resp.json()


async def test_a_pod_token_cannot_read_kube_system_secrets_or_touch_the_cluster(http, client, demo):
    token = await sa_token(client)
    code, body = await status_of(await http.get("/api/v1/namespaces/kube-system/secrets", headers=bearer(token)))
    assert code == 403 and body["reason"] == "Forbidden" and body["kind"] == "Status"
    assert body["message"] == (f'secrets is forbidden: User "{SA_USER}" cannot list resource "secrets" in API group '
                               '"" in the namespace "kube-system"')
    assert body["details"] == {"kind": "secrets"}
    code, body = await status_of(await http.get("/api/v1/namespaces/kube-system/secrets/db", headers=bearer(token)))
    assert code == 403 and body["message"].startswith('secrets "db" is forbidden: ')
    code, body = await status_of(await http.post("/api/v1/namespaces", headers=bearer(token), data=orjson.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mine"}})))
    assert code == 403 and body["message"] == (f'namespaces is forbidden: User "{SA_USER}" cannot create resource '
                                               '"namespaces" in API group "" at the cluster scope')
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    code, _ = await status_of(await http.delete("/api/v1/nodes/n1", headers=bearer(token)))
    assert code == 403
    assert (await client.get("nodes", "n1"))["metadata"]["name"] == "n1"
    with pytest.raises(errors.NotFound):
        await client.get("namespaces", "mine")
    # a new ServiceAccount still has the defaults every authenticated user has: discovery
    assert (await http.get("/api", headers=bearer(token))).status == 200
    assert (await http.get("/apis", headers=bearer(token))).status == 200


async def test_a_role_binding_grants_reading_pods_in_its_namespace_only(http, client, demo):
    await client.create(pod("web", NS))
    await client.create(pod("other", "default"))
    token = await sa_token(client)
    assert (await http.get(f"/api/v1/namespaces/{NS}/pods", headers=bearer(token))).status == 403
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                         "metadata": {"name": "pod-reader", "namespace": NS},
                         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]})
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "read-pods", "namespace": NS},
                         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}],
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}})

    async def listed() -> list[str]:
        r = await http.get(f"/api/v1/namespaces/{NS}/pods", headers=bearer(token))
        return [p["metadata"]["name"] for p in (await r.json()).get("items", [])] if r.status == 200 else []

    from tests.waiting import eventually
    assert await eventually(listed, 10, "the binding to take effect") == ["web"]
    r = await http.get(f"/api/v1/namespaces/{NS}/pods/web", headers=bearer(token))  # off KV, authorized
    assert r.status == 200
    r = await http.get(f"/api/v1/namespaces/{NS}/pods?watch=true&timeoutSeconds=1", headers=bearer(token))
    assert r.status == 200
    assert (await http.get("/api/v1/namespaces/default/pods", headers=bearer(token))).status == 403
    assert (await http.delete(f"/api/v1/namespaces/{NS}/pods/web", headers=bearer(token))).status == 403
    r = await http.get(f"/api/v1/namespaces/{NS}/pods/web/log", headers=bearer(token))  # pods/log: not granted
    assert r.status == 403 and "cannot get resource \"pods/log\"" in (await r.json())["message"]


async def test_access_reviews_answer_for_the_caller(http, client, demo):
    token = await sa_token(client)

    async def can_i(verb: str, resource: str, ns: str, as_token: str) -> bool:
        r = await http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", headers=bearer(as_token),
                            data=orjson.dumps({"apiVersion": "authorization.k8s.io/v1",
                                               "kind": "SelfSubjectAccessReview",
                                               "spec": {"resourceAttributes": {"verb": verb, "resource": resource,
                                                                               "namespace": ns}}}))
        assert r.status == 201, await r.text()
        return (await r.json())["status"]["allowed"]

    assert await can_i("list", "secrets", "kube-system", ADMIN_TOKEN) is True
    assert await can_i("list", "secrets", "kube-system", token) is False
    r = await http.post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", headers=bearer(token),
                        data=orjson.dumps({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                                           "spec": {"namespace": NS}}))
    rules = (await r.json())["status"]
    assert any("selfsubjectaccessreviews" in rr.get("resources", []) for rr in rules["resourceRules"])
    assert not any("secrets" in rr.get("resources", []) for rr in rules["resourceRules"])
    # SubjectAccessReview: about someone else, for those allowed to ask (the admin), not for the pod
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": SA_USER, "groups": ["system:serviceaccounts"],
                    "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "kube-system"}}}
    r = await http.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", headers=bearer(ADMIN_TOKEN),
                        data=orjson.dumps(sar))
    assert r.status == 201 and (await r.json())["status"]["allowed"] is False
    r = await http.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", headers=bearer(token),
                        data=orjson.dumps(sar))
    assert r.status == 403


async def test_impersonation_needs_the_right_and_then_acts_as_the_impersonated(http, client, demo):
    as_sa = {"Impersonate-User": SA_USER}
    r = await http.get("/api/v1/namespaces/kube-system/secrets", headers=bearer(ADMIN_TOKEN, **as_sa))
    assert r.status == 403 and SA_USER in (await r.json())["message"]
    token = await sa_token(client)
    r = await http.get("/api/v1/namespaces", headers=bearer(token, **{"Impersonate-User": "admin"}))
    body = await r.json()
    assert r.status == 403 and body["message"] == (f'users "admin" is forbidden: User "{SA_USER}" cannot '
                                                   'impersonate resource "users" in API group "" at the cluster '
                                                   'scope')
    r = await http.get("/api/v1/namespaces", headers=bearer(ADMIN_TOKEN, **{"Impersonate-Group": "x"}))
    assert r.status == 400


async def test_granting_more_than_one_holds_is_refused(http, client, demo):
    """A ServiceAccount allowed to manage RoleBindings in its namespace cannot bind cluster-admin there."""
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                         "metadata": {"name": "binder", "namespace": NS},
                         "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
                                    "verbs": ["create", "get", "list"]}]})
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "binder", "namespace": NS},
                         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}],
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "binder"}})
    token = await sa_token(client)
    grab = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "grab", "namespace": NS},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}}
    from tests.waiting import eventually

    async def attempt():
        r = await http.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings",
                            headers=bearer(token), data=orjson.dumps(grab))
        body = await r.json()
        return (r.status, body) if "is attempting to grant RBAC permissions not currently held" in body.get(
            "message", "") else None

    code, body = await eventually(attempt, 10, "the escalation to be refused (not the create itself)")
    assert code == 403 and body["message"].startswith('rolebindings.rbac.authorization.k8s.io "grab" is forbidden: '
                                                      f'user "{SA_USER}"')
    with pytest.raises(errors.NotFound):
        await client.get("rolebindings", "grab", NS)


async def test_forged_and_malformed_tokens_are_401(http, client, demo, nats_server):
    token = await sa_token(client)
    head, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "system:serviceaccount:kube-system:default"

    def b64(d: bytes) -> str:
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode()

    hs_head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    forged = f"{hs_head}.{body}.{b64(hmac.new(b'guess', f'{hs_head}.{body}'.encode(), hashlib.sha256).digest())}"
    for bad in (forged, f"{head}.{body}.{token.split('.')[2]}", "not-a-token"):
        r = await http.get("/api/v1/namespaces", headers=bearer(bad))
        assert r.status == 401, bad


# ---- the Node authorizer, on the bus --------------------------------------------------------------------------


async def test_a_node_reads_only_what_its_pods_use_and_writes_only_its_own(apiserver, client, nats_server):
    for n in ("node-a", "node-b"):
        await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})
    await client.create(secret("for-a"))
    await client.create(secret("for-b"))
    mounted = pod("web", node="node-a")
    mounted["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "for-a"}}]
    await client.create(mounted)
    await client.create(pod("elsewhere", node="node-b"))
    import asyncio

    from master.nodeview import run as run_nodeview  # the node view: what a node's pods are, as the authorizer reads

    view = asyncio.create_task(run_nodeview(nats_server.url, asyncio.Event()))
    a = await ApiClient.connect(nats_server.url, creds=nats_server.credentials(Identity.node("node-a")))
    try:
        from tests.waiting import eventually

        async def reads_its_secret():
            try:
                return await a.get("secrets", "for-a")
            except errors.Forbidden:
                return None

        assert await eventually(reads_its_secret, 10, "node A to read the secret its pod mounts")

        async def reads_secret_b():
            try:
                return await a.get("secrets", "for-b")
            except errors.Forbidden:
                return None

        with pytest.raises(errors.Forbidden) as e:
            await a.get("secrets", "for-b")
        assert 'User "system:node:node-a" cannot get resource "secrets"' in e.value.message
        with pytest.raises(errors.Forbidden):
            await a.request(resource_of("secrets"), "list", "default")
        node_a = await a.get("nodes", "node-a")
        node_a["metadata"].setdefault("labels", {})["seen"] = "yes"
        await a.update(node_a)
        node_b = await a.get("nodes", "node-b")
        node_b["metadata"].setdefault("labels", {})["hijacked"] = "yes"
        with pytest.raises(errors.Forbidden):
            await a.update(node_b)
        await a.patch("pods", "web", {"status": {"phase": "Running"}}, subresource="status")
        with pytest.raises(errors.Forbidden):
            await a.patch("pods", "elsewhere", {"status": {"phase": "Running"}}, subresource="status")
        with pytest.raises(errors.Forbidden):
            await a.delete("nodes", "node-b")
        # a pod bound to node A a moment ago: its secret is readable at once (a refusal re-reads the node's pods)
        late = pod("late", node="node-a")
        late["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "for-b"}}]
        await client.create(late)
        assert await eventually(reads_secret_b, 10, "node A to read the secret of its new pod")
    finally:
        await a.close()
        view.cancel()
        await asyncio.gather(view, return_exceptions=True)


async def test_a_pod_bound_token_dies_with_its_pod_and_an_expired_one_is_401(http, client, demo):
    made = await client.create(pod("runner", NS))
    bound = await client.request(resource_of("serviceaccounts"), "create", NS, "default", subresource="token",
                                 body={"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                                   "name": "runner",
                                                                   "uid": made["metadata"]["uid"]}}})
    token = bound["status"]["token"]
    r = await http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", headers=bearer(token),
                        data=orjson.dumps({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                           "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}))
    assert r.status == 201  # authenticated while the pod exists
    await client.delete("pods", "runner", NS, grace_period_seconds=0)
    from tests.waiting import eventually

    async def refused() -> bool:
        resp = await http.get("/api", headers=bearer(token))
        return resp.status == 401

    assert await eventually(refused, 15, "the deleted pod's token to be refused (gateway cache ≤ 10 s)")
    # a token signed with the API server's key but past its expiry
    from bus import tokens
    from master.apiserver import tokenrequest

    auth = tokenrequest.authority()
    sa = await client.get("serviceaccounts", "default", NS)
    old, _ = auth.issuer.issue(sa, list(auth.audiences), 600, now=1_000_000)
    assert tokens.unverified_claims(old)["exp"] == 1_000_600
    assert (await http.get("/api", headers=bearer(old))).status == 401
