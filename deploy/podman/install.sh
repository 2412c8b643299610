#!/usr/bin/env bash
# Install podman (with runc) and mmdebstrap, the tools that build and run Keel's images on
# machines without a Docker engine. Idempotent and quiet when everything is already there.
#   bash deploy/podman/install.sh
set -euo pipefail

# netavark + aardvark-dns: compose services find each other by name (the CNI backend Debian
# picks by default has no DNS plugin installed).
PACKAGES=(podman runc mmdebstrap uidmap slirp4netns fuse-overlayfs netavark aardvark-dns)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("${pkg}")
done
((${#missing[@]} == 0)) && exit 0

echo "podman: installing ${missing[*]}" >&2
SUDO=()
[[ "$(id -u)" == 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
