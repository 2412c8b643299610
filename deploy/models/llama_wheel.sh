#!/usr/bin/env bash
# Build the llama-cpp-python wheel once from the PyPI sdist and install it into the venv.
#
# Why: PyPI ships llama-cpp-python only as an sdist for Linux, and compiling llama.cpp takes
# ~10 minutes on 2 cores. The built wheel is cached outside the repo (~/.cache/keel/wheels),
# so every later `make install` (and every fresh venv on the same machine) installs it instantly.
#
# Usage: deploy/models/llama_wheel.sh [PYTHON]      (PYTHON defaults to .venv/bin/python)
# Env:   KEEL_CACHE_DIR (default ~/.cache/keel), CMAKE_BUILD_PARALLEL_LEVEL (default 2),
#        KEEL_LLAMA_CMAKE_ARGS (extra cmake flags, e.g. "-DGGML_NATIVE=OFF" for a portable wheel).
set -euo pipefail

VERSION="0.3.36"   # keep in step with llama-cpp-python.requirements.txt and constraints.txt
PY="${1:-.venv/bin/python}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"  # the sdist is pinned by hash there
CACHE="${KEEL_CACHE_DIR:-$HOME/.cache/keel}"
# The wheel is compiled for this CPU (-march=native by default), so the cache key includes
# the machine type and a digest of the CPU flags: a cache copied to another CPU rebuilds
# instead of crashing with "illegal instruction".
CPU_KEY="$(uname -m)-$( (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || echo none) | sha256sum | cut -c1-12)"
WHEELS="$CACHE/wheels/llama-cpp-python/$CPU_KEY"
LOG="$CACHE/llama-build.log"

if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$VERSION')" 2>/dev/null; then
  echo "llama_wheel: llama-cpp-python $VERSION already installed"
  exit 0
fi
mkdir -p "$WHEELS"
shopt -s nullglob
wheel=("$WHEELS"/llama_cpp_python-"$VERSION"-*.whl)
if [ ${#wheel[@]} -eq 0 ]; then
  echo "llama_wheel: building llama-cpp-python $VERSION from source (~10 min on 2 cores), log: $LOG"
  # LLAVA_BUILD=OFF: Keel never uses the multimodal library; skipping it saves build time.
  CMAKE_ARGS="-DLLAVA_BUILD=OFF ${KEEL_LLAMA_CMAKE_ARGS:-}" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    "$PY" -m pip wheel -r "$HERE/llama-cpp-python.requirements.txt" --require-hashes \
      --no-deps --no-binary llama-cpp-python -w "$WHEELS" >"$LOG" 2>&1 || { tail -40 "$LOG"; echo "llama_wheel: build failed, see $LOG" >&2; exit 1; }
  wheel=("$WHEELS"/llama_cpp_python-"$VERSION"-*.whl)
fi
# Runtime deps (numpy, diskcache, jinja2, typing-extensions) resolve against our pins.
c_args=()
[ -f requirements/constraints.txt ] && c_args=(-c requirements/constraints.txt)
# Several tools may share one venv: serialise pip runs on the same lock file they use.
lock=()
command -v flock >/dev/null && lock=(flock /tmp/keel-pip.lock)
"${lock[@]}" "$PY" -m pip install -q "${c_args[@]}" "${wheel[0]}"
echo "llama_wheel: installed ${wheel[0]}"
