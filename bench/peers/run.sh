#!/usr/bin/env bash
# zebra against llama.cpp on the same GGUF in one run (bench/peers/compare.py): installs llama-cpp-python into
# a virtual environment first (bench/peers/venv.sh). Not part of CI.
#   bench/peers/run.sh [MODEL.gguf] [--threads 2] [--ctx 8192] [--json OUT.json]
# MODEL defaults to SmolLM2-135M-Instruct Q4_1 (fetched by scripts/fetch_smollm2.sh when missing). ZEBRA_BIN:
# the zebra binary (default: build/zebra, built when missing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
  model="$1"
  shift
else
  model="$(bash "$root/scripts/fetch_smollm2.sh")"
fi
[ -f "$model" ] || { echo "peers: no model at $model" >&2; exit 2; }
zebra="${ZEBRA_BIN:-$root/build/zebra}"
[ -x "$zebra" ] || ZEBRA_TARGETS=zebra bash "$root/scripts/build.sh"
python="$(bash "$root/bench/peers/venv.sh")"
echo "peers: $(uptime)" >&2
"$python" "$root/bench/peers/compare.py" "$zebra" "$model" "$@"
