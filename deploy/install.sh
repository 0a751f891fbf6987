#!/usr/bin/env bash
# Install k8n and what it needs on a fresh Debian machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "k8n needs Python >= 3.11 ($PY is older or missing)" >&2
  exit 1
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3-pip python3-venv
fi
export PIP_BREAK_SYSTEM_PACKAGES=1
extras="${1:-}"
"$PY" -m pip install --disable-pip-version-check -q -e ".${extras:+[$extras]}"
