"""The entry points' shared options (bus/cmdline.py): where the NATS URL and the log level come from, and
that a bad setting stops an entry point with a message, not a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bus import cmdline, config
from bus.settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(monkeypatch, tmp_path):
    for var in ("K8N_SERVER", "K8N_LOG_LEVEL", "K8N_NODE_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("K8N_DATA_DIR", str(tmp_path))
    return monkeypatch


def parser() -> argparse.ArgumentParser:
    return cmdline.add_common_options(argparse.ArgumentParser(prog="test"))


def test_server_from_flag_then_environment_then_data_dir_then_default(env, tmp_path):
    assert cmdline.parse(parser(), []).server == config.DEFAULT_SERVER
    (tmp_path / config.CLUSTER_FILE).write_text(json.dumps({"server": "nats://10.0.0.9:4300"}))
    assert cmdline.parse(parser(), []).server == "nats://10.0.0.9:4300"
    env.setenv("K8N_SERVER", "nats://env:1")
    assert cmdline.parse(parser(), []).server == "nats://env:1"
    assert cmdline.parse(parser(), ["-s", "nats://flag:2"]).server == "nats://flag:2"
    assert cmdline.parse(parser(), ["--server", "nats://flag:3"]).server == "nats://flag:3"


def test_log_level_from_flag_then_environment(env):
    assert cmdline.parse(parser(), []).log_level == "INFO"
    env.setenv("K8N_LOG_LEVEL", "debug")
    assert cmdline.parse(parser(), []).log_level == "DEBUG"
    assert cmdline.parse(parser(), ["--log-level", "warning"]).log_level == "WARNING"


def test_a_bad_log_level_is_a_usage_error(env, capsys):
    with pytest.raises(SystemExit) as exc:
        cmdline.parse(parser(), ["--log-level", "loud"])
    assert exc.value.code == 2
    assert "--log-level: unknown log level 'LOUD'" in capsys.readouterr().err
    env.setenv("K8N_LOG_LEVEL", "chatty")
    with pytest.raises(SystemExit):
        cmdline.parse(parser(), [])
    assert "K8N_LOG_LEVEL: unknown log level 'CHATTY'" in capsys.readouterr().err


def test_node_name_from_environment_else_hostname(env):
    p = cmdline.add_node_name_option(parser())
    assert cmdline.parse(p, []).name
    env.setenv("K8N_NODE_NAME", "n7")
    p = cmdline.add_node_name_option(parser())
    assert cmdline.parse(p, []).name == "n7"
    assert cmdline.parse(p, ["--name", "n8"]).name == "n8"


def test_a_bad_setting_is_a_usage_error(capsys):
    def bad():
        raise SettingsError("K8N_GC_WORKERS='four': expected an integer")

    assert cmdline.settings(parser(), lambda: 3) == 3
    with pytest.raises(SystemExit) as exc:
        cmdline.settings(parser(), bad)
    assert exc.value.code == 2
    assert "bad setting: K8N_GC_WORKERS='four': expected an integer" in capsys.readouterr().err


def test_the_control_plane_refuses_a_bad_setting_before_it_connects(tmp_path):
    """``python -m master`` with an unparsable K8N_* value: exit 2, one line naming the variable, no traceback
    (nothing listens on the given server: the settings are checked first)."""
    env = {**os.environ, "K8N_GC_WORKERS": "four", "K8N_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "master", "--server", "nats://127.0.0.1:9", "--components",
                          "controllers"], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert out.returncode == 2, out.stderr
    assert "bad setting: K8N_GC_WORKERS='four': expected an integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_only_bus_config_names_the_default_nats_url():
    pattern = re.compile(r"nats://127\.0\.0\.1:4222")
    found = [f"{p.relative_to(ROOT)}" for pkg in ("bus", "master", "node") for p in sorted((ROOT / pkg).rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == ["bus/config.py"], "use bus.config.DEFAULT_SERVER (or bus.cmdline) instead of: " + ", ".join(found)


def test_every_entry_point_uses_the_shared_options():
    """No entry point parses --server/--log-level or configures logging by itself."""
    entry_points = ["master/__main__.py", "master/scheduler/__main__.py", "master/gateway/__main__.py",
                    "node/__main__.py", "node/proxy/__main__.py", "node/hollow.py"]
    for rel in entry_points:
        text = (ROOT / rel).read_text()
        assert "cmdline.add_common_options(" in text, rel
        for own in ('add_argument("--server"', 'add_argument("--log-level"', "basicConfig", "K8N_SERVER",
                    "K8N_LOG_LEVEL"):
            assert own not in text, f"{rel} handles {own} itself; use bus.cmdline"
