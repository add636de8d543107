#!/usr/bin/env bash
# Issue 3's experiment: a ~10M-parameter Zebra model (group size 4, window 256) and its
# full-attention twin, trained at T = 1024 on gutenberg-train for the same number of tokens, with
# held-out loss on gutenberg-valid. Results: runs/pretrain/{zebra,full}/ (metrics, loss.png) and
# runs/pretrain/compare.png.
#   GUTENBERG=/path/to/data/gutenberg  STEPS=N (default 300)  BOOKS=N (training books, default 64)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${GUTENBERG:-$root/../shared/data/gutenberg}"
out="${OUT:-$root/runs/pretrain}"
steps="${STEPS:-300}"
zebra="$root/build/zebra"
[ -x "$zebra" ] || ZEBRA_TARGETS=zebra bash "$root/scripts/build.sh"
mkdir -p "$out"
if [ ! -f "$out/data/train.bin" ]; then
  "$zebra" prepare "$data/gutenberg-train.jsonl.zst" --max-docs "${BOOKS:-64}" \
    --valid "$data/gutenberg-valid.jsonl.zst" -o "$out/data" --vocab-size 8192
fi
common=(--data "$out/data" --config "$root/recipes/configs/gutenberg-10m.json" --steps "$steps" -T 1024 -b 4
        --lr 1.5e-3 --min-lr 1.5e-4 --warmup 30 --weight-decay 0.1 --eval-every 50 --eval-batches 16
        --log-every 10 --save-every 100 --seed 1)
"$zebra" train "${common[@]}" -o "$out/zebra" | tee "$out/zebra.txt"
"$zebra" train "${common[@]}" --group-size 1 -o "$out/full" | tee "$out/full.txt"
"$zebra" plot "$out/zebra" "$out/full" --labels "zebra (L=4, w=256),full attention" \
  --title "gutenberg, 10M parameters, T=1024" -o "$out/compare.png"
