#!/usr/bin/env bash
# Set up everything the tests need (k8n and the test packages in k8n's virtual environment, Docker's engine, local
# images) and run the whole test suite (unit, integration, e2e) with that environment's interpreter.
# Extra arguments go to pytest (e.g. -k apiserver, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh test
bash deploy/node-deps.sh
# the tests check k8n's CA pin against openssl's own computation (kubeadm's documented command)
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
exec "${K8N_VENV:-/opt/k8n/venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"
