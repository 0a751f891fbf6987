"""securityContext, host namespaces and hostPort enforced by the node on real Docker, checked from inside the
containers as a user would (``id``, ``/proc/self/status``, writes, ``ping``, ``/proc/sys``, namespace links),
and the API's refusals and warnings for what k8n cannot apply."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from bus import errors, nodeclient
from node.network.hostports import table_name
from tests.builders import container, namespace, pod
from tests.harness import NEEDS_DOCKER, start_cluster, stop_cluster
from tests.waiting import eventually, stays

pytestmark = list(NEEDS_DOCKER)

NS = "sec"
SLEEP = "sleep 3600"
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN = 12, 13, 21
DOCKER_DEFAULT_CAPS = 0xA80425FB  # Docker's (and containerd's) default set, NET_RAW included


@pytest.fixture
async def cluster(nats_server, tmp_path):
    c = await start_cluster(nats_server, tmp_path)
    # host namespaces and privileged pods need the privileged Pod Security level (baseline is the default)
    await c.client.create(namespace(NS, labels={"pod-security.kubernetes.io/enforce": "privileged"}))
    await eventually(lambda: _exists(c.client, "serviceaccounts", "default", NS), 20, "the default ServiceAccount")
    yield c
    await stop_cluster(c)


async def _exists(client, resource, name, ns):
    try:
        return await client.get(resource, name, ns)
    except errors.NotFound:
        return None


def sc_pod(name: str, script: str = SLEEP, *, csc: dict | None = None, containers: list | None = None,
           **spec) -> dict:
    c = container("main", script, **({"securityContext": csc} if csc is not None else {}))
    return pod(name, NS, containers=containers or [c], grace=1, **spec)


async def running(client, name: str) -> dict:
    p = await client.get("pods", name, NS)
    st = (p.get("status") or {}).get("containerStatuses") or []
    return p if st and all("running" in (s.get("state") or {}) for s in st) else None


async def sh(client, name: str, script: str, container: str | None = None) -> tuple[int, str]:
    session = await nodeclient.exec_(client, NS, name, ["sh", "-c", script], container=container)
    out = b"".join([d async for _s, d in session]).decode()
    return session.exit_code, out


def status_field(text: str, key: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(key + ":"))


async def test_security_context_matrix_seen_from_inside(cluster):
    c = cluster.client
    pods = [
        sc_pod("ids", volumes=[{"name": "data", "emptyDir": {}}], securityContext={
            "runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000], "fsGroup": 2000},
            containers=[container("main", SLEEP, volumeMounts=[{"name": "data", "mountPath": "/data"}])]),
        sc_pod("user-only", securityContext={"runAsUser": 1000}),
        sc_pod("nonroot", csc={"runAsNonRoot": True, "runAsUser": 1000}),
        sc_pod("defaults"),
        sc_pod("drop-all", csc={"capabilities": {"drop": ["ALL"]}}),
        sc_pod("net-admin", csc={"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}),
        sc_pod("privileged", csc={"privileged": True}),
        sc_pod("no-escalation", csc={"allowPrivilegeEscalation": False},
               securityContext={"seccompProfile": {"type": "Unconfined"}}),
        sc_pod("runtime-default", csc={"seccompProfile": {"type": "RuntimeDefault"}},
               securityContext={"seccompProfile": {"type": "Unconfined"}}),
        sc_pod("read-only", volumes=[{"name": "scratch", "emptyDir": {}}],
               containers=[container("main", SLEEP, securityContext={"readOnlyRootFilesystem": True},
                                     volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}])]),
        # no unprivileged ICMP sockets in this pod (a safe sysctl): busybox ping then needs a raw socket
        sc_pod("no-raw", csc={"capabilities": {"drop": ["NET_RAW"]}},
               securityContext={"sysctls": [{"name": "net.ipv4.ping_group_range", "value": "1 0"}]}),
        sc_pod("raw", securityContext={"sysctls": [{"name": "net.ipv4.ping_group_range", "value": "1 0"}]}),
        sc_pod("sysctls", securityContext={"sysctls": [
            {"name": "net.ipv4.ip_local_port_range", "value": "40000 50000"},
            {"name": "kernel.shm_rmid_forced", "value": "1"}]}),
    ]
    for p in pods:
        await c.create(p)
    for p in pods:
        await eventually(lambda n=p["metadata"]["name"]: running(c, n), 60, f"pod {p['metadata']['name']} running")

    code, out = await sh(c, "ids", "id; touch /data/f && stat -c '%g %a' /data /data/f; head -c 20 " + TOKEN)
    assert code == 0, out
    ids = out.splitlines()[0]
    assert ids.startswith("uid=1000 gid=3000") and {"2000", "4000"} <= set(
        g.split("(")[0] for g in ids.split("groups=")[1].split(",")), ids
    assert out.splitlines()[1] == "2000 2777" and out.splitlines()[2].startswith("2000 "), out  # setgid emptyDir
    assert out.splitlines()[3].startswith("ey"), out  # the token, through the fsGroup
    code, out = await sh(c, "user-only", "id -u; head -c 2 " + TOKEN)
    assert (code, out) == (0, "1000\ney"), out  # the token file is the user's own
    code, out = await sh(c, "nonroot", "id -u")
    assert (code, out) == (0, "1000\n")

    status = {}
    for name in ("defaults", "drop-all", "net-admin", "privileged", "no-escalation", "runtime-default"):
        code, status[name] = await sh(c, name, "cat /proc/self/status")
        assert code == 0
    caps = {n: int(status_field(s, "CapEff"), 16) for n, s in status.items()}
    assert caps["defaults"] == DOCKER_DEFAULT_CAPS and caps["defaults"] & 1 << CAP_NET_RAW
    assert caps["drop-all"] == 0
    assert caps["net-admin"] == 1 << CAP_NET_ADMIN
    assert caps["privileged"] & 1 << CAP_SYS_ADMIN and caps["privileged"] == int(
        status_field(status["privileged"], "CapBnd"), 16)
    assert status_field(status["no-escalation"], "NoNewPrivs") == "1"
    assert status_field(status["defaults"], "NoNewPrivs") == "0"
    assert status_field(status["defaults"], "Seccomp") == "2"  # unset: RuntimeDefault (k8n's choice)
    assert status_field(status["runtime-default"], "Seccomp") == "2"  # the container's wins over the pod's
    assert status_field(status["no-escalation"], "Seccomp") == "0"  # the pod's Unconfined
    assert status_field(status["privileged"], "Seccomp") == "0"

    code, out = await sh(c, "read-only", "touch /x 2>&1; echo $?; touch /scratch/x && echo scratch ok")
    assert out.splitlines() == ["touch: /x: Read-only file system", "1", "scratch ok"], out
    code, out = await sh(c, "no-raw", "ping -c 1 -W 1 127.0.0.1")
    assert code != 0 and "ermission denied" in out, out  # neither a raw socket nor an ICMP datagram socket
    code, out = await sh(c, "raw", "ping -c 1 -W 1 127.0.0.1")
    assert code == 0, out
    code, out = await sh(c, "sysctls", "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced")
    assert out.split() == ["40000", "50000", "1"], out
    code, out = await sh(c, "defaults", "cat /proc/sys/net/ipv4/ip_local_port_range")
    assert out.split() != ["40000", "50000"]  # set in that pod's namespaces only


async def test_run_as_non_root_refuses_a_root_image_and_unsafe_sysctls_are_forbidden(cluster):
    c = cluster.client
    created = await c.create(sc_pod("root-image", csc={"runAsNonRoot": True}))
    await c.create(sc_pod("unsafe-sysctl", securityContext={"sysctls": [{"name": "net.core.somaxconn",
                                                                           "value": "1024"}]}))

    async def config_error():
        p = await c.get("pods", "root-image", NS)
        st = ((p.get("status") or {}).get("containerStatuses") or [{}])[0]
        return (st.get("state") or {}).get("waiting")

    waiting = await eventually(config_error, 60, "the container waiting")
    uid = created["metadata"]["uid"]
    assert waiting == {"reason": "CreateContainerConfigError", "message": (
        f'container has runAsNonRoot and image will run as root (pod: "root-image_{NS}({uid})", container: main)')}

    async def rejected():
        p = await c.get("pods", "unsafe-sysctl", NS)
        return p["status"] if (p.get("status") or {}).get("phase") == "Failed" else None

    status = await eventually(rejected, 60, "the pod rejected")
    assert status["reason"] == "SysctlForbidden"
    assert status["message"] == 'Pod was rejected: forbidden sysctl: "net.core.somaxconn" not allowlisted'


async def test_fields_k8n_cannot_apply_are_refused_or_warned(cluster):
    c = cluster.client
    with pytest.raises(errors.Invalid) as e:
        await c.create(sc_pod("localhost-seccomp", csc={
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}))
    assert e.value.code == 422
    (cause,) = e.value.causes
    assert cause["field"] == "spec.containers[0].securityContext.seccompProfile.type"
    assert "Localhost seccomp profiles" in cause["message"]
    with pytest.raises(errors.Invalid):
        await c.create(sc_pod("host-process", securityContext={"windowsOptions": {"hostProcess": True}}))
    warnings: list[str] = []
    await c.create(sc_pod("selinux", securityContext={"seLinuxOptions": {"level": "s0:c123,c456"}}),
                   warnings=warnings)
    assert warnings == ["spec.securityContext.seLinuxOptions: k8n does not apply SELinux labels; the field is "
                        "stored and ignored"]
    await eventually(lambda: running(c, "selinux"), 60, "the pod running all the same")


def _get(url: str) -> str:
    return urllib.request.urlopen(url, timeout=3).read().decode()


def _ns_links(pid: int | str = "self") -> dict[str, str]:
    return {k: os.readlink(f"/proc/{pid}/ns/{k}") for k in ("net", "pid", "ipc")}


async def test_host_namespaces_and_a_host_port(cluster):
    c = cluster.client
    port = random.randint(20000, 29999)
    await c.create(pod("host", NS, grace=1, hostNetwork=True, hostPID=True, hostIPC=True,
                       containers=[container("main", SLEEP)]))
    await c.create(pod("own", NS, grace=1, shareProcessNamespace=True, containers=[
        container("main", SLEEP), container("side", SLEEP)]))
    await c.create(pod("web", NS, grace=1, containers=[container(
        "main", "httpd -f -p 8080 -h /var/www", ports=[{"containerPort": 8080, "hostPort": port}])]))
    for name in ("host", "own", "web"):
        await eventually(lambda n=name: running(c, n), 60, f"pod {name} running")
    host = await c.get("pods", "host", NS)
    node_ip = host["status"]["hostIP"]
    assert host["status"]["podIP"] == node_ip  # the node's network: the node's address

    links = "for n in net pid ipc; do readlink /proc/self/ns/$n; done"
    code, out = await sh(c, "host", links + "; cat /proc/net/dev")
    assert out.splitlines()[:3] == list(_ns_links().values()), out  # the host's namespaces
    host_ifaces = set(os.listdir("/sys/class/net"))
    assert host_ifaces <= {line.split(":")[0].strip() for line in out.splitlines() if ":" in line}, out
    code, out = await sh(c, "host", f"cat /proc/{os.getpid()}/cmdline")
    assert code == 0 and "pytest" in out  # a host process, seen from the pod
    _, main = await sh(c, "own", links, "main")
    _, side = await sh(c, "own", links, "side")
    assert main == side and not set(main.splitlines()) & set(_ns_links().values())  # the pod's own, shared

    url = f"http://{node_ip}:{port}/"
    body = await asyncio.to_thread(_get, url)
    assert "k8n busybox" in body  # the node's address and hostPort reach the pod, from the node itself
    code, out = await sh(c, "own", f"timeout 5 wget -qO- {url}", "main")
    assert code == 0 and "k8n busybox" in out, out  # from another pod
    code, out = await sh(c, "web", f"timeout 5 wget -qO- {url}")
    assert code == 0 and "k8n busybox" in out, out  # from the pod itself (hairpin)
    table = table_name(cluster.node)
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode == 0

    # an agent killed and restarted adopts them: the host pod keeps the node's network (no pod interface is made
    # in the host's namespace) and the host port is mapped again
    host_links = set(os.listdir("/sys/class/net"))
    before = (await c.get("pods", "host", NS))["status"]["containerStatuses"][0]["containerID"]
    cluster.agent.send_signal(signal.SIGKILL)
    cluster.agent.wait()
    cluster.start_agent()

    async def adopted():
        p = await c.get("pods", "host", NS)
        st = p["status"]["containerStatuses"][0]
        return st["containerID"] == before and st["restartCount"] == 0 and p["status"]["podIP"] == node_ip

    await stays(adopted, 3, "the host pod adopted, same container and address")
    assert set(os.listdir("/sys/class/net")) <= host_links
    body = await eventually(lambda: asyncio.to_thread(_get, url), 30, "the host port after the restart",
                            ignore=(OSError,))
    assert "k8n busybox" in body
    await c.delete("pods", "web", NS, grace_period_seconds=0)

    async def freed():
        try:
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
        except (urllib.error.URLError, OSError):
            return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0
        return False

    await eventually(freed, 30, "the host port freed and the node's hostport table gone")
