#!/usr/bin/env bash
# Debian's chromium for the approval inbox's browser test (Playwright drives it through
# executable_path; no browser is ever downloaded by Playwright). Idempotent: a quick no-op when
# /usr/bin/chromium is already there. Needs root (or sudo) and apt; on anything else it says
# what to install and exits 0, so `make install` never fails for want of a browser — the
# browser test then skips and says why.
set -euo pipefail

CHROMIUM="${KEEL_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "deploy/browser/install.sh: no apt-get here; install chromium yourself (the browser" \
        "test looks for $CHROMIUM)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "deploy/browser/install.sh: not root and no sudo; run: apt-get install chromium" >&2
        exit 0
    fi
fi
echo "• installing Debian's chromium (for the inbox browser test)…"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing on a fresh image; refresh them only when the install fails.
if ! $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
"$CHROMIUM" --version
