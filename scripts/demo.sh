#!/usr/bin/env bash
# Installs Rubric Studio into .venv and starts the demo on http://127.0.0.1:8000 (SQLite in ./data).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e .
exec "$VENV/bin/rubric-studio" demo "$@"
