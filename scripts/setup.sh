#!/usr/bin/env bash
# Create .venv at the repository root and install the project with its test tools.
# Safe to run again. TORCH_INDEX_URL picks another torch index (see README, "torch and GPUs");
# TORCH_BUILD=cpu makes the small install: torch's CPU wheel and no Coqui TTS (it needs torchaudio).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python 3.11 or newer is needed as '$PYTHON' (set PYTHON=...)" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first and on its own, so that the build chosen here is kept by the next step. PyPI's torch 2.14.1
# (a CUDA 13 build, which runs on CPU-only machines too) is the one PyPI's torchaudio loads beside.
case "${TORCH_BUILD:-default}" in
    default) torch=torch==2.14.1 extras=test,bench,coqui ;;
    cpu) torch=torch==2.13.0 extras=test,bench ;;
    *) echo "setup: TORCH_BUILD is 'default' or 'cpu', not '$TORCH_BUILD'" >&2; exit 1 ;;
esac
"${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$torch"
"${pip[@]}" -e ".[$extras]"
touch .venv/.installed
# Debian packages: chromium for the browser tests (driven through Playwright; a browser is never
# downloaded), Dovecot, the IMAP server the IMAP tests start on 127.0.0.1; for Coqui TTS, espeak-ng (the
# phonemes of its VITS voices) and FFmpeg's libraries (torchaudio decodes an XTTS speaker reference with
# them). espeak-ng is also the second voice of the two-party test calls (bench/calls.py).
needed=()
command -v chromium >/dev/null 2>&1 || needed+=(chromium)
[ -x /usr/sbin/dovecot ] || needed+=(dovecot-imapd)
command -v espeak-ng >/dev/null 2>&1 || needed+=(espeak-ng)
[ "$extras" = test ] || command -v ffmpeg >/dev/null 2>&1 || needed+=(ffmpeg)
if [ ${#needed[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); else apt=(sudo -n apt-get); fi
    log=$(mktemp)
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
        echo "setup: installing ${needed[*]} (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine may have no package lists yet: update only when the first try fails.
        "${apt[@]}" install -y -q "${needed[@]}" >"$log" 2>&1 \
            || { "${apt[@]}" update -q >>"$log" 2>&1 && "${apt[@]}" install -y -q "${needed[@]}" >>"$log" 2>&1; } \
            || tail -n 3 "$log" >&2
    fi
    rm -f "$log"
fi
command -v chromium >/dev/null 2>&1 || echo "setup: chromium is not installed, so the browser tests" \
    "(tests/test_browser.py) will fail; it needs Debian's package: 'apt-get install chromium' as root" >&2
[ -x /usr/sbin/dovecot ] || echo "setup: Dovecot is not installed, so the IMAP tests (tests/test_imap.py)" \
    "will fail; it needs Debian's package: 'apt-get install dovecot-imapd' as root" >&2
for tool in espeak-ng ffmpeg; do
    [[ " ${needed[*]} " != *" $tool "* ]] || command -v "$tool" >/dev/null 2>&1 || echo "setup: $tool is not" \
        "installed, so Coqui TTS voices and the two-party call tests will fail; it needs Debian's package:" \
        "'apt-get install $tool' as root" >&2
done
echo "setup: ready (.venv/bin/support-agent)"
