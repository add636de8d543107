#!/usr/bin/env bash
# Installs every Debian package that building, testing and the demo need.
# Safe to run repeatedly; runs apt only when something is missing.
#   scripts/setup.sh --interop   also what the interop suite needs (python3 with venv: scripts/interop.sh)
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-openmp-dev libopenblas-dev
  libsentencepiece-dev sentencepiece libpcre2-dev
  nlohmann-json3-dev libcli11-dev libzstd-dev zstd
  libgtest-dev googletest libbenchmark-dev
  clang-format
  clang-14 libclang-rt-14-dev libomp-14-dev
  libopenmpi-dev openmpi-bin
  gnuplot-nox
  python3-venv
  bible-kjv bible-kjv-text
)
[ "${1:-}" = "--interop" ] && packages+=(python3 python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
