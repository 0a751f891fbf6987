#!/usr/bin/env bash
# Install k8n and what it needs on a fresh Debian machine (idempotent), into its own virtual environment so the
# system Python and whatever else is installed there stay untouched.
#   K8N_VENV  where the environment lives (default /opt/k8n/venv); `k8n` is linked into K8N_BIN (default
#             /usr/local/bin) so it is on PATH.
# Usage: deploy/install.sh [EXTRAS]   (e.g. `test` for the test packages)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${K8N_VENV:-/opt/k8n/venv}"
BIN="${K8N_BIN:-/usr/local/bin}"
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "k8n needs Python >= 3.11 ($PY is older or missing)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  # Debian's python3 has venv without ensurepip unless python3-venv is installed
  if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
extras="${1:-}"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -e ".${extras:+[$extras]}"
mkdir -p "$BIN"
ln -sf "$VENV/bin/k8n" "$BIN/k8n"
# the web view's tests (tests/e2e/test_ui.py) drive Debian's headless chromium through its chromedriver
if [[ ",$extras," == *",test,"* ]] && ! command -v chromedriver >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
