#!/usr/bin/env bash
# Set up k8n and run an all-in-one cluster (embedded NATS + control plane) in the foreground.
# Extra arguments go to `k8n up` (e.g. --data-dir DIR, --nats-port 0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh
exec "${PYTHON:-python3}" -m bus.cli.main up "$@"
