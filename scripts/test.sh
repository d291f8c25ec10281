#!/usr/bin/env bash
# Run every test: notebooks and library in sync, notebooks clean, all notebooks (nbdev_test), then pytest tests/.
# Installs what it needs into .venv first. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
bash scripts/install_browser.sh          # Debian chromium for the JupyterLab browser test (skips with a reason if it cannot)
export PATH="$PWD/.venv/bin:$PATH"
export MPLBACKEND=Agg
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # two notebooks run at once on 2 cores: one torch thread each
export HBAC_SCREENSHOT_DIR="${HBAC_SCREENSHOT_DIR:-$PWD/test_screenshots}"   # where the browser test saves its screenshot
if git rev-parse --git-dir >/dev/null 2>&1; then
  before=$(git status --porcelain -- hbac nbs README.md)
  nbdev_export
  nbdev_clean
  python scripts/docs.py readme
  after=$(git status --porcelain -- hbac nbs README.md)
  if [ "$before" != "$after" ]; then
    echo "nbdev_export/nbdev_clean/scripts/docs.py readme changed files: the notebooks are the source and must be exported and cleaned before commit:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
  fi
fi
nbdev_test --n_workers 2 --timing
python -m pytest -q -n 2 --dist loadfile tests "$@"   # two pytest workers (pytest-xdist), one file per worker: module fixtures are built once
