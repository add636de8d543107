#!/usr/bin/env bash
# Checks that the tokenizer.json files zebra writes are read by Hugging Face `tokenizers` as the same
# tokenizers: zebra's test of the tokenizer vectors (../shared/data/tokenizer-vectors) exports each
# GGUF vocabulary as tokenizer.json, and `tokenizers` (PyPI, in a virtual environment this script
# creates) must give exactly the expected ids for every vector input and decode them back.
# Usage: scripts/tokenizer_interop.sh [build dir (default: build)]
# Needs network access to PyPI the first time (the venv is kept in $ZEBRA_VENV, default build/interop-venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
venv="${ZEBRA_VENV:-$build/interop-venv}"
vectors="$root/../shared/data/tokenizer-vectors"
[ -d "$vectors" ] || { echo "tokenizer_interop: $vectors is absent" >&2; exit 1; }
[ -x "$build/test_io_fast" ] || { echo "tokenizer_interop: build test_io_fast first ($build/test_io_fast)" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "tokenizers>=0.19"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
ZEBRA_TOKENIZER_EXPORT_DIR="$out" "$build/test_io_fast" --gtest_filter='*TokenizerVectors*' >"$out/gtest.log" || {
  cat "$out/gtest.log"; exit 1; }
"$venv/bin/python" "$root/scripts/tokenizer_interop.py" "$out" "$vectors"
