"""systemd units for k8n (``k8n install-service``): pure rendering and parsing, no I/O.

Roles and their units:

* ``all-in-one`` and ``control-plane``: one ``k8n.service`` running ``k8n up`` (``--no-agent`` for
  control-plane). ``k8n up`` is the one entry point that prepares a machine's cluster (bus keys and credentials,
  the CA, the admin token, the NATS configuration) and starts its parts in order (NATS, API server, control
  plane, gateway, the pause image, the agent, and the ingress once the node is Ready), supervising each; systemd
  supervises it in turn (restart on failure, start at boot, the journal). This is kubeadm's shape too: one unit
  (kubelet.service), the rest started by it. Its ``ExecStartPre`` drops a ``cluster.json`` no running ``k8n up``
  holds (:func:`stale_pid_cleanup`).
* ``node`` (a machine that ran ``k8n join --no-run``): ``k8n-agent.service`` running ``k8n agent`` and, when the
  join got ingress credentials (``<data dir>/creds/ingress.creds``), ``k8n-ingress.service`` running ``k8n ingress``
  (haproxy on ports 80 and 443; its state under ``<data dir>/ingress/<node>``).

Units that run a node agent say ``Delegate=yes`` and start after Docker, as kubelet and docker units do; pod
containers belong to dockerd (containerd-shim), so they outlive an agent restart. The agent-only unit has
``KillMode=process``; ``k8n.service`` has ``KillMode=mixed``: SIGTERM reaches ``k8n up`` alone, which stops its
children in order, and what is left at the stop timeout is killed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

UNIT_DIR = Path("/etc/systemd/system")
FLOCK = "/usr/bin/flock"  # util-linux (essential on Debian)
ROLES = ("all-in-one", "control-plane", "node")
MAIN_UNIT = "k8n.service"
AGENT_UNIT = "k8n-agent.service"
INGRESS_UNIT = "k8n-ingress.service"
UNIT_NAMES = (MAIN_UNIT, AGENT_UNIT, INGRESS_UNIT)
DOCS = "https://github.com/k8n/k8n#running-as-services"


@dataclass
class Unit:
    name: str
    description: str
    exec_start: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    wants: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    service: dict[str, str] = field(default_factory=dict)  # further [Service] settings
    exec_start_pre: list[str] = field(default_factory=list)  # run first; its failure is ignored ("-")

    def render(self) -> str:
        unit = [f"Description={self.description}", f"Documentation={DOCS}"]
        unit += [f"{k}={' '.join(v)}" for k, v in (("Wants", self.wants), ("Requires", self.requires),
                                                   ("After", self.after)) if v]
        svc = ["Type=simple", *(f"Environment={quote(f'{k}={v}')}" for k, v in self.environment.items()),
               *([f"ExecStartPre=-{' '.join(quote(a) for a in self.exec_start_pre)}"] if self.exec_start_pre else []),
               f"ExecStart={' '.join(quote(a) for a in self.exec_start)}",
               "Restart=on-failure", "RestartSec=5s", "StandardOutput=journal", "StandardError=journal",
               f"SyslogIdentifier={self.name.removesuffix('.service')}", "LimitNOFILE=1048576",
               *(f"{k}={v}" for k, v in self.service.items())]
        return "\n".join(["# written by k8n install-service; k8n reset removes it", "[Unit]", *unit, "",
                          "[Service]", *svc, "", "[Install]", "WantedBy=multi-user.target", ""])


_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def quote(arg: str) -> str:
    """One ExecStart/Environment word as systemd reads it: ``%`` and ``$`` escaped, double quotes around words with
    anything but plain characters."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan(role: str, data_dir: Path, python: str, extra: list[str], node: str | None = None,
         ingress: bool = False) -> list[Unit]:
    """The units of ``role`` for the cluster in ``data_dir`` (absolute), run with ``python`` (the venv's,
    absolute); ``extra``: more flags for ``k8n up`` (all-in-one, control-plane) or ``k8n agent`` (node);
    ``ingress``: a node's ingress controller too (node)."""
    if role not in ROLES:
        raise ValueError(f"--role {role!r}: one of {', '.join(ROLES)}")
    if not Path(python).is_absolute() or not data_dir.is_absolute():
        raise ValueError("the python and the data directory of a unit must be absolute paths")
    k8n = [python, "-m", "bus.cli"]
    env = {"K8N_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    docker = ["docker.service"]
    online = ["network-online.target"]
    if role == "node":
        if not node:
            raise ValueError("a node's unit needs its name (--node-name, or the node k8n join recorded)")
        argv = [*k8n, "agent", "--data-dir", str(data_dir), "--name", node, "--state-dir",
                str(data_dir / "nodes" / node), "--creds-dir", str(data_dir / "creds"), *extra]
        agent = Unit(AGENT_UNIT, f"k8n node agent ({node})", argv, env, after=[*online, *docker],
                     wants=[*online, *docker], service={"Delegate": "yes", "KillMode": "process",
                                                        "TimeoutStopSec": "60s"})
        if not ingress:
            return [agent]
        ingress_argv = [*k8n, "ingress", "--data-dir", str(data_dir), "--name", node, "--creds-dir",
                        str(data_dir / "creds")]
        return [agent, Unit(INGRESS_UNIT, f"k8n ingress controller ({node})", ingress_argv, env, after=online,
                            wants=online, service={"TimeoutStopSec": "30s"})]
    with_agent = role == "all-in-one"
    # --keep-pods: a restart of the unit (an upgrade, a crash) restarts no pod; the next agent adopts them
    argv = [*k8n, "up", "--data-dir", str(data_dir), *(["--keep-pods"] if with_agent else ["--no-agent"]), *extra]
    what = "NATS, control plane, HTTP API" + (", node agent and ingress" if with_agent else "")
    svc = {"KillMode": "mixed", "TimeoutStopSec": "90s"}
    if with_agent:
        svc["Delegate"] = "yes"
    return [Unit(MAIN_UNIT, f"k8n cluster ({what})", argv, env, after=[*online, *(docker if with_agent else [])],
                 wants=[*online, *(docker if with_agent else [])], service=svc,
                 exec_start_pre=stale_pid_cleanup(data_dir))]


def stale_pid_cleanup(data_dir: Path) -> list[str]:
    """``cluster.json`` removed unless a ``k8n up`` holds the data directory's lock: after a reboot the pid it
    records may be another process's, which ``k8n up`` would take for a running cluster and refuse to start."""
    return [FLOCK, "--nonblock", str(data_dir / "up.lock"), "rm", "-f", str(data_dir / "cluster.json")]


def parse(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's settings by section, in order (comments and blank lines dropped)."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, [])
        elif "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(section, []).append((k.strip(), v.strip()))
    return out


def _unescape(word: str) -> str:
    return word.replace("$$", "$").replace("%%", "%")


def exec_start(text: str, key: str = "ExecStart") -> tuple[list[str], dict[str, str]]:
    """A unit's ExecStart= (or ``key``'s) argv, without the "-" prefix, and its Environment= variables (as systemd
    would run it)."""
    svc = parse(text).get("Service", [])
    argv = [_unescape(w) for k, v in svc if k == key for w in shlex.split(v.removeprefix("-"))]
    env = dict(_unescape(w).split("=", 1) for k, v in svc if k == "Environment" for w in shlex.split(v))
    return argv, env


def data_dir_of(text: str) -> str | None:
    """The ``--data-dir`` a unit's command runs with (None: none)."""
    argv, _ = exec_start(text)
    return next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--data-dir"), None)
