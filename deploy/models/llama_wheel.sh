#!/usr/bin/env bash
# Build the llama-cpp-python wheel once from the PyPI sdist and install it into the venv.
#
# Why: PyPI ships llama-cpp-python only as an sdist for Linux, and compiling llama.cpp takes
# ~10 minutes on 2 cores. The built wheel is cached outside the repo (~/.cache/keel/wheels),
# so every later `make install` (and every fresh venv on the same machine) installs it instantly.
#
# Usage: deploy/models/llama_wheel.sh [PYTHON]      (PYTHON defaults to .venv/bin/python)
# Env:   KEEL_CACHE_DIR (default ~/.cache/keel), CMAKE_BUILD_PARALLEL_LEVEL (default 2),
#        KEEL_LLAMA_CMAKE_ARGS (cmake flags of the CPU backend; the default below).
set -euo pipefail

VERSION="0.3.36"   # keep in step with llama-cpp-python.requirements.txt and constraints.txt
PY="${1:-.venv/bin/python}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"  # the sdist is pinned by hash there
CACHE="${KEEL_CACHE_DIR:-$HOME/.cache/keel}"
# Not -march=native: a CPU may advertise instructions its kernel or sandbox does not let a
# process run. Our machines list AMX in /proc/cpuinfo, a native build then uses AMX tiles for
# prompt matmuls, and the first long prompt dies with SIGILL (tileloadd). AVX2/FMA/F16C run on
# every x86-64 machine from the last decade at a small cost in speed.
CMAKE_CPU_ARGS="${KEEL_LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
# The cache key holds the machine type, a digest of the CPU flags and of the build flags: a
# cache copied to another CPU, or built with other flags, rebuilds instead of crashing.
CPU_KEY="$(uname -m)-$( { grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || echo none; echo "$CMAKE_CPU_ARGS"; } | sha256sum | cut -c1-12)"
WHEELS="$CACHE/wheels/llama-cpp-python/$CPU_KEY"
LOG="$CACHE/llama-build.log"

mkdir -p "$WHEELS"
shopt -s nullglob
wheel=("$WHEELS"/llama_cpp_python-"$VERSION"-*.whl)
# Installed from this very wheel already: nothing to do (a wheel built with other flags is
# replaced).
STAMP="$("$PY" -c 'import sys; print(sys.prefix)')/.keel-llama-wheel"
if [ ${#wheel[@]} -gt 0 ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${wheel[0]}" ] &&
  "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$VERSION')" 2>/dev/null; then
  echo "llama_wheel: llama-cpp-python $VERSION already installed"
  exit 0
fi
if [ ${#wheel[@]} -eq 0 ]; then
  echo "llama_wheel: building llama-cpp-python $VERSION from source (~10 min on 2 cores), log: $LOG"
  # LLAVA_BUILD=OFF: Keel never uses the multimodal library; skipping it saves build time.
  # --no-cache-dir: pip caches a wheel built from the sdist without regard to CMAKE_ARGS.
  CMAKE_ARGS="-DLLAVA_BUILD=OFF $CMAKE_CPU_ARGS" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    "$PY" -m pip wheel -r "$HERE/llama-cpp-python.requirements.txt" --require-hashes \
      --no-deps --no-binary llama-cpp-python --no-cache-dir -w "$WHEELS" >"$LOG" 2>&1 || { tail -40 "$LOG"; echo "llama_wheel: build failed, see $LOG" >&2; exit 1; }
  wheel=("$WHEELS"/llama_cpp_python-"$VERSION"-*.whl)
fi
# Runtime deps (numpy, diskcache, jinja2, typing-extensions) resolve against our pins.
c_args=()
[ -f requirements/constraints.txt ] && c_args=(-c requirements/constraints.txt)
# Several tools may share one venv: serialise pip runs on the same lock file they use.
lock=()
command -v flock >/dev/null && lock=(flock /tmp/keel-pip.lock)
"${lock[@]}" "$PY" -m pip install -q --force-reinstall --no-deps "${wheel[0]}"
"${lock[@]}" "$PY" -m pip install -q "${c_args[@]}" "${wheel[0]}"
echo "${wheel[0]}" >"$STAMP"
echo "llama_wheel: installed ${wheel[0]}"
