"""``k8n up`` (all-in-one cluster: embedded NATS + control plane, later a node) and ``k8n server``.

The runner starts each side through its public entry point as a child process
(``python -m master``), so ``bus`` never imports ``master`` or ``node``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from bus import config
from bus.natsserver import is_loopback
from bus.proc import die_with_parent, stop_process

if TYPE_CHECKING:
    from bus.natsauth import ClusterAuth
    from bus.natsserver import NatsServer

LOCK_FILE = "up.lock"
TOKEN_FILE = "tokens.csv"  # the gateway's static bearer tokens (kube-apiserver's --token-auth-file format)
KUBECONFIG_FILE = "kubeconfig"
DEFAULT_HTTP_PORT = 6443  # kube-apiserver's port; plain HTTP on loopback here


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class Child:
    """A supervised component process, restarted with backoff if it dies."""

    def __init__(self, name: str, argv: list[str], log_path: Path | None = None) -> None:
        self.name, self.argv, self.log_path = name, argv, log_path
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.next_start = 0.0

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else None
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, preexec_fn=die_with_parent,
                                     process_group=0)  # terminal signals reach only the runner
        self._write_pid()

    def _write_pid(self) -> None:
        """``<log>.pid`` beside the log: which process is which (the API server replicas share a command line)."""
        if self.log_path and self.proc:
            self.log_path.with_suffix(".pid").write_text(f"{self.proc.pid}\n")

    def check(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if self.next_start == 0.0:
            delay = min(30.0, 0.5 * 2 ** min(self.restarts, 6))
            print(f"k8n: {self.name} {_exit_text(self.proc.returncode)}; restarting in {delay:.1f}s", file=sys.stderr)
            self.next_start = now + delay
        elif now >= self.next_start:
            self.restarts += 1
            self.next_start = 0.0
            self.start()

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.proc, timeout)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ServerChild(Child):
    """The embedded nats-server, supervised like the components: restarted with backoff on the same port, store
    and configuration, so the clients reconnect to the same URL and JetStream recovers what it acknowledged (every
    acknowledged write is on disk: ``sync_interval: always``). With a monitoring port its JetStream is probed every
    second: a full data disk leaves it unable to store until it is restarted (``bus.natshealth``)."""

    PROBE_EVERY = 1.0

    def __init__(self, srv: NatsServer) -> None:
        from bus.natshealth import DiskFullRecovery

        super().__init__("nats-server", [], srv.log_file)
        self.srv = srv
        self.proc = srv.proc  # started by the caller (its errors are the start-up's)
        self._write_pid()
        self.disk = DiskFullRecovery()
        self._next_probe = 0.0

    def check(self) -> None:
        super().check()
        if self.srv.monitor_port is None or self.proc is None or self.proc.poll() is not None:
            return
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + self.PROBE_EVERY
        from bus import natshealth

        action = self.disk.next(natshealth.probe(f"http://127.0.0.1:{self.srv.monitor_port}"),
                                natshealth.free_bytes(self.srv.store_dir))
        if action is None:
            return
        print(f"k8n: {action.message}", file=sys.stderr, flush=True)
        if action.restart:
            self.srv.stop()
            self.start()

    def start(self) -> None:
        try:
            self.srv.start()
        except (RuntimeError, OSError) as e:  # the dead process stays in self.proc: check() tries again later
            print(f"k8n: nats-server did not start again: {e}", file=sys.stderr)
        self.proc = self.srv.proc
        self._write_pid()

    def stop(self, timeout: float = 10.0) -> None:
        self.srv.stop(timeout)
        self.proc = None


class Supervisor:
    """Supervised children until SIGINT or SIGTERM (handlers installed at once, so an early Ctrl-C still stops
    what was started): each dead child is restarted with back-off; on stop the components go first, in reverse,
    then the NATS servers."""

    def __init__(self) -> None:
        self.stopping = False
        self.servers: list[Child] = []
        self.children: list[Child] = []
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def start(self, children: list[Child]) -> None:
        self.children.extend(children)
        for c in children:
            c.start()

    def tick(self) -> bool:
        """Supervise once; True once stopping."""
        if not self.stopping:
            for c in (*self.servers, *self.children):
                c.check()
        return self.stopping

    def run(self) -> None:
        while not self.tick():
            time.sleep(0.2)

    def stop_all(self) -> None:
        for c in reversed(self.children):
            c.stop()
        for c in self.servers:
            c.stop()


async def _wait_api(url: str, creds_dir: Path, timeout: float, tick: Callable[[], bool]) -> bool:
    """Wait until the API server answers (True), or ``tick()`` — which also supervises the
    children — says we are stopping (False); RuntimeError past ``timeout``."""
    from bus.cli.startup import Stopping, until
    from bus.client import ApiClient
    from bus.connect import creds_path
    from bus.roles import ADMIN, Identity

    client = await ApiClient.connect(url, creds=str(creds_path(Identity(ADMIN), creds_dir)))
    client.retries = 0
    client.timeout = 1.0
    try:
        await until(lambda: client.get("namespaces", "default"), timeout, tick, [], "the API server did not answer")
        return True
    except Stopping:
        return False
    finally:
        await client.close()


async def _publish_join(url: str, creds_dir: Path, http_url: str, ca_file: Path,
                        routes: tuple[str, ...] = ()) -> str:
    """cluster-info for machines that join, and a first bootstrap token; the ``k8n join`` command."""
    from bus.cli.join import publish
    from bus.client import ApiClient
    from bus.clusterinfo import ClusterInfo
    from bus.connect import creds_path
    from bus.roles import ADMIN, Identity

    client = await ApiClient.connect(url, creds=str(creds_path(Identity(ADMIN), creds_dir)))
    try:
        return await publish(client, ClusterInfo(http_url, ca_file.read_bytes(), tuple(url.split(",")), routes))
    finally:
        await client.close()


def _port_free(host: str, port: int) -> bool:
    """Whether nats-server will be able to listen on ``host:port`` (a socket merely bound there,
    not listening, is as much in the way as a listening one; TIME_WAIT leftovers are not)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _port_in_use(host: str, port: int) -> str:
    return f"port {port} on {host} is already in use; choose another with --nats-port (0 picks a free one)"


def _nats_log_says_port_busy(log: Path) -> bool:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode(errors="replace")
    except OSError:
        return False
    return any("address already in use" in line for line in tail.splitlines()[-3:])


def _lock(ddir: Path):
    """An exclusive lock on the data directory for the lifetime of this ``k8n up`` (None if another
    process holds it). The file descriptor is not inherited by the children."""
    import fcntl

    f = open(ddir / LOCK_FILE, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def control_plane_argv(server: str, creds_dir: Path | None = None, components: str | None = None) -> list[str]:
    return [sys.executable, "-m", "master", "--server", server, *_creds_flag(creds_dir),
            *(["--components", components] if components else [])]


def single_control_plane(server: str, creds_dir: Path | None, logs: Path) -> list[Child]:
    """One machine's control plane as two processes, so that requests and reconciling use a core each: the API
    server, and the controllers, scheduler and node view together."""
    return [Child("apiserver", control_plane_argv(server, creds_dir, "apiserver"), logs / "apiserver.log"),
            Child("control plane", control_plane_argv(server, creds_dir, "controllers,scheduler,nodeview"),
                  logs / "control-plane.log")]


def control_plane_children(server: str, creds_dir: Path, logs: Path, replicas: int) -> list[Child]:
    """:func:`single_control_plane`, or with ``replicas`` > 1 each component in its own
    processes: ``replicas`` API servers (one queue group), controller managers, schedulers and node views (one
    leads, the others stand by: their Leases)."""
    if replicas <= 1:
        return single_control_plane(server, creds_dir, logs)
    out = []
    for i in range(1, replicas + 1):
        for name, components in (("apiserver", "apiserver"), ("controller-manager", "controllers"),
                                 ("scheduler", "scheduler"), ("nodeview", "nodeview")):
            out.append(Child(f"{name}-{i}", control_plane_argv(server, creds_dir, components),
                             logs / f"{name}-{i}.log"))
    return out


def nats_cluster_servers(host: str, first_port: int, count: int) -> list:
    """``count`` NATS servers on ``host``: client ports from ``first_port`` up (free ones for 0), route ports free."""
    from bus.natscluster import Server

    taken: set[int] = set()

    def free() -> int:
        while True:
            port = _free_port(host)
            if port not in taken:
                taken.add(port)
                return port

    servers = []
    for i in range(count):
        port = first_port + i if first_port else free()
        if first_port:
            if not _port_free(host, port):
                raise RuntimeError(_port_in_use(host, port))
            taken.add(port)
        servers.append(Server(f"nats-{i + 1}", host, port, free()))
    return servers


def start_nats_cluster(ddir: Path, servers: list, logs: Path, timeout: float = 15.0) -> list[Child]:
    """Render the cluster's server configurations (``k8n nats-config``'s, in ``<data dir>/nats``) and start every
    server as a supervised child; RuntimeError when one does not listen in time."""
    from bus import atrest, natscluster
    from bus.natsserver import binary, port_busy

    confs = natscluster.render(ddir, servers)
    children = [Child(f"nats-server {s.name}", [binary(), "-c", str(conf)], logs / f"{s.name}.log")
                for s, conf in zip(servers, confs)]
    offsets = [atrest.log_offset(c.log_path) for c in children]
    for c in children:
        c.start()
    deadline = time.monotonic() + timeout
    for s, c in zip(servers, children):
        while not port_busy(s.port, s.host):
            if c.proc.poll() is not None or time.monotonic() > deadline:
                for other in children:
                    other.stop()
                raise RuntimeError(f"nats-server {s.name} did not start (see {c.log_path})")
            time.sleep(0.05)
    try:  # each server recovered its streams before it listened: stopped if one could not decrypt them
        atrest.after_start(atrest.AtRestKeys.of_data_dir(ddir), [(c.log_path, o) for c, o in zip(children, offsets)])
    except atrest.AtRestKeyError:
        for c in children:
            c.stop()
        raise
    return children


def _creds_flag(creds_dir: Path | None) -> list[str]:
    return ["--creds-dir", str(creds_dir)] if creds_dir else []


def gateway_argv(server: str, host: str, port: int, token_file: Path, cert_dir: Path,
                 creds_dir: Path | None = None, advertise: str | None = None) -> list[str]:
    return [sys.executable, "-m", "master.gateway", "--server", server, "--host", host, "--port", str(port),
            "--token-file", str(token_file), "--cert-dir", str(cert_dir), *_creds_flag(creds_dir),
            *(["--advertise-address", advertise] if advertise else [])]


KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of the default service CIDR: the `kubernetes` Service


CONTROL_PLANE_IDENTITIES = ("admin", "apiserver", "nodeview", "controller-manager", "scheduler", "gateway")


def mint_credentials(ddir: Path, node: str | None) -> tuple["ClusterAuth", Path]:
    """The cluster's bus keys (made on the first ``k8n up``) and fresh credentials for every component this
    ``k8n up`` runs, the admin (the CLI's) and a read-only subscriber, in ``<data dir>/creds`` (0600 in 0700)."""
    from bus.natsauth import ClusterAuth
    from bus.roles import INGRESS, SUBSCRIBER, Identity

    auth = ClusterAuth.load_or_create(ddir / "nats-auth")
    creds = ddir / "creds"
    for role in CONTROL_PLANE_IDENTITIES:
        auth.write_creds(Identity(role), creds)
    auth.write_creds(Identity(SUBSCRIBER, "events"), creds)
    auth.write_creds(Identity(INGRESS), creds)  # `k8n ingress` on this machine (and `k8n up`'s own)
    if node:
        auth.write_creds(Identity.node(node), creds)
    return auth, creds


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _http_port(host: str, wanted: int | None) -> int | None:
    """The gateway's port: ``wanted`` (None when it is busy), any free one for 0, and for no choice
    6443 when free, else any free one."""
    if wanted is None:
        return DEFAULT_HTTP_PORT if _port_free(host, DEFAULT_HTTP_PORT) else _free_port(host)
    if wanted == 0:
        return _free_port(host)
    return wanted if _port_free(host, wanted) else None


def admin_token(ddir: Path) -> tuple[Path, str]:
    """The admin bearer token, made on the first ``k8n up`` and kept in the token file (0600)."""
    import secrets

    path = ddir / TOKEN_FILE
    try:
        first = path.read_text().splitlines()[0]
        token = first.split(",", 1)[0].strip()
        if token:
            return path, token
    except (OSError, IndexError):
        pass
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(f'{token},admin,admin,"system:masters"\n')
    tmp.replace(path)
    return path, token


def write_kubeconfig(ddir: Path, url: str, token: str, ca_file: Path) -> Path:
    """``<data-dir>/kubeconfig`` (0600): one cluster (with the gateway's CA), one user with the admin
    token, namespace default."""
    import base64

    import yaml

    ca = base64.b64encode(ca_file.read_bytes()).decode()
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": "k8n", "cluster": {"server": url, "certificate-authority-data": ca}}],
           "users": [{"name": "k8n-admin", "user": {"token": token}}],
           "contexts": [{"name": "k8n", "context": {"cluster": "k8n", "user": "k8n-admin", "namespace": "default"}}],
           "current-context": "k8n"}
    path = ddir / KUBECONFIG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)
    return path


def agent_argv(server: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "node", "--server", server, *extra]


def ingress_argv(server: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "node.ingress", "--server", server, *extra]


def default_node_name() -> str:
    """This host's name as a DNS-1123 subdomain (the all-in-one node's name)."""
    import re

    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower()).strip("-.")
    return name[:63] or "k8n-node"


def listen_refusal(host: str) -> str | None:
    """Why ``k8n up --listen host`` cannot work (None when it can): it must be one of this machine's addresses,
    since the other machines are told to reach the cluster there."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"--listen takes an IP address of this machine, not {host!r}"
    if ip.is_unspecified or ip.is_multicast:
        return f"--listen {host}: give one of this machine's addresses (other machines are told to reach it there)"
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET) as s:
        try:
            s.bind((host, 0))
        except OSError as e:
            return f"--listen {host}: not an address of this machine ({e.strerror})"
    return None


def up(data_dir: str | None, nats_port: int, host: str = "127.0.0.1", with_agent: bool = True,
       http_port: int | None = None, nats_servers: int = 1, replicas: int = 1, node_name: str | None = None,
       ingress_ports: tuple[int, int] | None = (80, 443), keep_pods: bool = False) -> int:
    """Run an all-in-one cluster until SIGINT/SIGTERM. Each start step prints its line with its time
    (:mod:`bus.cli.startup`); "k8n is up" comes once the node (with an agent) is Ready. A step that fails says
    which and why, stops what was started and answers 1."""
    import asyncio

    from bus.cli.progress import Steps
    from bus.labels import is_dns1123_subdomain

    ddir = config.data_dir(data_dir)
    ddir.mkdir(parents=True, exist_ok=True)
    lock = _lock(ddir)
    info = config.read_cluster_info(ddir) or {}
    if lock is None or (info.get("pid") and int(info["pid"]) != os.getpid() and _alive(int(info["pid"]))):
        who = f" (pid {info['pid']}, NATS at {info.get('server')})" if info.get("pid") else ""
        print(f"error: a k8n cluster{who} is already running from {ddir}; stop it first or use another --data-dir",
              file=sys.stderr)
        return 1
    refused = listen_refusal(host)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    if node_name is not None and not is_dns1123_subdomain(node_name):
        print(f"error: --node-name {node_name!r}: a node's name must be a lowercase RFC 1123 subdomain",
              file=sys.stderr)
        return 1
    if nats_port and not _port_free(host, nats_port):
        print(f"error: {_port_in_use(host, nats_port)}", file=sys.stderr)
        return 1
    gw_port = _http_port(host, http_port)
    if gw_port is None:
        print(f"error: port {http_port} on {host} is already in use; choose another with --http-port "
              "(0 picks a free one)", file=sys.stderr)
        return 1
    started = time.monotonic()
    sup = Supervisor()
    node = (node_name or default_node_name()) if with_agent else None
    auth, creds_dir = mint_credentials(ddir, node)
    logs = ddir / "logs"
    logs.mkdir(exist_ok=True)
    print(f"k8n: starting in {ddir} (logs in {logs})", flush=True)
    steps = Steps()
    steps.begin("NATS")
    try:
        servers, url, routes = _start_nats(ddir, host, nats_port, nats_servers, auth, creds_dir, logs)
    except RuntimeError as e:
        steps.failed(str(e))
        print(f"error: {e}", file=sys.stderr)
        lock.close()
        return 1
    steps.done(url)
    sup.servers = servers
    token_file, token = admin_token(ddir)
    os.environ["K8N_DATA_DIR"] = str(ddir)  # the children's data dir (the API server keeps its token key there)
    # the cluster CA before anything starts: the controller manager publishes it to pods (kube-root-ca.crt), the
    # gateway serves with it, where pods reach it too (the `kubernetes` Service's endpoint)
    from bus import pki

    # pods reach the gateway at this address (the `kubernetes` Service): the one it listens on when that is not
    # loopback, else the default route's
    advertise = host if not is_loopback(host) else config.default_route_address()
    pki.ensure(ddir / "pki", tuple(h for h in (host, KUBERNETES_SERVICE_IP, advertise) if h))
    control = control_plane_children(url, creds_dir, logs, replicas)
    gateway = Child("gateway", gateway_argv(url, host, gw_port, token_file, ddir / "pki", creds_dir, advertise),
                    logs / "gateway.log")
    agent = Child("node agent", agent_argv(url, [
        "--name", node, "--state-dir", str(ddir / "nodes" / node), *([] if keep_pods else ["--drain-on-exit"]),
        *_creds_flag(creds_dir)]),
        logs / "agent.log") if node else None
    ingress = ingress_child(url, node, ingress_ports, ddir, creds_dir, advertise, logs) if node else None
    http_url = f"https://{host}:{gw_port}"
    code = 0
    try:
        sup.start([*control, gateway])
        if not _await_start(url, creds_dir, steps, sup, control, gateway, agent, node, http_url):
            return code
        if ingress is not None:  # after the node is Ready (it serves that node's pods)
            sup.start([ingress])
        kubeconfig = write_kubeconfig(ddir, http_url, token, ddir / "pki" / "ca.crt")
        config.write_cluster_info(ddir, url, pid=os.getpid(), dataDir=str(ddir), gateway=http_url,
                                  kubeconfig=str(kubeconfig))
        join_command = None if is_loopback(host) else asyncio.run(
            _publish_join(url, creds_dir, http_url, ddir / "pki" / "ca.crt", routes))
        print(f"k8n is up after {time.monotonic() - started:.1f}s: NATS at {url}, Kubernetes API at {http_url}"
              + (f", node {node} Ready" if node else "") + f", data in {ddir}")
        if ingress is not None and ingress_ports:
            print(f"  ingress (haproxy) on ports {ingress_ports[0]} and {ingress_ports[1]} of every address "
                  f"(log: {ingress.log_path})")
        if join_command:
            print(f"  join another machine (as root there; the token is good for 24h, once; `k8n token create` "
                  f"makes more):\n        {join_command}")
        print(f"  try:  K8N_DATA_DIR={ddir} k8n get namespaces" if data_dir else "  try:  k8n get namespaces")
        print(f"        KUBECONFIG={kubeconfig} kubectl get nodes")
        print("  stop: Ctrl-C", flush=True)
        sup.run()
    except RuntimeError as e:  # a failed step (already on its line), or a failure after the start
        print(f"error: {e}", file=sys.stderr)
        code = 1
    finally:
        print("k8n: stopping", file=sys.stderr)
        sup.stop_all()
        config.clear_cluster_info(ddir)
        lock.close()
    return code


def ingress_child(server: str, node: str, ports: tuple[int, int] | None, ddir: Path, creds_dir: Path,
                  advertise: str, logs: Path) -> Child | None:
    """The node's ingress controller (``python -m node.ingress``), or None: turned off, or a port it needs is taken
    (said on stderr: the cluster runs without it)."""
    if not ports:
        return None
    busy = [p for p in ports if not _port_free("0.0.0.0", p)]
    if busy:
        print(f"k8n: the ingress controller is not started: port {', '.join(map(str, busy))} is in use (choose "
              "others with --ingress-http-port/--ingress-https-port, or --no-ingress)", file=sys.stderr, flush=True)
        return None
    return Child("ingress", ingress_argv(server, [
        "--name", node, "--state-dir", str(ddir / "ingress" / node), "--ingress-http-port", str(ports[0]),
        "--ingress-https-port", str(ports[1]), "--ingress-addresses", advertise, *_creds_flag(creds_dir)]),
        logs / "ingress.log")


def _start_nats(ddir: Path, host: str, nats_port: int, count: int, auth: "ClusterAuth", creds_dir: Path,
                logs: Path) -> tuple[list[Child], str, tuple[str, ...]]:
    """The embedded NATS server (or ``count`` of them as one cluster), listening: (children, URL, routes);
    RuntimeError saying why not."""
    from bus.natsserver import NatsServer

    if count > 1:
        plan = nats_cluster_servers(host, nats_port, count)
        return start_nats_cluster(ddir, plan, logs), ",".join(s.client_url for s in plan), \
            tuple(s.route_url for s in plan)
    nats_log = ddir / "nats-server.log"
    srv = NatsServer(ddir / "jetstream", port=nats_port, host=host, log_file=nats_log, auth=auth,
                     monitor_port=_free_port("127.0.0.1"),  # JetStream's health (ServerChild.check)
                     creds_dir=creds_dir)
    try:
        srv.start()
        if srv.rotation_message:
            print(f"k8n: {srv.rotation_message}", file=sys.stderr)
    except RuntimeError as e:
        srv.stop()
        busy = nats_port and _nats_log_says_port_busy(nats_log)
        raise RuntimeError(f"{_port_in_use(host, nats_port) if busy else e} (see {nats_log})") from None
    return [ServerChild(srv)], srv.url, ()


def _await_start(url: str, creds_dir: Path, steps, sup: Supervisor, control: list[Child], gateway: Child,
                 agent: Child | None, node: str | None, http_url: str) -> bool:
    """The start steps after NATS (:mod:`bus.cli.startup`): the pause image and the agent's start (with an
    agent), the API server, the control plane's leaders, the gateway, the node Ready. False when a signal came
    first; RuntimeError (StepFailed) when a step failed."""
    import asyncio

    from bus.cli import startup

    launched, wall = time.monotonic(), time.time()
    agent_launched = launched
    if agent is not None:
        steps.begin("images")
        try:
            steps.done(startup.ensure_pause_image())
        except startup.StepFailed as e:
            steps.failed(str(e))
            raise startup.StepFailed(f"images: {e}") from None
        agent_launched = time.monotonic()
        sup.start([agent])

    async def run() -> None:
        from bus.client import ApiClient
        from bus.connect import creds_path
        from bus.roles import ADMIN, Identity

        client = await ApiClient.connect(url, creds=str(creds_path(Identity(ADMIN), creds_dir)))
        client.retries, client.timeout = 0, 1.0
        try:
            s = startup.Startup(client, steps, sup.tick, launched, wall)
            apiservers = [c for c in control if c.name.startswith("apiserver")]
            s.api_server(apiservers)
            s.control_plane([c for c in control if c not in apiservers])
            s.gateway([gateway], http_url)
            if agent is not None and node:
                s.node([agent], node, agent_launched)
            await s.run()
        finally:
            await client.close()

    try:
        asyncio.run(run())
    except startup.Stopping:
        return False
    return True


def server(server_url: str, creds_dir: str | None = None) -> int:
    """Run the control plane in the foreground against an existing NATS (credentials from ``creds_dir``, else
    ``$K8N_CREDS_DIR``, else ``<data dir>/creds``)."""
    os.execv(sys.executable, control_plane_argv(server_url, Path(creds_dir) if creds_dir else None))
    return 0  # not reached
