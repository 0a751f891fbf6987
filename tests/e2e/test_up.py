"""``k8n up``, the all-in-one runner, driven as a user drives it: the real ``k8n`` binary in
subprocesses, signals as a terminal sends them, and only what a user can see (exit codes, messages,
``k8n get``, the process table, the data directory) is checked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bus.natsauth import ClusterAuth
from bus.roles import ADMIN, Identity
from tests.e2e.upcluster import K8N, KUBECTL, UP_TIMEOUT, launch_up, wait_up
from tests.harness import unique_node
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
STOP_TIMEOUT = 10.0  # "stops within a few seconds"


# ---- the process table ---------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper does not count: it holds no port, no file)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def live_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and alive(int(p))]


def children(pid: int) -> list[int]:
    return [p for p in live_pids() if (st := _stat(p)) and int(st[1]) == pid]


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (``k8n up`` runs in its own session here)."""
    return [p for p in live_pids() if (st := _stat(p)) and int(st[2]) == pgid]


def pgrep_f(text: str) -> list[int]:
    """What ``pgrep -f TEXT`` finds (other than this test process)."""
    return [p for p in live_pids() if p != os.getpid() and text in cmdline(p)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- running k8n ------------------------------------------------------------------------------------

def k8n_env(data: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "K8N_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", **extra}
    for inherited in ("K8N_SERVER", "K8N_CREDS_DIR", "K8N_CREDS"):
        if inherited not in extra:
            env.pop(inherited, None)
    return env


def k8n(data: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([K8N, *args], capture_output=True, text=True, env=k8n_env(data, **env), timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}: {result.stderr}"
    return result.stdout


class Up:
    """One ``k8n up`` process in its own session (as a shell runs a foreground job), so a
    Ctrl-C can go to its whole process group and teardown can reach every process it started."""

    def __init__(self, data: Path, log: Path, nats_port: int = 0) -> None:
        self.data, self.log_path = data, log
        self.log = open(log, "ab")
        self.proc = launch_up(data, self.log, "--nats-port", str(nats_port), env=k8n_env(data))
        self.pgid = self.proc.pid
        self.seen: set[int] = set()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_up(self, timeout: float = UP_TIMEOUT) -> "Up":
        wait_up(self.proc, self.data, self.output, timeout)
        self.record_children()
        return self

    def record_children(self) -> list[int]:
        kids = children(self.proc.pid)
        self.seen.update(kids)
        return kids

    def child(self, needle: str) -> int:
        found = [p for p in self.record_children() if needle in cmdline(p)]
        assert len(found) == 1, f"expected one child running {needle!r}: {[cmdline(p) for p in self.record_children()]}"
        return found[0]

    def stop(self, sig: int = signal.SIGTERM, group: bool = False, timeout: float = STOP_TIMEOUT) -> tuple[int, float]:
        """Send ``sig`` (to the whole process group, as a terminal's Ctrl-C does, if ``group``);
        the exit code and how long it took."""
        self.record_children()
        start = time.monotonic()
        if group:
            os.killpg(self.pgid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"k8n up did not stop within {timeout:.0f}s of {signal.Signals(sig).name}:\n{self.output()}")
        return code, time.monotonic() - start

    def assert_all_gone(self) -> None:
        """Nothing ``k8n up`` started is left running, and it no longer advertises itself."""
        assert self.seen, "no children were recorded"
        eventually_sync(lambda: not [p for p in self.seen if alive(p)], 5, "the children of k8n up to exit")
        assert not group_members(self.pgid), [cmdline(p) for p in group_members(self.pgid)]
        assert not pgrep_f(str(self.data)), [cmdline(p) for p in pgrep_f(str(self.data))]
        assert not (self.data / "cluster.json").exists()

    def kill(self) -> None:
        """Teardown, also after a failure: SIGKILL the whole group and anything recorded."""
        for p in {*self.seen, *group_members(self.pgid)}:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


@pytest.fixture
def start_up(tmp_path):
    """Start ``k8n up`` processes; every one (and everything it started) is killed at teardown."""
    started: list[Up] = []

    def start(data: Path | None = None, nats_port: int = 0) -> Up:
        data = data or tmp_path / "data"
        up = Up(data, tmp_path / f"up-{len(started)}.log", nats_port)
        started.append(up)
        return up

    yield start
    for up in started:
        up.kill()


def namespaces(data: Path) -> set[str]:
    out = ok(k8n(data, "get", "ns"))
    lines = out.strip().splitlines()
    assert lines and lines[0].split()[0] == "NAME", out
    return {line.split()[0] for line in lines[1:]}


def web_uid(data: Path) -> str:
    web = json.loads(ok(k8n(data, "get", "deploy", "web", "-n", "demo", "-o", "json")))
    assert web["kind"] == "Deployment" and web["metadata"]["namespace"] == "demo"
    return web["metadata"]["uid"]


# ---- the tests ----------------------------------------------------------------------------------

API, CONTROLLERS = "--components apiserver", "--components controllers"  # k8n up's two control-plane processes


def test_up_apply_sigterm_and_restart_keep_objects(start_up, tmp_path):
    data = tmp_path / "data"
    up = start_up(data).wait_up()
    info = json.loads((data / "cluster.json").read_text())
    assert info["server"].startswith("nats://127.0.0.1:") and info["pid"] == up.proc.pid
    assert up.child("nats-server") and up.child(API) and up.child(CONTROLLERS)  # the control plane: two processes

    assert SYSTEM_NAMESPACES <= namespaces(data)
    out = ok(k8n(data, "apply", "-f", str(EXAMPLES))).splitlines()
    assert "namespace/demo created" in out and "deployment.apps/web created" in out, out
    assert "service/web created" in out and "configmap/web-config created" in out, out
    uid = web_uid(data)
    svc = ok(k8n(data, "get", "svc", "web", "-n", "demo", "-o", "name"))
    assert svc.strip() == "service/web"

    code, took = up.stop(signal.SIGTERM)
    assert code == 0, up.output()
    assert took < STOP_TIMEOUT
    up.assert_all_gone()

    again = start_up(data).wait_up()
    assert SYSTEM_NAMESPACES | {"demo"} <= namespaces(data)
    assert web_uid(data) == uid
    assert ok(k8n(data, "apply", "-f", str(EXAMPLES))).splitlines() == [
        "namespace/demo unchanged", "configmap/web-config unchanged", "deployment.apps/web unchanged",
        "service/web unchanged"]
    code, _ = again.stop(signal.SIGTERM)
    assert code == 0, again.output()
    again.assert_all_gone()


@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c-to-process-group", "sigint-to-k8n-up"])
def test_ctrl_c_stops_cleanly(start_up, tmp_path, group):
    data = tmp_path / "data"
    up = start_up(data).wait_up()
    assert SYSTEM_NAMESPACES <= namespaces(data)
    code, took = up.stop(signal.SIGINT, group=group)
    assert code == 0, up.output()
    assert took < STOP_TIMEOUT
    assert "Traceback" not in up.output()
    up.assert_all_gone()


@pytest.mark.parametrize("listening", [False, True], ids=["bound", "listening"])
def test_busy_nats_port_fails_fast_with_a_clear_message(tmp_path, listening):
    data = tmp_path / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        if listening:
            s.listen()
        start = time.monotonic()
        r = subprocess.run([K8N, "up", "--data-dir", str(data), "--nats-port", str(port), "--no-agent"], capture_output=True,
                           text=True, env=k8n_env(data), timeout=60, start_new_session=True)
        took = time.monotonic() - start
    assert r.returncode != 0
    assert took < 10, f"took {took:.1f}s"
    assert str(port) in r.stderr and "--nats-port" in r.stderr, r.stderr
    assert r.stderr.startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert not (data / "cluster.json").exists()
    assert not pgrep_f(str(data)), [cmdline(p) for p in pgrep_f(str(data))]


def test_second_up_on_a_running_data_dir_refuses(start_up, tmp_path):
    data = tmp_path / "data"
    up = start_up(data).wait_up()
    info = (data / "cluster.json").read_text()
    start = time.monotonic()
    r = subprocess.run([K8N, "up", "--data-dir", str(data), "--nats-port", "0", "--no-agent"], capture_output=True, text=True,
                       env=k8n_env(data), timeout=60, start_new_session=True)
    assert r.returncode != 0
    assert time.monotonic() - start < 10
    assert r.stderr.startswith("error: ") and "already running" in r.stderr and str(data) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # the running cluster is untouched: still advertised, still answering, no second NATS started
    assert (data / "cluster.json").read_text() == info
    assert up.proc.poll() is None
    assert SYSTEM_NAMESPACES <= namespaces(data)
    nats = [p for p in pgrep_f(f"{data}/") if "nats-server" in cmdline(p)]
    assert len(nats) == 1, [cmdline(p) for p in pgrep_f(str(data))]  # the one nats-server
    code, _ = up.stop()
    assert code == 0
    up.assert_all_gone()


def test_client_verb_without_a_cluster_fails_fast(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    url = f"nats://127.0.0.1:{free_port()}"
    r = k8n(empty, "get", "pods", K8N_SERVER=url)  # no credentials: said before anything is tried
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith("error: no NATS credentials for admin at ") and str(empty / "creds") in r.stderr, \
        r.stderr
    ClusterAuth.load_or_create(tmp_path / "keys").write_creds(Identity(ADMIN), empty / "creds")
    start = time.monotonic()
    r = k8n(empty, "get", "pods", K8N_SERVER=url)
    took = time.monotonic() - start
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: cannot reach") and url in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert took < 8, f"took {took:.1f}s"
    assert r.stdout == ""


def test_control_plane_is_restarted_after_kill_9(start_up, tmp_path):
    data = tmp_path / "data"
    up = start_up(data).wait_up()
    ok(k8n(data, "apply", "-f", str(EXAMPLES)))
    uid = web_uid(data)
    nats_pid = up.child("nats-server")
    master = up.child(API)

    os.kill(master, signal.SIGKILL)
    killed = time.monotonic()
    eventually_sync(lambda: not alive(master), 5, "the killed API server to exit", interval=0.05)
    eventually_sync(lambda: [p for p in up.record_children() if API in cmdline(p)], 15, "a new API server")

    def answers() -> bool:
        r = k8n(data, "get", "ns", timeout=30)
        return r.returncode == 0 and SYSTEM_NAMESPACES | {"demo"} <= {ln.split()[0] for ln in r.stdout.splitlines()[1:]}

    eventually_sync(answers, max(1.0, 15 - (time.monotonic() - killed)), "the API to answer again", interval=0.5)
    assert time.monotonic() - killed < 20
    assert web_uid(data) == uid
    assert up.proc.poll() is None and alive(nats_pid)
    assert up.child(API) != master
    assert "k8n: apiserver was killed by SIGKILL; restarting in" in up.output()

    code, _ = up.stop()
    assert code == 0, up.output()
    up.assert_all_gone()


def test_the_embedded_nats_server_is_restarted_after_kill_9_and_nothing_acknowledged_is_lost(start_up, tmp_path):
    data = tmp_path / "data"
    up = start_up(data).wait_up()
    ok(k8n(data, "apply", "-f", str(EXAMPLES)))
    uid = web_uid(data)
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: last-write, namespace: demo}\n"
                        "data: {k: v}\n")
    ok(k8n(data, "apply", "-f", str(manifest)))  # acknowledged just before the kill
    nats = up.child("nats-server")
    master = up.child(API)

    os.kill(nats, signal.SIGKILL)
    killed = time.monotonic()
    eventually_sync(lambda: not alive(nats), 5, "the killed nats-server to exit", interval=0.05)
    eventually_sync(lambda: [p for p in up.record_children() if "nats-server" in cmdline(p) and p != nats], 15,
                    "a new nats-server")

    def answers() -> bool:
        r = k8n(data, "get", "configmap", "last-write", "-n", "demo", "-o", "json", timeout=30)
        return r.returncode == 0 and json.loads(r.stdout)["data"] == {"k": "v"}

    eventually_sync(answers, 30, "the API to answer again with the last acknowledged write", interval=0.5)
    assert web_uid(data) == uid
    manifest.write_text(manifest.read_text().replace("last-write", "after"))
    ok(k8n(data, "apply", "-f", str(manifest)))  # writes work again
    assert up.proc.poll() is None and alive(master)  # the components reconnected; none had to restart
    assert "k8n: nats-server was killed by SIGKILL; restarting in" in up.output(), up.output()
    print(f"API answering again {time.monotonic() - killed:.1f}s after the kill")

    code, _ = up.stop()
    assert code == 0, up.output()
    up.assert_all_gone()


# ---- the start steps and the node ---------------------------------------------------------------------------------

STEP_TIME = r"(?:\d+(?:\.\d)?s|\d+m\d\ds)"


def step_lines(out: str) -> dict[str, str]:
    """``  NAME   TIME  DETAIL`` lines of k8n up's output: name → the rest."""
    import re

    found = {}
    for line in out.splitlines():
        m = re.match(rf"  (\S+(?: \S+)?)\s+({STEP_TIME})(?:\s+(.*))?$", line)
        if m:
            found[m.group(1)] = m.group(3) or ""
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for Docker and netlink")
def test_up_prints_each_step_with_its_time_and_is_up_only_once_its_node_is_ready(tmp_path):
    node, cidr = unique_node()
    data = tmp_path / "data"
    log_path = tmp_path / "up.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([K8N, "up", "--data-dir", str(data), "--nats-port", "0", "--http-port", "0",
                                 "--node-name", node], stdout=log, stderr=subprocess.STDOUT,
                                env=k8n_env(data, K8N_POD_CIDR=cidr), start_new_session=True)
    try:
        def output() -> str:
            return log_path.read_text(errors="replace")

        def is_up() -> bool:
            assert proc.poll() is None, f"k8n up exited with {proc.returncode}:\n{output()}"
            return "k8n is up" in output()

        eventually_sync(is_up, UP_TIMEOUT, lambda: f"k8n up to say it is up:\n{output()}", interval=0.1)
        r = subprocess.run([KUBECTL, "--kubeconfig", str(data / "kubeconfig"), "get", "nodes", "--no-headers"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.split()[:2] == [node, "Ready"], (r.stdout, r.stderr, output())
        out = output()
        steps = step_lines(out)
        assert list(steps) == ["NATS", "images", "API server", "control plane", "gateway", f"node {node}"], out
        assert steps["NATS"].startswith("nats://127.0.0.1:") and steps["gateway"].startswith("https://127.0.0.1:")
        assert steps[f"node {node}"] == "Ready" and steps["images"].startswith("k8n/pause:3.9 ")
        assert out.index(f"node {node}") < out.index("k8n is up after ")
        assert "\x1b" not in out and "Traceback" not in out  # not a terminal: plain lines
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            code = None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert code == 0, output()
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={node}"], capture_output=True,
                          text=True).stdout.split()
    assert not left, f"containers left: {left}"


def test_a_failing_step_says_which_and_why_and_exits_non_zero(tmp_path):
    data = tmp_path / "data"
    r = subprocess.run([K8N, "up", "--data-dir", str(data), "--nats-port", "0", "--http-port", "0", "--node-name",
                        unique_node()[0]], capture_output=True, text=True, timeout=60, start_new_session=True,
                       env=k8n_env(data, DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock"))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "NATS" in step_lines(r.stdout), r.stdout
    failed = [ln for ln in r.stdout.splitlines() if "FAILED" in ln]
    assert len(failed) == 1 and failed[0].split()[0] == "images", r.stdout
    assert "cannot reach Docker" in failed[0] and "--no-agent" in failed[0], failed
    assert "error: images: cannot reach Docker" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "k8n is up" not in r.stdout
    assert not (data / "cluster.json").exists()
    assert not pgrep_f(str(data)), [cmdline(p) for p in pgrep_f(str(data))]
