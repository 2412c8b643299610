# Source this (bash): podman settings shared by `make images`, the compose test and CI.
#   . deploy/podman/env.sh && keel_podman images
# Podman's storage lives in the cache, outside git, so images (and build-layer caches)
# survive between runs and CI can keep the directory between jobs.
KEEL_CACHE_DIR="${KEEL_CACHE_DIR:-${HOME}/.cache/keel}"
KEEL_PODMAN_DIR="${KEEL_PODMAN_DIR:-${KEEL_CACHE_DIR}/podman}"
KEEL_PODMAN_RUNROOT="${KEEL_PODMAN_RUNROOT:-/run/keel-podman}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf}"

KEEL_PODMAN_ARGS=(--root "${KEEL_PODMAN_DIR}/storage" --runroot "${KEEL_PODMAN_RUNROOT}"
  --storage-driver overlay)

keel_podman() {
  podman "${KEEL_PODMAN_ARGS[@]}" "$@"
}
