#!/usr/bin/env bash
# The main job: installs what is needed, builds zebra, prepares the King James Bible (Debian's
# bible-kjv-text), trains a small Zebra model (8 layers, group size 4, window 128) for a few minutes,
# and shows the held-out loss before and after, the loss curve and a few sampled lines.
#   DEMO_STEPS (default 400) and DEMO_TIME_LIMIT (seconds, default 600) bound the training.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
ZEBRA_TARGETS=zebra bash "$root/scripts/build.sh"
zebra="$root/build/zebra"
work="${DEMO_DIR:-$root/runs/demo}"
mkdir -p "$work"

echo "== the model"
"$zebra" info "$root/recipes/configs/demo.json" --seq-len 256

echo "== the corpus: the King James Bible (bible-kjv-text)"
if [ ! -s "$work/kjv.txt" ]; then
  # One verse per line: `bible` wraps verses at 80 columns; continuation lines are not indented.
  bible -m 8192 'Gen1:1-Rev22:21' | awk '
    /^[[:space:]]+[0-9]+ / { if (cur != "") print cur; sub(/^[[:space:]]+/, ""); cur = $0; next }
    /^$/ { if (cur != "") print cur; cur = ""; print ""; next }
    { if (cur != "") cur = cur " " $0; else print }
    END { if (cur != "") print cur }' > "$work/kjv.txt.tmp"
  mv "$work/kjv.txt.tmp" "$work/kjv.txt"
fi
"$zebra" prepare "$work/kjv.txt" -o "$work/data" --vocab-size 2048 --valid-fraction 0.02 --quiet

echo "== training (Ctrl-C stops and checkpoints)"
rm -rf "$work/run"
"$zebra" train --data "$work/data" --config "$root/recipes/configs/demo.json" -o "$work/run" \
  --steps "${DEMO_STEPS:-400}" --time-limit "${DEMO_TIME_LIMIT:-600}" -T 256 -b 8 \
  --lr 2e-3 --min-lr 2e-4 --warmup 40 --eval-every 100 --eval-batches 8 --log-every 20 \
  --samples 4 --sample-tokens 40 --sample-prompt "And God said"
echo "== loss curve: $work/run/loss.png; metrics: $work/run/metrics.jsonl"
