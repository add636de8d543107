#!/usr/bin/env bash
# Configures and builds zebra into build/ (or $ZEBRA_BUILD_DIR). Extra arguments go to CMake.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZEBRA_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# ZEBRA_TARGETS: space-separated ninja targets (default all).
read -r -a targets <<< "${ZEBRA_TARGETS:-all}"
ninja -C "$build" "${targets[@]}"
