"""``k8n reset``: remove what k8n put on this machine for one data directory, as ``kubeadm reset`` does.

What belongs to a data directory is found from it: its systemd units (their ``--data-dir``), its processes (any
argument in the directory; ``cluster.json``'s pid), and its nodes (``nodes/<name>``, ``ingress/<name>``,
``cluster.json``'s node). A node's machine state carries names derived from the node's name (the same scheme as
``node.network`` and ``node.proxy``, re-derived here since ``bus`` imports no ``node``): pod containers labelled
``io.k8n.node=<name>``, the bridge ``k8nbr-<h>`` and the veths enslaved to it, iptables rules commented
``k8n:k8nbr-<h>``, and the nftables tables ``ip k8n-<h>`` (services), ``ip k8n-np-<h>`` (network policy) and
``ip k8n-hp-<h>`` (host ports), with ``<h>`` the first 8 hex digits of the name's SHA-256.

:func:`plan` is pure: from an :class:`Inventory` of the machine to the list of :class:`Removal` to make.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer

from bus import config, systemd
from bus.cli.common import DataDirOpt
from bus.cli.main import app

NODE_LABEL = "io.k8n.node"  # node.runtime.model.LABEL_NODE
# what ``k8n up`` and ``k8n join`` make in a data directory: one of them is needed to remove a directory
MARKERS = ("cluster.json", "up.lock", "nats-auth", "creds", "jetstream", "nodes", "pki", "kubeconfig", "tokens.csv")
NFT_FAMILY = "ip"


def short_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def bridge_name(node: str) -> str:
    return f"k8nbr-{short_hash(node)}"


def nft_tables(node: str) -> list[str]:
    h = short_hash(node)
    return [f"k8n-{h}", f"k8n-np-{h}", f"k8n-hp-{h}"]


@dataclass
class Inventory:
    """What is on the machine (all of it, not only k8n's: :func:`plan` picks)."""
    data_dir: Path
    data_dir_exists: bool = False
    nodes: list[str] = field(default_factory=list)  # the data directory's nodes
    units: dict[str, str] = field(default_factory=dict)  # unit file path -> its text (k8n*.service)
    processes: dict[int, list[str]] = field(default_factory=dict)  # pid -> argv
    containers: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> labels (k8n-labelled ones)
    links: dict[str, str] = field(default_factory=dict)  # interface -> its master ("" none)
    nft_tables: list[tuple[str, str]] = field(default_factory=list)  # (family, name)
    iptables_rules: list[tuple[str, str]] = field(default_factory=list)  # (table, "-A CHAIN ...") from -S


@dataclass(frozen=True)
class Removal:
    kind: str  # unit, process, container, veth, bridge, nftables, iptables, data
    target: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.target}" + (f" ({self.detail})" if self.detail else "")


def _in_dir(arg: str, ddir: str) -> bool:
    return arg == ddir or arg.startswith(ddir + "/") or arg.endswith("=" + ddir) or ("=" + ddir + "/") in arg


def plan(inv: Inventory) -> list[Removal]:
    """What to remove, in order: units, processes, containers, veths, bridges, nftables tables, iptables rules,
    the data directory."""
    ddir = str(inv.data_dir)
    out = [Removal("unit", p) for p, text in sorted(inv.units.items()) if systemd.data_dir_of(text) == ddir]
    out += [Removal("process", str(pid), " ".join(argv)[:120]) for pid, argv in sorted(inv.processes.items())
            if any(_in_dir(a, ddir) for a in argv)]
    nodes = set(inv.nodes)
    out += [Removal("container", cid[:12], f"pod {lab.get('io.k8n.pod.namespace', '')}/"
                                          f"{lab.get('io.k8n.pod.name', '')}")
            for cid, lab in sorted(inv.containers.items()) if lab.get(NODE_LABEL) in nodes]
    bridges = {bridge_name(n) for n in nodes}
    out += [Removal("veth", link, f"on {master}") for link, master in sorted(inv.links.items())
            if master in bridges and link not in bridges]
    out += [Removal("bridge", b) for b in sorted(bridges) if b in inv.links]
    tables = {t for n in nodes for t in nft_tables(n)}
    out += [Removal("nftables", f"{fam} {name}") for fam, name in inv.nft_tables if fam == NFT_FAMILY
            and name in tables]
    tags = {f"k8n:{b}" for b in bridges}
    out += [Removal("iptables", rule, table) for table, rule in inv.iptables_rules
            if rule.startswith("-A ") and any(f"--comment {t}" in rule or f'--comment "{t}"' in rule for t in tags)]
    if inv.data_dir_exists:
        out.append(Removal("data", ddir))
    return out


# ---- the machine ------------------------------------------------------------------------------------------


def _run(*argv: str) -> str:
    """A command's output ("" when it is missing or fails)."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout if r.returncode == 0 else ""


def refusal(ddir: Path) -> str | None:
    """Why ``ddir`` must not be reset (None: it may): the root, or an existing directory k8n did not make."""
    if ddir == Path(ddir.anchor) or ddir == Path.home():
        return f"{ddir} is not a data directory k8n made; refusing to reset it"
    if ddir.exists() and not any((ddir / m).exists() for m in MARKERS):
        return f"{ddir} holds none of what k8n keeps in a data directory ({', '.join(MARKERS)}); refusing"
    return None


def data_nodes(ddir: Path) -> list[str]:
    names = set()
    for sub in ("nodes", "ingress"):
        try:
            names.update(p.name for p in (ddir / sub).iterdir() if p.is_dir())
        except OSError:
            pass
    node = (config.read_cluster_info(ddir) or {}).get("node")
    if node:
        names.add(str(node))
    return sorted(names)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def processes() -> dict[int, list[str]]:
    mine, out = _ancestors(), {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) in mine:
            continue
        try:
            argv = (p / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except OSError:
            continue
        if argv:
            out[int(p.name)] = argv
    return out


def containers() -> dict[str, dict[str, str]]:
    ids = _run("docker", "ps", "-aq", "--no-trunc", "--filter", f"label={NODE_LABEL}").split()
    if not ids:
        return {}
    try:
        return {c["Id"]: c["Config"]["Labels"] or {} for c in json.loads(_run("docker", "inspect", *ids) or "[]")}
    except (ValueError, KeyError, TypeError):
        return {}


def links() -> dict[str, str]:
    try:
        return {link["ifname"]: link.get("master", "") for link in json.loads(_run("ip", "-j", "link", "show") or "[]")}
    except (ValueError, KeyError):
        return {}


def nftables() -> list[tuple[str, str]]:
    try:
        doc = json.loads(_run("nft", "-j", "list", "tables") or "{}")
    except ValueError:
        return []
    return [(t["table"]["family"], t["table"]["name"]) for t in doc.get("nftables", []) if "table" in t]


def iptables_rules() -> list[tuple[str, str]]:
    return [(table, line) for table in ("filter", "nat") for line in _run("iptables", "-w", "-t", table, "-S")
            .splitlines() if "k8n:" in line]


def unit_files(unit_dir: Path) -> dict[str, str]:
    out = {}
    for name in systemd.UNIT_NAMES:
        try:
            out[str(unit_dir / name)] = (unit_dir / name).read_text()
        except OSError:
            pass
    return out


def inventory(ddir: Path, unit_dir: Path) -> Inventory:
    return Inventory(ddir, ddir.exists(), data_nodes(ddir), unit_files(unit_dir), processes(), containers(),
                     links(), nftables(), iptables_rules())


# ---- removing ---------------------------------------------------------------------------------------------


def _systemctl(*args: str) -> None:
    from bus.cli.services import systemd_running

    if systemd_running():
        subprocess.run(["systemctl", *args], capture_output=True)


def stop_processes(pids: list[int], ddir: Path, timeout: float = 30.0) -> None:
    """``k8n up`` first (cluster.json's pid: it stops its children in order, the agent draining its pods), then
    SIGTERM to the rest, SIGKILL past ``timeout``."""
    main = (config.read_cluster_info(ddir) or {}).get("pid")
    order = sorted(pids, key=lambda p: p != main)
    for i, sig in enumerate((signal.SIGTERM, signal.SIGKILL)):
        deadline = time.monotonic() + (timeout if i == 0 else 5)
        for pid in order:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
            if pid == main and sig == signal.SIGTERM:  # let it stop its own children first
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
        while any(_alive(p) for p in order) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not any(_alive(p) for p in order):
            return


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def remove(r: Removal, ddir: Path) -> None:
    if r.kind == "unit":
        name = Path(r.target).name
        _systemctl("disable", "--now", name)
        Path(r.target).unlink(missing_ok=True)
    elif r.kind == "container":
        _run("docker", "rm", "-f", "-v", r.target)
    elif r.kind in ("veth", "bridge"):
        _run("ip", "link", "delete", r.target)
    elif r.kind == "nftables":
        _run("nft", "delete", "table", *r.target.split())
    elif r.kind == "iptables":
        _run("iptables", "-w", "-t", r.detail, *_delete_args(r.target))
    elif r.kind == "data":
        shutil.rmtree(r.target, ignore_errors=True)


def _delete_args(rule: str) -> list[str]:
    import shlex

    args = shlex.split(rule)
    return ["-D", *args[1:]]


def _confirm(removals: list[Removal], ddir: Path, force: bool) -> bool:
    if force:
        return True
    if not sys.stdin.isatty():
        print("error: k8n reset asks before removing anything; stdin is not a terminal: use --force",
              file=sys.stderr)
        raise typer.Exit(1)
    print(f"k8n reset will remove, for {ddir}:")
    for r in removals:
        print(f"  {r}")
    return input("Proceed? [y/N] ").strip().lower() in ("y", "yes")


@app.command()
def reset(
    data_dir: Optional[str] = DataDirOpt,
    force: bool = typer.Option(False, "--force", "-f", help="do not ask"),
    unit_dir: Optional[str] = typer.Option(None, "--unit-dir", help=f"where its units are (default "
                                           f"{systemd.UNIT_DIR})"),
) -> None:
    """Remove what k8n put on this machine for a data directory (after asking, or with --force): its systemd units,
    processes, pod containers, bridges and veths, nftables tables and iptables rules, and the data directory."""
    ddir = config.data_dir(data_dir).expanduser().absolute()
    udir = Path(unit_dir).absolute() if unit_dir else systemd.UNIT_DIR
    refused = refusal(ddir)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        raise typer.Exit(1)
    inv = inventory(ddir, udir)
    todo = plan(inv)
    if not todo:
        print(f"nothing to remove for {ddir}")
        return
    if not _confirm(todo, ddir, force):
        print("nothing removed")
        raise typer.Exit(1)
    nodes = inv.nodes
    for r in [r for r in todo if r.kind == "unit"]:
        remove(r, ddir)
        print(f"removed {r}")
    pids = [int(r.target) for r in todo if r.kind == "process"]
    if pids:
        stop_processes(pids, ddir)
        for r in todo:
            if r.kind == "process":
                print(f"stopped {r}")
    # stopping the agent may have removed some already (it drains): look again
    after = plan(Inventory(ddir, ddir.exists(), nodes, {}, {}, containers(), links(), nftables(),
                           iptables_rules()))
    for r in after:
        remove(r, ddir)
        print(f"removed {r}")
    if any(r.kind == "unit" for r in todo) and unit_dir is None:
        _systemctl("daemon-reload")
