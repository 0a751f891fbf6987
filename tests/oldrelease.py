"""The previous release of k8n, to run next to the working tree (tests/e2e/test_upgrade.py): its source taken out of
this repository's history, and k8n's processes (API server, control plane, node agent) started from either.

The release is the newest line of ``deploy/releases.txt`` (``<tag> <commit>``); it is found by its commit, so a clone
without tags works, and a clone without that commit fails saying so (``git fetch`` it). ``git archive`` writes its
tree into a temporary directory once per test session. Its processes run on the venv's python with that tree first on
``PYTHONPATH`` (and as their working directory): the editable install's finder comes after ``sys.path`` in
``sys.meta_path``, so the release's ``bus``, ``master`` and ``node`` are imported, not the working tree's —
:func:`extract` checks it.

    cluster = RollingCluster(nats_server, tmp_path)                  # old_release: the session fixture below
    old = await cluster.start_apiserver("apiserver-old", old_release)  # returns once it serves
    new = await cluster.start_apiserver("apiserver-new")               # no release: the working tree
    assert await old.terminate() == 0                                  # SIGTERM, and its exit status
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bus.proc import die_with_parent
from bus.roles import Identity
from tests.harness import unique_node
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ROOT / "deploy" / "releases.txt"
PACKAGES = ("bus", "master", "node")


@dataclass(frozen=True)
class Release:
    """Where a process's code comes from: ``tree`` None is the working tree (the editable install)."""

    name: str
    tree: Path | None = None

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}
        if self.tree is not None:
            env["PYTHONPATH"] = str(self.tree)
        return env

    @property
    def cwd(self) -> Path:
        return self.tree if self.tree is not None else ROOT

    def python(self, code: str) -> str:
        """Run ``code`` with this release's python (its stdout; fails on a non-zero exit)."""
        r = subprocess.run([sys.executable, "-c", code], cwd=self.cwd, env=self.env(), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, f"python -c {code!r} from {self.name} failed: {r.stderr[-2000:]}"
        return r.stdout.strip()


WORKING_TREE = Release("the working tree")


def newest_release(path: Path = RELEASES) -> tuple[str, str]:
    """``(tag, commit)`` of the newest release (the last line of ``deploy/releases.txt``)."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all(len(f) == 2 for f in lines), f"{path}: expected lines '<tag> <commit>'"
    return lines[-1][0], lines[-1][1]


def extract(dest: Path, root: Path = ROOT) -> Release:
    """The newest release's tree written into ``dest`` (by its commit, tags or not), checked to import its own
    packages."""
    tag, commit = newest_release(root / RELEASES.relative_to(ROOT))
    r = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"release {tag} (commit {commit}, deploy/releases.txt) is not in this clone's history: the "
                    f"upgrade test needs it (git fetch origin {commit}, or a clone with more history)", pytrace=False)
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(root), "archive", commit], stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, capture_output=True)
    archive.stdout.close()
    assert archive.wait() == 0 and untar.returncode == 0, f"git archive {commit} | tar -x: {untar.stderr!r}"
    release = Release(f"release {tag} ({commit[:12]})", dest)
    files = release.python(f"import {', '.join(PACKAGES)}; print({', '.join(p + '.__file__' for p in PACKAGES)})")
    wrong = [f for f in files.split() if not Path(f).resolve().is_relative_to(dest.resolve())]
    assert not wrong, f"{release.name} imports {wrong}, not its own tree {dest} (PYTHONPATH must win)"
    return release


@pytest.fixture(scope="session")
def old_release(tmp_path_factory) -> Release:
    """The previous release's tree, extracted once per session (see :func:`extract`)."""
    return extract(tmp_path_factory.mktemp("oldrelease"))


@dataclass
class Proc:
    """A k8n process of a release, with its log."""

    what: str
    release: Release
    popen: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, n: int = 40) -> str:
        return f"--- {self.what} ({self.release.name}), {self.log}:\n" + "\n".join(self.text().splitlines()[-n:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    async def wait_for_log(self, text: str, timeout: float = 30, count: int = 1) -> None:
        """Until the log holds ``text`` ``count`` times; fails at once if the process exits."""

        def there() -> bool:
            assert self.alive(), f"{self.what} exited ({self.popen.returncode}) before logging {text!r}\n{self.tail()}"
            return self.text().count(text) >= count

        await eventually(there, timeout, lambda: f"{self.what} to log {text!r} {count} time(s)\n{self.tail()}")

    async def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the exit (killed, and a failure, after ``timeout``); the exit status. The event loop
        goes on meanwhile."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            await asyncio.to_thread(self.popen.wait)
            raise AssertionError(f"{self.what} did not exit within {timeout:g}s of SIGTERM\n{self.tail()}") from None


@dataclass
class RollingCluster:
    """A cluster whose processes are started, one by one, from one release or another (as an operator rolls an
    upgrade): API server replicas (one queue group), the controllers+scheduler+nodeview process, one node agent
    (``node``, ``cidr``, its state dir kept across agents of either release)."""

    server: object  # the test's NatsServer (conftest.nats_server): its URL, creds dir, node credentials
    tmp: Path
    node: str = ""
    cidr: str = ""
    procs: list[Proc] = field(default_factory=list)
    agent: Proc | None = None

    def __post_init__(self) -> None:
        if not self.node:
            self.node, self.cidr = unique_node()
        self.url = self.server.url
        self.creds_dir = str(self.server.creds_dir)

    @property
    def state_dir(self) -> Path:
        return self.tmp / self.node

    def _start(self, what: str, release: Release | None, args: list[str], module: str, env: dict | None = None
               ) -> Proc:
        release = release or WORKING_TREE
        log = self.tmp / f"{what}.log"
        out = open(log, "ab")
        try:
            popen = subprocess.Popen([sys.executable, "-m", module, "--server", self.url, "--creds-dir",
                                      self.creds_dir, *args], cwd=release.cwd, env=release.env(env), stdout=out,
                                     stderr=out, preexec_fn=die_with_parent)
        finally:
            out.close()
        p = Proc(what, release, popen, log)
        self.procs.append(p)
        return p

    def start_master(self, what: str, components: str, release: Release | None = None) -> Proc:
        """``python -m master --components ...`` (INFO logs: "apiserver serving", leases acquired), with the cluster's
        bus keys (the API server lists the bus's connections with them)."""
        env = {"K8N_SERVICE_ACCOUNT_KEY_FILE": str(self.tmp / "pki" / "sa.key"),
               "K8N_BUS_AUTH_DIR": str(self.server.auth.dir)}  # as `k8n up` gives them: `k8n upgrade plan` lists
        return self._start(what, release, ["--components", components, "--log-level", "INFO"], "master", env)

    async def start_apiserver(self, what: str, release: Release | None = None, timeout: float = 60) -> Proc:
        """An API server replica, returned once it serves (its queue subscription is made)."""
        p = self.start_master(what, "apiserver", release)
        await p.wait_for_log("apiserver serving", timeout)
        return p

    def start_agent(self, what: str, release: Release | None = None, drain_on_exit: bool = False) -> Proc:
        """The node agent (fast test settings as tests/harness.py's); without ``drain_on_exit`` a stop leaves its
        pods running, for the next agent to adopt."""
        self.server.credentials(Identity.node(self.node))
        p = self._start(what, release, [
            "--name", self.node, "--pod-cidr", self.cidr, "--state-dir", str(self.state_dir),
            "--backoff-initial", "1", "--backoff-max", "4", "--lease-seconds", "1", "--metrics-seconds", "1",
            "--log-level", "INFO", *(["--drain-on-exit"] if drain_on_exit else [])], "node")
        self.agent = p
        return p

    def running(self) -> list[Proc]:
        return [p for p in self.procs if p.alive()]

    def logs(self) -> str:
        """The tails of every process's log (for a failure's message)."""
        return "\n".join(p.tail(25) for p in self.procs)


def running_containers(node: str) -> set[str]:
    """The full IDs of the running Docker containers of ``node``'s pods (sandboxes included)."""
    out = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label=io.k8n.node={node}"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def remove_containers(node: str) -> list[str]:
    """Remove every container of ``node`` (running or not); the IDs removed."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={node}"], capture_output=True,
                         text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    return ids
