"""``k8n install-service``: systemd units that run k8n at boot (:mod:`bus.systemd` renders them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from bus import config, systemd
from bus.cli.common import DataDirOpt
from bus.cli.main import app

SYSTEMD_RUNNING = Path("/run/systemd/system")  # sd_booted(): systemd is PID 1


def systemd_running() -> bool:
    return SYSTEMD_RUNNING.is_dir()


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def systemctl(*args: str) -> int:
    print(f"+ systemctl {' '.join(args)}", flush=True)
    return subprocess.run(["systemctl", *args]).returncode


@app.command("install-service", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def install_service(
    ctx: typer.Context,
    data_dir: Optional[str] = DataDirOpt,
    role: str = typer.Option("all-in-one", "--role", help="all-in-one (k8n up), control-plane (k8n up --no-agent) "
                             "or node (k8n agent, and k8n ingress when the join got its credentials, after k8n "
                             "join --no-run)"),
    node_name: Optional[str] = typer.Option(None, "--node-name", help="node role: the node's name (default: the "
                                            "one k8n join recorded, else the host name)"),
    unit_dir: Optional[str] = typer.Option(None, "--unit-dir", help=f"where to write the units (default "
                                           f"{systemd.UNIT_DIR}; elsewhere nothing is enabled)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the units, write and enable nothing"),
) -> None:
    """Write systemd units that run k8n at boot (restarted on failure, logs in the journal) and enable them:
    k8n install-service [--role R] [--data-dir D] [-- FLAGS for k8n up / k8n agent]."""
    from bus.cli.runner import default_node_name

    ddir = config.data_dir(data_dir).expanduser().absolute()
    extra = [a for a in ctx.args if a != "--"]
    node = None
    if role == "node":
        node = node_name or (config.read_cluster_info(ddir) or {}).get("node") or default_node_name()
    elif node_name:
        extra += ["--node-name", node_name]
    # a node joined without --no-ingress has its ingress controller's credentials: it serves Ingresses, as k8n join
    ingress = role == "node" and (ddir / "creds" / "ingress.creds").exists()
    try:
        units = systemd.plan(role, ddir, sys.executable, extra, node, ingress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(2)
    if dry_run:
        for u in units:
            print(f"# {Path(unit_dir or systemd.UNIT_DIR) / u.name}\n{u.render()}")
        return
    target = Path(unit_dir).absolute() if unit_dir else systemd.UNIT_DIR
    target.mkdir(parents=True, exist_ok=True)
    for u in units:
        write_atomic(target / u.name, u.render())
        print(f"wrote {target / u.name}")
    names = [u.name for u in units]
    pid = (config.read_cluster_info(ddir) or {}).get("pid")
    if pid and Path(f"/proc/{pid}").exists():
        print(f"note: k8n (pid {pid}) already runs from {ddir}; stop it (Ctrl-C) so that the service can start",
              file=sys.stderr)
    if unit_dir is None and systemd_running():
        code = systemctl("daemon-reload") or systemctl("enable", "--now", *names)
        if code:
            raise typer.Exit(code)
        print(f"enabled and started {', '.join(names)}; logs: journalctl -u {names[0]} -f")
    else:
        why = "systemd is not running here" if unit_dir is None else f"the units are in {target}"
        print(f"not enabled ({why}); on the machine, run:\n  systemctl daemon-reload\n"
              f"  systemctl enable --now {' '.join(names)}")


from bus.cli import reset  # noqa: E402,F401  (k8n reset: undoes what install-service and k8n up did)
