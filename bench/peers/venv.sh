#!/usr/bin/env bash
# The peer benchmarks' virtual environment: llama-cpp-python from PyPI, which builds llama.cpp from source
# (CPU backend, tuned to this machine's instruction set, as a llama.cpp user's own build is). Not part of CI.
#   bench/peers/venv.sh        prints the venv's python; creates it first when missing or on other pins
# The venv lives under ${ZEBRA_CACHE:-build}/peers-venv; a rerun with the same pins installs nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${ZEBRA_CACHE:-${ZEBRA_BUILD_DIR:-$root/build}}"
venv="$cache/peers-venv"
pins=(llama-cpp-python==0.3.36)

# shellcheck source=../../scripts/lib/venv.sh
source "$root/scripts/lib/venv.sh"
# llama-cpp-python builds llama.cpp from source (several minutes on 2 cores): CMAKE_BUILD_PARALLEL_LEVEL uses
# the cores; GGML_NATIVE (llama.cpp's default) targets this CPU.
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" PIP_ARGS="--no-cache-dir" ensure_venv "$venv" "${pins[@]}"
echo "$venv/bin/python"
