# Shared by the experiment recipes (recipes/exp*.sh, docs/experiments.md): data, configs, FLOP-matched
# training runs two at a time, and evaluation. Sourced, not run.
#
# Environment (all optional):
#   GUTENBERG  folder with gutenberg-{train,valid}.jsonl.zst (default ../shared/data/gutenberg)
#   CORPUS     a text/JSONL corpus to use instead of Gutenberg (its last 2% is held out)
#   DATA       prepared data folder (train.bin, valid.bin, tokenizer.model); made here when missing
#   OUT        results folder (default runs/experiments)
#   TOKENS     training tokens of the reference model (Zebra L=4, w=128, RoPE); every other model of a
#              recipe gets the same training FLOPs (default 4000000: about two hours per recipe here)
#   SEQ_LEN    training length (default 512); BATCH (default 8); JOBS parallel runs (default 2, one
#              thread each: small models scale better over runs than over threads)
#   EVAL_TOKENS held-out tokens per evaluation length (default 131072); ZEBRA the binary (default build/zebra)
#   SEED       initialisation and data-order seed of every run (default 1)
#   EVAL_THREADS threads of each evaluation (default: all cores)
#   TRAIN_ONLY=1 trains and skips the evaluation (a later run without it skips the finished trainings)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
zebra="${ZEBRA:-$root/build/zebra}"
[ -x "$zebra" ] || ZEBRA_TARGETS=zebra bash "$root/scripts/build.sh"
out="${OUT:-$root/runs/experiments}"
data="${DATA:-$out/data}"
tokens="${TOKENS:-4000000}"
seq_len="${SEQ_LEN:-512}"
batch="${BATCH:-8}"
jobs="${JOBS:-2}"
eval_tokens="${EVAL_TOKENS:-131072}"
base_config="$root/recipes/configs/exp-base.json"
mkdir -p "$out/configs" "$out/runs"
started_runs=()

prepare_data() {
  [ -f "$data/train.bin" ] && return
  if [ -n "${CORPUS:-}" ]; then
    "$zebra" prepare "$CORPUS" -o "$data" --vocab-size 8192 --valid-fraction 0.02
  else
    local g="${GUTENBERG:-$root/../shared/data/gutenberg}"
    "$zebra" prepare "$g/gutenberg-train.jsonl.zst" --max-docs "${BOOKS:-64}" \
      --valid "$g/gutenberg-valid.jsonl.zst" -o "$data" --vocab-size 8192
  fi
}

# make_config NAME GROUP_SIZE WINDOW POS [local-only]: writes $out/configs/NAME.json from the base config.
# GROUP_SIZE 1 is full attention; "local-only" makes every layer local.
make_config() {
  local name="$1" group="$2" window="$3" pos="$4" layout="${5:-}"
  local f="$out/configs/$name.json"
  sed -e "s/\"group_size\": [0-9]*/\"group_size\": $group/" \
      -e "s/\"sliding_window\": [0-9]*/\"sliding_window\": $window/" \
      -e "s/\"pos_embedding\": \"[a-z]*\"/\"pos_embedding\": \"$pos\"/" "$base_config" > "$f"
  if [ "$layout" = "local-only" ]; then
    local n types=""
    n="$(sed -n 's/.*"num_hidden_layers": \([0-9]*\).*/\1/p' "$base_config")"
    for _ in $(seq "$n"); do types="$types\"sliding_attention\","; done
    sed -i -e "s/\"group_size\": [0-9]*,/\"layer_types\": [${types%,}],/" "$f"
  fi
  echo "$f"
}

# Training FLOPs per token of a config at the training length (zebra info, first row: the config's own layout).
flops_per_token() {
  "$zebra" info "$1" -T "$seq_len" | awk '$1 == "zebra" { print $5; exit }'
}

reference_flops() { flops_per_token "$(make_config ref 4 128 rope)"; }

# train NAME CONFIG [extra train flags]: trains to the FLOP budget of $tokens reference tokens, in the
# background (at most $jobs at once); skips a run whose final checkpoint exists.
train() {
  local name="$1" config="$2"
  shift 2
  local run="$out/runs/$name"
  started_runs+=("$name")
  if [ -f "$run/done" ]; then
    echo "[$name] already trained"
    return
  fi
  local ref fpt steps warmup
  ref="$(reference_flops)"
  fpt="$(flops_per_token "$config")"
  steps="$(awk -v t="$tokens" -v r="$ref" -v f="$fpt" -v n="$((batch * seq_len))" \
    'BEGIN { s = int(t * r / f / n + 0.5); print (s < 1 ? 1 : s) }')"
  warmup=$(( steps / 10 + 1 ))
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "[$name] $steps steps of $((batch * seq_len)) tokens ($fpt training FLOPs/token; reference $ref)"
  (
    rm -rf "$run"
    "$zebra" train --data "$data" --config "$config" -o "$run" --steps "$steps" -T "$seq_len" -b "$batch" \
      --lr 3e-3 --min-lr 3e-4 --warmup "$warmup" --weight-decay 0.1 --eval-every 0 --eval-batches 16 \
      --log-every 25 --seed "${SEED:-1}" --threads 1 --no-plot "$@" > "$out/runs/$name.log" 2>&1 &&
      touch "$run/done" && echo "[$name] trained: $(tail -1 "$out/runs/$name.log")"
  ) &
}

# Waits for every training run and fails, naming the runs, when one did not finish.
wait_all() {
  wait || true
  local missing=""
  for name in "${started_runs[@]}"; do [ -f "$out/runs/$name/done" ] || missing="$missing $name"; done
  [ -z "$missing" ] || { echo "training failed for:$missing (see $out/runs/<name>.log)" >&2; exit 1; }
}

# The last checkpoint of a run.
model_of() { ls -d "$out/runs/$1"/checkpoint-* | tail -1; }

# evaluate_ppl RECIPE "MODELS" MULTIPLES...: held-out perplexity of each model at MULTIPLES x SEQ_LEN
# (non-overlapping windows over the first EVAL_TOKENS tokens of valid.bin), then
#   $out/RECIPE/ppl.csv (model,ctx,loss,loss_stderr,ppl), ppl.md (a table), ppl.png (ppl against length),
#   position.png (loss against position at the longest length), train.png (training loss curves).
evaluate_ppl() {
  [ "${TRAIN_ONLY:-0}" = 1 ] && return
  local recipe="$1" models="$2"
  shift 2
  local dir="$out/$recipe" ctx="" m
  mkdir -p "$dir"
  for k in "$@"; do ctx="$ctx,$((k * seq_len))"; done
  ctx="${ctx#,}"
  echo "model,ctx,loss,loss_stderr,ppl" > "$dir/ppl.csv"
  for m in $models; do
    "$zebra" eval ppl "$(model_of "$m")" "$data/valid.bin" --ctx "$ctx" --max-tokens "$eval_tokens" -q \
      --threads "${EVAL_THREADS:-$(nproc)}" \
      --csv "$dir/$m.csv" --json "$dir/$m.json" --plot "$dir/$m-position.png" | tee "$dir/$m.txt"
    awk -F, -v m="$m" 'NR > 1 { print m "," $1 "," $6 "," $7 "," $8 }' "$dir/$m.csv" >> "$dir/ppl.csv"
  done
  # Markdown: one row per model, one column per length.
  awk -F, -v ctx="$ctx" 'BEGIN { n = split(ctx, c, ","); printf "| model |"; for (i = 1; i <= n; ++i) printf " ppl @ %s |", c[i]; printf "\n|---|"; for (i = 1; i <= n; ++i) printf "---:|"; printf "\n" }
    NR > 1 { if (!($1 in seen)) { seen[$1] = 1; order[++nm] = $1 } v[$1, $2] = sprintf("%.2f ± %.2f", $5, $5 * $4) }
    END { for (j = 1; j <= nm; ++j) { printf "| %s |", order[j]; for (i = 1; i <= n; ++i) printf " %s |", v[order[j], c[i]]; printf "\n" } }' \
    "$dir/ppl.csv" > "$dir/ppl.md"
  cat "$dir/ppl.md"
  local plots="" pos="" longest="${ctx##*,}"
  for m in $models; do
    awk -F, -v m="$m" 'NR > 1 && $1 == m { print $2, $5 }' "$dir/ppl.csv" > "$dir/$m.ppl.dat"
    awk -F, -v c="$longest" 'NR > 1 && $1 == c { print $5, $7 }' "$dir/${m}_position.csv" > "$dir/$m.pos.dat"
    plots="$plots\"$dir/$m.ppl.dat\" using 1:2 with linespoints lw 2 title \"$m\", "
    pos="$pos\"$dir/$m.pos.dat\" using 1:2 with linespoints lw 2 title \"$m\", "
  done
  gnuplot <<GP
set terminal pngcairo size 800,500
set output "$dir/ppl.png"
set logscale x 2
set xlabel "evaluation length (tokens); trained at $seq_len"
set ylabel "held-out perplexity"
set key outside right
set grid
plot ${plots%, }
set output "$dir/position.png"
set xlabel "position in the window (bucket centre), length $longest"
set ylabel "held-out loss (nats)"
unset logscale y
plot ${pos%, }
GP
  local runs=() labels=""
  for m in $models; do runs+=("$out/runs/$m"); labels="$labels,$m"; done
  "$zebra" plot "${runs[@]}" --labels "${labels#,}" --title "$recipe: training loss" -o "$dir/train.png" > /dev/null
  echo "results: $dir/{ppl.md,ppl.csv,ppl.png,position.png,train.png}"
}

# evaluate_passkey RECIPE "MODELS" TRIALS: passkey retrieval at 1/2, 1, 2 and 4 x SEQ_LEN, five depths;
# $out/RECIPE/MODEL-passkey.{txt,csv,json,png} and passkey.md (the accuracy tables).
evaluate_passkey() {
  [ "${TRAIN_ONLY:-0}" = 1 ] && return
  local recipe="$1" models="$2" trials="$3" dir="$out/$1" m
  mkdir -p "$dir"
  : > "$dir/passkey.md"
  for m in $models; do
    "$zebra" eval passkey "$(model_of "$m")" --lengths "$((seq_len / 2)),$seq_len,$((2 * seq_len)),$((4 * seq_len))" \
      --trials "$trials" -q --threads "${EVAL_THREADS:-$(nproc)}" --csv "$dir/$m-passkey.csv" --json "$dir/$m-passkey.json" \
      --plot "$dir/$m-passkey.png" | tee "$dir/$m-passkey.txt"
    { echo "$m:"; echo '```'; cat "$dir/$m-passkey.txt"; echo '```'; } >> "$dir/passkey.md"
  done
  echo "results: $dir/passkey.md and $dir/*-passkey.png"
}
