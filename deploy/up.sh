#!/usr/bin/env bash
# Set up k8n (its own virtual environment, Docker's engine, local images) and run an all-in-one cluster (embedded
# NATS, control plane, one node agent) in the foreground.
# Extra arguments go to `k8n up` (e.g. --data-dir DIR, --nats-port 0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh
bash deploy/node-deps.sh
exec "${K8N_VENV:-/opt/k8n/venv}/bin/k8n" up "$@"
