"""``k8n install-service`` units survive a reboot, and ``k8n reset`` leaves nothing behind.

The units are rendered into a temporary directory (systemd is not PID 1 here) and "booted" as systemd would: each
unit's ExecStart= (with its Environment=) as a process, in dependency order. A Deployment's pod runs; a restart of
the units (SIGTERM, as ``systemctl restart`` for an upgrade) keeps its containers running and restarts none; then a
power cut: every process of the data directory is SIGKILLed and, as a reboot would, the pod containers stop and the kernel's
network state of the node (bridge, veths, nftables tables, iptables rules) goes, and the pid ``cluster.json`` records
is another live process's. The second boot must bring the same
pod back Running and the Deployment available. Then ``k8n reset --force`` must leave no container, bridge, nftables
table, process or data directory of it. Run under ``flock /tmp/k8n-e2e.lock`` like every test that starts ``k8n up``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import systemd
from bus.cli import reset
from tests.e2e.upcluster import KUBECTL, ROOT
from tests.harness import NEEDS_DOCKER, unique_node
from tests.waiting import eventually_sync

pytestmark = list(NEEDS_DOCKER)

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "svc", "namespace": "default"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "svc"}}, "template": {
                  "metadata": {"labels": {"app": "svc"}},
                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                      {"name": "main", "image": "k8n/busybox:latest", "command": ["sleep", "3600"]}]}}}}


def k8n(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bus.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


class Machine:
    def __init__(self, tmp: Path, units: Path, data: Path) -> None:
        self.tmp, self.units, self.data = tmp, units, data
        self.procs: list[subprocess.Popen] = []

    def boot(self) -> None:
        """Every unit's ExecStart= as systemd runs it: its Environment= on a minimal environment, cwd /."""
        for unit in (systemd.MAIN_UNIT, systemd.AGENT_UNIT):  # their order: NATS and control plane first
            path = self.units / unit
            if not path.exists():
                continue
            argv, env = systemd.exec_start(path.read_text())
            env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env}  # PYTHONPATH: this checkout
            pre, _ = systemd.exec_start(path.read_text(), "ExecStartPre")
            if pre:  # "-": its failure is ignored
                subprocess.run(pre, env=env, cwd="/", capture_output=True, timeout=30)
            log = open(self.tmp / f"{unit}.log", "ab")
            self.procs.append(subprocess.Popen(argv, env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        main = self.procs[-1]

        def up() -> bool:
            if main.poll() is not None:
                raise AssertionError(f"k8n up exited {main.returncode}:\n{self.log()}")
            info = json.loads((self.data / "cluster.json").read_text()) if (self.data / "cluster.json").exists() \
                else {}
            return info.get("pid") == main.pid
        eventually_sync(up, 60, lambda: f"k8n up to come up:\n{self.log()}", interval=0.2)

    def log(self) -> str:
        return (self.tmp / "k8n.service.log").read_text(errors="replace")[-3000:]

    def pids(self) -> list[int]:
        inv = reset.Inventory(self.data, processes=reset.processes())
        return [int(r.target) for r in reset.plan(inv) if r.kind == "process"]

    def restart(self) -> None:
        """``systemctl restart``: SIGTERM to each unit's main process (``KillMode=mixed``), its exit awaited, then the
        units started again."""
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(90)
        self.procs.clear()
        self.boot()

    def power_cut(self, node: str) -> None:
        """SIGKILL to every process of the data directory; then what a reboot does besides: the containers stop
        (nothing restarts them: no restart policy) and the kernel's network state of the node is gone."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for p in self.procs:
            p.wait(10)
        self.procs.clear()
        eventually_sync(lambda: not self.pids(), 10, "every process of the data directory to die")
        ids = containers(node)
        if ids:
            subprocess.run(["docker", "stop", "-t", "1", *ids], capture_output=True, check=True)
        # after a reboot the pid cluster.json records may be another process's: here, this test's
        info = json.loads((self.data / "cluster.json").read_text())
        (self.data / "cluster.json").write_text(json.dumps({**info, "pid": os.getpid()}))
        inv = reset.Inventory(self.data, nodes=[node], links=reset.links(), nft_tables=reset.nftables(),
                              iptables_rules=reset.iptables_rules())
        for r in reset.plan(inv):
            if r.kind in ("veth", "bridge", "nftables", "iptables"):
                reset.remove(r, self.data)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run([KUBECTL, "--kubeconfig", str(self.data / "kubeconfig"), *args], capture_output=True,
                           text=True, timeout=60, input=input, env={**os.environ, "KUBECACHEDIR": str(self.tmp)})
        assert not check or r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r

    def kill(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass


def containers(node: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={node}"], capture_output=True,
                          text=True).stdout.split()


def running_pods(m: Machine) -> list[str]:
    pods = json.loads(m.kubectl("get", "pods", "-l", "app=svc", "-o", "json", check=False).stdout or "{}")
    return [p["metadata"]["name"] for p in pods.get("items", []) if p.get("status", {}).get("phase") == "Running"
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def served(m: Machine, name: str) -> bool:
    """The pod's status names containers that run now (not the ones stopped by the reboot)."""
    pod = json.loads(m.kubectl("get", "pod", name, "-o", "json", check=False).stdout or "{}")
    ids = [s.get("containerID", "").rpartition("://")[2] for s in pod.get("status", {}).get("containerStatuses", [])]
    live = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label=io.k8n.pod.uid="
                           f"{pod.get('metadata', {}).get('uid')}"], capture_output=True, text=True).stdout.split()
    return bool(ids) and all(i in live for i in ids)


def available(m: Machine) -> bool:
    d = json.loads(m.kubectl("get", "deployment", "svc", "-o", "json", check=False).stdout or "{}")
    return any(c["type"] == "Available" and c["status"] == "True" for c in d.get("status", {}).get("conditions", []))


@pytest.mark.timeout(180)
def test_services_bring_the_cluster_back_after_a_reboot_and_reset_removes_it(tmp_path):
    node, _ = unique_node()
    data, units = tmp_path / "data", tmp_path / "units"
    r = k8n("install-service", "--data-dir", str(data), "--unit-dir", str(units), "--", "--nats-port", "0",
            "--http-port", "0", "--no-ingress", "--node-name", node, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = Machine(tmp_path, units, data)
    done, t = False, [time.monotonic()]

    def lap(what: str) -> None:
        t.append(time.monotonic())
        print(f"{what}: {t[-1] - t[-2]:.1f}s", flush=True)
    try:
        m.boot()
        lap("first boot")
        m.kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))
        first = eventually_sync(lambda: running_pods(m), 45, "the Deployment's pod Running")
        running = containers(node)
        assert running
        lap("pod Running")
        m.restart()  # what an upgrade does to the unit: the agent's next start adopts the pod, restarting nothing
        lap("restart")
        eventually_sync(lambda: running_pods(m) == first and available(m), 60,
                        lambda: f"pod {first} Running after the restart (now {running_pods(m)}):\n{m.log()}")
        assert containers(node) == running, "a restart of k8n.service keeps the pods' containers"
        restarts = m.kubectl("get", "pod", first[0], "-o", "jsonpath={.status.containerStatuses[*].restartCount}")
        assert set(restarts.stdout.split()) == {"0"}, restarts.stdout
        m.power_cut(node)
        assert not subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.k8n.node={node}"],
                                  capture_output=True, text=True).stdout.split()
        lap("power cut")
        m.boot()
        lap("second boot")
        eventually_sync(lambda: running_pods(m) == first and served(m, first[0]) and available(m), 60,
                        lambda: f"pod {first} Running again after the reboot (now {running_pods(m)}):\n{m.log()}")
        lap("the same pod Running, Deployment available")
        done = True
    finally:
        if not done:
            m.kill()
        out = k8n("reset", "--force", "--data-dir", str(data), "--unit-dir", str(units), cwd=tmp_path)
    lap("k8n reset")
    assert out.returncode == 0, out.stderr
    assert "removed data" in out.stdout and "removed unit" in out.stdout
    assert not containers(node) and not data.exists() and not (units / systemd.MAIN_UNIT).exists()
    assert reset.bridge_name(node) not in reset.links()
    left = {name for _, name in reset.nftables()} & set(reset.nft_tables(node))
    assert not left, f"nftables tables left: {left}"
    assert not m.pids()
    again = k8n("reset", "--force", "--data-dir", str(data), "--unit-dir", str(units), cwd=tmp_path)
    assert again.stdout.startswith("nothing to remove"), again.stdout
