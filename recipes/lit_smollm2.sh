#!/usr/bin/env bash
# Issue 14: long instruction tuning (LIT) of the two LCAT models of recipes/lcat_smollm2.sh (SmolLM2-135M re-laid
# as Zebra and its full-attention twin) on long-context tasks built from Gutenberg books (zebra tasks: a planted
# fact, the sentence after a quoted one, which of four sentences occurs, the chapter of a quoted sentence), with
# the loss on the answers only; accuracy on tasks from held-out books before and after, by length up to 16k:
#   zebra-lcat / full-lcat   the LCAT checkpoints as they are (before LIT)
#   zebra-lit  / full-lit    after LIT
# Results: $OUT/report.md (tables, phase times), $OUT/accuracy.png, per model $OUT/eval/<model>/tasks.{txt,json,
# csv,png}, runs in $OUT/runs/{zebra,full}, a chat transcript with zebra-lit in $OUT/chat.txt.
#
# Resumable like the LCAT recipe: each phase leaves a marker in $OUT/times; an interrupted training continues from
# its last checkpoint (--save-every 5).
#
# Environment (all optional):
#   LCAT        the LCAT results folder (default runs/lcat; run recipes/lcat_smollm2.sh first)
#   GUTENBERG   folder with gutenberg-{train,valid}.jsonl.zst (default ../shared/data/gutenberg)
#   OUT         results folder (default runs/lit)
#   TRAIN_LENGTHS (default 512,1024,2048,4000) TRAIN_PER_CELL (default 2): training tasks per kind x length x depth
#               (5 depths 0.1 .. 0.9); TEST_LENGTHS (default 1024,4096,16384) TEST_DEPTHS (default 0.25,0.75)
#               TEST_PER_CELL (default 1): held-out tasks
#   SEQ_LEN     training length T (default 4096; conversations packed with document masking); STEPS (default 40)
#   LR          peak learning rate (default 1e-4, 4 warmup steps, cosine to 1e-5)
#   THREADS     threads of every command (default: all cores); STOP_AFTER=PHASE ends the run after that phase
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
zebra="${ZEBRA:-$root/build/zebra}"
[ -x "$zebra" ] || ZEBRA_TARGETS=zebra bash "$root/scripts/build.sh"
lcat="${LCAT:-$root/runs/lcat}"
out="${OUT:-$root/runs/lit}"
gutenberg="${GUTENBERG:-$root/../shared/data/gutenberg}"
seq_len="${SEQ_LEN:-4096}"
steps="${STEPS:-40}"
lr="${LR:-1e-4}"
threads=()
[ -z "${THREADS:-}" ] || threads=(--threads "$THREADS")
mkdir -p "$out/eval" "$out/runs" "$out/times"

last_checkpoint() { ls -d "$1"/checkpoint-* 2> /dev/null | tail -1; }
zebra_lcat="$(last_checkpoint "$lcat/runs/zebra")"
full_lcat="$(last_checkpoint "$lcat/runs/full")"
if [ -z "$zebra_lcat" ] || [ -z "$full_lcat" ]; then
  echo "lit: no LCAT checkpoints in $lcat/runs/{zebra,full}; run recipes/lcat_smollm2.sh first (or set LCAT)" >&2
  exit 1
fi

# phase NAME COMMAND... (recipes/lib/phases.sh)
source "$root/recipes/lib/phases.sh"

tasks() {
  "$zebra" tasks --tokenizer "$zebra_lcat" --train-books "$gutenberg/gutenberg-train.jsonl.zst" \
    --test-books "$gutenberg/gutenberg-valid.jsonl.zst" -o "$out/tasks" \
    --train-lengths "${TRAIN_LENGTHS:-512,1024,2048,4000}" --train-per-cell "${TRAIN_PER_CELL:-2}" \
    --test-lengths "${TEST_LENGTHS:-1024,4096,16384}" --test-depths "${TEST_DEPTHS:-0.25,0.75}" \
    --test-per-cell "${TEST_PER_CELL:-1}" > "$out/tasks.txt"
}

prepare() {
  "$zebra" prepare --chat "$out/tasks/train.jsonl" --tokenizer "$zebra_lcat" -T "$seq_len" -o "$out/data" -q \
    > "$out/prepare.txt"
}

# evaluate NAME MODEL: accuracy on the held-out tasks.
evaluate() {
  local dir="$out/eval/$1"
  mkdir -p "$dir"
  "$zebra" eval tasks "$2" --tasks "$out/tasks/test.jsonl" --weights-dtype f32 -q --json "$dir/tasks.json" \
    --csv "$dir/tasks.csv" --plot "$dir/tasks.png" "${threads[@]}" > "$dir/tasks.txt"
}

# lit NAME LCAT_CHECKPOINT: instruction tuning with the answer-only loss; resumes an interrupted run.
lit() {
  local name="$1" run="$out/runs/$1"
  local common=(--chat-data "$out/data" -o "$run" --steps "$steps" -T "$seq_len" -b 1 --lr "$lr" --min-lr 1e-5
                --warmup 4 --weight-decay 0.01 --eval-every 0 --save-every 5 --keep 1 --log-every 1 --seed 1
                --no-plot "${threads[@]}")
  if [ -n "$(last_checkpoint "$run")" ]; then
    "$zebra" train --resume "$run" "${common[@]}" >> "$out/runs/$name.log" 2>&1
  else
    "$zebra" train --init "$2" "${common[@]}" > "$out/runs/$name.log" 2>&1
  fi
}

# A conversation about a held-out passage: the first 4096-token fact task, then a follow-up question. A line
# ending in a backslash continues the message (zebra chat).
chat() {
  python3 - "$out/tasks/test.jsonl" > "$out/chat_input.txt" << 'PY'
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["task"]["kind"] == "fact" and t["task"]["length"] == 4096:
        print("\\\n".join(t["messages"][0]["content"].split("\n")))
        print("Thank you. Which book could this passage come from? Answer in one sentence.")
        break
PY
  "$zebra" chat "$(last_checkpoint "$out/runs/zebra")" --temperature 0 -n 48 "${threads[@]}" \
    < "$out/chat_input.txt" > "$out/chat.txt" 2> "$out/chat_stderr.txt"
}

phase tasks tasks
phase prepare prepare
phase eval-zebra-lcat evaluate zebra-lcat "$zebra_lcat"
phase eval-full-lcat evaluate full-lcat "$full_lcat"
phase train-zebra lit zebra "$zebra_lcat"
phase train-full lit full "$full_lcat"
phase eval-zebra-lit evaluate zebra-lit "$(last_checkpoint "$out/runs/zebra")"
phase eval-full-lit evaluate full-lit "$(last_checkpoint "$out/runs/full")"
phase chat chat
python3 "$root/recipes/lib/lit_report.py" "$out"
if command -v gnuplot > /dev/null; then
  "$zebra" plot "$out/runs/zebra" "$out/runs/full" --labels "Zebra,full attention" \
    --title "LIT of the LCAT models at T=$seq_len: answer-only training loss" -o "$out/train_loss.png" || true
fi
echo "report: $out/report.md"
