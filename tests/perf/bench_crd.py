"""CRD establishment: from a CustomResourceDefinition POSTed through the HTTPS gateway to the first custom resource
of it accepted (201) through the gateway, p50/p99 — what an operator's installer waits for.

Run:  python -m tests.perf.bench_crd [--n 40]

Starts ``k8n up --no-agent`` (the real runner: NATS with JetStream on disk, API server, controller manager, gateway)
in a temporary directory; the client is this process, speaking HTTPS with the kubeconfig's token, one definition at
a time, each in its own group. After the first 201 the definition is deleted (its objects and bucket go with it).
Also reported: the definition's own POST, and the first POST of its objects alone. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import ssl
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from tests.e2e.upcluster import UpCluster
from tests.perf.bench_api import pct

SCHEMA = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "size": {"type": "integer", "minimum": 0, "default": 1}, "colour": {"type": "string"}}}}}


def definition(i: int) -> dict:
    group = f"bench{i}.example.com"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": SCHEMA}}]}}


def widget(i: int) -> dict:
    return {"apiVersion": f"bench{i}.example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"colour": "blue"}}


def http_of(kubeconfig: Path) -> tuple[str, dict, ssl.SSLContext]:
    cfg = yaml.safe_load(kubeconfig.read_text())
    cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    return cluster["server"], {"Authorization": f"Bearer {user['token']}"}, ctx


async def run(n: int, k: UpCluster) -> None:
    server, headers, ctx = http_of(k.kubeconfig)
    established, crd_post, first_cr, retries = [], [], [], 0
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        for i in range(n):
            t0 = time.perf_counter()
            async with s.post(f"{server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                              json=definition(i)) as r:
                assert r.status == 201, await r.text()
            t1 = time.perf_counter()
            url = f"{server}/apis/bench{i}.example.com/v1/namespaces/default/widgets"
            while True:
                t2 = time.perf_counter()
                async with s.post(url, json=widget(i)) as r:
                    if r.status == 201:
                        break
                    retries += 1
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError(f"definition {i} not served after 30 s: {r.status} {await r.text()}")
                await asyncio.sleep(0.005)
            t3 = time.perf_counter()
            established.append(t3 - t0)
            crd_post.append(t1 - t0)
            first_cr.append(t3 - t2)
            async with s.delete(f"{server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                f"widgets.bench{i}.example.com") as r:
                assert r.status == 200, await r.text()

    def ms(xs: list[float], q: float) -> str:
        return f"{pct(xs, q) * 1000:7.1f} ms"

    print(f"conditions: k8n up --no-agent (one API server, gateway, controller manager; NATS JetStream on disk, "
          f"every write fsynced), {os.cpu_count()} CPUs, Python {platform.python_version()}, {n} definitions, "
          f"one at a time, each in its own group")
    print(f"CRD created -> first CR accepted (HTTPS gateway)  p50 {ms(established, 50)}  p99 {ms(established, 99)}")
    print(f"  of which the CRD POST                           p50 {ms(crd_post, 50)}  p99 {ms(crd_post, 99)}")
    print(f"  and the first CR POST                           p50 {ms(first_cr, 50)}  p99 {ms(first_cr, 99)}")
    print(f"CR POSTs refused before the first 201: {retries} (0: served the moment the CRD was acknowledged)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="k8n-bench-crd-") as tmp:
        k = UpCluster(Path(tmp))
        try:
            k.start(agent=False)
            asyncio.run(run(args.n, k))
        finally:
            k.stop()


if __name__ == "__main__":
    main()
