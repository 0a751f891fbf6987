#!/usr/bin/env bash
# Try k8n "on three machines" on this one host (as root): three network namespaces with their own hostnames (cp, w1,
# w2) on a LAN bridge, `k8n up --listen <cp's LAN IP>` on cp and node agents on w1 and w2 (tests/rig.py). It prints
# how to use the cluster and removes everything (pods, namespaces, bridge, iptables rules) on Ctrl-C.
# Extra arguments go to `python -m tests.rig up` (--workers N, --dir DIR). It holds /tmp/k8n-e2e.lock while it runs:
# the end-to-end tests wait for it (their leak check would count its namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh
bash deploy/node-deps.sh
exec flock /tmp/k8n-e2e.lock "${K8N_VENV:-/opt/k8n/venv}/bin/python" -m tests.rig up "$@"
