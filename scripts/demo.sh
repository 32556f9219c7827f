#!/usr/bin/env bash
# Install footfall into .venv and run the simulated-store demo end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[broker]'
exec .venv/bin/footfall-agent demo "$@"
