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
echo "setup: ready (.venv/bin/support-agent)"
