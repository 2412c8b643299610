#!/usr/bin/env bash
# podman with Keel's settings (deploy/podman/env.sh): the repo's containers.conf and the image
# store in the cache. Used by the tests and handy by hand: bash deploy/podman/podman.sh ps -a
set -euo pipefail
# shellcheck source=deploy/podman/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# exec: a signal to this script (stopping `podman system service`) reaches podman itself.
exec podman "${KEEL_PODMAN_ARGS[@]}" "$@"
