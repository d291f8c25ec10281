#!/usr/bin/env bash
# The main job on an embedded default: synthetic dataset -> preprocessing cache -> smoke recipe (fold 0, four models)
# -> submission.csv and its KL on the synthetic test labels -> attributions and figures.
# Installs what it needs into .venv first. Output goes to ${1:-demo_out}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
exec .venv/bin/hbac demo --out "${1:-demo_out}"
