"""The agent's ServiceAccount tokens (``node.tokenmanager``, ``node.volumes``): obtained through TokenRequest bound
to the pod, renewed as the kubelet renews them (80 % of the lifetime, or 24 h), and written atomically into a
projected volume whose token file only the container's user can read."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from bus import errors
from bus.client import resource_of
from bus.meta import format_time
from master.apiserver.admission import token_volume
from node.tokenmanager import TokenError, TokenManager, refresh_at
from node.volumes import Ownership, VolumeError, Volumes, token_request

CA = "# the cluster CA\n"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeApi:
    """TokenRequest answers (``token-<n>``), the objects a projected volume reads, and a switch to fail."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests: list[tuple] = []
        self.fail: Exception | None = None

    async def request(self, res, verb, namespace, name, body=None, subresource=None):
        assert (res.plural, verb, subresource) == ("serviceaccounts", "create", "token")
        if self.fail is not None:
            raise self.fail
        self.requests.append((namespace, name, body))
        seconds = body["spec"]["expirationSeconds"]
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": body["spec"],
                "status": {"token": f"token-{len(self.requests)}",
                           "expirationTimestamp": format_time(self.clock() + seconds)}}

    async def ask(self, namespace, name, body):
        """The token manager's view: ``(namespace, account, TokenRequest) -> TokenRequest``."""
        return await self.request(resource_of("serviceaccounts"), "create", namespace, name, body, "token")

    async def get(self, resource, name, namespace):
        if (resource, name) == ("configmaps", "kube-root-ca.crt"):
            return {"data": {"ca.crt": CA}}
        raise errors.not_found(resource, name)


def _pod(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "ci", "uid": "ff0556cd-0b2c-5513-ab68-7eff4000f9f7"},
            "spec": {"serviceAccountName": "builder", "containers": [{"name": "a"}],
                     "volumes": [token_volume("kube-api-access-abcde")], **spec}}


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(clock) -> FakeApi:
    return FakeApi(clock)


@pytest.fixture
def volumes(tmp_path, api, clock) -> Volumes:
    return Volumes(tmp_path / "pods", api.get, api, clock)


# ---- the token manager -------------------------------------------------------------------------------------------


async def test_tokens_are_cached_then_renewed_at_80_percent_of_their_lifetime(api, clock):
    m = TokenManager(api.ask, clock, jitter=lambda: 0.0)
    _, req = token_request(_pod(), {"expirationSeconds": 3607, "path": "token"})
    first = await m.get("ci", "builder", req)
    assert await m.get("ci", "builder", req) is first and len(api.requests) == 1
    assert refresh_at(first) == clock() + 3607 * 0.8
    clock.t += 3607 * 0.8 - 1
    assert await m.get("ci", "builder", req) is first
    clock.t += 2
    assert (await m.get("ci", "builder", req))["status"]["token"] == "token-2"


async def test_long_tokens_are_renewed_after_24_hours(api, clock):
    m = TokenManager(api.ask, clock, jitter=lambda: 0.0)
    _, req = token_request(_pod(), {"expirationSeconds": 7 * 24 * 3600, "path": "token"})
    first = await m.get("ci", "builder", req)
    assert refresh_at(first) == clock() + 24 * 3600
    clock.t += 24 * 3600 + 1
    assert (await m.get("ci", "builder", req))["status"]["token"] == "token-2"


async def test_a_failed_renewal_keeps_the_old_token_until_it_expires(api, clock):
    m = TokenManager(api.ask, clock, jitter=lambda: 0.0)
    _, req = token_request(_pod(), {"path": "token"})
    first = await m.get("ci", "builder", req)
    api.fail = errors.unavailable("the API server is not available")
    clock.t += 3500
    assert await m.get("ci", "builder", req) is first
    clock.t += 200
    with pytest.raises(TokenError, match="expired and refresh failed"):
        await m.get("ci", "builder", req)
    m2 = TokenManager(api.ask, clock)
    with pytest.raises(TokenError, match="failed to fetch token"):
        await m2.get("ci", "builder", req)


def test_the_token_request_is_bound_to_the_pod():
    account, req = token_request(_pod(), {"path": "token"})
    assert account == "builder"
    assert req == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
        "expirationSeconds": 3600,  # Kubernetes' default for a projection that does not say
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "ff0556cd-0b2c-5513-ab68-7eff4000f9f7"}}}
    _, req = token_request(_pod(), {"path": "vault", "audience": "vault", "expirationSeconds": 7200})
    assert req["spec"]["audiences"] == ["vault"] and req["spec"]["expirationSeconds"] == 7200


def test_ownership_follows_the_kubelet():
    assert Ownership.of(_pod()) == Ownership(None, None)
    assert Ownership.of(_pod(securityContext={"runAsUser": 1000})) == Ownership(1000, None)
    two = [{"name": "a", "securityContext": {"runAsUser": 1000}}, {"name": "b", "securityContext": {"runAsUser": 7}}]
    assert Ownership.of(_pod(containers=two)) == Ownership(None, None)
    one_unset = [{"name": "a", "securityContext": {"runAsUser": 1000}}, {"name": "b"}]
    assert Ownership.of(_pod(containers=one_unset)).user is None
    same = [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 1000}}]
    assert Ownership.of(_pod(containers=same, securityContext={"runAsUser": 1000, "fsGroup": 2000})) == \
        Ownership(1000, 2000)


# ---- the projected volume ----------------------------------------------------------------------------------------


async def test_the_api_access_volume_holds_a_pod_bound_token_any_container_user_reads(volumes, api, tmp_path):
    paths = await volumes.prepare(_pod())
    base = tmp_path / "pods" / "ff0556cd-0b2c-5513-ab68-7eff4000f9f7" / "volumes" / "kube-api-access-abcde"
    assert paths == {"kube-api-access-abcde": str(base)}
    assert (base / "token").read_text() == "token-1"
    assert (base / "ca.crt").read_text() == CA and (base / "namespace").read_text() == "ci"
    ((ns, account, body),) = api.requests
    assert (ns, account) == ("ci", "builder")
    assert body["spec"] == {"expirationSeconds": 3607, "boundObjectRef": {
        "apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "ff0556cd-0b2c-5513-ab68-7eff4000f9f7"}}
    # the kubelet's: no runAsUser or fsGroup says who reads it, so the token has the volume's defaultMode
    assert _mode(base) == 0o755 and _mode(base / "token") == 0o644 and _mode(base / "ca.crt") == 0o644
    assert _mode(base.parent.parent) == 0o750  # the pod's directory on the node: root's
    assert os.stat(base / "token").st_uid == os.geteuid()
    assert not [p for p in base.iterdir() if p.name.endswith(".tmp")]
    volumes.cleanup("ff0556cd-0b2c-5513-ab68-7eff4000f9f7")
    assert not base.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users needs root")
async def test_run_as_user_and_fs_group_own_the_token(volumes, tmp_path):
    await volumes.prepare(_pod(securityContext={"runAsUser": 1234, "fsGroup": 2345}))
    base = tmp_path / "pods" / "ff0556cd-0b2c-5513-ab68-7eff4000f9f7" / "volumes" / "kube-api-access-abcde"
    st = os.stat(base / "token")
    assert (st.st_uid, st.st_gid, _mode(base / "token")) == (1234, 2345, 0o640)
    st = os.stat(base)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 2345, 0o2755)
    assert os.stat(base / "ca.crt").st_gid == 2345 and _mode(base / "ca.crt") == 0o644
    volumes.cleanup("ff0556cd-0b2c-5513-ab68-7eff4000f9f7")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users needs root")
async def test_a_token_of_one_run_as_user_is_that_users_alone(volumes, tmp_path):
    await volumes.prepare(_pod(securityContext={"runAsUser": 1234}))
    token = tmp_path / "pods" / "ff0556cd-0b2c-5513-ab68-7eff4000f9f7" / "volumes" / "kube-api-access-abcde" / "token"
    st = os.stat(token)
    assert (st.st_uid, st.st_gid, _mode(token)) == (1234, 0, 0o600)
    volumes.cleanup("ff0556cd-0b2c-5513-ab68-7eff4000f9f7")


async def test_the_agent_renews_the_file_while_the_pod_lives(volumes, api, clock, tmp_path):
    volumes.tokens._jitter = lambda: 0.0
    await volumes.prepare(_pod())
    token = tmp_path / "pods" / "ff0556cd-0b2c-5513-ab68-7eff4000f9f7" / "volumes" / "kube-api-access-abcde" / "token"
    assert volumes._refreshers.get("ff0556cd-0b2c-5513-ab68-7eff4000f9f7") is not None  # a task keeps it fresh
    delay = await volumes.refresh_tokens("ff0556cd-0b2c-5513-ab68-7eff4000f9f7")
    assert delay == pytest.approx(3607 * 0.8) and token.read_text() == "token-1"
    clock.t += 2886  # past 80 % of 3607 s
    inode = token.stat().st_ino
    assert await volumes.refresh_tokens("ff0556cd-0b2c-5513-ab68-7eff4000f9f7") == pytest.approx(3607 * 0.8)
    assert token.read_text() == "token-2" and token.stat().st_ino != inode  # renamed over: atomic
    assert _mode(token) == 0o644
    api.fail = errors.unavailable("down")  # renewal fails: the file keeps the old token, retried soon
    clock.t += 2886
    assert await volumes.refresh_tokens("ff0556cd-0b2c-5513-ab68-7eff4000f9f7") == 10.0 and token.read_text() == "token-2"
    task = volumes._refreshers["ff0556cd-0b2c-5513-ab68-7eff4000f9f7"]
    volumes.cleanup("ff0556cd-0b2c-5513-ab68-7eff4000f9f7")
    assert await volumes.refresh_tokens("ff0556cd-0b2c-5513-ab68-7eff4000f9f7") is None
    await asyncio.sleep(0)
    assert task.cancelled() or task.done()


async def test_a_missing_account_is_a_failed_mount(volumes, api, monkeypatch):
    monkeypatch.setattr("node.volumes.TOKEN_WAIT", (0.0, 2))
    api.fail = errors.not_found("serviceaccounts", "builder")
    with pytest.raises(VolumeError) as e:
        await volumes.prepare(_pod())
    assert str(e.value) == ('MountVolume.SetUp failed for volume "kube-api-access-abcde" : failed to fetch token: '
                            'serviceaccounts "builder" not found')


async def test_item_paths_may_not_leave_the_volume(volumes, tmp_path):
    evil = {"name": "v", "projected": {"sources": [{"downwardAPI": {"items": [
        {"path": "../../escape", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}
    with pytest.raises(VolumeError, match="may not contain"):
        await volumes.prepare(_pod(volumes=[evil]))
    assert not list(tmp_path.rglob("escape"))
