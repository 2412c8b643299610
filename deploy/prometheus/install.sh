#!/usr/bin/env bash
# promtool and prometheus for the alert-rule tests and the dashboard snapshot
# (deploy/grafana/render). Debian's `prometheus` package is unpacked into the cache instead of
# installed: no root, no dependencies (its web UI pulls ~240 MB of JavaScript we do not need),
# ~19 MB to download, ~95 MB on disk, a few seconds. Idempotent: a no-op when promtool is on
# PATH or already in the cache. Prints nothing on success; on a machine without apt it says what
# to install and exits 0 (the promtool test then skips and says why).
set -euo pipefail

CACHE="${KEEL_CACHE_DIR:-$HOME/.cache/keel}/prometheus"

if command -v promtool >/dev/null 2>&1 || [ -x "$CACHE/usr/bin/promtool" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "deploy/prometheus/install.sh: no apt-get/dpkg-deb here; install Prometheus 2.x" \
        "(promtool and prometheus on PATH)" >&2
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "• fetching Debian's prometheus package (promtool) into $CACHE…"
# apt-get download writes into the current directory; the package lists may be missing on a
# fresh image, so refresh them (root only) when the first try fails.
if ! (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -q >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -q >/dev/null
    fi
    (cd "$work" && apt-get download -q prometheus >/dev/null)
fi
mkdir -p "$work/root"
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$(dirname "$CACHE")"
rm -rf "$CACHE"
mv "$work/root" "$CACHE"
"$CACHE/usr/bin/promtool" --version | head -1
