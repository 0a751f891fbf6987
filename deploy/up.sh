#!/usr/bin/env bash
# Set up k8n (Python packages, Docker's engine, local images) and run an all-in-one cluster (embedded NATS,
# control plane, one node agent) in the foreground.
# Extra arguments go to `k8n up` (e.g. --data-dir DIR, --nats-port 0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh
bash deploy/node-deps.sh
exec "${PYTHON:-python3}" -m bus.cli up "$@"
