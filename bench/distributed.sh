#!/usr/bin/env bash
# The measurements of docs/distributed.md: tokens/s of one process with 2 threads against 2 ranks with 1 thread
# each (data and context parallel), the time ranks spend blocked in communication, the bytes context parallelism
# sends per step, and each rank's peak memory for 1, 2 and 3 context-parallel ranks at one sequence length.
#   bench/distributed.sh [WORKDIR]     (default build/distributed-bench; needs build/zebra and mpirun)
# Run it on an otherwise idle machine (`uptime`): the figures are wall-clock rates.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
zebra="$root/build/zebra"
work="${1:-$root/build/distributed-bench}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$work"
cd "$work"
if [ ! -f data/train.bin ]; then
  for i in $(seq 4000); do echo "In the beginning was the word, and the word was $((i % 97)) times spoken, $i."; done > corpus.txt
  "$zebra" prepare corpus.txt -o data --vocab-size 512 --valid-fraction 0.1 --quiet
fi
# 4 layers (global, local, global, local), width 256, GQA 4/2 heads of 64, window 256.
cat > config.json <<'JSON'
{"vocab_size": 512, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
 "num_key_value_heads": 2, "head_dim": 64, "intermediate_size": 688, "max_position_embeddings": 8192,
 "group_size": 2, "sliding_window": 256}
JSON
common=(train --data data --config config.json --eval-every 0 --eval-batches 1 --log-every 0 --no-plot --warmup 1)
report() {  # name, log: tokens/s, blocked time, peak memory, context traffic
  local name="$1" log="$2"
  local rate blocked peak traffic
  rate="$(grep -o 'at [0-9.]* tokens/s' "$log" | awk '{print $2}' || true)"
  blocked="$(grep -o 'blocked in communication [0-9.e-]* s' "$log" | awk '{print $4}' || true)"
  peak="$(grep -o 'peak resident memory[^M]*MiB' "$log" | sed 's/peak resident memory //' || true)"
  traffic="$(grep -o 'bytes sent in step 1: .*' "$log" | sed 's/bytes sent in step 1: //' || true)"
  printf '%-34s %10s tok/s  blocked %-10s  peak %s\n' "$name" "$rate" "${blocked:--}" "$peak"
  [ -n "$traffic" ] && printf '%-34s %s\n' "" "$traffic"
  return 0
}
run() {  # name, then the command
  local name="$1"
  shift
  rm -rf "run-$name"
  "$@" -o "run-$name" > "log-$name.txt" 2>&1
  report "$name" "log-$name.txt"
}
echo "== data parallel: T 1024, 4 sequences per step, 12 steps"
run dp-1x2 "$zebra" "${common[@]}" -T 1024 -b 2 --grad-accum 2 --steps 12 --threads 2
run dp-2x1 mpirun --oversubscribe -np 2 "$zebra" "${common[@]}" -T 1024 -b 2 --steps 12 --threads 1
echo "== context parallel: T 6144, 1 sequence per step, 4 steps"
run cp-1x2 "$zebra" "${common[@]}" -T 6144 -b 1 --steps 4 --threads 2
run cp-1x1 "$zebra" "${common[@]}" -T 6144 -b 1 --steps 4 --threads 1
run cp-2x1 mpirun --oversubscribe -np 2 "$zebra" "${common[@]}" -T 6144 -b 1 --steps 4 --threads 1 --parallel context
run cp-3x1 mpirun --oversubscribe -np 3 "$zebra" "${common[@]}" -T 6144 -b 1 --steps 4 --threads 1 --parallel context
