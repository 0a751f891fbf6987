"""A rig of "machines" on one host: each machine is a network namespace (``t-<run>-<name>``) whose processes run in
a fresh UTS namespace with the machine's name as hostname, wired by a veth (``eth0``, ``eth1``, … inside) into one
or more LANs — Linux bridges in the root namespace, one subnet each — with its own directory for data and state.
k8n runs on it as on real machines: ``k8n up --listen <LAN IP>`` on a control-plane machine, a node agent on every
worker (:meth:`Rig.start_worker`, the one place that enrols a worker).

    rig = Rig(tmp_path)
    lan = rig.lan()                                   # a free 172.31.x.0/24 (or 192.168.x.0/24)
    cp, w1 = rig.machine("cp", lan), rig.machine("w1", lan)
    control = rig.start_control_plane(cp)             # k8n up --listen <cp's LAN IP>
    rig.start_worker(w1, control)
    print(w1.run(["hostname"]).stdout)                # w1
    rig.cleanup()                                     # processes, containers, namespaces, bridges, iptables rules

Two subnets: ``rig.router("router", lan_a, lan_b)`` before the machines of those LANs (it becomes their default
gateway; IP forwarding on). Without a router, a LAN's machines route by default out of their LAN link (or via the
host when ``rig.lan(host_address=True)`` gives the host an address there, so the host can reach the machines).

Facts this relies on (see /work/shared/networking-notes.md): br_netfilter sends frames crossing a LAN bridge through
the root namespace's iptables FORWARD, whose policy dockerd sets to DROP, so each LAN bridge gets two DOCKER-USER
accepts (commented ``k8n:rig-<run>``; tests/leaks.py counts what is left). Docker runs in the root namespace; pod
sandboxes are made there with network mode none and wired by the agent from inside its machine's namespace.

Run as root, one rig at a time with the end-to-end tests (``flock /tmp/k8n-e2e.lock``). ``python -m tests.rig up``
brings up three machines for a person to try (see :func:`main`).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bus.proc import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
_BESIDE_PYTHON = Path(sys.executable).with_name("k8n")
K8N = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else (shutil.which("k8n") or "k8n")
NETNS_PREFIX = "t-"  # tests/leaks.py counts namespaces named so
UP_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
# where a LAN's /24 is picked from: private ranges no k8n default uses (pods 10.244/16, services 10.96/12)
LAN_POOLS = ("172.31.{}.0/24", "192.168.{}.0/24")
ALIAS = "k8n rig"  # a LAN bridge's alias: "k8n rig <run> <subnet> <pid of the process that made it>"


class RigError(RuntimeError):
    pass


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a host command; RigError with its stderr when it fails (and ``check``)."""
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RigError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
    return r


def _json(*argv: str) -> list[dict]:
    out = sh(*argv, check=False).stdout.strip()
    return json.loads(out) if out else []


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of k8n processes on a machine: this checkout importable, nothing inherited that would point
    them at another cluster."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for inherited in ("K8N_SERVER", "K8N_CREDS_DIR", "K8N_CREDS", "K8N_DATA_DIR", "K8N_NODE_NAME", "KUBECONFIG"):
        env.pop(inherited, None)
    return {**env, **(extra or {})}


# ---- LANs and machines --------------------------------------------------------------------------------------------

@dataclass
class Lan:
    """A bridge in the root namespace with one subnet; ``gateway`` is the machines' default route (a router's or the
    host's address on it), ``host_ip`` the host's own address there (None: the host is not on this LAN)."""
    name: str
    bridge: str
    network: ipaddress.IPv4Network
    host_ip: str | None = None
    gateway: str | None = None
    _next: int = 10

    def address(self) -> str:
        """The next free address for a machine (from .10 up)."""
        ip = self.network.network_address + self._next
        if ip not in self.network or ip == self.network.broadcast_address:
            raise RigError(f"LAN {self.name} ({self.network}) has no address left")
        self._next += 1
        return str(ip)


@dataclass
class Link:
    lan: Lan
    outside: str  # the veth end on the LAN bridge (root namespace)
    inside: str  # its peer in the machine: eth0, eth1, ...
    ip: str


@dataclass
class Machine:
    """A network namespace with links into LANs, its own directory, and the processes the rig started in it. Its
    processes see ``hostname`` (default: ``name``) as theirs: each runs in a fresh UTS namespace set so."""
    rig: "Rig"
    name: str
    netns: str
    dir: Path
    hostname: str = ""
    links: list[Link] = field(default_factory=list)
    joined_with: str | None = None  # the k8n join command its node joined with (Rig.start_worker)

    def __post_init__(self) -> None:
        self.hostname = self.hostname or self.name

    @property
    def ip(self) -> str:
        """Its address on its first LAN."""
        return self.links[0].ip

    def ip_on(self, lan: Lan) -> str:
        return next(link.ip for link in self.links if link.lan is lan)

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` as run inside the machine: its network namespace, a fresh UTS namespace named after it."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts",
                "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *argv]

    def popen(self, argv: list[str], env: dict[str, str] | None = None, log: Path | IO | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Start ``argv`` inside the machine in its own process group (stopped by :meth:`Rig.cleanup`, and killed
        when the process that started it dies); its output appended to ``log`` (a path or a file)."""
        out = open(log, "ab") if isinstance(log, (str, Path)) else log
        try:
            proc = subprocess.Popen(self.argv(argv), stdout=out, stderr=subprocess.STDOUT if out else None,
                                    env=_env(env), cwd=cwd or ROOT, start_new_session=True,
                                    preexec_fn=die_with_parent)
        finally:
            if isinstance(log, (str, Path)):
                out.close()
        self.rig.procs.append(proc)
        return proc

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60,
            input: str | None = None, check: bool = False) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the machine to its end (output captured as text)."""
        r = subprocess.run(self.argv(argv), capture_output=True, text=True, env=_env(env), cwd=ROOT,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise RigError(f"{self.name}: {' '.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def link_down(self, lan: Lan | None = None) -> None:
        """Unplug the machine from ``lan`` (default: every LAN): the LAN side of its veth goes down, so the machine
        sees no carrier, keeps its addresses and routes, and nothing reaches it."""
        for link in self.links:
            if lan is None or link.lan is lan:
                sh("ip", "link", "set", link.outside, "down")

    def link_up(self, lan: Lan | None = None) -> None:
        for link in self.links:
            if lan is None or link.lan is lan:
                sh("ip", "link", "set", link.outside, "up")

    def pids(self) -> list[int]:
        """Every process in the machine's network namespace (started by the rig or by its processes)."""
        return [int(p) for p in sh("ip", "netns", "pids", self.netns, check=False).stdout.split()]


# ---- k8n on the rig -----------------------------------------------------------------------------------------------

@dataclass
class ControlPlane:
    """``k8n up --listen`` running on ``machine`` with its data in ``data``; ``info`` is its cluster.json (server,
    gateway, kubeconfig); ``join`` the join command it printed, if any."""
    machine: Machine
    data: Path
    proc: subprocess.Popen
    log: Path
    info: dict = field(default_factory=dict)

    @property
    def server(self) -> str:
        return str(self.info["server"])

    @property
    def kubeconfig(self) -> Path:
        return self.data / "kubeconfig"

    @property
    def admin_creds(self) -> Path:
        return self.data / "creds" / "admin.creds"

    @property
    def join(self) -> str | None:
        for line in self.output().splitlines():
            if "k8n join " in line:
                return line[line.index("k8n join "):].strip()
        return None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def k8n(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``k8n ARGS`` run on the control-plane machine against this cluster."""
        return self.machine.run([K8N, *args], env={"K8N_DATA_DIR": str(self.data)}, timeout=timeout)


class Rig:
    """LANs and machines of one run (names unique to it); :meth:`cleanup` removes all of it, also after a failure
    (use it as a context manager, or call cleanup in a ``finally``)."""

    def __init__(self, base: Path, run: str | None = None) -> None:
        self.run = run or uuid.uuid4().hex[:6]
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.lans: list[Lan] = []
        self.machines: dict[str, Machine] = {}
        self.procs: list[subprocess.Popen] = []
        self.rules: list[tuple[str, ...]] = []
        self._veths = 0
        self.tag = rule_tag(self.run)
        sweep()

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ---- building -------------------------------------------------------------------------------------------

    def lan(self, name: str | None = None, subnet: str | None = None, host_address: bool = False) -> Lan:
        """A LAN bridge ``k8nlan<run><n>`` with ``subnet`` (default: a free /24); with ``host_address`` the host
        takes its first address and is the machines' default gateway."""
        n = len(self.lans)
        name = name or f"lan{n}"
        network = ipaddress.ip_network(subnet) if subnet else free_subnet()
        lan = Lan(name, f"k8nlan{self.run}{n}", network)
        self.lans.append(lan)
        sh("ip", "link", "add", lan.bridge, "type", "bridge")
        sh("ip", "link", "set", lan.bridge, "alias", f"{ALIAS} {self.run} {network} {os.getpid()}")
        if host_address:
            lan.host_ip = lan.gateway = str(network.network_address + 1)
            sh("ip", "addr", "add", f"{lan.host_ip}/{network.prefixlen}", "dev", lan.bridge)
        sh("ip", "link", "set", lan.bridge, "up")
        for direction in ("-i", "-o"):  # br_netfilter + dockerd's FORWARD DROP (networking notes)
            rule = ("DOCKER-USER", direction, lan.bridge, "-m", "comment", "--comment", self.tag, "-j", "ACCEPT")
            if sh("iptables", "-w", "-n", "-L", "DOCKER-USER", check=False).returncode != 0:
                sh("iptables", "-w", "-N", "DOCKER-USER")
            sh("iptables", "-w", "-I", *rule)
            self.rules.append(rule)
        return lan

    def machine(self, name: str, *lans: Lan, forward: bool = True, hostname: str | None = None) -> Machine:
        """A machine named ``name`` (its hostname unless ``hostname``) with one link into each of ``lans`` (``eth0``,
        ``eth1``, …), lo up, a default route (via its first LAN's gateway, else out of its first link), IP forwarding
        on."""
        if name in self.machines:
            raise RigError(f"machine {name} exists")
        if not lans:
            raise RigError("a machine needs a LAN")
        m = Machine(self, name, f"{NETNS_PREFIX}{self.run}-{name}", self.base / name, hostname or "")
        m.dir.mkdir(parents=True, exist_ok=True)
        self.machines[name] = m
        sh("ip", "netns", "add", m.netns)
        sh("ip", "-n", m.netns, "link", "set", "lo", "up")
        for i, lan in enumerate(lans):
            self._veths += 1
            link = Link(lan, f"k8nr{self.run}v{self._veths}", f"eth{i}", lan.address())
            sh("ip", "link", "add", link.outside, "type", "veth", "peer", "name", link.inside, "netns", m.netns)
            sh("ip", "link", "set", link.outside, "master", lan.bridge, "up")
            sh("ip", "-n", m.netns, "addr", "add", f"{link.ip}/{lan.network.prefixlen}", "dev", link.inside)
            sh("ip", "-n", m.netns, "link", "set", link.inside, "up")
            m.links.append(link)
        first = m.links[0]
        if first.lan.gateway and first.lan.gateway != first.ip:
            sh("ip", "-n", m.netns, "route", "add", "default", "via", first.lan.gateway)
        else:
            sh("ip", "-n", m.netns, "route", "add", "default", "dev", first.inside)
        if forward:
            sh("ip", "netns", "exec", m.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        return m

    def router(self, name: str, *lans: Lan) -> Machine:
        """A machine with a leg on each of ``lans`` forwarding between them; the default gateway of the machines
        added to those LANs after it."""
        r = self.machine(name, *lans)
        sh("ip", "-n", r.netns, "route", "del", "default")
        for link in r.links:
            link.lan.gateway = link.ip
        return r

    # ---- k8n ------------------------------------------------------------------------------------------------

    def start_control_plane(self, machine: Machine, *flags: str, env: dict[str, str] | None = None,
                            timeout: float = UP_TIMEOUT) -> ControlPlane:
        """``k8n up --listen <machine's LAN IP> FLAGS`` on ``machine`` (data in ``<machine dir>/k8n``; ``env``: settings
        for it and its children, e.g. ``K8N_LEADER_ELECT_LEASE_DURATION``), until it has written its cluster.json and
        kubeconfig. It runs the machine's own agent too, unless ``--no-agent``."""
        data = machine.dir / "k8n"
        log = machine.dir / "k8n-up.log"
        proc = machine.popen([K8N, "up", "--listen", machine.ip, "--data-dir", str(data), *flags], env=env, log=log)
        cp = ControlPlane(machine, data, proc, log)
        deadline = time.monotonic() + timeout
        while not ((data / "cluster.json").exists() and cp.kubeconfig.exists()):
            if proc.poll() is not None:
                raise RigError(f"k8n up on {machine.name} exited with {proc.returncode}:\n{cp.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise RigError(f"k8n up on {machine.name} not up in {timeout:.0f}s:\n{cp.output()[-4000:]}")
            time.sleep(0.2)
        cp.info = json.loads((data / "cluster.json").read_text())
        return cp

    def start_worker(self, machine: Machine, cp: ControlPlane, *extra: str, join: bool = False,
                     env: dict[str, str] | None = None) -> subprocess.Popen:
        """A node agent named after ``machine`` running on it, joined to ``cp``'s cluster. With ``join``, as a user
        does: a bootstrap token made on the control-plane machine (``k8n token create --print-join-command``), then
        ``k8n join ...`` on ``machine`` (data in ``<machine dir>/k8n``; it names the node after the hostname).
        Otherwise as an operator does by hand: the node's credentials minted with the cluster's keys and copied with
        the NATS CA into ``<machine dir>/creds``, then ``python -m node --server <cp's NATS>`` there with ``extra``
        agent flags. ``env``: the agent's settings (``K8N_LEASE_SECONDS``, ...). This is the one place that enrols a
        worker."""
        if join:
            if extra:
                raise RigError(f"k8n join takes no agent flags: {extra}")
            made = cp.k8n("token", "create", "--print-join-command", "--description", f"rig machine {machine.name}")
            line = next((x for x in made.stdout.splitlines() if x.startswith("k8n join ")), None)
            if made.returncode != 0 or line is None:
                raise RigError(f"k8n token create on {cp.machine.name}: {made.stdout} {made.stderr}")
            machine.joined_with = line
            return machine.popen([K8N, *shlex.split(line)[1:], "--data-dir", str(machine.dir / "k8n")], env=env,
                                 log=machine.dir / "k8n-join.log")
        creds = machine.dir / "creds"
        creds.mkdir(mode=0o700, parents=True, exist_ok=True)
        out = creds / f"node-{machine.hostname}.creds"
        sh(K8N, "credentials", "node", machine.hostname, "--data-dir", str(cp.data), "--out", str(out))
        shutil.copyfile(cp.data / "creds" / "nats-ca.crt", creds / "nats-ca.crt")
        return machine.popen([sys.executable, "-m", "node", "--server", cp.server, "--creds-dir", str(creds),
                              "--name", machine.hostname, "--state-dir", str(machine.dir / "node"), "--drain-on-exit",
                              *extra], env=env, log=machine.dir / "agent.log")

    def containers(self) -> list[str]:
        """Docker containers of this rig's nodes (the agents label them with their node's name)."""
        return [cid for m in self.machines.values() for cid in sh(
            "docker", "ps", "-aq", "--filter", f"label=io.k8n.node={m.hostname}", check=False).stdout.split()]

    # ---- teardown -------------------------------------------------------------------------------------------

    def stop(self, proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to the process group of ``proc`` (one the rig started), SIGKILL after ``timeout``."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def cleanup(self) -> list[str]:
        """Stop every process the rig started (the last started first: agents drain before the control plane
        goes), kill what is left in the machines, remove left containers, namespaces, veths, bridges and rules.
        Returns the containers it had to remove (an agent should have); raises RigError naming what it could not
        remove."""
        problems: list[str] = []
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()
        for m in self.machines.values():
            for pid in m.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        left = self.containers()
        if left:
            r = sh("docker", "rm", "-f", *left, check=False)
            if r.returncode != 0:
                problems.append(f"docker rm -f: {r.stderr.strip()}")
        for m in self.machines.values():
            r = sh("ip", "netns", "del", m.netns, check=False)
            if r.returncode != 0 and m.netns in sh("ip", "netns", "list", check=False).stdout.split():
                problems.append(f"ip netns del {m.netns}: {r.stderr.strip()}")
            for link in m.links:  # gone with the namespace; a failed start may have left one
                sh("ip", "link", "del", link.outside, check=False)
        for lan in self.lans:
            r = sh("ip", "link", "del", lan.bridge, check=False)
            if r.returncode != 0 and sh("ip", "link", "show", lan.bridge, check=False).returncode == 0:
                problems.append(f"ip link del {lan.bridge}: {r.stderr.strip()}")
        for rule in self.rules:
            while sh("iptables", "-w", "-C", *rule, check=False).returncode == 0:
                r = sh("iptables", "-w", "-D", *rule, check=False)
                if r.returncode != 0:
                    problems.append(f"iptables -D {' '.join(rule)}: {r.stderr.strip()}")
                    break
        self.machines.clear()
        self.lans.clear()
        self.rules.clear()
        if problems:
            raise RigError("rig cleanup left: " + "; ".join(problems))
        return left


def rule_tag(run: str) -> str:
    """The comment on a rig's iptables rules (tests/leaks.py counts rules commented ``k8n:…``)."""
    return f"k8n:rig-{run}"


def sweep() -> list[str]:
    """Remove what rigs whose process is gone left behind (killed before their cleanup could run): their
    namespaces, LAN bridges and iptables rules. Returns the runs swept."""
    swept = []
    for link in _json("ip", "-j", "-d", "link", "show", "type", "bridge"):
        alias = (link.get("ifalias") or "").split()
        if " ".join(alias[:2]) != ALIAS or len(alias) != 5 or not alias[4].isdigit():
            continue
        run, owner = alias[2], alias[4]
        if Path(f"/proc/{owner}").exists():
            continue
        for ns in sh("ip", "netns", "list", check=False).stdout.split():
            if ns.startswith(f"{NETNS_PREFIX}{run}-"):
                sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", link["ifname"], check=False)
        for rule in sh("iptables", "-w", "-S", "DOCKER-USER", check=False).stdout.splitlines():
            if rule.startswith("-A ") and rule_tag(run) in rule:
                sh("iptables", "-w", "-D", *shlex.split(rule)[1:], check=False)
        swept.append(run)
    return swept


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of the LAN pools that no route, address or other rig's LAN on this host uses."""
    routes = _json("ip", "-j", "route", "show", "table", "all")
    used = [ipaddress.ip_network(r["dst"], strict=False) for r in routes
            if r.get("dst") not in (None, "default") and ":" not in r["dst"]]
    for link in _json("ip", "-j", "addr"):
        used += [ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
                 for a in link.get("addr_info", []) if a.get("family") == "inet"]
    for link in _json("ip", "-j", "-d", "link", "show", "type", "bridge"):
        alias = link.get("ifalias") or ""
        if alias.startswith(f"{ALIAS} "):
            used.append(ipaddress.ip_network(alias.split()[3]))
    candidates = [ipaddress.ip_network(pool.format(i)) for pool in LAN_POOLS for i in range(1, 255)]
    random.shuffle(candidates)
    for net in candidates:
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RigError("no free /24 in 172.31.0.0/16 or 192.168.0.0/16")


# ---- python -m tests.rig up ---------------------------------------------------------------------------------------

def three_machines(base: Path, workers: int = 2, host_address: bool = False, agent_flags: tuple[str, ...] = (),
                   unique: bool = False, join: tuple[int, ...] = (), up_flags: tuple[str, ...] = (),
                   up_env: dict[str, str] | None = None, worker_env: dict[str, str] | None = None,
                   ) -> tuple[Rig, ControlPlane, list[Machine]]:
    """A rig with one LAN, a control-plane machine ``cp`` running ``k8n up --listen`` (with ``up_flags`` and the
    settings ``up_env``) and ``workers`` worker machines ``w1``, ``w2``, … running agents (``join``: the numbers of
    those that join with ``k8n join``, the others get ``agent_flags``; all get the settings ``worker_env``); with
    ``unique`` their hostnames (the node names) end in ``-<run>`` (tests: never the name of another run's node). Cleans
    up on a failed start."""
    names = ("cp", *(f"w{i + 1}" for i in range(workers)))
    rig = Rig(base)
    try:
        lan = rig.lan(host_address=host_address)
        cp_machine, *ws = [rig.machine(n, lan, hostname=f"{n}-{rig.run}" if unique else None) for n in names]
        cp = rig.start_control_plane(cp_machine, *up_flags, env=up_env)
        for i, w in enumerate(ws, 1):
            if i in join:
                rig.start_worker(w, cp, join=True, env=worker_env)
            else:
                rig.start_worker(w, cp, *agent_flags, env=worker_env)
    except BaseException:
        rig.cleanup()
        raise
    return rig, cp, ws


def nodes_ready(cp: ControlPlane) -> dict[str, str]:
    """Node name → Ready status, as ``k8n get nodes`` on the control-plane machine shows them."""
    r = cp.k8n("get", "nodes", "-o", "json")
    if r.returncode != 0:
        return {}
    return {n["metadata"]["name"]: next((c["status"] for c in n.get("status", {}).get("conditions", [])
                                         if c["type"] == "Ready"), "Unknown")
            for n in json.loads(r.stdout).get("items", [])}


def usage(rig: Rig, cp: ControlPlane, machines: list[Machine]) -> str:
    """What a person can do with a running rig (``python -m tests.rig up`` prints it)."""
    lan = rig.lans[0]
    shell = machines[-1]
    lines = [f"\nk8n runs on {len(machines)} machines on LAN {lan.network} (bridge {lan.bridge}; this host is "
             f"{lan.host_ip} there):"]
    for m in machines:
        role = ("control plane: k8n up --listen" if m is cp.machine else
                "worker: k8n join" if m.joined_with else "worker: node agent, credentials by hand")
        lines.append(f"  {m.hostname:<4} {m.ip:<15} netns {m.netns:<14} {role}; data in {m.dir}")
    lines += ["", cp.k8n("get", "nodes", "-o", "wide").stdout.rstrip(), "", "try (from this host, on the LAN):",
              f"  export KUBECONFIG={cp.kubeconfig}",
              "  kubectl get nodes -o wide",
              "  kubectl create deployment web --image=k8n/busybox:latest --replicas=3 -- httpd -f -p 8080 -h /",
              "  kubectl expose deployment web --port=80 --target-port=8080 --type=NodePort",
              "  kubectl get pods -o wide; kubectl get svc web",
              f"  curl http://{machines[-1].ip}:<its nodePort>/etc/hostname   # a pod's name, from any machine",
              f"  k8n get nodes --data-dir {cp.data}",
              "or on a machine:",
              f"  ip netns exec {cp.machine.netns} {K8N} get pods -o wide --data-dir {cp.data}",
              f"  ip netns exec {shell.netns} unshare --uts sh -c 'hostname {shell.hostname}; exec bash'"
              "   # a shell on " + shell.hostname]
    joined = next((m for m in machines if m.joined_with), None)
    if joined:
        lines.append(f"{joined.hostname} joined with (a token made on {cp.machine.hostname} by k8n token create "
                     f"--print-join-command):\n  {joined.joined_with} --data-dir {joined.dir / 'k8n'}")
    lines += [f"logs: {cp.machine.dir}/k8n-up.log, {cp.data}/logs/, <worker dir>/k8n-join.log and k8n/logs/",
              "stop: Ctrl-C (the agents drain, k8n up stops; the machines, bridges and rules go)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.rig", description="Try k8n on several machines on this host: "
                                "network namespaces as machines on one LAN bridge (needs root, Docker running).")
    p.add_argument("command", choices=["up"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--by-hand", action="store_true", help="start the workers' agents with credentials minted on the "
                   "control-plane machine (k8n credentials node) instead of k8n join")
    p.add_argument("--dir", default=None, help="where the machines keep their data (default: a new /tmp/k8n-rig-*)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("error: the rig needs root (network namespaces, bridges, iptables)", file=sys.stderr)
        return 1
    base = Path(args.dir) if args.dir else Path(f"/tmp/k8n-rig-{uuid.uuid4().hex[:6]}")
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (a background job)
    print(f"building the rig in {base} ...", flush=True)
    try:
        rig, cp, workers = three_machines(base, args.workers, host_address=True,
                                          join=() if args.by_hand else tuple(range(1, args.workers + 1)))
    except KeyboardInterrupt:
        return 130
    except RigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        machines = [cp.machine, *workers]
        deadline = time.monotonic() + UP_TIMEOUT
        while {n for n, s in nodes_ready(cp).items() if s == "True"} != {m.hostname for m in machines}:
            if time.monotonic() > deadline:
                print(f"warning: not every node is Ready yet: {nodes_ready(cp)}", file=sys.stderr)
                break
            time.sleep(1)
        print(usage(rig, cp, machines), flush=True)
        while not stopping:
            for proc in rig.procs:
                if proc.poll() is not None:
                    print(f"warning: {' '.join(str(a) for a in proc.args[-8:])} exited with {proc.returncode}",
                          file=sys.stderr)
                    rig.procs.remove(proc)
                    break
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        print("\nstopping: agents drain, k8n up stops, the machines go ...", flush=True)
        try:
            rig.cleanup()
        except RigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
