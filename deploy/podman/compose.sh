#!/usr/bin/env bash
# Print the path of a Docker Compose v2 binary, building it once from the Go module proxy
# (github.com/docker/compose/v2) into the cache when none is installed. Why this client: it is
# the compose users run (`docker compose`), it speaks the Docker API that `podman system
# service` serves, and it honours depends_on health conditions; podman-compose drives the podman
# CLI instead and docker-compose v1 (PyPI) no longer installs on Python 3.11.
#   COMPOSE="$(bash deploy/podman/compose.sh)"      (the first build takes a few minutes)
set -euo pipefail
VERSION="${KEEL_COMPOSE_VERSION:-v2.28.1}"
CACHE="${KEEL_CACHE_DIR:-${HOME}/.cache/keel}"
BIN="${CACHE}/bin/docker-compose-${VERSION}"

if [[ -x "${BIN}" ]]; then echo "${BIN}"; exit 0; fi
command -v go >/dev/null || { echo "compose: needs Go to build docker compose ${VERSION}" >&2; exit 1; }
mkdir -p "${CACHE}/bin" "${CACHE}/gomod"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
echo "compose: building docker compose ${VERSION} from the Go module proxy (once)" >&2
GOMODCACHE="${CACHE}/gomod" GOBIN="${work}" GOFLAGS=-mod=mod go install -trimpath \
  -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=${VERSION}" \
  "github.com/docker/compose/v2/cmd@${VERSION}" >&2
mv "${work}/cmd" "${BIN}"
echo "${BIN}"
