"""Port-forward throughput and connection setup: one ``k8n up`` with one node agent, a pod serving a file with
busybox ``httpd``; downloads through ``kubectl port-forward`` (SPDY in a WebSocket → gateway → NATS → agent → the pod's
loopback) with 1 and 4 parallel connections, the time to first byte of small requests, and the Python client's
``portforward``. Root only (Docker).

    python -m tests.perf.bench_portforward [--mib 32] [--requests 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes.stream import portforward

from tests.builders import container, pod
from tests.e2e.test_portforward import Forward, _python_client
from tests.e2e.upcluster import UpCluster
from tests.waiting import eventually_sync


def download(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as r:
        return len(r.read())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.perf.bench_portforward", description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=32, help="size of the file downloaded")
    p.add_argument("--requests", type=int, default=20, help="small requests for the setup latency")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("needs root (Docker)")
    script = (f"mkdir -p /www && echo hi > /www/small && dd if=/dev/zero of=/www/big bs=1048576 count={args.mib} "
              "2>/dev/null && exec httpd -f -p 80 -h /www")
    with tempfile.TemporaryDirectory() as tmp:
        c = UpCluster(Path(tmp))
        try:
            c.start()
            c.kubectl("apply", "-f", "-", input=json.dumps(pod("web", ns=None, grace=1,
                                                                containers=[container("web", script)])))
            eventually_sync(lambda: c.kubectl("exec", "web", "--", "wget", "-qO-", "http://127.0.0.1/small",
                                              check=False).stdout.strip() == "hi", 60, "pod web serving")
            fwd = Forward(c, 80)
            try:
                print(f"conditions: 1 node agent, gateway and agent on this host ({os.cpu_count()} CPUs), "
                      f"{args.mib} MiB file, busybox httpd")
                for parallel in (1, 4):
                    t0 = time.perf_counter()
                    with ThreadPoolExecutor(parallel) as ex:
                        total = sum(ex.map(lambda _: download(fwd.local, "/big"), range(parallel)))
                    took = time.perf_counter() - t0
                    print(f"kubectl port-forward, {parallel} connection(s): {total / took / 2**20:.1f} MiB/s "
                          f"({total / 2**20:.0f} MiB in {took:.2f}s)")
                latencies = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    download(fwd.local, "/small")
                    latencies.append((time.perf_counter() - t0) * 1000)
                latencies.sort()
                print(f"kubectl port-forward, new connection + small GET: p50 {statistics.median(latencies):.1f} ms, "
                      f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms ({args.requests} requests)")
            finally:
                fwd.stop()
            core = _python_client(c)
            t0 = time.perf_counter()
            pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="80")
            sock = pf.socket(80)
            sock.setblocking(True)
            sock.sendall(b"GET /big HTTP/1.0\r\n\r\n")
            total = 0
            while chunk := sock.recv(1 << 16):
                total += len(chunk)
            took = time.perf_counter() - t0
            pf.close()
            print(f"Python client portforward, 1 connection: {total / took / 2**20:.1f} MiB/s")
        finally:
            c.stop()


if __name__ == "__main__":
    main()
