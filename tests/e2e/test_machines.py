"""k8n on three machines (network namespaces with their own hostnames on one LAN bridge, tests/rig.py): the control
plane started by ``k8n up --listen <LAN IP>`` on ``cp``, a node agent started by hand on ``w1``, ``k8n join`` on ``w2``
(tests/e2e/machines.py). Checked as a user checks a cluster of machines: the Nodes are the machines, pods on different
machines reach each other, a Service answers by ClusterIP and by DNS name from a pod on every machine, the
``kubernetes`` Service reaches the API from every machine, a NodePort answers on every machine's LAN address from
another machine, an Ingress answers on the machines that run an ingress controller (``k8n up``'s and ``k8n join``'s).
Each web pod's httpd answers with its own name, so every check reads which pod answered. The rig itself: two LANs joined
by a router, a machine's link down and up, a killed rig swept by the next one."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import pytest_asyncio

from bus import nodeclient
from bus.proc import die_with_parent
from tests import builders
from tests.builders import container
from tests.e2e.machines import Machines
from tests.e2e.test_services import endpoints_ready
from tests.harness import NEEDS_DOCKER
from tests.rig import ROOT, Machine, Rig, rule_tag, sh
from tests.waiting import eventually

pytestmark = [*NEEDS_DOCKER, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

WEB = "mkdir -p /www; echo $HOSTNAME > /www/index.html; touch /www/ready; exec httpd -f -p 8080 -h /www"
GET = "timeout 3 wget -qO- http://{}/"  # busybox 1.35's wget -T segfaults (networking notes)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web(machines: Machines) -> dict[str, str]:
    """A Deployment ``web`` with a pod on every machine (3 replicas, spread), a ClusterIP Service ``web`` (80 → 8080)
    and a NodePort Service ``web-np``; returns pod name → node name, once every pod is Ready and both Services have
    their 3 endpoints."""
    client = machines.client
    probe = {"exec": {"command": ["test", "-f", "/www/ready"]}, "periodSeconds": 1, "failureThreshold": 1}
    await client.create(builders.deployment("web", replicas=3, grace=1, containers=[container(
        "web", WEB, ports=[{"name": "http", "containerPort": 8080}], readinessProbe=probe)]))
    await client.create(builders.service("web", selector={"app": "web"}))
    await client.create(builders.service("web-np", selector={"app": "web"}, type="NodePort",
                                         ports=[{"port": 80, "targetPort": 8080}]))

    async def placed() -> dict[str, str] | None:
        pods = (await client.list("pods", "default", label_selector="app=web"))[0]
        ready = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods
                 if is_ready(p) and not p["metadata"].get("deletionTimestamp")}
        return ready if len(ready) == 3 else None

    pods = await eventually(placed, 90, lambda: f"3 web pods Ready\n{machines.logs()}")
    for svc in ("web", "web-np"):
        await eventually(lambda: endpoints_ready(client, svc, 3), 30, f"3 endpoints of {svc}")
    return pods


def is_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


async def pod_ips(client) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"]
            for p in (await client.list("pods", "default", label_selector="app=web"))[0]}


async def in_pod(client, pod: str, script: str) -> str:
    """What ``k8n exec POD -- sh -c SCRIPT`` prints (the exec reaches the pod's node over the bus)."""
    session = await nodeclient.exec_(client, "default", pod, ["sh", "-c", script])
    return b"".join([d async for _s, d in session]).decode()


# ---- the rig itself -------------------------------------------------------------------------------------------------

def reaches(src: Machine, ip: str, attempts: int = 3) -> bool:
    """Whether ``src`` pings ``ip`` (the first packet may wait for ARP)."""
    return any(src.run(["busybox", "ping", "-c1", "-W1", ip]).returncode == 0 for _ in range(attempts))


async def test_the_rig_routes_two_lans_through_a_router_and_a_downed_link_cuts_a_machine_off(tmp_path):
    rig = Rig(tmp_path)
    try:
        lan_a, lan_b = rig.lan(), rig.lan()
        assert not lan_a.network.overlaps(lan_b.network)
        router = rig.router("router", lan_a, lan_b)
        a, b = rig.machine("a", lan_a), rig.machine("b", lan_b)
        assert a.run(["ip", "route", "show", "default"]).stdout.split()[:3] == ["default", "via", router.ip_on(lan_a)]
        assert a.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"
        assert reaches(a, b.ip) and reaches(b, a.ip), "machines on two LANs reach each other through the router"
        a.link_down()
        assert not reaches(b, a.ip, attempts=1), "a machine whose link is down is unreachable"
        a.link_up()
        assert reaches(b, a.ip)
        names = (a.netns, b.netns, router.netns)
    finally:
        rig.cleanup()
    assert not set(names) & set(sh("ip", "netns", "list").stdout.split())
    assert not any(rig.tag in rule for rule in sh("iptables", "-S", "DOCKER-USER").stdout.splitlines())
    assert sh("ip", "link", "show", lan_a.bridge, check=False).returncode != 0


BUILD_AND_HANG = """
import sys, time
from pathlib import Path
from tests.rig import Rig
rig = Rig(Path(sys.argv[1]))
lan = rig.lan()
rig.machine("a", lan)
print(rig.run, lan.bridge, flush=True)
time.sleep(600)
"""


async def test_a_rig_whose_process_was_killed_is_swept_by_the_next_one(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", BUILD_AND_HANG, str(tmp_path / "killed")], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, preexec_fn=die_with_parent)
    try:
        run, bridge = proc.stdout.readline().split()
    finally:
        proc.kill()  # no cleanup of its own
        proc.wait()
    assert f"t-{run}-a" in sh("ip", "netns", "list").stdout.split()
    Rig(tmp_path / "next").cleanup()
    assert f"t-{run}-a" not in sh("ip", "netns", "list").stdout.split()
    assert sh("ip", "link", "show", bridge, check=False).returncode != 0
    assert rule_tag(run) not in sh("iptables", "-S", "DOCKER-USER").stdout


# ---- the machines ---------------------------------------------------------------------------------------------------

async def test_every_machine_is_a_ready_node_named_after_its_hostname_with_its_lan_address(machines):
    for m in machines.all:  # the rig itself: each machine's processes see its own hostname
        assert m.run(["hostname"], check=True).stdout.strip() == m.hostname
        assert m.run([sys.executable, "-c", "import socket; print(socket.gethostname())"],
                     check=True).stdout.strip() == m.hostname
    nodes = {n["metadata"]["name"]: n for n in (await machines.client.list("nodes"))[0]}
    assert set(nodes) == {m.hostname for m in machines.all}
    for m in machines.all:
        status = nodes[m.hostname]["status"]
        assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
        addresses = {a["type"]: a["address"] for a in status["addresses"]}
        assert addresses == {"InternalIP": m.ip, "Hostname": m.hostname}
    cidrs = [n["spec"].get("podCIDR") for n in nodes.values()]
    assert None not in cidrs and len(set(cidrs)) == 3, f"each node has its own podCIDR: {cidrs}"
    # the CLI on the control-plane machine sees them too, with their LAN addresses
    out = machines.cp.k8n("get", "nodes", "-o", "wide")
    assert out.returncode == 0, out.stderr
    for m in machines.all:
        assert any(line.split()[0] == m.hostname and m.ip in line.split() for line in out.stdout.splitlines()[1:])


# ---- pods, Services, DNS, NodePorts ---------------------------------------------------------------------------------

async def test_a_deployment_spreads_over_the_machines_and_its_pods_reach_each_other_by_pod_ip(machines, web):
    assert sorted(web.values()) == sorted(m.hostname for m in machines.all), f"one pod per machine: {web}"
    ips = await pod_ips(machines.client)
    for pod in web:
        others = [p for p in web if p != pod]
        out = await in_pod(machines.client, pod, "; ".join(GET.format(f"{ips[o]}:8080") for o in others))
        assert out.split() == others, f"{pod} on {web[pod]} reaching {others} on the other machines: {out!r}"


async def test_a_service_answers_by_cluster_ip_and_dns_name_from_a_pod_on_every_machine(machines, web):
    svc = await machines.client.get("services", "web", "default")
    cluster_ip = svc["spec"]["clusterIP"]
    for pod, node in web.items():
        for target in (cluster_ip, "web", "web.default.svc.cluster.local"):
            out = await in_pod(machines.client, pod, "; ".join([GET.format(target)] * 12))
            answers = out.split()
            assert len(answers) == 12 and set(answers) <= set(web), f"{pod} on {node} → {target}: {out!r}"
            assert {web[a] for a in answers} - {node}, f"{pod} on {node} → {target}: only its own machine answered"


READYZ = """
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
print(urllib.request.urlopen("https://10.96.0.1/readyz", context=ctx, timeout=5).read().decode())
"""


async def test_the_kubernetes_service_reaches_the_api_on_the_control_plane_machine_from_every_machine(machines):
    ep = await machines.client.get("endpoints", "kubernetes", "default")
    assert [(a["ip"], p["port"]) for s in ep.get("subsets") or [] for a in s["addresses"] for p in s["ports"]] == [
        (machines.cp.machine.ip, 6443)], "the API's endpoint is the control-plane machine's LAN address"
    for m in machines.all:  # through each machine's service proxy, the certificate checked against the cluster CA
        out = await asyncio.to_thread(m.run, [sys.executable, "-c", READYZ, str(machines.cp.data / "pki" / "ca.crt")])
        assert out.stdout.strip() == "ok", f"{m.name} → https://10.96.0.1/readyz: {out.stdout!r} {out.stderr[-500:]}"


async def test_a_node_port_answers_on_every_machines_lan_address_from_another_machine(machines, web):
    svc = await machines.client.get("services", "web-np", "default")
    port = svc["spec"]["ports"][0]["nodePort"]
    everyone = machines.all
    for i, target in enumerate(everyone):
        client = everyone[(i + 1) % len(everyone)]
        script = "; ".join([f"timeout 3 wget -qO- http://{target.ip}:{port}/"] * 9)
        out = await asyncio.to_thread(client.run, ["sh", "-c", script], timeout=60)
        answers = out.stdout.split()
        assert len(answers) == 9 and set(answers) <= set(web), \
            f"{client.name} → {target.name} {target.ip}:{port}: {out.stdout!r} {out.stderr!r}"
        assert len(set(answers)) > 1, f"NodePort on {target.name} reaches more than one machine's pod: {answers}"


# ---- Ingress ------------------------------------------------------------------------------------------------------

async def test_an_ingress_answers_on_every_machine_whose_node_serves_ingress(machines, web):
    """``k8n up``'s machine and the one that ran ``k8n join`` run an ingress controller (haproxy on port 80 of their
    LAN address, credentials signed with the join); the agent started by hand runs none. Each serving machine's
    address is in the Ingress's status, and a request to it from another machine reaches the web pods."""
    client = machines.client
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    await client.create({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                         "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"rules": [{"host": "web.example", "http": {"paths": [
                             {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}})
    serving = [machines.cp.machine, *(w for w in machines.workers if w.joined_with)]
    assert len(serving) == 2, "the rig has a joined worker"
    want = sorted(m.ip for m in serving)

    async def listed() -> list[str] | None:
        got = await client.get("ingresses", "web", "default")
        ips = sorted(i.get("ip", "") for i in ((got.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                     or [])
        return ips if ips == want else None

    await eventually(listed, 60, lambda: f"the Ingress's addresses {want}\n{machines.logs()}")
    try:
        for target in serving:
            src = next(m for m in machines.all if m is not target)
            script = "; ".join([f"timeout 3 wget -qO- --header 'Host: web.example' http://{target.ip}/"] * 6)

            async def answered() -> list[str] | None:
                out = await asyncio.to_thread(src.run, ["sh", "-c", script], timeout=60)
                answers = out.stdout.split()
                return answers if len(answers) == 6 else None

            answers = await eventually(answered, 30, f"{src.name} → ingress on {target.name} {target.ip}:80")
            assert set(answers) <= set(web), f"{src.name} → ingress on {target.name}: {answers}"
            other = await asyncio.to_thread(src.run, ["sh", "-c", f"timeout 3 wget -qO- --header 'Host: nope.example' "
                                                                  f"http://{target.ip}/"], timeout=30)
            assert other.returncode != 0 and not other.stdout, "a host no Ingress names is not served"
    finally:
        await client.delete("ingresses", "web", "default")
