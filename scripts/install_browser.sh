#!/usr/bin/env bash
# Install what the browser test (tests/test_browser.py) needs: Debian's chromium and the Python playwright client.
# Never runs `playwright install` (no browser downloads): the test drives /usr/bin/chromium.
# Safe to rerun; without root/apt it prints why chromium is not installed and exits 0 (the browser test then skips).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x /usr/bin/chromium ]; then
  echo "install_browser: /usr/bin/chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
elif [ "$(id -u)" != 0 ]; then
  echo "install_browser: /usr/bin/chromium missing and not root: skipping chromium (apt-get install -y chromium as root to enable the browser test)"
elif ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: /usr/bin/chromium missing and apt-get not available: skipping chromium"
else
  echo "install_browser: installing Debian chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }; then
    echo "install_browser: apt-get could not install chromium: the browser test will skip"
  fi
fi
if [ -x .venv/bin/python ]; then
  if .venv/bin/python -c "import playwright" 2>/dev/null; then
    echo "install_browser: playwright already in .venv"
  else
    .venv/bin/python -m pip install -q playwright || echo "install_browser: pip could not install playwright: the browser test will skip"
  fi
else
  echo "install_browser: no .venv (run scripts/env.sh first): skipping playwright"
fi
exit 0
