"""The node's Docker runtime layer (``node.runtime``) against the real dockerd: sandboxes, containers sharing the
pod's namespace, Kubernetes command/args/env/resources semantics, stop with grace, logs, exec, images, stats.

Every test uses a node name of its own, and every container of that node is removed afterwards, also on failure.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid

import docker
import pytest

from node.runtime import (SANDBOX_NAME, ContainerNotFound, DockerRuntime, ImagePullError, Mount, RuntimeErr,
                          container_hash)
from tests import builders
from tests.builders import IMAGE as BUSYBOX
from tests.builders import IMAGE_ALIAS
from tests.waiting import eventually

pytestmark = pytest.mark.slow

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SLEEPER = {"name": "sleeper", "image": BUSYBOX, "command": ["sleep", "3600"]}


@pytest.fixture
async def rt(tmp_path_factory):
    runtime = DockerRuntime(f"test-rt-{uuid.uuid4().hex[:10]}", state_dir=tmp_path_factory.mktemp("runtime"))
    try:
        yield runtime
    finally:
        await runtime.cleanup_node()
        assert await runtime.list_containers() == []
        assert not runtime.state_dir.exists()
        runtime.close()


@pytest.fixture(scope="module")
def entrypoint_image():
    """An image with an ENTRYPOINT (``echo entry``) and no CMD, built locally from the busybox image."""
    client = docker.from_env()
    tag = f"k8n-test/echo-entry:{uuid.uuid4().hex[:8]}"
    dockerfile = f'FROM {BUSYBOX}\nENTRYPOINT ["echo", "entry"]\n'.encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, pull=False, rm=True)
    yield tag
    client.images.remove(tag, force=True)
    client.close()


def new_pod(name: str = "web") -> dict:
    """A pod with a name and uid of its own; its containers are given to the runtime one by one."""
    return builders.pod(f"{name}-{uuid.uuid4().hex[:5]}", uid=str(uuid.uuid4()), bare=True)


async def run(rt: DockerRuntime, pod: dict, container: dict, sandbox=None, *, env=None, mounts=(), attempt=0,
              init=False) -> str:
    sandbox = sandbox or await rt.create_sandbox(pod)
    cid = await rt.create_container(pod, container, sandbox, attempt, env or {}, list(mounts), init=init)
    await rt.start_container(cid)
    return cid


async def wait_exited(rt: DockerRuntime, cid: str, timeout: float = 20.0):
    async def exited():
        status = await rt.inspect(cid)
        return status if status.state == "exited" else None

    return await eventually(exited, timeout, "the container to exit")


async def all_logs(rt: DockerRuntime, cid: str, **kw) -> bytes:
    return b"".join([chunk async for chunk in await rt.logs(cid, **kw)])


async def output_of(rt: DockerRuntime, container: dict, **kw) -> str:
    cid = await run(rt, new_pod(), container, **kw)
    status = await wait_exited(rt, cid)
    assert status.exit_code == 0, (await all_logs(rt, cid)).decode()
    return (await all_logs(rt, cid)).decode()


async def test_pod_containers_share_localhost_and_are_listed_by_labels(rt):
    pod = new_pod("web")
    sandbox = await rt.create_sandbox(pod)
    server = await run(rt, pod, {"name": "server", "image": BUSYBOX,
                                 "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"]}, sandbox)
    fetch = ("for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -qO- http://127.0.0.1:8080/ && break; "
             "sleep 0.2; done && timeout 5 wget -qO- http://localhost:8080/")  # localhost: the pod's /etc/hosts
    script = f"hostname; ip -o link | cut -d: -f2; grep -c nameserver /etc/resolv.conf; {fetch}"
    client_spec = {"name": "client", "image": BUSYBOX, "command": ["sh", "-c", script]}
    client = await run(rt, pod, client_spec, sandbox, attempt=2)

    status = await wait_exited(rt, client)
    out = (await all_logs(rt, client)).decode()
    assert status.exit_code == 0, out
    lines = out.splitlines()
    assert lines[:3] == [pod["metadata"]["name"], " lo", "1"]  # the sandbox's hostname; an empty namespace
    assert out.count("<h1>k8n busybox</h1>") == 2
    assert sandbox.pid > 0 and sandbox.netns_path == f"/proc/{sandbox.pid}/ns/net"

    listed = {c.container_name: c for c in await rt.list_containers()}
    assert set(listed) == {SANDBOX_NAME, "server", "client"}
    assert {c.pod_uid for c in listed.values()} == {pod["metadata"]["uid"]}
    assert listed[SANDBOX_NAME].id == sandbox.id and listed[SANDBOX_NAME].is_sandbox
    assert listed["server"].state == "running" and listed["client"].state == "exited"
    assert (listed["client"].attempt, listed["client"].hash) == (2, container_hash(client_spec))
    assert listed["client"].pod_name == pod["metadata"]["name"] and listed["client"].namespace == "default"
    assert not listed["client"].init
    assert rt.client.api.inspect_container(client)["Name"] == (
        f"/k8n_client_{pod['metadata']['name']}_default_{pod['metadata']['uid'][:8]}_2")

    await rt.remove_sandbox(sandbox.id)
    with pytest.raises(ContainerNotFound):
        await rt.inspect(sandbox.id)
    assert not (rt.state_dir / sandbox.id).exists()
    await rt.remove_sandbox(sandbox.id)  # idempotent


async def test_command_and_args_follow_kubernetes(rt, entrypoint_image):
    # busybox has CMD ["sh"] and no ENTRYPOINT; the test image has ENTRYPOINT ["echo", "entry"] and no CMD
    assert await output_of(rt, {"name": "c", "image": BUSYBOX, "command": ["echo", "cmd-only"]}) == "cmd-only\n"
    assert await output_of(rt, {"name": "c", "image": BUSYBOX, "args": ["echo", "args-only"]}) == "args-only\n"
    assert await output_of(rt, {"name": "c", "image": entrypoint_image}) == "entry\n"
    assert await output_of(rt, {"name": "c", "image": entrypoint_image, "args": ["a", "b"]}) == "entry a b\n"
    assert await output_of(rt, {"name": "c", "image": entrypoint_image, "command": ["echo", "own"]}) == "own\n"
    assert await output_of(rt, {"name": "c", "image": entrypoint_image, "command": ["echo"],
                                "args": ["x", "y"]}) == "x y\n"
    expanded = await output_of(rt, {"name": "c", "image": entrypoint_image,
                                    "args": ["$(GREETING)", "$$(GREETING)", "$(MISSING)"]},
                               env={"GREETING": "hello"})
    assert expanded == "entry hello $(GREETING) $(MISSING)\n"


async def test_env_working_dir_and_bind_mounts(rt, tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "hello.txt").write_text("from the host\n")
    (tmp_path / "rw").mkdir()
    script = "echo $FOO-$BAR; cat hello.txt; pwd; touch /data/x 2>/dev/null || echo read-only; echo hi > /out/y"
    out = await output_of(
        rt, {"name": "c", "image": BUSYBOX, "command": ["sh", "-c", script], "workingDir": "/data"},
        env={"FOO": "foo", "BAR": "b a r"},
        mounts=[Mount(str(tmp_path / "ro"), "/data", read_only=True), Mount(str(tmp_path / "rw"), "/out", False)])
    assert out == "foo-b a r\nfrom the host\n/data\nread-only\n"
    assert (tmp_path / "rw" / "y").read_text() == "hi\n"


async def test_resources_and_oom_kill(rt):
    spec = {"name": "hog", "image": BUSYBOX, "command": ["tail", "/dev/zero"],
            "resources": {"limits": {"memory": "16Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}}}
    cid = await run(rt, new_pod("oom"), spec)
    host = rt.client.api.inspect_container(cid)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"]) == (16 * 2**20, 16 * 2**20)
    assert (host["NanoCpus"], host["CpuShares"]) == (500_000_000, 256)
    status = await wait_exited(rt, cid)
    assert status.oom_killed and status.exit_code == 137


async def test_exit_codes_and_times(rt):
    cid = await run(rt, new_pod("fail"), {"name": "c", "image": BUSYBOX,
                                          "command": ["sh", "-c", "echo oops >&2; exit 3"]})
    status = await wait_exited(rt, cid)
    assert (status.exit_code, status.oom_killed, status.container_name) == (3, False, "c")
    assert RFC3339.match(status.started_at) and RFC3339.match(status.finished_at)
    assert status.started_at <= status.finished_at
    assert status.image_id.startswith("sha256:")
    assert await all_logs(rt, cid) == b"oops\n"

    running = await run(rt, new_pod("run"), SLEEPER)
    status = await rt.inspect(running)
    assert status.state == "running" and status.exit_code is None and status.finished_at is None


async def test_missing_executable_fails_to_start(rt):
    pod = new_pod("noexec")
    cid = await rt.create_container(pod, {"name": "c", "image": BUSYBOX, "command": ["/no/such/binary"]},
                                    await rt.create_sandbox(pod), 0, {}, [])
    with pytest.raises(RuntimeErr) as err:
        await rt.start_container(cid)
    assert err.value.reason == "RunContainerError" and "no/such/binary" in err.value.message
    status = await rt.inspect(cid)
    assert status.exit_code == 127 and "no/such/binary" in status.error


async def test_stop_honours_sigterm_handler(rt):
    script = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    cid = await run(rt, new_pod("graceful"), {"name": "c", "image": BUSYBOX, "command": ["sh", "-c", script]})
    await wait_for_log(rt, cid, b"ready")
    t0 = time.monotonic()
    await rt.stop_container(cid, grace_seconds=10)
    assert time.monotonic() - t0 < 3
    status = await rt.inspect(cid)
    assert (status.state, status.exit_code) == ("exited", 0)
    assert await all_logs(rt, cid) == b"ready\nbye\n"


async def test_stop_kills_after_grace_period(rt):
    script = "trap '' TERM; echo ready; while true; do sleep 0.1; done"
    cid = await run(rt, new_pod("stubborn"), {"name": "c", "image": BUSYBOX, "command": ["sh", "-c", script]})
    await wait_for_log(rt, cid, b"ready")
    t0 = time.monotonic()
    await rt.stop_container(cid, grace_seconds=1)
    assert 0.9 <= time.monotonic() - t0 < 5
    assert (await rt.inspect(cid)).exit_code == 137


async def wait_for_log(rt: DockerRuntime, cid: str, needle: bytes, timeout: float = 10.0) -> None:
    async def logged():
        return needle in await all_logs(rt, cid)

    await eventually(logged, timeout, f"{needle!r} logged")


async def test_logs_tail_and_follow(rt):
    script = "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.2; echo err >&2; sleep 0.3; echo late; sleep 0.5; echo end"
    cid = await run(rt, new_pod("logs"), {"name": "c", "image": BUSYBOX, "command": ["sh", "-c", script]})

    followed = [chunk async for chunk in await rt.logs(cid, follow=True)]  # ends when the container does
    assert b"".join(followed) == b"line1\nline2\nline3\nline4\nline5\nerr\nlate\nend\n"
    assert await all_logs(rt, cid, tail=2) == b"late\nend\n"
    assert await all_logs(rt, cid, tail=0) == b""
    stamped = (await all_logs(rt, cid, tail=1, timestamps=True)).decode()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z end\n$", stamped)

    ticker = await run(rt, new_pod("tick"), {"name": "c", "image": BUSYBOX, "command": [
        "sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done"]})
    stream = await rt.logs(ticker, follow=True, tail=0)
    got = b""
    async for chunk in stream:
        got += chunk
        if got.count(b"\n") >= 5:
            break
    await stream.aclose()
    assert got.startswith(b"tick")

    chunks = []

    async def follow_forever():
        async for chunk in await rt.logs(ticker, follow=True):
            chunks.append(chunk)
    task = asyncio.create_task(follow_forever())
    await eventually(lambda: chunks, 5, "the followed stream to deliver")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)

    with pytest.raises(ContainerNotFound):
        await rt.logs("no-such-container-k8n", follow=True)


async def test_exec_exit_code_streams_and_stdin(rt):
    cid = await run(rt, new_pod("exec"), SLEEPER)

    session = await rt.exec(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"], stdin=False, tty=False)
    received = {"stdout": b"", "stderr": b""}
    async for stream, data in session:
        received[stream] += data
    assert received == {"stdout": b"out\n", "stderr": b"err\n"}
    assert await session.exit_code(timeout=5) == 3

    session = await rt.exec(cid, ["cat"], stdin=True, tty=False)
    await session.write_stdin(b"hello\n")
    await session.write_stdin(b"world\n")
    await session.close_stdin()
    echoed = b"".join([data async for stream, data in session if stream == "stdout"])
    assert echoed == b"hello\nworld\n"
    assert await session.exit_code(timeout=5) == 0

    session = await rt.exec(cid, ["tty"], stdin=False, tty=True)
    assert b"".join([data async for _, data in session]).startswith(b"/dev/pts/")
    assert await session.exit_code(timeout=5) == 0


async def test_image_pull_policies(rt):
    # k8n's own tags (deploy/images/build.sh), never a name this machine may hold another image under
    local_id = rt.client.api.inspect_image(BUSYBOX)["Id"]
    assert await rt.ensure_image("k8n/busybox", "IfNotPresent") == local_id  # normalized to k8n/busybox:latest
    assert await rt.ensure_image(IMAGE_ALIAS, "Never") == local_id  # another tag of the same image
    assert await rt.ensure_image("k8n/busybox", "Always") == local_id  # no registry here: the local image is used
    assert await rt.ensure_image("k8n/busybox", None) == local_id

    missing = f"k8n-test/missing-{uuid.uuid4().hex[:8]}:v1"
    with pytest.raises(ImagePullError) as err:
        await rt.ensure_image(missing, "Never")
    assert err.value.reason == "ErrImageNeverPull"
    assert err.value.message == f'Container image "{missing}" is not present with pull policy of Never'
    for policy in ("IfNotPresent", "Always"):
        t0 = time.monotonic()
        with pytest.raises(ImagePullError) as err:
            await rt.ensure_image(missing, policy)
        assert time.monotonic() - t0 < 15
        assert err.value.reason == "ErrImagePull"
        assert err.value.message.startswith(f'Failed to pull image "{missing}": ')


async def test_stats(rt):
    script = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo done; sleep 3600"
    cid = await run(rt, new_pod("stats"), {"name": "c", "image": BUSYBOX, "command": ["sh", "-c", script],
                                           "resources": {"limits": {"memory": "64Mi"}}})
    await wait_for_log(rt, cid, b"done", timeout=30)
    stats = await rt.stats(cid)
    assert stats["cpu_usage_ns"] > 10_000_000  # the loop took well over 10 ms of CPU
    assert 0 < stats["memory_working_set_bytes"] <= stats["memory_usage_bytes"] <= 64 * 2**20


async def test_init_label_and_cleanup(rt):
    pod = new_pod("init")
    sandbox = await rt.create_sandbox(pod)
    init = await run(rt, pod, {"name": "setup", "image": BUSYBOX, "command": ["true"]}, sandbox, init=True)
    await wait_exited(rt, init)
    [info] = [c for c in await rt.list_containers() if c.id == init]
    assert info.init and info.container_name == "setup"
    with pytest.raises(ContainerNotFound):
        await rt.inspect("no-such-container-k8n")
    await rt.cleanup_node()
    assert await rt.list_containers() == []
