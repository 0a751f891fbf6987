"""The node agent's parts see it through narrow interfaces: a pod worker through ``node.podhost.PodHost``, the
node services (logs, exec, stats, metrics) through ``node.services.ServicesHost``. The agent implements both, and
each part uses exactly what its interface lists — a new reach into the agent has to be declared there first."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from node.agent import Agent, AgentConfig
from node.podhost import PodHost, PodSettings
from node.services import MetricsSettings, ServicesHost

ROOT = Path(__file__).resolve().parents[2]


def members(protocol: type) -> set[str]:
    """The attributes and methods a Protocol declares."""
    return {n for c in protocol.__mro__ if c.__module__ not in ("typing", "builtins")
            for n in list(vars(c)) + list(getattr(c, "__annotations__", {})) if not n.startswith("_")}


def used(path: Path, base: str) -> tuple[set[str], set[str]]:
    """What ``self.<base>.X`` and ``self.<base>.config.Y`` the module reads: ({X…}, {Y…})."""
    tree = ast.parse(path.read_text())
    direct: set[str] = set()
    config: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        v = node.value
        if isinstance(v, ast.Attribute) and v.attr == base and isinstance(v.value, ast.Name) and v.value.id == "self":
            direct.add(node.attr)
        if (isinstance(v, ast.Attribute) and v.attr == "config" and isinstance(v.value, ast.Attribute)
                and v.value.attr == base and isinstance(v.value.value, ast.Name) and v.value.value.id == "self"):
            config.add(node.attr)
    return direct, config


class NullClient:
    nc: Any = None


@pytest.fixture
def agent(tmp_path) -> Agent:
    config = AgentConfig(name="n1", server="nats://127.0.0.1:4222", state_dir=tmp_path, node_ip="10.0.0.1")
    a = Agent(config, NullClient(), runtime=object(), network=object())  # type: ignore[arg-type]
    return a


def test_the_agent_is_a_pod_host(agent):
    assert isinstance(agent, PodHost)
    missing = {m for m in members(PodSettings) if not hasattr(agent.config, m)}
    assert not missing, f"AgentConfig lacks the pod settings {sorted(missing)}"


def test_the_agent_is_a_services_host(agent):
    missing = {m for m in members(ServicesHost) if not hasattr(agent, m)}
    assert not missing, f"Agent lacks {sorted(missing)} of ServicesHost"
    missing = {m for m in members(MetricsSettings) if not hasattr(agent.config, m)}
    assert not missing, f"AgentConfig lacks {sorted(missing)} of MetricsSettings"


def test_a_pod_worker_uses_exactly_its_host_interface():
    direct, config = used(ROOT / "node" / "podworker.py", "host")
    assert direct == members(PodHost)
    assert config == members(PodSettings)


def test_the_node_services_use_exactly_their_host_interface():
    direct, config = used(ROOT / "node" / "services.py", "host")
    assert direct == members(ServicesHost)
    assert config == members(MetricsSettings)


def test_the_checks_see_a_missing_member(tmp_path):
    src = tmp_path / "w.py"
    src.write_text("class W:\n    def f(self):\n        return self.host.runtime, self.host.config.pause_image, "
                   "self.host.secret_store\n")
    direct, config = used(src, "host")
    assert direct == {"runtime", "config", "secret_store"} and config == {"pause_image"}
    assert not direct <= members(PodHost)

    class NotAHost:
        config = runtime = None

    assert not isinstance(NotAHost(), PodHost)
