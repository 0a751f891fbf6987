"""The version-skew policy (bus.skew) checked at connect, against a real API server in its own process (k8n at this
checkout's version): a component of another version, as a long-running component connects (``bus.cmdline.run``
turns the check on), is stopped with a message saying what to upgrade, or let through when the policy allows it; an
agent that does not ask (k8n 0.1) is refused its Node by the API server when it says a version outside the policy."""

from __future__ import annotations

import pytest

import bus
from bus import errors, roles, skew
from bus.client import ApiClient
from bus.connect import connect
from bus.natsauth import Credentials
from bus.roles import Identity
from tests import builders as b
from tests.conftest import start_apiserver_process, wait_for_api


@pytest.fixture
async def apiserver_process(nats_server, tmp_path):
    proc = start_apiserver_process(nats_server.url, tmp_path / "apiserver.log")
    await wait_for_api(nats_server.url)
    yield proc
    proc.terminate()
    proc.wait(20)


@pytest.fixture
def checking(monkeypatch):
    """This process as a long-running component of version ``v`` would connect."""
    monkeypatch.setattr(skew, "CHECK_AT_CONNECT", True)

    def at(v: str) -> None:
        monkeypatch.setattr(bus, "__version__", v)
    return at


def creds(nats_server, identity: Identity) -> Credentials:
    return Credentials.load(nats_server.credentials(identity))


@pytest.mark.parametrize("role,version,says", [
    (roles.NODE, "0.3.0", "node agent 0.3.0 is newer than the API server (0.2.0): upgrade the API servers first"),
    (roles.SCHEDULER, "0.3.0", "scheduler 0.3.0 is newer than the API server (0.2.0)"),
    (roles.APISERVER, "0.4.0", "API server 0.4.0 and API server 0.2.0 are 2 minor versions apart"),
])
async def test_a_component_outside_the_policy_is_stopped_at_connect(apiserver_process, nats_server, checking,
                                                                    role, version, says):
    identity = Identity.node("skewed") if role == roles.NODE else Identity(role)
    checking(version)
    with pytest.raises(skew.SkewError) as refused:
        await connect(nats_server.url, creds(nats_server, identity))
    assert says in str(refused.value)


@pytest.mark.parametrize("role,version", [(roles.NODE, "0.1.0"), (roles.CONTROLLER_MANAGER, "0.1.0"),
                                          (roles.APISERVER, "0.3.0"), (roles.GATEWAY, "0.2.7")])
async def test_a_component_within_the_policy_connects(apiserver_process, nats_server, checking, role, version):
    identity = Identity.node("older") if role == roles.NODE else Identity(role)
    checking(version)
    nc = await connect(nats_server.url, creds(nats_server, identity))
    assert nc.is_connected
    await nc.close()


async def test_the_api_server_refuses_a_node_agent_newer_than_itself(apiserver_process, nats_server):
    nats_server.credentials(Identity.node("fresh"))
    agent = await ApiClient.connect(nats_server.url, Identity.node("fresh"))

    def node(version: str) -> dict:
        return {**b.node("fresh"), "status": {"nodeInfo": {"kubeletVersion": f"v1.32.0-k8n.{version}"}}}
    try:
        with pytest.raises(errors.ApiError) as refused:
            await agent.create(node("0.3.0"))
        assert refused.value.code == 403
        assert "node agent 0.3.0 is newer than the API server (0.2.0)" in refused.value.message
        made = await agent.create(node("0.1.0"))  # three minors older at most: a 0.1 agent may register
        assert made["metadata"]["name"] == "fresh"
        made["status"]["nodeInfo"]["kubeletVersion"] = "v1.32.0-k8n.0.3.0"
        with pytest.raises(errors.ApiError) as refused:
            await agent.update(made, subresource="status")
        assert refused.value.code == 403 and "newer than the API server" in refused.value.message
    finally:
        await agent.close()
