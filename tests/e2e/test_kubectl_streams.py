"""Stock kubectl against ``k8n up`` through its kubeconfig: ``logs`` (-c, -f, --tail), ``exec`` (exit codes, -i with
piped stdin), ``cordon``/``uncordon`` and ``drain`` (the eviction subresource). Only what a user sees is checked:
output, exit codes, and the objects afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.e2e.upcluster import KUBECTL, UpCluster
from tests.builders import IMAGE, container, deployment, pod
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync, stays_sync

pytestmark = list(NEEDS_DOCKER)

TALK = pod("talk", ns=None, grace=1, containers=[
    container("main", "echo first; echo second; echo third; i=0; "
                      "while true; do i=$((i+1)); echo tick $i; sleep 0.5; done"),
    container("side", "echo from-side; echo side-err >&2; sleep 3600")])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("streams"))
    try:
        c.start()
        c.kubectl("apply", "-f", "-", input=json.dumps(TALK))
        eventually_sync(lambda: c.kubectl(
            "get", "pod", "talk", "-o", "jsonpath={.status.phase} {.status.containerStatuses[*].ready}",
            check=False).stdout == "Running true true", 60, "pod talk Running with both containers ready")
        eventually_sync(lambda: "tick 2" in c.kubectl("logs", "talk", "-c", "main", check=False).stdout, 20,
                        "the first lines logged")
        yield c
    finally:
        c.stop()


# ---- logs ---------------------------------------------------------------------------------------------------------

def test_logs_of_the_default_container_and_of_a_named_one(cluster):
    out = cluster.kubectl("logs", "talk")  # kubectl picks the first container and says so on stderr
    assert out.stdout.splitlines()[:4] == ["first", "second", "third", "tick 1"]
    assert 'Defaulted container "main" out of: main, side' in out.stderr
    side = cluster.kubectl("logs", "talk", "-c", "side")
    assert sorted(side.stdout.splitlines()) == ["from-side", "side-err"]  # stdout and stderr, both
    tail = cluster.kubectl("logs", "talk", "-c", "main", "--tail", "2").stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith("tick ") for line in tail)
    assert int(tail[1].split()[1]) == int(tail[0].split()[1]) + 1


def test_logs_errors_are_kubernetes_errors(cluster):
    missing = cluster.kubectl("logs", "nope", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr
    bad = cluster.kubectl("logs", "talk", "-c", "nope", check=False)
    assert bad.returncode == 1 and "container nope is not valid for pod talk" in bad.stderr


def test_logs_follow_streams_new_lines_until_interrupted(cluster):
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "logs", "-f", "talk", "-c", "main",
                             "--tail", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cluster.env)
    try:
        seen = []
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            seen.append(line.strip())
        assert len(seen) == 4, (seen, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore
        numbers = [int(s.split()[1]) for s in seen]
        assert numbers == list(range(numbers[0], numbers[0] + 4))  # live lines, in order, none lost
        assert proc.poll() is None  # still following
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---- exec ---------------------------------------------------------------------------------------------------------

def test_exec_passes_output_and_the_exit_code(cluster):
    r = cluster.kubectl("exec", "talk", "-c", "main", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == "hi\n"
    assert "oops" in r.stderr and "command terminated with exit code 3" in r.stderr
    ok = cluster.kubectl("exec", "talk", "-c", "side", "--", "cat", "/proc/1/cmdline")
    assert "sleep" in ok.stdout and ok.returncode == 0


def test_exec_with_stdin_piped(cluster):
    text = "".join(f"line {i}\n" for i in range(200))
    r = cluster.kubectl("exec", "-i", "talk", "-c", "main", "--", "cat", input=text)
    assert r.stdout == text
    counted = cluster.kubectl("exec", "-i", "talk", "-c", "main", "--", "wc", "-l", input=text)
    assert counted.stdout.strip() == "200"


def test_exec_errors(cluster):
    missing = cluster.kubectl("exec", "nope", "--", "true", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr
    cluster.kubectl("run", "nowhere", f"--image={IMAGE}", "--overrides",
                    json.dumps({"spec": {"nodeSelector": {"no-such": "node"}}}), "--", "sleep", "3600")
    for verb in (["exec", "nowhere", "--", "true"], ["logs", "nowhere"]):
        pending = cluster.kubectl(*verb, check=False)
        assert pending.returncode == 1, pending
        assert 'Error from server (BadRequest): pod "nowhere" is not scheduled to a node yet' in pending.stderr
    cluster.kubectl("delete", "pod", "nowhere", "--wait=false")
    no_cmd = cluster.kubectl("exec", "talk", "-c", "main", "--", "no-such-command", check=False)
    assert no_cmd.returncode == 126 and "executable file not found" in no_cmd.stdout + no_cmd.stderr


# ---- cordon, drain --------------------------------------------------------------------------------------------------

def _node(cluster) -> dict:
    return json.loads(cluster.kubectl("get", "node", cluster.node, "-o", "json").stdout)


def test_cordon_and_uncordon(cluster):
    out = cluster.kubectl("cordon", cluster.node)
    assert out.stdout.strip() == f"node/{cluster.node} cordoned"
    assert _node(cluster)["spec"].get("unschedulable") is True
    out = cluster.kubectl("uncordon", cluster.node)
    assert out.stdout.strip() == f"node/{cluster.node} uncordoned"
    assert not _node(cluster)["spec"].get("unschedulable")


WEB = deployment("web", ns=None, replicas=2, grace=1, containers=[container("web", "sleep 3600")],
                 pod={"volumes": [{"name": "scratch", "emptyDir": {}}]})


def _pods(cluster, selector: str) -> list[dict]:
    return json.loads(cluster.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"]


def test_drain_evicts_the_pods_and_leaves_the_node_unschedulable(cluster):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(WEB))
    running = eventually_sync(lambda: (lambda ps: ps if len(ps) == 2 else None)(
        [p for p in _pods(cluster, "app=web") if p["status"].get("phase") == "Running"]), 60, "2 web pods Running")
    old = {p["metadata"]["name"] for p in running}

    r = cluster.kubectl("drain", cluster.node, "--ignore-daemonsets", "--force", "--delete-emptydir-data",
                        "--timeout", "60s", timeout=90, check=False)
    assert r.returncode == 0, r.stderr
    assert f"node/{cluster.node} cordoned" in r.stdout
    for name in old | {"talk"}:
        assert f"pod/{name} evicted" in r.stdout, r.stdout
    assert f"node/{cluster.node} drained" in r.stdout
    assert "deleting Pods that declare no controller: default/talk" in r.stderr

    assert _node(cluster)["spec"].get("unschedulable") is True
    assert "SchedulingDisabled" in cluster.kubectl("get", "node", cluster.node).stdout
    gone = cluster.kubectl("get", "pod", "talk", check=False)
    assert gone.returncode == 1 and 'pods "talk" not found' in gone.stderr
    # the Deployment replaces its evicted pods, but nothing may land on the cordoned node
    now = eventually_sync(lambda: (lambda ps: ps if len(ps) == 2 else None)(
        [p for p in _pods(cluster, "app=web") if p["metadata"]["name"] not in old]), 30, "2 replacement web pods")
    stays_sync(lambda: all(not p["spec"].get("nodeName") for p in _pods(cluster, "app=web")), 2,
               "no pod scheduled onto the cordoned node")
    assert {p["status"].get("phase") for p in now} == {"Pending"}

    cluster.kubectl("uncordon", cluster.node)
    eventually_sync(lambda: (lambda ps: len(ps) == 2 and all(
        p["status"].get("phase") == "Running" for p in ps))(_pods(cluster, "app=web")), 60,
        "the replacements Running after uncordon")
