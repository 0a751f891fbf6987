"""The node agent on real Docker with real pod networking: pods run, talk, restart, report
status, stop gracefully, survive an agent kill -9, and leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from bus import errors
from tests.builders import configmap, container, pod, secret
from tests.harness import NEEDS_DOCKER, allow_privileged, node_ready, start_cluster, stop_cluster
from tests.waiting import eventually, stays

pytestmark = list(NEEDS_DOCKER)

@pytest.fixture
async def cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path)
    yield c
    await stop_cluster(c)


async def phase_of(client, name):
    p = await client.get("pods", name)
    return p.get("status", {}).get("phase")


async def status_of(client, name, container=None):
    p = await client.get("pods", name)
    for cs in p.get("status", {}).get("containerStatuses") or []:
        if container is None or cs["name"] == container:
            return cs
    return None


async def test_two_containers_share_localhost_and_the_node_reaches_the_pod(cluster):
    c = cluster.client
    await c.create(pod("web", node=cluster.node, grace=2, containers=[
        container("server", "httpd -f -p 8080 -h /var/www", ports=[{"name": "http", "containerPort": 8080}],
            readinessProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 1}),
        container("client", "sleep 1; while true; do timeout 3 wget -qO- http://127.0.0.1:8080/ && sleep 30; sleep 1; done"),
    ]))
    p = await eventually(lambda: _ready_pod(c, "web"), 30, "pod Ready")
    ip = p["status"]["podIP"]
    assert ip.startswith(cluster.cidr.rsplit(".", 2)[0])
    body = urllib.request.urlopen(f"http://{ip}:8080/", timeout=5).read().decode()
    assert "k8n busybox" in body
    from bus import nodeclient

    async def client_saw_it():
        out = b"".join([chunk async for chunk in nodeclient.logs(c, "default", "web", "client")])
        return b"k8n busybox" in out

    await eventually(client_saw_it, 20, "the client container to fetch the page over localhost")


async def _ready_pod(c, name):
    p = await c.get("pods", name)
    conds = {x["type"]: x["status"] for x in p.get("status", {}).get("conditions") or []}
    return p if conds.get("Ready") == "True" and p["status"].get("podIP") else None


async def test_env_from_field_secret_and_configmap_and_exec_and_malformed_node_calls(cluster):
    c = cluster.client
    await c.create(secret("s1", data={"password": b"hunter2"}))
    await c.create(configmap("cm1", data={"color": "blue"}))
    await c.create(pod("envs", node=cluster.node, grace=2, containers=[container("main", "sleep 3600", env=[
        {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "password"}}},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "color"}}},
        {"name": "GREETING", "value": "hi $(COLOR)"},
    ])]))
    p = await eventually(lambda: _ready_pod(c, "envs"), 30, "pod Ready")
    from bus import nodeclient

    session = await nodeclient.exec_(c, "default", "envs", ["env"])
    out = b"".join([d async for _s, d in session]).decode()
    assert session.exit_code == 0
    assert "MY_POD=envs" in out and f"MY_NODE={cluster.node}" in out and "PASSWORD=hunter2" in out
    assert "COLOR=blue" in out and "GREETING=hi blue" in out and f"MY_IP={p['status']['podIP']}" in out
    session = await nodeclient.exec_(c, "default", "envs", ["sh", "-c", "echo oops >&2; exit 3"])
    chunks = [(s, d) async for s, d in session]
    assert session.exit_code == 3 and ("stderr", b"oops\n") in chunks
    session = await nodeclient.exec_(c, "default", "envs", ["cat"], stdin=True)
    await session.write(b"piped through\n")
    await session.close_stdin()
    out = b"".join([d async for _s, d in session])
    assert out == b"piped through\n" and session.exit_code == 0
    await _malformed_node_calls_do_nothing(c, cluster.node)


async def _malformed_node_calls_do_nothing(c, node):
    """Requests on the node's subjects are validated before any work: a 400 Status naming the field, or (without a
    reply subject, when nobody can be answered) dropped; the command never runs."""
    from bus import codec, nodeclient, subjects

    def exec_req(**over):
        return {"namespace": "default", "pod": "envs", "command": ["touch", "/tmp/ran"],
                "session": nodeclient.new_session(), **over}

    await c.nc.publish(subjects.node_call(node, "exec"), codec.pack(exec_req()))  # no inbox to answer
    for body, field in ((exec_req(session="../x"), "session"), (exec_req(command="touch /tmp/ran"), "command"),
                        (exec_req(command=[]), "command"), (exec_req(namespace="NS!"), "namespace"),
                        (exec_req(container="a.b"), "container"), (exec_req(stdin="yes"), "stdin"),
                        (exec_req(user="root"), "user"),
                        ({"namespace": "default", "pod": "envs", "tail": -1, "session": nodeclient.new_session()},
                         "tail")):
        call = "logs" if "tail" in body else "exec"
        reply = codec.unpack((await c.nc.request(subjects.node_call(node, call), codec.pack(body), timeout=5)).data)
        assert reply["code"] == 400 and reply["body"]["reason"] == "BadRequest", (body, reply)
        assert f"invalid {call} request: {field}" in reply["body"]["message"], (body, reply)
    reply = codec.unpack((await c.nc.request(subjects.node_call(node, "exec"), b"\xc1", timeout=5)).data)
    assert reply["code"] == 400 and reply["body"]["message"] == "the exec request is not a msgpack map"
    session = await nodeclient.exec_(c, "default", "envs", ["sh", "-c", "test -e /tmp/ran && echo ran || echo absent"])
    assert b"".join([d async for _s, d in session]) == b"absent\n"


async def test_liveness_failure_restarts_and_crash_loops_back_off(cluster):
    c = cluster.client
    await c.create(pod("live", node=cluster.node, grace=2, containers=[
        container("main", "touch /tmp/ok; sleep 3600", livenessProbe={
            "exec": {"command": ["sh", "-c", "test -f /tmp/ok && rm /tmp/ok"]}, "periodSeconds": 1,
            "failureThreshold": 1})]))
    await eventually(lambda: _restarts(c, "live", 1), 40, "a liveness restart")
    await c.create(pod("crash", node=cluster.node, grace=2, script="echo crashing; exit 1"))
    st = await eventually(lambda: _waiting(c, "crash", "CrashLoopBackOff"), 40, "CrashLoopBackOff")
    assert st["lastState"]["terminated"]["exitCode"] == 1
    p = await c.get("pods", "crash")
    assert p["status"]["phase"] == "Running"  # restartPolicy Always: restarting, not failed
    events, _ = await c.list("events", "default", field_selector="involvedObject.name=crash")
    assert "BackOff" in {e["reason"] for e in events}


async def _restarts(c, name, n):
    st = await status_of(c, name)
    return st and st["restartCount"] >= n


async def _waiting(c, name, reason):
    st = await status_of(c, name)
    return st if st and st["state"].get("waiting", {}).get("reason") == reason else None


async def test_restart_policies_and_init_containers(cluster):
    c = cluster.client
    await c.create(pod("never", node=cluster.node, grace=2, script="exit 2", restartPolicy="Never"))
    await c.create(pod("onfail", node=cluster.node, grace=2, script="exit 0", restartPolicy="OnFailure"))
    work = [{"name": "w", "mountPath": "/work"}]
    await c.create(pod("init", node=cluster.node, grace=2,
                       containers=[container("main", "cat /work/order; sleep 3600", volumeMounts=work)],
                       initContainers=[container("first", "echo first >> /work/order", volumeMounts=work),
                                       container("second", "echo second >> /work/order", volumeMounts=work)],
                       volumes=[{"name": "w", "emptyDir": {}}]))
    await eventually(lambda: _phase_is(c, "never", "Failed"), 30, "Never + exit 2 -> Failed")
    st = await status_of(c, "never")
    assert st["state"]["terminated"]["exitCode"] == 2 and st["restartCount"] == 0
    await eventually(lambda: _phase_is(c, "onfail", "Succeeded"), 30, "OnFailure + exit 0 -> Succeeded")
    await eventually(lambda: _ready_pod(c, "init"), 30, "init pod Ready")
    from bus import nodeclient

    out = b"".join([x async for x in nodeclient.logs(c, "default", "init")])
    assert out == b"first\nsecond\n"
    p = await c.get("pods", "init")
    assert [s["state"]["terminated"]["reason"] for s in p["status"]["initContainerStatuses"]] == ["Completed"] * 2


async def _phase_is(c, name, phase):
    return (await phase_of(c, name)) == phase


async def test_missing_image_is_err_image_pull(cluster):
    c = cluster.client
    await c.create(pod("noimg", node=cluster.node, grace=2,
                       containers=[container("main", image="no.such/image:1", pull="IfNotPresent")]))
    st = await eventually(lambda: _waiting_any(c, "noimg", {"ErrImagePull", "ImagePullBackOff"}), 60, "image pull error")
    assert st["state"]["waiting"]["reason"] in ("ErrImagePull", "ImagePullBackOff")
    await eventually(lambda: _waiting(c, "noimg", "ImagePullBackOff"), 30, "ImagePullBackOff")
    assert (await phase_of(c, "noimg")) == "Pending"


async def _waiting_any(c, name, reasons):
    st = await status_of(c, name)
    return st if st and st["state"].get("waiting", {}).get("reason") in reasons else None


async def test_graceful_deletion_runs_the_sigterm_handler(cluster, tmp_path):
    c = cluster.client
    marker = tmp_path / "term"
    marker.mkdir()
    await allow_privileged(c)  # the pod writes its marker into a hostPath volume
    await c.create(pod("graceful", node=cluster.node, grace=10, containers=[container(
        "main", "trap 'echo got-term > /out/term; exit 0' TERM; while true; do sleep 0.2; done",
        volumeMounts=[{"name": "out", "mountPath": "/out"}])],
        volumes=[{"name": "out", "hostPath": {"path": str(marker)}}]))
    await eventually(lambda: _ready_pod(c, "graceful"), 30, "pod Ready")
    t0 = time.monotonic()
    await c.delete("pods", "graceful")
    p = await c.get("pods", "graceful")
    assert p["metadata"]["deletionTimestamp"]  # terminating first, removed by the agent
    await eventually(lambda: _gone(c, "graceful"), 30, "pod object removed")
    assert (marker / "term").read_text().strip() == "got-term"
    assert time.monotonic() - t0 < 9  # the handler ran; no wait for the full grace period


async def _gone(c, name):
    try:
        await c.get("pods", name)
        return False
    except errors.NotFound:
        return True


async def test_agent_kill_9_adopts_running_pods(cluster):
    c = cluster.client
    await c.create(pod("keep", node=cluster.node, grace=2, script="sleep 3600"))
    await c.create(pod("drop", node=cluster.node, grace=2, script="sleep 3600"))
    await eventually(lambda: _ready_pod(c, "keep"), 30, "keep Ready")
    await eventually(lambda: _ready_pod(c, "drop"), 30, "drop Ready")
    before = await status_of(c, "keep")
    ip_before = (await c.get("pods", "keep"))["status"]["podIP"]
    cluster.agent.send_signal(signal.SIGKILL)
    cluster.agent.wait()
    await c.delete("pods", "drop", grace_period_seconds=0)  # deleted while the agent is down
    cluster.start_agent()
    await eventually(lambda: _no_container_of(cluster.node, "drop"), 30, "the deleted pod's containers removed")

    async def adopted():
        after = await status_of(c, "keep")
        return after["containerID"] == before["containerID"] and after["restartCount"] == 0 and \
            (await c.get("pods", "keep"))["status"]["podIP"] == ip_before

    await stays(adopted, 3, "keep adopted: the same container (no restart) and the same IP")


async def _no_container_of(node, pod_name):
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={node}",
                          "--filter", f"label=io.k8n.pod.name={pod_name}"], capture_output=True, text=True).stdout
    return not out.strip()


async def test_scheduled_pod_runs_and_cli_logs_follow_and_exec(cluster):
    c = cluster.client
    await c.create(pod("talk", grace=1, containers=[
        container("main", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done")]))
    p = await eventually(lambda: _ready_pod(c, "talk"), 30, "the scheduler to place the pod and the agent to run it")
    assert p["spec"]["nodeName"] == cluster.node
    events, _ = await c.list("events", "default", field_selector="involvedObject.name=talk")
    reasons = {e["reason"] for e in events}
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons
    env = {**os.environ, "K8N_SERVER": cluster.url}
    k8n = [sys.executable, "-m", "bus.cli"]
    follow = subprocess.Popen([*k8n, "logs", "-f", "talk"], stdout=subprocess.PIPE, env=env)
    lines = [follow.stdout.readline() for _ in range(3)]
    follow.terminate()
    follow.wait(10)
    assert all(line.startswith(b"line-") for line in lines), lines
    tail = subprocess.run([*k8n, "logs", "talk", "--tail", "2"], capture_output=True, env=env, timeout=30)
    assert tail.returncode == 0 and len(tail.stdout.splitlines()) == 2
    r = subprocess.run([*k8n, "exec", "talk", "--", "sh", "-c", "echo out; echo err >&2; exit 7"],
                       capture_output=True, env=env, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (7, b"out\n", b"err\n")
    r = subprocess.run([*k8n, "exec", "-i", "talk", "--", "tr", "a-z", "A-Z"], input=b"shout\n",
                       capture_output=True, env=env, timeout=30)
    assert (r.returncode, r.stdout) == (0, b"SHOUT\n")


async def test_pods_on_two_agents_reach_each_other(cluster):
    c = cluster.client
    other = f"{cluster.node}b"
    third = int(cluster.cidr.split(".")[2]) + 1
    proc = cluster.start_agent(other, f"10.244.{third}.0/24")
    try:
        await eventually(lambda: node_ready(c, other), 30, "second node Ready")
        server = container("srv", "httpd -f -p 8080 -h /var/www", readinessProbe={"tcpSocket": {"port": 8080},
                                                                         "periodSeconds": 1})
        await c.create(pod("far", node=other, grace=2, containers=[server]))
        await c.create(pod("near", node=cluster.node, grace=2, script="sleep 3600"))
        far = await eventually(lambda: _ready_pod(c, "far"), 30, "pod on the second node Ready")
        await eventually(lambda: _ready_pod(c, "near"), 30, "pod on the first node Ready")
        from bus import nodeclient

        session = await nodeclient.exec_(c, "default", "near",
                                         ["sh", "-c", f"timeout 5 wget -qO- http://{far['status']['podIP']}:8080/"])
        out = b"".join([d async for _s, d in session])
        assert session.exit_code == 0 and b"k8n busybox" in out
        await c.delete("pods", "far", grace_period_seconds=0)
        await eventually(lambda: _no_container_of(other, "far"), 30, "far's containers removed")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


async def test_oom_kill_is_reported(cluster):
    c = cluster.client
    hog = container("hog", "tail /dev/zero", resources={"limits": {"memory": "16Mi"}})
    await c.create(pod("oom", node=cluster.node, grace=2, containers=[hog], restartPolicy="Never"))
    st = await eventually(lambda: _terminated(c, "oom"), 60, "the container to be OOM killed")
    assert st["state"]["terminated"]["reason"] == "OOMKilled"
    assert st["state"]["terminated"]["exitCode"] == 137
    assert (await phase_of(c, "oom")) == "Failed"


async def _terminated(c, name):
    st = await status_of(c, name)
    return st if st and "terminated" in st["state"] else None


async def test_secret_and_configmap_volumes(cluster):
    c = cluster.client
    await c.create(secret("creds", data={"user": b"admin"}))
    await c.create(configmap("conf", data={"app.properties": "mode=fast\n"}))
    await c.create(pod("vols", node=cluster.node, grace=2, containers=[container("main", "sleep 3600", volumeMounts=[
        {"name": "s", "mountPath": "/etc/creds", "readOnly": True}, {"name": "c", "mountPath": "/etc/conf"}])],
                       volumes=[{"name": "s", "secret": {"secretName": "creds"}},
                                {"name": "c", "configMap": {"name": "conf"}}]))
    await eventually(lambda: _ready_pod(c, "vols"), 30, "pod Ready")
    from bus import nodeclient

    session = await nodeclient.exec_(c, "default", "vols", ["sh", "-c", "cat /etc/creds/user /etc/conf/app.properties"])
    out = b"".join([d async for _s, d in session])
    assert out == b"adminmode=fast\n"


async def test_subpaths_mount_inside_the_volume_and_never_through_a_planted_symlink(cluster):
    """A configMap key mounted alone with subPath works; an init container that makes an emptyDir entry a symlink to
    the host's / gets its sibling's subPath mount refused (CreateContainerConfigError), not the host's root."""
    c = cluster.client
    await c.create(configmap("one", data={"app.conf": "mode=fast\n"}))
    await c.create(pod("subpaths", node=cluster.node, grace=1, containers=[container("main", "sleep 3600",
        volumeMounts=[{"name": "c", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                      {"name": "e", "mountPath": "/work", "subPath": "logs/app"}])],
        volumes=[{"name": "c", "configMap": {"name": "one"}}, {"name": "e", "emptyDir": {}}]))
    await eventually(lambda: _ready_pod(c, "subpaths"), 30, "pod Ready")
    from bus import nodeclient

    session = await nodeclient.exec_(c, "default", "subpaths", ["cat", "/etc/app.conf"])
    assert b"".join([d async for _s, d in session]) == b"mode=fast\n"
    await c.create(pod("escape", node=cluster.node, grace=1,
                       initContainers=[container("plant", "ln -s / /vol/escape",
                                                 volumeMounts=[{"name": "e", "mountPath": "/vol"}])],
                       containers=[container("main", "sleep 3600",
                                             volumeMounts=[{"name": "e", "mountPath": "/host", "subPath": "escape"}])],
                       volumes=[{"name": "e", "emptyDir": {}}]))
    st = await eventually(lambda: _waiting(c, "escape", "CreateContainerConfigError"), 40,
                          "the symlinked subPath refused")
    assert "symlink" in st["state"]["waiting"]["message"]
    await stays(lambda: _not_running(c, "escape"), 3, "the container never started")


async def _not_running(c, name):
    st = await status_of(c, name)
    return st is None or "running" not in (st.get("state") or {})
