"""What Pod Security admission costs the API server per pod: the evaluation of one pod (and of a Deployment's
template) at each level, in process — no bus, no store (the namespace labels come from the API server's watched
cache, so admission adds no read).

Run:  python -m tests.perf.bench_podsecurity           (200,000 evaluations per case)
      python -m tests.perf.bench_podsecurity --quick   (20,000)

Prints µs per evaluation with the conditions. Not a pass/fail test."""

from __future__ import annotations

import argparse
import platform
import time

from master.apiserver.podsecurity import evaluate_pod
from master.apiserver.podsecurity.api import LevelVersion, Version

PLAIN = {"containers": [{"name": "app", "image": "k8n/busybox:latest", "ports": [{"containerPort": 80}]},
                        {"name": "sidecar", "image": "k8n/busybox:latest"}],
         "volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "tmp", "emptyDir": {}}]}
HARDENED_CONTAINER = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                      "seccompProfile": {"type": "RuntimeDefault"}}
HARDENED = {**PLAIN, "containers": [{**c, "securityContext": HARDENED_CONTAINER} for c in PLAIN["containers"]]}
CASES = (("baseline:latest, plain pod (allowed)", LevelVersion("baseline"), PLAIN),
         ("restricted:latest, plain pod (4 violations)", LevelVersion("restricted"), PLAIN),
         ("restricted:latest, hardened pod (allowed)", LevelVersion("restricted"), HARDENED),
         ("restricted:v1.22, hardened pod (allowed)", LevelVersion("restricted", Version(22)), HARDENED))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    n = 20_000 if p.parse_args().quick else 200_000
    print(f"Pod Security evaluation, {n} evaluations per case, one process "
          f"(Python {platform.python_version()}, {platform.machine()})")
    meta = {"name": "web-1", "labels": {"app": "web"}}
    for label, lv, spec in CASES:
        evaluate_pod(lv, meta, spec)  # warm the per-version check list
        t0 = time.perf_counter()
        for _ in range(n):
            evaluate_pod(lv, meta, spec)
        us = (time.perf_counter() - t0) / n * 1e6
        print(f"  {label:<45} {us:7.1f} µs per pod")


if __name__ == "__main__":
    main()
