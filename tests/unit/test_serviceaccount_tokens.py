"""ServiceAccount tokens: what the token-Secret controller decides (fill in, renew), and the pod admission step
(default account, API-access volume). Signing and verification are ``bus.tokens``' (tests/unit/test_tokens.py)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric import ec

from bus import errors
from bus.tokens import Issuer
from master.apiserver.admission import SA_MOUNT_PATH, admit_service_account
from master.controllers.serviceaccount import (LEGACY_TOKEN_SECONDS, UID_ANNOTATION, filled_secret,
                                               token_renewal_at, token_request_for)
from tests import builders
from tests.builders import container

SA = {"metadata": {"name": "builder", "namespace": "ci", "uid": "1234"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
          "metadata": {"name": "builder-token", "namespace": "ci", "uid": "s-1",
                       "annotations": {"kubernetes.io/service-account.name": "builder"}},
          "data": {"extra": base64.b64encode(b"kept").decode()}}
KEY = ec.generate_private_key(ec.SECP256R1())


def test_the_token_request_binds_to_the_secret_for_a_year():
    assert token_request_for(SECRET) == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 365 * 24 * 3600,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "builder-token", "uid": "s-1"}}}


def test_a_user_made_token_secret_is_filled_in_and_renewed_at_80_percent():
    assert token_renewal_at(SECRET, SA) == 0  # empty: now
    now = 1_800_000_000
    token, _ = Issuer(KEY).issue(SA, ["https://kubernetes.default.svc.cluster.local"], LEGACY_TOKEN_SECONDS, SECRET,
                                 now=now)
    filled = filled_secret(SECRET, SA, token)
    assert {k: base64.b64decode(v).decode() for k, v in filled["data"].items() if k != "ca.crt"} == \
        {"token": token, "namespace": "ci", "extra": "kept"}
    assert "ca.crt" in filled["data"] and filled["metadata"]["annotations"][UID_ANNOTATION] == "1234"
    assert "token" not in SECRET["data"]  # the cached object is not changed
    assert token_renewal_at(filled, SA) == now + 0.8 * LEGACY_TOKEN_SECONDS
    # a token of another account, or bound to another Secret (recreated under the same name), is replaced now
    assert token_renewal_at(filled, {"metadata": {**SA["metadata"], "uid": "other"}}) == 0
    recreated = {**filled, "metadata": {**filled["metadata"], "uid": "s-2"}}
    assert token_renewal_at(recreated, SA) == 0
    # an old HS256 token of earlier k8n versions is replaced too
    legacy = {**filled, "data": {**filled["data"], "token": base64.b64encode(b"a.b.c").decode()}}
    assert token_renewal_at(legacy, SA) == 0


class FakeStore:
    def __init__(self, accounts=None):
        self.accounts = accounts or {}

    async def get(self, res, ns, name):
        if (ns, name) not in self.accounts:
            raise errors.not_found(res.plural, name)
        return self.accounts[(ns, name)]


def _pod(containers=None, **spec):
    return builders.pod("p", None, containers=containers or ["a"], initContainers=[container("i")], **spec)


async def test_admission_defaults_the_account_and_mounts_the_token():
    pod = _pod()
    await admit_service_account(FakeStore(), pod, "ci")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    (vol,) = spec["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    kinds = [next(iter(s)) for s in vol["projected"]["sources"]]
    assert kinds == ["serviceAccountToken", "configMap", "downwardAPI"]
    for c in spec["containers"] + spec["initContainers"]:
        assert c["volumeMounts"] == [{"name": vol["name"], "readOnly": True, "mountPath": SA_MOUNT_PATH}]


async def test_admission_honours_automount_false_and_existing_mounts():
    pod = _pod(serviceAccountName="robot", automountServiceAccountToken=False)
    await admit_service_account(FakeStore(), pod, "ci")
    assert pod["spec"]["serviceAccountName"] == "robot" and "volumes" not in pod["spec"]

    store = FakeStore({("ci", "quiet"): {"automountServiceAccountToken": False}})
    pod = _pod(serviceAccountName="quiet")
    await admit_service_account(store, pod, "ci")
    assert "volumes" not in pod["spec"]
    pod = _pod(serviceAccountName="quiet", automountServiceAccountToken=True)  # the pod's word wins
    await admit_service_account(store, pod, "ci")
    assert len(pod["spec"]["volumes"]) == 1

    pod = _pod(volumes=[{"name": "mine", "emptyDir": {}}],
               containers=[{"name": "a", "volumeMounts": [{"name": "mine", "mountPath": SA_MOUNT_PATH}]}])
    await admit_service_account(FakeStore(), pod, "ci")
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["mine"]
