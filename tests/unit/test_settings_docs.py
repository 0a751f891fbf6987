"""The control plane's settings (master/controllers/settings.py, master/leaderelection.py,
master/apiserver/settings.py, bus.store.StoreSettings): one typed, documented field each, read from the environment
with errors that name the variable, and the README's tables generated from them (master/settings.py)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from bus import settings
from bus.settings import SettingsError
from master.apiserver.settings import ApiServerSettings
from master.controllers.settings import ControllerManagerSettings
from master.leaderelection import ElectionConfig
from master.settings import BLOCKS, README, main, readme_table
from node import settings as agent_settings
from node.agent import AgentConfig

CONTROLLERS = Path(__file__).resolve().parents[2] / "master" / "controllers"
REGENERATE = "python -m master.settings --write"
README_BLOCK = "controller-manager"


@pytest.mark.parametrize("block", sorted(BLOCKS) + [agent_settings.BLOCK, agent_settings.INGRESS_BLOCK])
def test_readme_table_is_generated_from_the_settings(block):
    if block in (agent_settings.BLOCK, agent_settings.INGRESS_BLOCK):
        expected = agent_settings.readme_table() if block == agent_settings.BLOCK else agent_settings.ingress_table()
        regenerate = "python -m node.settings --write"
    else:
        expected, regenerate = readme_table(block), REGENERATE
    text = settings.marked_block(README.read_text(), block)
    assert text is not None, (f"README.md has no <!-- settings:{block} --> ... <!-- /settings --> block; "
                              f"add the markers and run: {regenerate}")
    assert text == expected, f"README.md's {block} settings table is out of date; run: {regenerate}"


def test_agent_flags_come_from_its_settings(monkeypatch):
    """Every documented AgentConfig field is a flag of `python -m node` with the field's default, overridden by
    its environment variable and then by the flag; the table shows them as flags."""
    from node.__main__ import parse

    monkeypatch.delenv("K8N_LEASE_SECONDS", raising=False)
    args = parse(["--name", "n1", "--server", "nats://x:1"])
    assert settings.values(args, AgentConfig) == {f.name: f.default for f in settings.fields(AgentConfig)}
    monkeypatch.setenv("K8N_LEASE_SECONDS", "7")
    assert parse(["--name", "n1", "--server", "nats://x:1"]).lease_seconds == 7.0
    args = parse(["--name", "n1", "--server", "nats://x:1", "--lease-seconds", "3", "--drain-on-exit"])
    assert args.lease_seconds == 3.0 and args.drain_on_exit is True
    assert "| `--pause-image` | `K8N_PAUSE_IMAGE` | `k8n/pause:3.9` |" in agent_settings.readme_table()


def test_the_table_shows_each_setting_with_its_variable_and_default():
    table = readme_table(README_BLOCK)
    assert "| `replicaset-workers` | `K8N_REPLICASET_WORKERS` | 5 |" in table
    assert "| `node-monitor-grace-period` | `K8N_NODE_MONITOR_GRACE_PERIOD` | 8 |" in table
    assert "| `leader-elect` | `K8N_LEADER_ELECT` | `true` |" in table
    assert "| `pv-reclaim-roots` | `K8N_PV_RECLAIM_ROOTS` |" in table
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == sum(len(dataclasses.fields(c)) for c in BLOCKS[README_BLOCK]) == 22
    apiserver = readme_table("apiserver")
    assert "| `service-cidr` | `K8N_SERVICE_CIDR` | `10.96.0.0/12` |" in apiserver
    assert "| `kv-replicas` | `K8N_KV_REPLICAS` | 0 |" in apiserver


def test_every_setting_is_documented_once_under_a_distinct_name():
    names = []
    for cls in (c for classes in BLOCKS.values() for c in classes):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc", "").strip(), f"{cls.__name__}.{f.name} has no description"
            names.append(settings.option_name(f))
    assert len(names) == len(set(names))


def test_write_rewrites_only_the_marked_block(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n<!-- settings:{README_BLOCK} -->\nstale\n<!-- /settings -->\n\nmiddle\n\n"
                      "<!-- settings:apiserver -->\n<!-- /settings -->\nafter\n"
                      "<!-- settings:telemetry -->\n<!-- /settings -->\n")
    main(["--write", str(readme)])
    assert readme.read_text() == (f"# x\n\nbefore\n\n<!-- settings:{README_BLOCK} -->\n{readme_table(README_BLOCK)}"
                                  "<!-- /settings -->\n\nmiddle\n\n<!-- settings:apiserver -->\n"
                                  f"{readme_table('apiserver')}<!-- /settings -->\nafter\n"
                                  f"<!-- settings:telemetry -->\n{readme_table('telemetry')}<!-- /settings -->\n")
    (tmp_path / "other.md").write_text("no markers\n")
    with pytest.raises(SystemExit) as exc:
        main(["--write", str(tmp_path / "other.md")])
    assert exc.value.code == 2
    assert f"no <!-- settings:{README_BLOCK} -->" in capsys.readouterr().err


# ---- reading them --------------------------------------------------------------------------------------------------

def test_defaults_environment_and_options():
    assert ControllerManagerSettings.load(environ={}) == ControllerManagerSettings()
    s = ControllerManagerSettings.load(environ={"K8N_NODE_MONITOR_GRACE_PERIOD": "40", "K8N_GC_WORKERS": "7",
                                                "K8N_PV_RECLAIM_ROOTS": "/a::/b"})
    assert s.node_monitor_grace_period == 40.0 and isinstance(s.node_monitor_grace_period, float)
    assert s.gc_workers == 7 and s.reclaim_roots == ["/a", "/b"]
    assert s.replicaset_workers == 5
    # an option given to the controller manager wins over the environment
    s = ControllerManagerSettings.load({"gc-workers": 2}, environ={"K8N_GC_WORKERS": "7"})
    assert s.gc_workers == 2


@pytest.mark.parametrize("var, value, expected", [
    ("K8N_GC_WORKERS", "four", "K8N_GC_WORKERS='four': expected an integer"),
    ("K8N_REPLICASET_WORKERS", "4.5", "K8N_REPLICASET_WORKERS='4.5': expected an integer"),
    ("K8N_NODE_MONITOR_GRACE_PERIOD", "40s", "K8N_NODE_MONITOR_GRACE_PERIOD='40s': expected a number"),
])
def test_a_bad_value_names_its_variable(var, value, expected):
    with pytest.raises(SettingsError) as exc:
        ControllerManagerSettings.load(environ={var: value})
    assert str(exc.value) == expected


def test_controllers_read_only_settings_that_exist():
    """Every ``ctx.settings.<name>`` in a controller module is a field (or property) of the settings: a typo
    would otherwise only fail when the controller manager starts."""
    known = {f.name for f in dataclasses.fields(ControllerManagerSettings)} | {
        n for n, v in vars(ControllerManagerSettings).items() if isinstance(v, property)}
    used: dict[str, list[str]] = {}
    for path in sorted(CONTROLLERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "settings" and isinstance(node.value.value, ast.Name)
                    and node.value.value.id == "ctx"):
                used.setdefault(node.attr, []).append(f"{path.name}:{node.lineno}")
            assert not (isinstance(node, ast.Attribute) and node.attr == "option"), (
                f"{path.name}:{node.lineno}: read settings from ctx.settings (master/controllers/settings.py)")
    unknown = {n: where for n, where in used.items() if n not in known}
    assert not unknown, f"unknown settings: {unknown}"
    unused = known - set(used) - {"pv_reclaim_roots"}  # read through the reclaim_roots property
    assert not unused, f"settings no controller reads: {sorted(unused)}"


def test_election_settings_are_parsed_and_documented():
    cfg = ElectionConfig.from_options(environ={"K8N_LEADER_ELECT": "false", "K8N_LEADER_ELECT_LEASE_DURATION": "6"})
    assert not cfg.enabled and cfg.lease_duration == 6.0 and cfg.renew_deadline == 4.0
    assert [settings.env_name(settings.option_name(f)) for f in dataclasses.fields(ElectionConfig)] == [
        "K8N_LEADER_ELECT", "K8N_LEADER_ELECT_LEASE_DURATION", "K8N_LEADER_ELECT_RENEW_DEADLINE",
        "K8N_LEADER_ELECT_RETRY_PERIOD"]


def test_apiserver_settings_from_the_environment():
    assert ApiServerSettings.load(environ={}) == ApiServerSettings()
    s = ApiServerSettings.load(environ={"K8N_SERVICE_CIDR": "10.100.0.0/16", "K8N_NODE_PORT_RANGE": "31000-31010"})
    assert (s.service_cidr, s.node_port_range) == ("10.100.0.0/16", "31000-31010")


def test_readme_role_table_is_the_role_table():
    from bus import roles

    text = settings.marked_block(README.read_text(), roles.BLOCK)
    assert text == roles.markdown_table(), "README.md's bus role table is out of date; run: python -m bus.roles --write"
