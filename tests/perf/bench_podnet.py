"""Pod-to-pod TCP throughput: two pods on one node, on two nodes with host-gw routes, on two nodes over the VXLAN
overlay (on one LAN, and across a router). Simulated nodes (network namespaces, tests/netsim.py) running the
real PodNetwork; one TCP stream of a Python sender for a few seconds per case (iperf3 is not installed here).
Root only.

    python -m tests.perf.bench_podnet [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.netsim import Lab, ip_json

RECEIVER = """
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7778)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); total = 0; buf = bytearray(1 << 18); started = None
while n := c.recv_into(buf):
    started = started or time.perf_counter(); total += n
print(total, time.perf_counter() - started)
"""
SENDER = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7778)); chunk = b"x" * (1 << 18)
end = time.perf_counter() + float(sys.argv[2])
while time.perf_counter() < end:
    c.sendall(chunk)
c.close()
"""


def throughput(server: tuple[str, str], client_ns: str, seconds: float) -> float:
    """Gbit/s of one TCP stream from ``client_ns`` to the pod ``server`` (netns, IP)."""
    receiver = subprocess.Popen(["ip", "netns", "exec", server[0], sys.executable, "-c", RECEIVER],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", SENDER, server[1], str(seconds)],
                       check=True, timeout=seconds + 30)
        total, took = receiver.communicate(timeout=30)[0].split()
        return int(total) * 8 / float(took) / 1e9
    finally:
        receiver.kill()
        receiver.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench_podnet", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of sending per case")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("needs root (creates network namespaces)")
    with tempfile.TemporaryDirectory(prefix="k8n-bench-podnet-") as state:
        run(Lab(Path(state)), args.seconds)


def run(lab: Lab, seconds: float) -> None:
    try:
        lan_a, lan_b = lab.lan("172.31.241.0/24"), lab.lan("172.31.242.0/24")
        h0, h1 = lab.node(lan_a, "10.244.241.0/24", "host-gw"), lab.node(lan_a, "10.244.242.0/24", "host-gw")
        v0, v1 = lab.node(lan_a, "10.244.243.0/24", "vxlan"), lab.node(lan_a, "10.244.244.0/24", "vxlan")
        a0, a1 = lab.node(lan_a, "10.244.245.0/24"), lab.node(lan_b, "10.244.246.0/24")
        for pair in ((h0, h1), (v0, v1), (a0, a1)):
            lab.sync(*pair)
        same = lab.pod(h0), lab.pod(h0)
        cases = [("same node (one bridge)", same),
                 ("host-gw, two nodes on one LAN", (lab.pod(h0), lab.pod(h1))),
                 ("VXLAN, two nodes on one LAN (forced)", (lab.pod(v0), lab.pod(v1))),
                 ("VXLAN, two nodes behind a router (auto)", (lab.pod(a0), lab.pod(a1))),
                 ("underlay alone: node to node across the router", ((a0.name, a0.ip), (a1.name, a1.ip)))]
        assert ip_json(a0.name, "route", "show", "exact", a1.pod_cidr)[0]["dev"] == "k8n.vx"
        print(f"pod-to-pod TCP throughput: one stream, Python sender/receiver (256 KiB writes), {seconds:g} s "
              f"per case; kernel {platform.release()}, {os.cpu_count()} CPUs; nodes are network namespaces on "
              f"one machine (underlay veths at MTU 1500, a router namespace with a port on each of the two LANs)")
        print(f"{'case':48} {'MTU':>6} {'Gbit/s':>8}")
        for label, (client, server) in cases:
            (eth0,) = ip_json(client[0], "link", "show", "eth0")
            gbps = throughput(server, client[0], seconds)
            print(f"{label:48} {eth0['mtu']:>6} {gbps:>8.2f}")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
