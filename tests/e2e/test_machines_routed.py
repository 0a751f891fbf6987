"""Machines on two different LANs joined by a router (tests/rig.py): ``cp`` on one runs ``k8n up --listen`` (and an
agent), ``w`` on the other joins with ``k8n join``. The router forwards between the LANs and knows nothing of pod
ranges, so host-gw cannot work there: each agent picks the VXLAN overlay for the other, and pods reach each other
across it — also with a payload far larger than one packet (the pods' MTU leaves room for the encapsulation)."""

from __future__ import annotations

import json

import pytest

from tests.harness import NEEDS_DOCKER
from tests.rig import K8N, Rig, nodes_ready
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

WEB = ("mkdir -p /www; echo $HOSTNAME > /www/index.html; head -c 300000 /dev/zero > /www/big; "
       "exec httpd -f -p 8080 -h /www")


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    rig = Rig(tmp_path_factory.mktemp("routed"))
    try:
        lan_a, lan_b = rig.lan(host_address=True), rig.lan()
        rig.router("rt", lan_a, lan_b)
        cp_m = rig.machine("cp", lan_a, hostname=f"cp-{rig.run}")
        w = rig.machine("w", lan_b, hostname=f"w-{rig.run}")
        cp = rig.start_control_plane(cp_m)
        rig.start_worker(w, cp, join=True)
        yield rig, cp, w
        for pod in ("a", "b"):
            cp.k8n("delete", "pod", pod, "--grace-period", "0")
        eventually_sync(lambda: not rig.containers(), 30, "the pods' containers to go")
    finally:
        left = rig.cleanup()
        assert not left, left


def pod(name: str, node: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "routed"}},
                       "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [{
                           "name": "web", "image": "k8n/busybox:latest", "command": ["sh", "-c", WEB]}]}})


def test_pods_on_two_subnets_reach_each_other_over_vxlan(routed):
    rig, cp, w = routed
    eventually_sync(lambda: nodes_ready(cp).get(w.hostname) == "True", 60, "w's node Ready")
    for name, node in (("a", cp.machine.hostname), ("b", w.hostname)):
        made = cp.machine.run([K8N, "apply", "-f", "-"], env={"K8N_DATA_DIR": str(cp.data)}, input=pod(name, node))
        assert made.returncode == 0, made.stderr

    def ips() -> dict[str, str] | None:
        out = json.loads(cp.k8n("get", "pods", "-l", "app=routed", "-o", "json").stdout)["items"]
        got = {p["metadata"]["name"]: p["status"].get("podIP") for p in out if p["status"].get("phase") == "Running"}
        return got if len(got) == 2 and all(got.values()) else None

    addr = eventually_sync(ips, 90, "both pods Running with an IP")

    # each machine routes the other's pods through the overlay device, not via the other's LAN address
    for machine, other in ((cp.machine, addr["b"]), (w, addr["a"])):
        route = machine.run(["ip", "route", "get", other]).stdout
        assert "dev k8n.vx" in route, route

    def fetch(from_pod: str, to_ip: str, path: str = "") -> str:
        r = cp.k8n("exec", from_pod, "--", "sh", "-c", f"timeout 5 wget -qO- http://{to_ip}:8080/{path}")
        return r.stdout if r.returncode == 0 else ""

    assert eventually_sync(lambda: fetch("b", addr["a"]).strip(), 30, "w's pod to reach cp's") == "a"
    assert eventually_sync(lambda: fetch("a", addr["b"]).strip(), 30, "cp's pod to reach w's") == "b"
    big = cp.k8n("exec", "a", "--", "sh", "-c", f"timeout 10 wget -qO- http://{addr['b']}:8080/big | wc -c")
    assert big.stdout.strip() == "300000", big.stderr
    mtu = cp.k8n("exec", "b", "--", "cat", "/sys/class/net/eth0/mtu").stdout.strip()
    assert int(mtu) <= 1450  # room for the 50 bytes of VXLAN encapsulation on a 1500-byte LAN
