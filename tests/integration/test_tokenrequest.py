"""ServiceAccount tokens against a real nats-server and API server: the key pair the API server makes on its disk,
TokenRequest (``serviceaccounts/token``: defaults, limits, binding to a pod or a Secret), TokenReview (valid,
expired, bound object deleted, forged, wrong audience), the token Secrets the controller fills in, the agent's
projected token volume, and the gateway's authenticator asking the API server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import stat
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bus import errors
from bus.authn import node_user
from bus.client import resource_of
from bus.informer import SharedInformerFactory
from bus.meta import timestamp
from bus.tokens import (DEFAULT_ISSUER, Issuer, Verifier, key_id, load_or_create_key_pair, parse_public_keys,
                        public_key_path)
from master.apiserver import tokenrequest
from master.apiserver.admission import token_volume
from master.apiserver.bootstrap import bootstrap
from master.apiserver.request import Request
from master.controllers import serviceaccount
from master.controllers.manager import Context
from master.controllers.settings import ControllerManagerSettings
from master.gateway.auth import Authenticator
from node.volumes import Volumes
from tests import builders
from tests.harness import get_or_none, running_controllers
from tests.waiting import eventually, stays

SA_RES = resource_of("serviceaccounts")
REVIEWS = resource_of("tokenreviews")
POD_EXTRA = "authentication.kubernetes.io/pod-name"


@pytest.fixture(autouse=True)
def key_file(tmp_path, monkeypatch):
    """The API server's signing key in this test's directory (set before the API server starts)."""
    path = tmp_path / "apiserver-pki" / "sa.key"
    monkeypatch.setenv("K8N_SERVICE_ACCOUNT_KEY_FILE", str(path))
    return path


@pytest.fixture
async def account(client):
    return await client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                                "metadata": {"name": "builder", "namespace": "default"}})


async def token_request(client, name="builder", ns="default", **spec):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return await client.call(SA_RES, "create", ns, name, body, "token")


async def review(client, token, audiences=None) -> dict:
    spec = {"token": token, **({"audiences": audiences} if audiences else {})}
    code, out, _ = await client.call(REVIEWS, "create", None, None,
                                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
    assert code == 201, out
    return out["status"]


async def make_pod(client, name="web", account_name="builder"):
    return await client.create(builders.pod(name, containers=["a"], serviceAccountName=account_name))


def pod_ref(pod) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}


def claims_of(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


# ---- the key pair --------------------------------------------------------------------------------------------


async def test_the_key_pair_is_made_on_the_api_servers_disk_not_in_a_secret(client, key_file):
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert public_key_path(key_file).exists()
    assert await get_or_none(client, "secrets", "k8n-signing-key", "kube-system") is None


async def test_bootstrap_deletes_the_old_signing_key_secret(client, apiserver):
    await client.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                         "metadata": {"name": "k8n-signing-key", "namespace": "kube-system"},
                         "data": {"key": base64.b64encode(b"k" * 32).decode()}})
    await bootstrap(apiserver.store)  # what an upgraded API server does when it starts
    assert await get_or_none(client, "secrets", "k8n-signing-key", "kube-system") is None


# ---- TokenRequest ----------------------------------------------------------------------------------------------


async def test_create_token_with_defaults(client, account, key_file):
    before = time.time()
    code, out, _ = await token_request(client)
    assert code == 201, out
    assert (out["apiVersion"], out["kind"]) == ("authentication.k8s.io/v1", "TokenRequest")
    assert out["metadata"]["name"] == "builder" and out["metadata"]["namespace"] == "default"
    assert out["spec"] == {"audiences": [DEFAULT_ISSUER], "expirationSeconds": 3600}
    token, expires = out["status"]["token"], timestamp(out["status"]["expirationTimestamp"])
    assert before + 3600 - 1 <= expires <= time.time() + 3600
    # a token the public key beside the API server's private key checks
    info = Verifier(parse_public_keys(public_key_path(key_file).read_bytes())).verify(token)
    assert (info.namespace, info.name, info.uid) == ("default", "builder", account["metadata"]["uid"])
    assert info.expires == int(expires) and info.pod is None
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": load_or_create_key_pair(key_file).key_id}
    # audiences and lifetime as asked
    code, out, _ = await token_request(client, audiences=["vault", "https://x"], expirationSeconds=600)
    assert code == 201 and claims_of(out["status"]["token"])["aud"] == ["vault", "https://x"]
    c = claims_of(out["status"]["token"])
    assert c["exp"] - c["iat"] == 600


async def test_expiration_limits_are_422(client, account):
    code, out, _ = await token_request(client, expirationSeconds=599)
    assert code == 422 and out["reason"] == "Invalid"
    assert out["message"] == ('TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
                              'Invalid value: 599: may not specify a duration less than 10 minutes')
    assert out["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    code, out, _ = await token_request(client, expirationSeconds=2**32 + 1)
    assert code == 422 and out["message"].endswith("may not specify a duration larger than 2^32 seconds")
    code, out, _ = await token_request(client, expirationSeconds="3600")
    assert code == 422 and "spec.expirationSeconds" in out["message"]
    assert (await token_request(client, expirationSeconds=2**32))[0] == 201


async def test_a_missing_account_or_bad_body_is_refused(client, account):
    code, out, _ = await token_request(client, "ghost")
    assert (code, out["message"]) == (404, 'serviceaccounts "ghost" not found')
    code, out, _ = await client.call(SA_RES, "create", "default", "builder",
                                     {"kind": "TokenRequest", "metadata": {"name": "other"}}, "token")
    assert code == 422 and "metadata.name" in out["message"]
    code, out, _ = await client.call(SA_RES, "create", "default", "builder", {"kind": "Pod"}, "token")
    assert code == 400


async def test_token_bound_to_a_pod(client, account):
    pod = await make_pod(client)
    code, out, _ = await token_request(client, boundObjectRef=pod_ref(pod))
    assert code == 201, out
    private = claims_of(out["status"]["token"])["kubernetes.io"]
    assert private["pod"] == {"name": "web", "uid": pod["metadata"]["uid"]}
    assert out["spec"]["boundObjectRef"] == pod_ref(pod)
    # the pod must exist, have the uid named, and run as the account
    code, out, _ = await token_request(client, boundObjectRef={**pod_ref(pod), "uid": "not-the-uid"})
    assert code == 409 and out["message"] == (
        'Operation cannot be fulfilled on Pod "web": the UID in the bound object reference (not-the-uid) does not '
        'match the UID in record. The object might have been deleted and then recreated')
    code, out, _ = await token_request(client, boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "nope"})
    assert (code, out["message"]) == (404, 'pods "nope" not found')
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "other"}})
    code, out, _ = await token_request(client, "other", boundObjectRef=pod_ref(pod))
    assert code == 400 and out["message"] == ('cannot bind token for serviceaccount "other" to pod running with '
                                              'different serviceaccount name.')
    code, out, _ = await token_request(client, boundObjectRef={"apiVersion": "v1", "kind": "ConfigMap", "name": "c"})
    assert (code, out["message"]) == (400, "cannot bind token to object of type /v1, Kind=ConfigMap")


async def test_a_node_may_only_ask_for_tokens_of_its_own_pods(client, account, apiserver):
    pod = await client.create(builders.pod("on-n1", containers=["a"], node="n1", serviceAccountName="builder"))

    async def as_node(node, ref):
        req = Request(SA_RES, "create", "default", "builder", "token",
                      {"spec": {"boundObjectRef": ref} if ref else {}})
        req.user = node_user(node)
        return await tokenrequest.create_token(apiserver.store, req)

    code, out, _ = await as_node("n1", pod_ref(pod))
    assert code == 201 and claims_of(out["status"]["token"])["kubernetes.io"]["node"]["name"] == "n1"
    for node, ref, why in (("n1", None, "node requested token not bound to a pod"),
                           ("n1", {**pod_ref(pod), "uid": ""}, "node requested token with a pod binding without a uid"),
                           ("n2", pod_ref(pod), "node requested token bound to a pod scheduled on a different node")):
        with pytest.raises(errors.ApiError) as e:
            await as_node(node, ref)
        assert (e.value.code, e.value.message) == (403, f'serviceaccounts "builder" is forbidden: {why}')


# ---- TokenReview -----------------------------------------------------------------------------------------------


async def test_review_of_a_valid_pod_bound_token(client, account):
    pod = await make_pod(client)
    token = (await token_request(client, boundObjectRef=pod_ref(pod)))[1]["status"]["token"]
    status = await review(client, token)
    jti = claims_of(token)["jti"]
    assert status == {"authenticated": True, "audiences": [DEFAULT_ISSUER], "user": {
        "username": "system:serviceaccount:default:builder", "uid": account["metadata"]["uid"],
        "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"],
                  POD_EXTRA: ["web"], "authentication.kubernetes.io/pod-uid": [pod["metadata"]["uid"]]}}}
    # reviewing for an audience the token was not made for
    status = await review(client, token, ["vault"])
    assert status["authenticated"] is False
    assert status["error"] == f'token audiences ["{DEFAULT_ISSUER}"] is invalid for the target audiences ["vault"]'
    for verb in ("get", "list"):
        code, out, _ = await client.call(REVIEWS, verb, None, "x")
        assert code == 405, out  # never stored: nothing to read back


async def test_review_of_an_expired_token(client, account, key_file):
    key = load_or_create_key_pair(key_file).private_key  # what the API server would have issued two hours ago
    token, _ = Issuer(key).issue(account, [DEFAULT_ISSUER], 600, now=time.time() - 7200)
    status = await review(client, token)
    assert status == {"authenticated": False, "user": {}, "error": "Token has expired."}


async def test_deleting_the_pod_voids_its_tokens(client, account):
    pod = await make_pod(client)
    token = (await token_request(client, boundObjectRef=pod_ref(pod)))[1]["status"]["token"]
    assert (await review(client, token))["authenticated"] is True
    await client.delete("pods", "web", "default", grace_period_seconds=0)
    await eventually(lambda: _gone(client, "pods", "web"), 10, "pod web deleted")
    status = await review(client, token)
    assert status["authenticated"] is False and status["error"] == "Token has been invalidated"
    # a new pod of the same name does not revive the old pod's tokens
    await make_pod(client)
    status = await review(client, token)
    assert status["authenticated"] is False and status["error"].startswith("Pod UID (")


async def test_a_recreated_account_voids_the_old_accounts_tokens(client, account):
    token = (await token_request(client))[1]["status"]["token"]
    await client.delete("serviceaccounts", "builder", "default")
    status = await review(client, token)
    assert status == {"authenticated": False, "user": {}, "error": 'serviceaccounts "builder" not found'}
    new = await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}})
    status = await review(client, token)
    assert status["error"] == (f"ServiceAccount UID ({new['metadata']['uid']}) does not match claim "
                               f"({account['metadata']['uid']})")


async def test_forged_tokens_are_not_authenticated(client, account, key_file):
    good = (await token_request(client))[1]["status"]["token"]
    claims = claims_of(good)
    pub = public_key_path(key_file).read_bytes()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    # HS256 "signed" with the public key as the HMAC secret (algorithm confusion)
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    forged = f"{signing_input}.{b64(hmac.new(pub, signing_input.encode(), hashlib.sha256).digest())}"
    status = await review(client, forged)
    assert status["authenticated"] is False and "HS256" in status["error"]
    # alg none
    status = await review(client, f"{b64(json.dumps({'alg': 'none'}).encode())}.{good.split('.')[1]}.")
    assert status["authenticated"] is False
    # signed by a key of our own making, even with the API server's kid
    stranger = ec.generate_private_key(ec.SECP256R1())
    theirs, _ = Issuer(stranger).issue(account, [DEFAULT_ISSUER], 3600)
    head = b64(json.dumps({"alg": "ES256", "kid": key_id(serialization.load_pem_public_key(pub))}).encode())
    _, body, sig = theirs.split(".")
    for token in (theirs, f"{head}.{body}.{sig}"):
        status = await review(client, token)
        assert status["authenticated"] is False and "signature" in status["error"]
    # a good token's claims changed
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    h, _, s = good.split(".")
    assert (await review(client, f"{h}.{b64(json.dumps(claims).encode())}.{s}"))["authenticated"] is False
    code, out, _ = await client.call(REVIEWS, "create", None, None, {"kind": "TokenReview", "spec": {}})
    assert (code, out["message"]) == (400, "token is required for TokenReview in authentication")


async def _gone(client, res, name, ns="default"):
    return await get_or_none(client, res, name, ns) is None


# ---- the token Secrets the controller fills in -----------------------------------------------------------------


@pytest.fixture
async def controllers(client):
    ctx = Context(client, SharedInformerFactory(client), ControllerManagerSettings())
    async with running_controllers(ctx, serviceaccount):
        yield ctx


async def test_a_token_secret_is_filled_with_a_token_bound_to_it(client, controllers, account):
    # no token Secret is made for an account any more
    await stays(lambda: _no_token_secrets(client), 0.5, "no token Secret made for builder")
    secret = await client.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                                  "metadata": {"name": "builder-token", "namespace": "default",
                                               "annotations": {"kubernetes.io/service-account.name": "builder"}}})

    async def filled():
        s = await client.get("secrets", "builder-token", "default")
        return s if (s.get("data") or {}).get("token") else None

    s = await eventually(filled, 10, "the token Secret filled in")
    token = base64.b64decode(s["data"]["token"]).decode()
    assert base64.b64decode(s["data"]["namespace"]) == b"default" and "ca.crt" in s["data"]
    assert s["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == account["metadata"]["uid"]
    c = claims_of(token)
    assert c["kubernetes.io"]["secret"] == {"name": "builder-token", "uid": secret["metadata"]["uid"]}
    assert c["exp"] - c["iat"] == 365 * 24 * 3600
    assert (await review(client, token))["user"]["username"] == "system:serviceaccount:default:builder"
    await stays(lambda: _same_token(client, token), 0.5, "the token left alone")
    # deleting the Secret voids its token
    await client.delete("secrets", "builder-token", "default")
    status = await review(client, token)
    assert status["authenticated"] is False and status["error"] == "Token has been invalidated"
    # a token Secret of an account that does not exist is deleted
    await client.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                         "metadata": {"name": "orphan", "namespace": "default",
                                      "annotations": {"kubernetes.io/service-account.name": "nobody"}}})
    await eventually(lambda: _gone(client, "secrets", "orphan"), 10, "the orphan token Secret deleted")


async def _no_token_secrets(client):
    return not [s for s in (await client.list("secrets", "default"))[0]
                if s.get("type") == "kubernetes.io/service-account-token"]


async def _same_token(client, token):
    s = await client.get("secrets", "builder-token", "default")
    return base64.b64decode(s["data"]["token"]).decode() == token


# ---- the agent's projected token -------------------------------------------------------------------------------


async def test_the_agents_token_file_is_a_pod_bound_token_the_api_accepts(client, account, tmp_path):
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"},
                         "data": {"ca.crt": "# CA\n"}})
    pod = await client.create(builders.pod("agent-pod", containers=["a"], serviceAccountName="builder"))
    vol = next(v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    assert vol == token_volume(vol["name"])  # admission mounted the API-access volume

    async def get(resource, name, namespace):
        return await client.get(resource, name, namespace or None)

    volumes = Volumes(tmp_path / "pods", get, client)
    try:
        paths = await volumes.prepare(pod)
        base = tmp_path / "pods" / pod["metadata"]["uid"] / "volumes" / vol["name"]
        assert paths[vol["name"]] == str(base)
        token = (base / "token").read_text()
        # the kubelet's modes: no runAsUser or fsGroup, so any container user reads it; the pod's directory is root's
        assert stat.S_IMODE(os.stat(base / "token").st_mode) == 0o644 and stat.S_IMODE(base.stat().st_mode) == 0o755
        assert stat.S_IMODE(base.parent.parent.stat().st_mode) == 0o750
        assert (base / "namespace").read_text() == "default" and (base / "ca.crt").read_text() == "# CA\n"
        c = claims_of(token)
        assert c["exp"] - c["iat"] == 3607
        status = await review(client, token)
        assert status["authenticated"] is True and status["user"]["extra"][POD_EXTRA] == ["agent-pod"]
    finally:
        volumes.cleanup(pod["metadata"]["uid"])
        await volumes.stop()


# ---- the gateway -----------------------------------------------------------------------------------------------


class Counting:
    """The gateway's API client, counting the TokenReviews it sends."""

    def __init__(self, client) -> None:
        self.client, self.reviews = client, 0

    async def request(self, res, *args, **kw):
        self.reviews += res.plural == "tokenreviews"
        return await self.client.request(res, *args, **kw)


class FakeHttp:
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}


async def test_the_gateway_asks_the_api_server_and_caches_briefly(client, account):
    pod = await make_pod(client)
    token = (await token_request(client, boundObjectRef=pod_ref(pod)))[1]["status"]["token"]
    api = Counting(client)
    authn = Authenticator(api, {})  # type: ignore[arg-type]
    user = await authn.authenticate(FakeHttp(token))  # type: ignore[arg-type]
    assert user is not None and user.name == "system:serviceaccount:default:builder"
    assert dict(user.extra)[POD_EXTRA] == ("web",) and "system:authenticated" in user.groups
    assert await authn.authenticate(FakeHttp(token)) == user and api.reviews == 1  # cached
    # concurrent requests with a new token share one review
    other = (await token_request(client))[1]["status"]["token"]
    users = await asyncio.gather(*(authn.authenticate(FakeHttp(other)) for _ in range(5)))  # type: ignore[arg-type]
    assert all(u is not None for u in users) and api.reviews == 2
    # a refused token is asked about again after at most a second
    await client.delete("pods", "web", "default", grace_period_seconds=0)
    await eventually(lambda: _gone(client, "pods", "web"), 10, "pod web deleted")
    authn._cache.clear()  # as if the 10 s had passed
    assert await authn.authenticate(FakeHttp(token)) is None and api.reviews == 3
    assert await authn.authenticate(FakeHttp(token)) is None and api.reviews == 3
    await asyncio.sleep(1.1)
    assert await authn.authenticate(FakeHttp(token)) is None and api.reviews == 4
    assert await authn.authenticate(FakeHttp("not.a.token")) is None
