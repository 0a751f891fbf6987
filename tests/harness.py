"""A real cluster for end-to-end tests: nats-server (fixture), a control plane process, node agents
running real pods in Docker. Shared by the e2e test modules (``from tests.harness import ...``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid

import pytest

from bus import errors
from bus.client import ApiClient
from bus.proc import die_with_parent, stop_process
from bus.roles import ADMIN, Identity
from tests import builders
from tests.conftest import STANDARD_IDENTITIES, wait_for_api
from tests.waiting import eventually

NEEDS_DOCKER = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for Docker and netlink")]


class Cluster:
    """``start_control()`` runs ``python -m master`` (all components unless given); ``start_agent()``
    runs a node agent with fast test settings (``extra`` adds agent flags)."""

    def __init__(self, server, tmp, node: str, cidr: str) -> None:
        self.server = server  # the test's NatsServer: it mints each node's credentials
        self.url, self.tmp, self.node, self.cidr = server.url, tmp, node, cidr
        self.agent: subprocess.Popen | None = None
        self.control: subprocess.Popen | None = None
        self.agents: list[subprocess.Popen] = []
        self.nodes: set[str] = {node}
        self.client: ApiClient | None = None

    def start_control(self, components: str = "apiserver,nodeview,controllers,scheduler",
                      env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(self.tmp / "control.log", "ab")
        key = {"K8N_SERVICE_ACCOUNT_KEY_FILE": str(self.tmp / "pki" / "sa.key")}
        self.control = subprocess.Popen([sys.executable, "-m", "master", "--server", self.url,
                                         "--components", components, "--log-level", "WARNING",
                                         "--creds-dir", str(self.server.creds_dir)],
                                        stdout=out, stderr=out, preexec_fn=die_with_parent,
                                        env={**os.environ, **key, **(env or {})})
        return self.control

    def start_agent(self, node: str | None = None, cidr: str | None = None,
                    extra: list[str] | None = None) -> subprocess.Popen:
        node, cidr = node or self.node, cidr or self.cidr
        self.server.credentials(Identity.node(node))
        out = open(self.tmp / f"agent-{node}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "--server", self.url, "--creds-dir", str(self.server.creds_dir),
             "--name", node, "--pod-cidr", cidr,
             "--state-dir", str(self.tmp / node), "--backoff-initial", "1", "--backoff-max", "4",
             "--lease-seconds", "1", "--metrics-seconds", "1", "--log-level", "INFO", "--drain-on-exit",
             *(extra or [])],
            stdout=out, stderr=out, preexec_fn=die_with_parent)
        if node == self.node:
            self.agent = proc
        self.agents.append(proc)
        self.nodes.add(node)
        return proc


@contextlib.contextmanager
def address_on_lo():
    """An address of this machine outside loopback's range (so ``k8n up --listen`` there speaks TLS, as it does
    between machines), added to ``lo`` while in use."""
    tag = uuid.uuid4().hex
    ip = f"198.18.{int(tag[:2], 16)}.{1 + int(tag[2:4], 16) % 250}"
    subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True)
    try:
        yield ip
    finally:
        subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], capture_output=True)


def unique_node() -> tuple[str, str]:
    """A node name and a /24 podCIDR unlikely to collide with a concurrent test run."""
    node = f"t{uuid.uuid4().hex[:8]}"
    return node, f"10.244.{100 + int(node[1:3], 16) % 100}.0/24"


async def start_cluster(nats_server, tmp_path, components: str = "apiserver,nodeview,controllers,scheduler",
                        env: dict[str, str] | None = None, agent_extra: list[str] | None = None) -> Cluster:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise RuntimeError("the Docker engine is not running: bash deploy/node-deps.sh starts it")
    node, cidr = unique_node()
    c = Cluster(nats_server, tmp_path, node, cidr)
    c.start_control(components, env)
    for role in STANDARD_IDENTITIES:  # a module's own server has none yet
        nats_server.credentials(Identity(role))
    admin = nats_server.credentials(Identity(ADMIN))
    await wait_for_api(nats_server.url, creds=admin)
    c.start_agent(extra=agent_extra)
    c.client = await ApiClient.connect(nats_server.url, creds=admin)
    await eventually(lambda: node_ready(c.client, node), 30, "node registered and Ready")
    return c


async def stop_cluster(c: Cluster) -> None:
    """Delete every pod, wait for their containers to go, stop agents (they drain) and the control
    plane; fails if any container of the cluster's nodes is left."""
    client, node = c.client, c.node
    for pod in (await client.list("pods"))[0]:
        try:
            await client.delete("pods", pod["metadata"]["name"], pod["metadata"]["namespace"], grace_period_seconds=0)
        except errors.ApiError:
            pass
    await eventually(lambda: no_containers(node), 30, "pod containers removed")
    for a in c.agents:
        if a.poll() is None:
            a.send_signal(signal.SIGTERM)
            a.wait(30)
    stop_process(c.control)
    await client.close()
    leftovers = [cid for n in sorted(c.nodes) for cid in subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={n}"], capture_output=True, text=True).stdout.split()]
    if leftovers:
        subprocess.run(["docker", "rm", "-f", *leftovers], capture_output=True)
    assert not leftovers, f"containers leaked: {leftovers}"


@contextlib.asynccontextmanager
async def running_controllers(ctx, *modules):
    """The controllers of ``modules`` (each's ``setup(ctx)``) running on ``ctx``'s informers, as the
    controller manager runs them; on leaving, they are shut down and the informers stopped."""
    runnables = [r for mod in modules for r in mod.setup(ctx)]
    await ctx.informers.start()
    tasks = [asyncio.create_task(r.run()) for r in runnables]
    try:
        yield runnables
    finally:
        for r in runnables:
            r.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.informers.stop()


async def make_pod(client: ApiClient, name: str, ip: str | None, ready: bool, labels: dict | None = None,
                   ports: list | None = None, node: str = "n1", **spec) -> dict:
    """Create a pod bound to ``node`` (labelled ``app: web`` unless ``labels``; one container with ``ports``),
    then write its status as the node agent would: Running, ``ip``, the Ready condition."""
    p = await client.create(builders.pod(name, labels={"app": "web"} if labels is None else labels, node=node,
                                         automountServiceAccountToken=False,
                                         containers=[builders.container("c", ports=ports or [])], **spec))
    return await set_status(client, p, ip, ready)


async def set_status(client: ApiClient, p: dict, ip: str | None, ready: bool) -> dict:
    """Write pod ``p``'s status as the node agent would: Running, ``ip`` (if any), the Ready condition."""
    p = await client.get("pods", p["metadata"]["name"], p["metadata"].get("namespace"))
    p["status"] = builders.pod_status("Running", ready, ip=ip)
    return await client.update_status(p)


async def get_or_none(client: ApiClient, res: str, name: str, ns: str | None = None) -> dict | None:
    try:
        return await client.get(res, name, ns)
    except errors.NotFound:
        return None


async def in_namespace(client: ApiClient, res: str, ns: str) -> list[dict]:
    return (await client.list(res, ns))[0]


PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


async def allow_privileged(client: ApiClient, ns: str = "default") -> None:
    """Label ``ns`` ``pod-security.kubernetes.io/enforce=privileged``: for a test whose pods need what the default
    Pod Security level (baseline) refuses — a hostPath volume, a host namespace, a privileged container."""
    await client.patch("namespaces", ns, {"metadata": {"labels": {PSA_ENFORCE: "privileged"}}})


async def node_ready(client: ApiClient, node: str) -> bool:
    try:
        n = await client.get("nodes", node)
    except errors.NotFound:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions", []))


async def no_containers(node: str) -> bool:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.k8n.node={node}"],
                         capture_output=True, text=True).stdout
    return not out.strip()
