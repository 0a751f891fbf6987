"""Pod start-up on real Docker, and pod network set-up time.

Run (as root, Docker running, local images built — `bash deploy/node-deps.sh` does both):
    python -m tests.perf.bench_pods

Starts its own nats-server, a control plane (apiserver, node view, controllers, scheduler) and one
node agent, then measures:
- 20 sequential pods (image present): from the create request to Running observed through a
  watch (creationTimestamp has one-second resolution, so the client's send time is the start);
- a 30-pod burst on one node, all Running, against plain `docker run -d` of 30 containers
  (30 concurrent CLI calls) measured in the same run;
- PodNetwork.attach (bridge port, veth, IPAM, addresses, routes) per pod, on fresh namespaces;
- the node's runtime layer alone (DockerRuntime, no API, no agent): a sandbox and one app container created and
  started, 20 pods one after the other.
Prints figures with conditions; not a pass/fail test.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bus.client import ApiClient
from tests.perf.busauth import use_server
from bus.natsserver import NatsServer
from bus.proc import die_with_parent, stop_process
from tests.builders import IMAGE, container, pod
from tests.conftest import wait_for_api


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def conditions() -> str:
    return (f"[{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
            f"Docker {_docker_version()}, 1 nats-server, control plane in 1 process, 1 agent process]")


def _docker_version() -> str:
    return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                          text=True).stdout.strip()


def sleeper(name: str) -> dict:
    return pod(name, grace=1, containers=[container("main", pull="IfNotPresent", command=["sleep", "3600"])])


async def running_times(client: ApiClient, since: int, names: set[str], timeout: float = 120) -> dict[str, float]:
    seen: dict[str, float] = {}
    w = await client.watch("pods", "default", since=since)
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < len(names) and time.monotonic() < deadline:
            try:
                ev = await asyncio.wait_for(w.__anext__(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            name = ev.object["metadata"]["name"]
            if name in names and name not in seen and (ev.object.get("status") or {}).get("phase") == "Running":
                seen[name] = time.perf_counter()
    finally:
        await w.stop()
    return seen


async def sequential(client: ApiClient, n: int) -> list[float]:
    out = []
    for i in range(n):
        name = f"seq-{i}"
        _, rv = await client.list("pods", "default")
        watcher = asyncio.create_task(running_times(client, rv, {name}))
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        await client.create(sleeper(name))
        seen = await watcher
        out.append(seen[name] - t0)
        await client.delete("pods", name, grace_period_seconds=0)
    return out


async def burst(client: ApiClient, n: int) -> float:
    names = {f"burst-{i}" for i in range(n)}
    _, rv = await client.list("pods", "default")
    watcher = asyncio.create_task(running_times(client, rv, names))
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    await asyncio.gather(*(client.create(sleeper(nm)) for nm in names))
    seen = await watcher
    if len(seen) < n:
        raise RuntimeError(f"only {len(seen)}/{n} burst pods became Running")
    return max(seen.values()) - t0


def docker_run_burst(n: int) -> float:
    tag = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["docker", "run", "-d", "--label", f"k8n-bench={tag}", "--network", "none", IMAGE,
                               "sleep", "3600"], stdout=subprocess.DEVNULL) for _ in range(n)]
    for p in procs:
        p.wait()
    dt = time.perf_counter() - t0
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=k8n-bench={tag}"], capture_output=True,
                         text=True).stdout.split()
    subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    return dt


async def network_attach(n: int) -> list[float]:
    from pyroute2 import netns

    from node.network import PodNetwork

    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-net-"))
    net = PodNetwork(f"bench-{uuid.uuid4().hex[:6]}", "10.244.250.0/24", tmp)
    await net.ensure_node()
    names = [f"t-bench-{uuid.uuid4().hex[:6]}" for _ in range(n)]
    times = []
    try:
        for i, ns in enumerate(names):
            netns.create(ns)
            t0 = time.perf_counter()
            await net.attach(f"uid-{i}", f"/var/run/netns/{ns}")
            times.append(time.perf_counter() - t0)
    finally:
        for i, ns in enumerate(names):
            await net.detach(f"uid-{i}")
            try:
                netns.remove(ns)
            except OSError:
                pass
        await net.teardown()
    return times


async def runtime_start(n: int) -> list[float]:
    """Seconds to create and start a sandbox and one app container through DockerRuntime, per pod, sequentially."""
    from node.runtime import DockerRuntime

    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-rt-"))
    rt = DockerRuntime(f"bench-rt-{uuid.uuid4().hex[:6]}", state_dir=tmp / "state")
    app = container("main", pull=None, command=["sleep", "3600"])
    times = []
    try:
        for i in range(n):
            p = pod(f"rt-{i}", uid=str(uuid.uuid4()), bare=True)
            t0 = time.perf_counter()
            sandbox = await rt.create_sandbox(p)
            await rt.start_container(await rt.create_container(p, app, sandbox, 0, {}, []))
            times.append(time.perf_counter() - t0)
    finally:
        await rt.cleanup_node()
        rt.close()
    return times


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="k8n-bench-pods-"))
    srv = NatsServer(tmp / "js", port=0, log_file=tmp / "nats.log")
    use_server(srv)
    srv.start()
    node = f"bench-{uuid.uuid4().hex[:6]}"
    use_server(srv, node)  # the agent's credentials
    control = subprocess.Popen([sys.executable, "-m", "master", "--server", srv.url, "--log-level", "WARNING"],
                               stdout=open(tmp / "control.log", "ab"), stderr=subprocess.STDOUT,
                               preexec_fn=die_with_parent)
    agent = None
    try:
        await wait_for_api(srv.url)
        agent = subprocess.Popen([sys.executable, "-m", "node", "--server", srv.url, "--name", node,
                                  "--pod-cidr", "10.244.249.0/24", "--state-dir", str(tmp / "node"),
                                  "--drain-on-exit", "--log-level", "WARNING"],
                                 stdout=open(tmp / "agent.log", "ab"), stderr=subprocess.STDOUT,
                                 preexec_fn=die_with_parent)
        client = await ApiClient.connect(srv.url)
        while True:
            try:
                n = await client.get("nodes", node)
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]):
                    break
            except Exception:
                pass
            await asyncio.sleep(0.2)
        await sequential(client, 2)  # warm-up (first image inspect, first netlink socket)
        seq = await sequential(client, 20)
        print(f"pod start-up, 20 sequential pods, create request -> Running seen on a watch: "
              f"p50 {pct(seq, 50):.3f} s, p99 {pct(seq, 99):.3f} s, min {min(seq):.3f} s, "
              f"mean {statistics.mean(seq):.3f} s {conditions()}")
        await asyncio.sleep(2)
        b = await burst(client, 30)
        d = docker_run_burst(30)
        print(f"30-pod burst on one node, all Running: {b:.2f} s; plain `docker run -d` of 30 containers "
              f"(30 concurrent): {d:.2f} s; ratio {b / d:.2f} {conditions()}")
        for i in range(30):
            await client.delete("pods", f"burst-{i}", grace_period_seconds=0)
        await client.close()
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(60)
        stop_process(control)
        srv.stop()
    times = await network_attach(20)
    print(f"pod network set-up (PodNetwork.attach: IPAM, veth pair, bridge port, addresses, routes), 20 pods: "
          f"p50 {pct(times, 50) * 1e3:.1f} ms, p99 {pct(times, 99) * 1e3:.1f} ms [{os.cpu_count()} cores]")
    await runtime_start(2)  # warm-up
    times = await runtime_start(20)
    print(f"runtime layer alone (DockerRuntime: sandbox + one app container created and started), 20 pods one "
          f"after the other: p50 {pct(times, 50) * 1e3:.0f} ms, p99 {pct(times, 99) * 1e3:.0f} ms, "
          f"min {min(times) * 1e3:.0f} ms [{os.cpu_count()} cores, Docker {_docker_version()}]")


if __name__ == "__main__":
    asyncio.run(main())
