"""ServiceAccount tokens: the token Secret's shape, and the pod admission step (default account,
API-access volume). Signing and verification are ``bus.tokens``' (tests/unit/test_tokens.py)."""

from __future__ import annotations

import base64

from bus import errors
from master.apiserver.admission import SA_MOUNT_PATH, admit_service_account
from master.controllers.serviceaccount import NAME_ANNOTATION, TOKEN_TYPE, UID_ANNOTATION, token_secret
from tests import builders
from tests.builders import container

SA = {"metadata": {"name": "builder", "namespace": "ci", "uid": "1234"}}


def test_token_secret_names_its_account():
    s = token_secret(SA, "tok")
    meta = s["metadata"]
    assert s["type"] == TOKEN_TYPE
    assert meta["name"].startswith("builder-token-") and len(meta["name"]) == len("builder-token-") + 5
    assert meta["annotations"] == {NAME_ANNOTATION: "builder", UID_ANNOTATION: "1234"}
    assert meta["ownerReferences"][0]["uid"] == "1234"
    assert {k: base64.b64decode(v).decode() for k, v in s["data"].items() if k != "ca.crt"} == \
        {"token": "tok", "namespace": "ci"}
    assert "ca.crt" in s["data"]


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
