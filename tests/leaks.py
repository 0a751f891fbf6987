"""What k8n can leave on a machine: pod containers, bridges, pod veths, firewall rules, test network namespaces,
service proxy nft tables. tests/conftest.py snapshots it when the session starts and, when the session ran any
end-to-end test (tests/e2e/, as root), checks at its end that nothing was added: whatever is left fails the run
(a failed report "tests/leaks.py::nothing left behind" and a non-zero exit status), whichever order the tests ran in.

A concurrent test run on the same machine shows up here too: run one session at a time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

BASELINE = pytest.StashKey[dict]()
RAN_E2E = pytest.StashKey[bool]()
E2E = Path(__file__).parent / "e2e"
KINDS = ("containers", "bridges", "pod veths", "firewall rules", "test netns", "nft tables")


def _out(*cmd: str) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def snapshot() -> dict[str, set[str]]:
    links = [line.split(": ")[1].split("@")[0] for line in _out("ip", "-o", "link", "show").splitlines()
             if ": " in line]
    veths = _out("ip", "-o", "link", "show", "type", "veth")
    return {
        "containers": set(_out("docker", "ps", "-aq", "--filter", "label=io.k8n.node").split()),
        "bridges": {n for n in links if n.startswith(("k8nbr-", "k8nlan"))},  # pod bridges, the rig's LANs
        "pod veths": {line.split(": ")[1].split("@")[0] for line in veths.splitlines() if "master k8nbr-" in line},
        "firewall rules": {r for r in _out("iptables", "-S", "DOCKER-USER").splitlines() if "k8n:" in r}
        | {r for r in _out("iptables", "-t", "nat", "-S", "POSTROUTING").splitlines() if "k8n:" in r},
        "test netns": {n for n in _out("ip", "netns", "list").split() if n.startswith("t-")},
        "nft tables": {line for line in _out("nft", "list", "tables").splitlines() if " k8n-" in line},
    }


def left_behind(before: dict[str, set[str]], now: dict[str, set[str]] | None = None) -> dict[str, list[str]]:
    """What ``now`` (default: the machine as it is) has that ``before`` had not, by kind."""
    now = snapshot() if now is None else now
    return {kind: sorted(now[kind] - before.get(kind, set())) for kind in KINDS if now[kind] - before.get(kind, set())}


# ---- the session hooks (tests/conftest.py calls them) ------------------------------------------------------------

def session_start(session: pytest.Session, as_root: bool) -> None:
    session.config.stash[BASELINE] = snapshot() if as_root else None
    session.config.stash[RAN_E2E] = False


def note_call(item: pytest.Item) -> None:
    if E2E in item.path.parents:
        item.config.stash[RAN_E2E] = True


def session_finish(session: pytest.Session, exitstatus: int) -> None:
    """After a session that ran end-to-end tests: anything added since the start fails the run."""
    before = session.config.stash.get(BASELINE, None)
    if before is None or not session.config.stash.get(RAN_E2E, False):
        return
    if exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        return  # the run was cut short: its clean-ups may not have run
    left = left_behind(before)
    if not left:
        return
    text = "\n".join(f"  {kind}: {', '.join(items)}" for kind, items in left.items())
    report = pytest.TestReport(
        nodeid="tests/leaks.py::nothing left behind", location=("tests/leaks.py", None, "nothing left behind"),
        keywords={}, outcome="failed", when="call",
        longrepr=f"the test session left these on this machine (absent when it started):\n{text}")
    session.config.hook.pytest_runtest_logreport(report=report)
    session.testsfailed += 1
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
