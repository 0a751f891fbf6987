#!/usr/bin/env bash
# Set up everything the tests need (k8n and the test packages in k8n's virtual environment, Docker's engine, local
# images) and run the whole test suite (unit, integration, e2e) with that environment's interpreter.
# Extra arguments go to pytest (e.g. -k apiserver, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh test
bash deploy/node-deps.sh
exec "${K8N_VENV:-/opt/k8n/venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"
