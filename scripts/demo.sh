#!/usr/bin/env bash
# The main job on an embedded default: synthetic dataset -> preprocessing cache -> summary.
# Installs what it needs into .venv first. Output goes to ${1:-demo_out}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
exec .venv/bin/hbac demo --out "${1:-demo_out}"
