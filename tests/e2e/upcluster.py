"""A ``k8n up`` cluster for tests that use it as Kubernetes users do, through ``<data-dir>/kubeconfig``: the real
``k8n up --no-agent --http-port 0`` in its own session, plus (optionally) one node agent with a unique name and pod
range (so concurrent runs on this machine never share a node, a bridge or a pod CIDR). Stopping it deletes the pods,
stops the agent (it drains) and ``k8n up``, and fails on any container left behind. ``launch_up`` and ``wait_up`` are
shared with the tests that start ``k8n up`` themselves."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from bus.natsauth import ClusterAuth
from bus.roles import Identity
from tests.harness import unique_node
from tests.waiting import eventually_sync

ROOT = Path(__file__).resolve().parents[2]
_BESIDE_PYTHON = Path(sys.executable).with_name("k8n")
K8N = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else (shutil.which("k8n") or "k8n")
KUBECTL = shutil.which("kubectl") or "kubectl"
UP_TIMEOUT = 90.0  # a cold start on a loaded machine


def launch_up(data: Path, log, *flags: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              new_session: bool = True) -> subprocess.Popen:
    """``k8n up --data-dir DATA FLAGS --no-agent``, its output into ``log``; in its own session (as a shell runs a
    foreground job, so a signal can reach its whole process group) unless ``new_session`` is false."""
    return subprocess.Popen([K8N, "up", "--data-dir", str(data), *flags, "--no-agent"], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=new_session)


def wait_up(proc: subprocess.Popen, data: Path, output, timeout: float = UP_TIMEOUT,
            files: tuple[str, ...] = ("cluster.json",)) -> None:
    """Until ``k8n up`` has written ``files`` into its data directory; fails with the end of its output
    (``output()``) when it exits first or is not up within ``timeout`` seconds."""
    def up() -> bool:
        if all((data / f).exists() for f in files):
            return True
        if proc.poll() is not None:
            raise AssertionError(f"k8n up exited with {proc.returncode} before coming up:\n{output()}")
        return False

    eventually_sync(up, timeout, lambda: f"k8n up to come up:\n{output()}", interval=0.2)


class UpCluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "K8N_DATA_DIR": str(self.data),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    "KUBECACHEDIR": str(tmp / "kubecache")}
        for inherited in ("K8N_SERVER", "K8N_CREDS_DIR", "K8N_CREDS", "K8N_SERVICE_ACCOUNT_KEY_FILE"):
            self.env.pop(inherited, None)
        self.env.pop("KUBECONFIG", None)
        self.up: subprocess.Popen | None = None
        self.agent: subprocess.Popen | None = None
        self.node, self.cidr = unique_node()
        self.info: dict = {}

    @property
    def kubeconfig(self) -> Path:
        return self.data / "kubeconfig"

    def start(self, agent: bool = True, listen: str | None = None, flags: tuple[str, ...] = ()) -> "UpCluster":
        """``flags``: more of ``k8n up``'s (``--nats-servers 3``, ``--replicas 2``)."""
        log = open(self.tmp / "up.log", "ab")
        self.up = launch_up(self.data, log, "--nats-port", "0", "--http-port", "0",
                            *(["--listen", listen] if listen else []), *flags, env=self.env, cwd=self.tmp)
        wait_up(self.up, self.data, self.log, files=("cluster.json", "kubeconfig"))
        self.info = json.loads((self.data / "cluster.json").read_text())
        if agent:  # a second node: credentials minted with the cluster's keys, as `k8n credentials node` does
            ClusterAuth.load(self.data / "nats-auth").write_creds(Identity.node(self.node), self.data / "creds")
            out = open(self.tmp / "agent.log", "ab")
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "node", "--server", self.info["server"], "--name", self.node,
                 "--pod-cidr", self.cidr, "--state-dir", str(self.tmp / "node"), "--backoff-initial", "1",
                 "--backoff-max", "4", "--lease-seconds", "1", "--metrics-seconds", "1", "--drain-on-exit"],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
            eventually_sync(lambda: self.kubectl(
                "get", "node", self.node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False).stdout == "True", 60, f"node {self.node} Ready")
        return self

    def log(self) -> str:
        return (self.tmp / "up.log").read_text(errors="replace")[-4000:]

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
                ) -> subprocess.CompletedProcess:
        r = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], capture_output=True, text=True,
                           env=self.env, timeout=timeout, input=input)
        if check:
            assert r.returncode == 0, f"kubectl {' '.join(args)} exited {r.returncode}: {r.stderr}"
        return r

    def containers(self) -> list[str]:
        return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={self.node}"],
                              capture_output=True, text=True).stdout.split()

    def stop(self) -> None:
        """Pods deleted, agent and k8n up stopped (the whole process group, also after a failure); no container
        of the test's node may be left."""
        try:
            if self.agent is not None and self.up is not None and self.up.poll() is None:
                self.kubectl("delete", "pods", "--all", "-A", "--grace-period=0", "--force", "--wait=false",
                             check=False)
                try:
                    eventually_sync(lambda: not self.containers(), 30, "the pods' containers to go")
                except AssertionError:
                    pass  # the agent's drain and the check below take over
        finally:
            if self.agent is not None and self.agent.poll() is None:
                self.agent.send_signal(signal.SIGTERM)
                try:
                    self.agent.wait(30)
                except subprocess.TimeoutExpired:
                    self.agent.kill()
            if self.up is not None:
                try:
                    os.killpg(self.up.pid, signal.SIGTERM)
                    self.up.wait(20)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                try:
                    os.killpg(self.up.pid, signal.SIGKILL)
                except OSError:
                    pass
            left = self.containers()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
        assert not left, f"containers leaked: {left}"
