#!/usr/bin/env bash
# Set up everything the tests need (Python packages, Docker's engine, local images) and run the whole
# test suite (unit, integration, e2e).
# Extra arguments go to pytest (e.g. -k apiserver, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh test
bash deploy/node-deps.sh
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider "$@"
