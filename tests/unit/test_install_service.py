"""``k8n install-service`` (systemd units: bus.systemd) and ``k8n reset``'s planning (bus.cli.reset.plan)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bus import systemd
from bus.cli.reset import Inventory, Removal, bridge_name, nft_tables, plan

REPO = Path(__file__).resolve().parents[2]
PY = "/opt/venv/bin/python"


def k8n(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bus.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, input=stdin, env={**os.environ, "PYTHONPATH": str(REPO)})


def settings(text: str, section: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in systemd.parse(text)[section]:
        out.setdefault(k, []).append(v)
    return out


def test_all_in_one_is_one_unit_running_k8n_up_with_the_data_dir_and_flags():
    (unit,) = systemd.plan("all-in-one", Path("/var/lib/k8n"), PY, ["--listen", "10.0.0.5"])
    text = unit.render()
    assert unit.name == "k8n.service"
    argv, env = systemd.exec_start(text)
    assert argv == [PY, "-m", "bus.cli", "up", "--data-dir", "/var/lib/k8n", "--keep-pods", "--listen", "10.0.0.5"]
    assert env["K8N_DATA_DIR"] == "/var/lib/k8n"
    svc = settings(text, "Service")
    assert svc["Restart"] == ["on-failure"] and svc["RestartSec"] == ["5s"]
    assert svc["StandardOutput"] == ["journal"] and svc["StandardError"] == ["journal"]
    assert svc["Delegate"] == ["yes"] and svc["KillMode"] == ["mixed"]  # k8n up stops its children in order
    assert settings(text, "Install")["WantedBy"] == ["multi-user.target"]
    assert "docker.service" in settings(text, "Unit")["After"][0].split()
    assert systemd.data_dir_of(text) == "/var/lib/k8n"


def test_a_stale_cluster_json_is_removed_before_k8n_up_unless_it_runs(tmp_path):
    """After a reboot cluster.json's pid may be any process's; k8n up would take it for itself running."""
    (unit,) = systemd.plan("all-in-one", tmp_path, PY, [])
    pre, _ = systemd.exec_start(unit.render(), "ExecStartPre")
    assert pre[0] == systemd.FLOCK and "ExecStartPre=-/" in unit.render()  # its failure does not stop the start
    info = tmp_path / "cluster.json"
    info.write_text(f'{{"pid": {os.getpid()}}}')
    import fcntl

    with open(tmp_path / "up.lock", "a+") as lock:  # a k8n up runs: its cluster.json stays
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert subprocess.run(pre, capture_output=True, timeout=30).returncode != 0
        assert info.exists()
    assert subprocess.run(pre, capture_output=True, timeout=30).returncode == 0
    assert not info.exists()


def test_control_plane_runs_no_agent_and_needs_no_docker():
    (unit,) = systemd.plan("control-plane", Path("/d"), PY, [])
    text = unit.render()
    assert systemd.exec_start(text)[0][3:] == ["up", "--data-dir", "/d", "--no-agent"]
    assert "docker" not in text and "Delegate" not in text


def test_node_unit_runs_the_agent_after_docker_and_leaves_containers_on_restart():
    (unit,) = systemd.plan("node", Path("/d"), PY, ["--node-ip", "10.0.0.7"], node="n1")
    text = unit.render()
    assert unit.name == "k8n-agent.service"
    argv, _ = systemd.exec_start(text)
    assert argv == [PY, "-m", "bus.cli", "agent", "--data-dir", "/d", "--name", "n1", "--state-dir", "/d/nodes/n1",
                    "--creds-dir", "/d/creds", "--node-ip", "10.0.0.7"]
    unit_section, svc = settings(text, "Unit"), settings(text, "Service")
    assert "docker.service" in unit_section["After"][0].split()
    assert svc["KillMode"] == ["process"] and svc["Delegate"] == ["yes"] and svc["Restart"] == ["on-failure"]


def test_a_node_with_ingress_credentials_gets_an_ingress_unit_too(tmp_path):
    agent, ingress = systemd.plan("node", Path("/d"), PY, ["--node-ip", "10.0.0.7"], node="n1", ingress=True)
    assert (agent.name, ingress.name) == ("k8n-agent.service", "k8n-ingress.service")
    argv, env = systemd.exec_start(ingress.render())
    assert argv == [PY, "-m", "bus.cli", "ingress", "--data-dir", "/d", "--name", "n1", "--creds-dir", "/d/creds"]
    assert env["K8N_DATA_DIR"] == "/d" and systemd.data_dir_of(ingress.render()) == "/d"  # k8n reset finds it
    # install-service gives it to a node whose join got ingress credentials, and only to that one
    for with_creds in (False, True):
        d = tmp_path / f"d{with_creds}"
        (d / "creds").mkdir(parents=True)
        if with_creds:
            (d / "creds" / "ingress.creds").write_text("x")
        r = k8n("install-service", "--data-dir", str(d), "--role", "node", "--node-name", "n1", "--unit-dir",
                str(tmp_path / f"u{with_creds}"), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert sorted(x.name for x in (tmp_path / f"u{with_creds}").iterdir()) == (
            ["k8n-agent.service", "k8n-ingress.service"] if with_creds else ["k8n-agent.service"])


def test_arguments_systemd_would_split_or_expand_are_quoted():
    weird = ["--node-name", "a b", "--x", "50%", "--y", "$HOME", "--z", 'q"\\']
    (unit,) = systemd.plan("all-in-one", Path("/data dir"), PY, weird)
    argv, env = systemd.exec_start(unit.render())
    assert argv[3:] == ["up", "--data-dir", "/data dir", "--keep-pods", *weird]
    assert env["K8N_DATA_DIR"] == "/data dir"


@pytest.mark.parametrize("role,python,ddir", [("worker", PY, "/d"), ("all-in-one", "python3", "/d"),
                                              ("all-in-one", PY, "rel")])
def test_bad_plans_are_refused(role, python, ddir):
    with pytest.raises(ValueError):
        systemd.plan(role, Path(ddir), python, [])


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("role", systemd.ROLES)
def test_rendered_units_pass_systemd_analyze_verify(tmp_path, role):
    for unit in systemd.plan(role, tmp_path / "data", sys.executable, ["--node-ip", "10.0.0.7"] if role == "node"
                             else ["--nats-port", "0"], node="n1", ingress=role == "node"):
        path = tmp_path / unit.name
        path.write_text(unit.render())
        r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert str(path) not in r.stderr, r.stderr  # no warning about the file itself


def test_install_service_writes_0644_units_and_says_what_to_run(tmp_path):
    r = k8n("install-service", "--data-dir", "data", "--unit-dir", "units", "--", "--nats-port", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "units" / "k8n.service"
    assert path.stat().st_mode & 0o777 == 0o644
    argv, _ = systemd.exec_start(path.read_text())
    assert argv == [sys.executable, "-m", "bus.cli", "up", "--data-dir", str(tmp_path / "data"), "--keep-pods",
                    "--nats-port", "0"]
    assert "systemctl enable --now k8n.service" in r.stdout
    assert [p.name for p in (tmp_path / "units").iterdir()] == ["k8n.service"]  # no temporary file left


def test_install_service_dry_run_writes_nothing(tmp_path):
    r = k8n("install-service", "--data-dir", "d", "--role", "node", "--node-name", "n1", "--unit-dir", "u",
            "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ExecStart=" in r.stdout and "k8n-agent.service" in r.stdout
    assert not (tmp_path / "u").exists()


# ---- k8n reset ------------------------------------------------------------------------------------------

D = Path("/var/lib/k8n")


def machine(**kw) -> Inventory:
    """A machine with one k8n (node n1, data dir D) beside another k8n (node other, data dir /srv/other) and
    things that are not k8n's."""
    (mine,) = systemd.plan("all-in-one", D, PY, [])
    (theirs,) = systemd.plan("node", Path("/srv/other"), PY, [], node="other")
    b, ob = bridge_name("n1"), bridge_name("other")
    inv = Inventory(
        D, True, ["n1"],
        units={"/etc/systemd/system/k8n.service": mine.render(),
               "/etc/systemd/system/k8n-agent.service": theirs.render()},
        processes={10: [PY, "-m", "bus.cli", "up", "--data-dir", str(D)],
                   11: ["/usr/bin/nats-server", "-c", f"{D}/jetstream/nats.conf"],
                   12: [PY, "-m", "node", "--state-dir", f"{D}/nodes/n1", "--creds-dir", f"{D}/creds"],
                   13: [PY, "-m", "node", "--state-dir", "/srv/other/nodes/other"],
                   14: ["haproxy", f"--config={D}/ingress/n1/haproxy.cfg"],
                   15: ["vim", f"{D}2/notes"]},
        containers={"a" * 64: {"io.k8n.node": "n1", "io.k8n.pod.name": "web", "io.k8n.pod.namespace": "default"},
                    "b" * 64: {"io.k8n.node": "other"}},
        links={"lo": "", "eth0": "", "docker0": "", b: "", "veth11111111": b, "veth22222222": ob, ob: ""},
        nft_tables=[("ip", t) for t in (*nft_tables("n1"), *nft_tables("other"))] + [("inet", nft_tables("n1")[0]),
                                                                                    ("ip", "nat")],
        iptables_rules=[("filter", f'-A FORWARD -i {b} -m comment --comment "k8n:{b}" -j ACCEPT'),
                        ("filter", f'-A FORWARD -i {ob} -m comment --comment "k8n:{ob}" -j ACCEPT'),
                        ("nat", "-N K8N-OTHER")])
    for k, v in kw.items():
        setattr(inv, k, v)
    return inv


def test_reset_plans_only_what_belongs_to_its_data_directory():
    b = bridge_name("n1")
    assert plan(machine()) == [
        Removal("unit", "/etc/systemd/system/k8n.service"),
        Removal("process", "10", f"{PY} -m bus.cli up --data-dir {D}"),
        Removal("process", "11", f"/usr/bin/nats-server -c {D}/jetstream/nats.conf"),
        Removal("process", "12", f"{PY} -m node --state-dir {D}/nodes/n1 --creds-dir {D}/creds"),
        Removal("process", "14", f"haproxy --config={D}/ingress/n1/haproxy.cfg"),
        Removal("container", "a" * 12, "pod default/web"),
        Removal("veth", "veth11111111", f"on {b}"),
        Removal("bridge", b),
        *(Removal("nftables", f"ip {t}") for t in nft_tables("n1")),
        Removal("iptables", f'-A FORWARD -i {b} -m comment --comment "k8n:{b}" -j ACCEPT', "filter"),
        Removal("data", str(D)),
    ]


def test_reset_names_match_the_agents():
    from node.netpol import table_name as netpol_table
    from node.network.bridge import bridge_name as agent_bridge
    from node.network.hostports import table_name as hostports_table
    from node.proxy.nft import table_name as proxy_table
    from node.runtime.model import LABEL_NODE

    from bus.cli import reset

    assert bridge_name("n1") == agent_bridge("n1")
    assert nft_tables("n1") == [proxy_table("n1"), netpol_table("n1"), hostports_table("n1")]
    assert reset.NODE_LABEL == LABEL_NODE


def test_a_clean_machine_has_nothing_to_remove():
    inv = machine(data_dir_exists=False, units={}, processes={}, containers={}, links={"lo": ""}, nft_tables=[],
                  iptables_rules=[])
    assert plan(inv) == []


def test_reset_refuses_without_a_terminal_or_force(tmp_path):
    (tmp_path / "d" / "nodes").mkdir(parents=True)
    r = k8n("reset", "--data-dir", "d", "--unit-dir", "u", cwd=tmp_path, stdin="y\n")
    assert r.returncode == 1 and "--force" in r.stderr
    assert (tmp_path / "d").exists()


def test_reset_force_removes_units_and_data_dir_then_finds_nothing(tmp_path):
    assert k8n("install-service", "--data-dir", "d", "--unit-dir", "u", cwd=tmp_path).returncode == 0
    (tmp_path / "d" / "nodes" / "n-reset-test").mkdir(parents=True)
    r = k8n("reset", "--data-dir", "d", "--unit-dir", "u", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"removed unit {tmp_path / 'u' / 'k8n.service'}" in r.stdout
    assert f"removed data {tmp_path / 'd'}" in r.stdout
    assert not (tmp_path / "d").exists() and not (tmp_path / "u" / "k8n.service").exists()
    again = k8n("reset", "--data-dir", "d", "--unit-dir", "u", "--force", cwd=tmp_path)
    assert again.stdout == f"nothing to remove for {tmp_path / 'd'}\n"


@pytest.mark.parametrize("where", ["/", "d"])
def test_reset_refuses_a_directory_k8n_did_not_make(tmp_path, where):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    r = k8n("reset", "--data-dir", where, "--unit-dir", "u", "--force", cwd=tmp_path)
    assert r.returncode == 1 and "refusing" in r.stderr
    assert (tmp_path / "d" / "notes.txt").exists()
