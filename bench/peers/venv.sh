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

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  bash "$root/scripts/setup.sh" --interop  # Debian splits venv/ensurepip into python3-venv
fi
stamp="$venv/.zebra-pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "peers: creating $venv (${pins[*]}; builds llama.cpp from source, several minutes on 2 cores)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  # CMAKE_BUILD_PARALLEL_LEVEL: use the cores; GGML_NATIVE (llama.cpp's default) targets this CPU.
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install --quiet --disable-pip-version-check \
    --no-cache-dir "${pins[@]}" >&2
  echo "${pins[*]}" > "$stamp"
fi
echo "$venv/bin/python"
