#!/usr/bin/env bash
# Create or update the project's own virtual environment (.venv) and install hbac with its
# dev requirements. Safe to run any number of times; a rerun with nothing changed is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.hbac-installed
want=$(cat settings.ini setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import hbac, torch, nbdev" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  # torch is pinned (settings.ini): 2.13.0 is the CPU wheel; a loose requirement would pull a CUDA build
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
