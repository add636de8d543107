#!/usr/bin/env bash
# The main job: installs what is needed, builds zebra, and shows a small Zebra model's cost and one
# training step. (Later stages grow this into training on the KJV Bible.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
"$root/build/zebra" info "$root/recipes/configs/demo.json" --seq-len 1024 --step
