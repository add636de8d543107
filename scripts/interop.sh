#!/usr/bin/env bash
# The interop suite (DESIGN.md §3, docs/interop.md): zebra against Hugging Face transformers on the same weights.
#   scripts/interop.sh [pytest args...]     (also: scripts/test.sh --interop)
# Builds zebra (or uses $ZEBRA_BIN), creates a virtual environment with torch, transformers and safetensors from PyPI (cached under
# ${ZEBRA_CACHE:-build}/interop-venv: a rerun with the same pins installs nothing), and runs tests/interop/*.py.
#
# PyPI has no CPU-only torch for Linux x86_64: every torch wheel there since 1.13 (the first for Python 3.11)
# depends on the nvidia-* CUDA runtime wheels, and its libraries link them at load time, so a --no-deps install
# does not import. The first run therefore downloads about 3 GB (torch 0.54 GB + CUDA runtime wheels 2.4 GB,
# ~6 GB installed); the tests run torch on the CPU only. The demo-size check runs when ZEBRA_DEMO_CHECKPOINT
# (a checkpoint from zebra train) and ZEBRA_DEMO_PASSAGE (a text file) are set (tests/interop/test_demo.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZEBRA_BUILD_DIR:-$root/build}"
cache="${ZEBRA_CACHE:-$build}"
venv="$cache/interop-venv"
pins=(torch==2.15.0 transformers==5.24.0 safetensors==0.8.0 numpy==2.4.6 pytest==9.2.0 sentencepiece==0.2.3)

# shellcheck source=lib/venv.sh
source "$root/scripts/lib/venv.sh"
ensure_venv "$venv" "${pins[@]}"

if [ -z "${ZEBRA_BIN:-}" ]; then
  ZEBRA_TARGETS="${ZEBRA_TARGETS:-zebra}" bash "$root/scripts/build.sh"
  export ZEBRA_BIN="$build/zebra"
fi
# One JSON line per check (the measured differences), for docs/interop.md.
export ZEBRA_INTEROP_RESULTS="${ZEBRA_INTEROP_RESULTS:-$build/interop-results.jsonl}"
: > "$ZEBRA_INTEROP_RESULTS"
echo "interop: results in $ZEBRA_INTEROP_RESULTS" >&2
cd "$root"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/interop "$@"
# (d) zebra's tokenizers against Hugging Face tokenizers: every tokenizer vector and varied texts, through the
# tokenizer.json files zebra writes (scripts/tokenizer_interop.sh, same venv).
if [ -d "$root/../shared/data/tokenizer-vectors" ]; then
  [ -x "$build/test_io_fast" ] || ZEBRA_TARGETS=test_io_fast bash "$root/scripts/build.sh"
  ZEBRA_VENV="$venv" bash "$root/scripts/tokenizer_interop.sh" "$build"
else
  echo "interop: ../shared/data/tokenizer-vectors absent: the tokenizer comparison is skipped" >&2
fi
