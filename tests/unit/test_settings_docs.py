"""The controller manager's settings (master/controllers/settings.py, master/leaderelection.py): one typed,
documented field each, read from the environment with errors that name the variable, and the README's table
generated from them."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from bus import settings
from bus.settings import SettingsError
from master.controllers.settings import (DOCUMENTED, README, README_BLOCK, ControllerManagerSettings, main,
                                         readme_table)
from master.leaderelection import ElectionConfig

CONTROLLERS = Path(__file__).resolve().parents[2] / "master" / "controllers"
REGENERATE = "python -m master.controllers.settings --write"


def test_readme_table_is_generated_from_the_settings():
    block = settings.marked_block(README.read_text(), README_BLOCK)
    assert block is not None, (f"README.md has no <!-- settings:{README_BLOCK} --> ... <!-- /settings --> block; "
                               f"add the markers and run: {REGENERATE}")
    assert block == readme_table(), f"README.md's controller-manager settings table is out of date; run: {REGENERATE}"


def test_the_table_shows_each_setting_with_its_variable_and_default():
    table = readme_table()
    assert "| `replicaset-workers` | `K8N_REPLICASET_WORKERS` | 5 |" in table
    assert "| `node-monitor-grace-period` | `K8N_NODE_MONITOR_GRACE_PERIOD` | 8 |" in table
    assert "| `leader-elect` | `K8N_LEADER_ELECT` | `true` |" in table
    assert "| `pv-reclaim-roots` | `K8N_PV_RECLAIM_ROOTS` | `/tmp:/var/lib/k8n` |" in table
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == sum(len(dataclasses.fields(c)) for c in DOCUMENTED) == 21


def test_every_setting_is_documented_once_under_a_distinct_name():
    names = []
    for cls in DOCUMENTED:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc", "").strip(), f"{cls.__name__}.{f.name} has no description"
            names.append(settings.option_name(f))
    assert len(names) == len(set(names))


def test_write_rewrites_only_the_marked_block(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n<!-- settings:{README_BLOCK} -->\nstale\n<!-- /settings -->\n\nafter\n")
    main(["--write", str(readme)])
    assert readme.read_text() == (f"# x\n\nbefore\n\n<!-- settings:{README_BLOCK} -->\n{readme_table()}"
                                  "<!-- /settings -->\n\nafter\n")
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
