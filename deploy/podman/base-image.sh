#!/usr/bin/env bash
# Make Keel's local base images from Debian's packages, for machines that cannot pull registry
# images (docs/containers.md):
#   localhost/keel-base:bookworm      python3 + venv + ca-certificates (the services' base)
#   localhost/keel-base-jre:bookworm  the same + openjdk-17-jre-headless (the Kafka image's base)
# Each root filesystem is built once with mmdebstrap into a tarball in the cache and imported
# only when the image is missing, so a second run does nothing.
#   bash deploy/podman/base-image.sh [python|jre|all]
set -euo pipefail
# shellcheck source=deploy/podman/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

SUITE=bookworm
mkdir -p "${KEEL_PODMAN_DIR}"
# One maker at a time (`make images` and the tests may start together); the second one waits
# and then finds the image there.
exec 9>"${KEEL_PODMAN_DIR}/base-image.lock"
flock 9
COMMON=python3,python3-venv,ca-certificates

make_base() {
  local image="$1" include="$2" tarball="${KEEL_PODMAN_DIR}/$3-${SUITE}.tar"
  keel_podman image exists "${image}" && return 0
  if [[ ! -s "${tarball}" ]]; then
    echo "base-image: mmdebstrap ${SUITE} (${include}) -> ${tarball}" >&2
    # --variant=apt: a minimal system with apt but no "important" packages; docs and
    # locales are dropped to keep the image small.
    mmdebstrap --quiet --variant=apt --include="${include}" \
      --dpkgopt='path-exclude=/usr/share/{doc,man,info,locale}/*' \
      --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --aptopt='APT::Install-Recommends "false"' \
      "${SUITE}" "${tarball%.tar}.part.tar"  # mmdebstrap picks the format from the suffix
    mv "${tarball%.tar}.part.tar" "${tarball}"
  fi
  keel_podman import --quiet \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
    "${tarball}" "${image}" >/dev/null
  echo "base-image: imported ${image}" >&2
}

case "${1:-all}" in
  python) make_base localhost/keel-base:bookworm "${COMMON}" keel-base ;;
  jre) make_base localhost/keel-base-jre:bookworm "${COMMON},openjdk-17-jre-headless" keel-base-jre ;;
  all)
    make_base localhost/keel-base:bookworm "${COMMON}" keel-base
    make_base localhost/keel-base-jre:bookworm "${COMMON},openjdk-17-jre-headless" keel-base-jre
    ;;
  *) echo "usage: ${0##*/} [python|jre|all]" >&2; exit 2 ;;
esac
