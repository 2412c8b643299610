#!/usr/bin/env bash
# `make images`: build Keel's service image and the Kafka image with podman or docker
# (docker when its engine answers, else podman, installed if missing), then print each image's
# size and how long its build took. Slow parts are cached outside git: the Debian base
# tarballs, the wheels, the Kafka jars and podman's own layer store (deploy/podman/env.sh), so
# a rebuild with nothing changed takes seconds.
#   bash deploy/podman/images.sh [--model]       (--model: also the keel:dev-model target)
# Env: KEEL_IMAGE (default keel:dev), KEEL_KAFKA_IMAGE (default keel-kafka:4.1.1),
#      KEEL_ENGINE (podman|docker, default: detected), PYTHON (default .venv/bin/python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
MODEL=0
[[ "${1:-}" == --model ]] && MODEL=1
IMAGE="${KEEL_IMAGE:-keel:dev}"
KAFKA_IMAGE="${KEEL_KAFKA_IMAGE:-keel-kafka:4.1.1}"
PYTHON="${PYTHON:-.venv/bin/python}"
KAFKA_VERSION="${KEEL_KAFKA_VERSION:-4.1.1}"
JARS="${KEEL_CACHE_DIR:-${HOME}/.cache/keel}/kafka/${KAFKA_VERSION}/libs"

ENGINE="${KEEL_ENGINE:-}"
if [[ -z "${ENGINE}" ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi
if [[ "${ENGINE}" == podman ]]; then
  bash deploy/podman/install.sh
  # shellcheck source=deploy/podman/env.sh
  . deploy/podman/env.sh
  engine() { keel_podman "$@"; }
  bash deploy/podman/base-image.sh all
  base=(--build-arg BASE=localhost/keel-base:bookworm)
  kafka_base=(--build-arg BASE=localhost/keel-base-jre:bookworm)
  ignore=(--ignorefile deploy/docker/Dockerfile.dockerignore)
  # Docker's image format: the OCI one has no HEALTHCHECK, and podman would drop it.
  fmt=(--format docker)
else
  engine() { docker "$@"; }
  base=()   # the official python:3.11-slim-bookworm
  kafka_base=(--build-arg BASE="${KEEL_KAFKA_BASE:-eclipse-temurin:17-jre}")
  ignore=()  # BuildKit reads deploy/docker/Dockerfile.dockerignore itself
  fmt=()
fi

bash deploy/docker/stage.sh $( ((MODEL)) && echo --model) "${PYTHON}"
bash deploy/kafka/broker.sh fetch >/dev/null 2>&1 || bash deploy/kafka/broker.sh fetch

report() {  # image, seconds
  local size
  size="$(engine image inspect --format '{{.Size}}' "$1")"
  printf 'images: %-28s %6.0f MB  built in %5.1f s (%s)\n' "$1" "$((size / 1000000))" "$2" "${ENGINE}"
}
build() {  # image, build args...
  local image="$1" start
  shift
  start="${EPOCHREALTIME}"
  engine build --quiet "${fmt[@]}" "$@" -t "${image}" >/dev/null
  report "${image}" "$(awk "BEGIN { print ${EPOCHREALTIME} - ${start} }")"
}

build "${IMAGE}" -f deploy/docker/Dockerfile "${base[@]}" "${ignore[@]}" --target runtime .
build "${KAFKA_IMAGE}" -f deploy/kafka/Dockerfile "${kafka_base[@]}" \
  --build-context jars="${JARS}" deploy/kafka
if ((MODEL)); then
  build "${IMAGE}-model" -f deploy/docker/Dockerfile "${base[@]}" "${ignore[@]}" --target model .
fi
