#!/usr/bin/env bash
# The Milvus server (PyPI `milvus` 2.3.5, see requirements.txt) in a venv of its own under the
# cache, outside git: ~58 MB once, then a no-op. Prints the path of `milvus-server` on stdout
# (so callers need not know the layout); what pip says goes to stderr. The venv is keyed by the
# hash of requirements.txt, so a new pin gets a fresh venv instead of an upgrade in place.
# Usage: deploy/milvus/install.sh [PYTHON]   (PYTHON builds the venv; default python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
python="${1:-python3}"
key="$(sha256sum "$req" | cut -c1-12)"
venv="${KEEL_CACHE_DIR:-$HOME/.cache/keel}/milvus-venv/$key"
server="$venv/bin/milvus-server"

if [ -x "$server" ] && [ -f "$venv/.keel-installed" ]; then
    echo "$server"
    exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
    -r "$req" >&2
touch "$venv/.keel-installed"
echo "$server"
