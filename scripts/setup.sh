#!/usr/bin/env bash
# Create .venv at the repository root and install the project with its test tools.
# Safe to run again. TORCH_INDEX_URL picks another torch build (see README: GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python 3.11 or newer is needed as '$PYTHON' (set PYTHON=...)" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first and on its own, so that a CPU or CUDA build chosen here is kept by the next step.
"${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
"${pip[@]}" -e ".[test]"
touch .venv/.installed
# The browser tests drive Debian's chromium through Playwright; a browser is never downloaded. espeak-ng is
# the second voice of the two-party test calls (bench/calls.py).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); else apt=(sudo -n apt-get); fi
    log=$(mktemp)
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
        echo "setup: installing ${missing[*]} for the tests (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine may have no package lists yet: update only when the first try fails.
        "${apt[@]}" install -y -q "${missing[@]}" >"$log" 2>&1 \
            || { "${apt[@]}" update -q >>"$log" 2>&1 && "${apt[@]}" install -y -q "${missing[@]}" >>"$log" 2>&1; } \
            || tail -n 3 "$log" >&2
    fi
    rm -f "$log"
    command -v chromium >/dev/null 2>&1 || echo "setup: chromium is not installed, so the browser tests" \
        "(tests/test_browser.py) will fail; it needs Debian's package: 'apt-get install chromium' as root" >&2
    command -v espeak-ng >/dev/null 2>&1 || echo "setup: espeak-ng is not installed, so the two-party call tests" \
        "(tests/test_diarization.py) will fail; it needs Debian's package: 'apt-get install espeak-ng' as root" >&2
fi
echo "setup: ready (.venv/bin/support-agent)"
