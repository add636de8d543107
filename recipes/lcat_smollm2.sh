#!/usr/bin/env bash
# Issue 13: long-context adaptation (LCAT) of SmolLM2-135M, re-laid as Zebra, on long Gutenberg books, and the
# same training of its full-attention twin; held-out perplexity at short and long contexts and passkey retrieval
# for four models:
#   base     SmolLM2 as published (full attention, trained at 8k; RoPE as published)
#   relaid   SmolLM2 re-laid as Zebra (GROUP, WINDOW) with the LCAT RoPE, no training
#   zebra    the re-laid model after LCAT
#   full     the full-attention model after the same LCAT tokens (the paper's Llama-2-LCAT baseline)
# Results: $OUT/report.md (tables, training tokens/s of the two runs, phase times), $OUT/*.png, per model
# $OUT/eval/<model>/{ppl,passkey}.{json,csv,png}, runs in $OUT/runs/{zebra,full}.
#
# Resumable: every phase leaves a marker or its output; a second run skips what is finished and continues an
# interrupted training from its last checkpoint (--save-every 1). A bigger TOKENS can run across sittings.
#
# Environment (all optional; the defaults took 91 minutes on the 2-core machine with builds beside some
# evaluations, about 75 without, docs/lcat.md):
#   MODEL       a GGUF / Hugging Face / zebra model (default: SmolLM2-135M-Instruct Q4_1, scripts/fetch_smollm2.sh)
#   GUTENBERG   folder with gutenberg-{train,valid}.jsonl.zst (default ../shared/data/gutenberg)
#   OUT         results folder (default runs/lcat); BOOKS training books (default 24)
#   GROUP WINDOW  the Zebra layout (default 3, 512: layers 0, 3, 6, ... global)
#   ROPE        the RoPE adjustment for 32k (default: YaRN x4 from 8192, max positions 32768)
#   SEQ_LEN     training length T (default 16384); TOKENS training tokens per model (default 98304 = 6 x 16384)
#   SHORT_FRACTION SHORT_LEN  share of micro-batches of short sequences and their length (default 0.25, 1024)
#   RECOMPUTE=1 recompute activations in backward (2.3 GiB instead of 16 GiB of activations at T = 16k; slower)
#   LR          peak learning rate (default 1e-4, constant)
#   EVAL_TOKENS held-out tokens per perplexity length (default 32768); PPL_CTX (default 512,2048,8192,16384,32768)
#   PASSKEY_LENGTHS (default 2048,4096,8192,16384); PASSKEY_LONG (e.g. 32768: the longest prompts, phases of
#               their own for the two LCAT models after the rest; default none; PASSKEY_LONG_ALL=1 adds the two
#               untrained models); PASSKEY_DEPTHS (default 0.25,0.75); TRIALS (default 1)
#   THREADS     threads of every command (default: all cores); STOP_AFTER=PHASE ends the run after that phase
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
zebra="${ZEBRA:-$root/build/zebra}"
[ -x "$zebra" ] || ZEBRA_TARGETS=zebra bash "$root/scripts/build.sh"
out="${OUT:-$root/runs/lcat}"
gutenberg="${GUTENBERG:-$root/../shared/data/gutenberg}"
model="${MODEL:-}"
[ -n "$model" ] || model="$(bash "$root/scripts/fetch_smollm2.sh")"
group="${GROUP:-3}"
window="${WINDOW:-512}"
read -r -a rope <<< "${ROPE:---rope-scaling yarn --rope-factor 4 --max-seq-len 32768}"
seq_len="${SEQ_LEN:-16384}"
tokens="${TOKENS:-98304}"
short_fraction="${SHORT_FRACTION:-0.25}"
short_len="${SHORT_LEN:-1024}"
lr="${LR:-1e-4}"
eval_tokens="${EVAL_TOKENS:-32768}"
ppl_ctx="${PPL_CTX:-512,2048,8192,16384,32768}"
passkey_lengths="${PASSKEY_LENGTHS:-2048,4096,8192,16384}"
passkey_long="${PASSKEY_LONG:-}"
passkey_depths="${PASSKEY_DEPTHS:-0.25,0.75}"
trials="${TRIALS:-1}"
threads=()
[ -z "${THREADS:-}" ] || threads=(--threads "$THREADS")
data="$out/data"
mkdir -p "$out/eval" "$out/runs" "$out/times"

# phase NAME COMMAND... (recipes/lib/phases.sh)
source "$root/recipes/lib/phases.sh"

prepare() {
  "$zebra" prepare "$gutenberg/gutenberg-train.jsonl.zst" --max-docs "${BOOKS:-24}" \
    --valid "$gutenberg/gutenberg-valid.jsonl.zst" --tokenizer "$model" -o "$data" -q
}

# evaluate NAME MODEL [adjustment flags]: perplexity across lengths and passkey retrieval.
evaluate() {
  local name="$1" m="$2"
  shift 2
  local dir="$out/eval/$name"
  mkdir -p "$dir"
  [ -f "$dir/ppl.json" ] || "$zebra" eval ppl "$m" "$data/valid.bin" --ctx "$ppl_ctx" --max-tokens "$eval_tokens" --weights-dtype f32 -q \
    --json "$dir/ppl.json" --csv "$dir/ppl.csv" --plot "$dir/ppl_position.png" "${threads[@]}" "$@" \
    > "$dir/ppl.txt"
  [ -f "$dir/passkey.json" ] || "$zebra" eval passkey "$m" --lengths "$passkey_lengths" --depths "$passkey_depths" --trials "$trials" \
    --weights-dtype f32 -q --json "$dir/passkey.json" --csv "$dir/passkey.csv" --plot "$dir/passkey.png" \
    "${threads[@]}" "$@" > "$dir/passkey.txt"
}

# passkey_long NAME MODEL [adjustment flags]: passkey at the longest lengths (eval/NAME/passkey_long.*).
passkey_long() {
  local name="$1" m="$2"
  shift 2
  local dir="$out/eval/$name"
  "$zebra" eval passkey "$m" --lengths "$passkey_long" --depths "$passkey_depths" --trials "$trials" \
    --weights-dtype f32 -q --json "$dir/passkey_long.json" "${threads[@]}" "$@" > "$dir/passkey_long.txt"
}

# lcat NAME GROUP: continued training of $model re-laid with group size GROUP (1 = full attention); resumes an
# interrupted run from its last checkpoint.
lcat() {
  local name="$1" g="$2" run="$out/runs/$1"
  local steps=$(( (tokens + seq_len - 1) / seq_len ))
  local common=(--data "$data" -o "$run" --steps "$steps" -T "$seq_len" -b 1 --batch-mode document --doc-mask
                --short-fraction "$short_fraction" --short-seq-len "$short_len" --lr "$lr" --min-lr "$lr"
                --warmup 0 --weight-decay 0.01 --eval-every 0 --eval-batches 1 --save-every 1 --keep 1
                --log-every 1 --seed 1 --no-plot "${threads[@]}" ${RECOMPUTE:+--recompute})
  if ls -d "$run"/checkpoint-* > /dev/null 2>&1; then
    "$zebra" train --resume "$run" "${common[@]}" >> "$out/runs/$name.log" 2>&1
  else
    "$zebra" train --init "$model" --group-size "$g" --window "$window" "${rope[@]}" "${common[@]}" \
      > "$out/runs/$name.log" 2>&1
  fi
}

last_checkpoint() { ls -d "$out/runs/$1"/checkpoint-* | tail -1; }

phase prepare prepare
phase eval-base evaluate base "$model"
phase eval-relaid evaluate relaid "$model" --group-size "$group" --window "$window" "${rope[@]}"
phase train-zebra lcat zebra "$group"
phase train-full lcat full 1
phase eval-zebra evaluate zebra "$(last_checkpoint zebra)"
phase eval-full evaluate full "$(last_checkpoint full)"
if [ -n "$passkey_long" ]; then
  if [ "${PASSKEY_LONG_ALL:-0}" = 1 ]; then
    phase passkey-long-base passkey_long base "$model"
    phase passkey-long-relaid passkey_long relaid "$model" --group-size "$group" --window "$window" "${rope[@]}"
  fi
  phase passkey-long-zebra passkey_long zebra "$(last_checkpoint zebra)"
  phase passkey-long-full passkey_long full "$(last_checkpoint full)"
fi
report() {
  python3 "$root/recipes/lib/lcat_report.py" "$out"
  if command -v gnuplot > /dev/null; then
    "$zebra" plot "$out/runs/zebra" "$out/runs/full" --labels "Zebra (L=$group, w=$window),full attention" \
      --title "LCAT of SmolLM2-135M at T=$seq_len: training loss" -o "$out/train_loss.png"
  fi
}

report
echo "report: $out/report.md"
