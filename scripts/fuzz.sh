#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of untrusted input (tests/fuzz/, libFuzzer + ASan + UBSan, clang-14).
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--only READER[,READER...]]
# Builds the harnesses in build-fuzz/, writes the generated seeds (build-fuzz/seeds/), then runs each harness for
# N seconds (default 60), J harnesses at a time (default 1), with -rss_limit_mb=2048 -malloc_limit_mb=2048
# -timeout=10. Prints per harness the executions, the coverage (libFuzzer's cov = edges, ft = features) and the
# findings. A finding (crash, sanitizer report, uncaught exception, leak, timeout, out-of-memory) is copied into
# tests/fuzz/regressions/<reader>/, which the default test suite replays; the script then exits 1.
# The corpus each harness grows is kept in build-fuzz/corpus/<reader>/ across runs, and every run appends its
# figures to build-fuzz/fuzz_history.tsv (docs/reliability.md sums them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds=60
jobs=1
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "fuzz.sh: unknown option '$1' (expected --seconds N, --jobs J, --only READER)" >&2; exit 2 ;;
  esac
done
build="${ZEBRA_FUZZ_BUILD_DIR:-$root/build-fuzz}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DZEBRA_FUZZ=ON -DZEBRA_TESTS=OFF -DZEBRA_BENCH=OFF "${launcher[@]}" >/dev/null
ninja -C "$build" zebra_fuzz
rm -rf "$build/seeds"
"$build/tests/fuzz/zebra_make_seeds" "$build/seeds"

readers=()
for exe in "$build"/tests/fuzz/fuzz_*; do
  r="$(basename "$exe")"
  r="${r#fuzz_}"
  if [ -n "$only" ] && [[ ",$only," != *",$r,"* ]]; then continue; fi
  readers+=("$r")
done
[ ${#readers[@]} -gt 0 ] || { echo "fuzz.sh: no harness matches '$only'" >&2; exit 2; }

# One harness: its log in build-fuzz/logs/, its findings in build-fuzz/findings/<reader>/.
run_one() {
  local r="$1"
  local corpus="$build/corpus/$r" findings="$build/findings/$r" work="$build/work/$r"
  mkdir -p "$corpus" "$findings" "$work" "$build/logs" "$root/tests/fuzz/seeds/$r" "$root/tests/fuzz/regressions/$r"
  # A harness writes its scratch files under /dev/shm or TMPDIR; the working folder keeps libFuzzer's own.
  (cd "$work" && timeout $((seconds + 120)) "$build/tests/fuzz/fuzz_$r" "$corpus" "$root/tests/fuzz/seeds/$r" \
    "$build/seeds/$r" "$root/tests/fuzz/regressions/$r" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$findings/" \
    >"$build/logs/$r.log" 2>&1) || true
}

for r in "${readers[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$r" &
done
wait

total_findings=0
printf '%-18s %12s %8s %8s %9s\n' harness execs cov ft findings
for r in "${readers[@]}"; do
  log="$build/logs/$r.log"
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)"
  ft="$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)"
  n=0
  for f in "$build/findings/$r"/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in slow-unit-*) continue ;; esac
    cp "$f" "$root/tests/fuzz/regressions/$r/"
    echo "fuzz.sh: $r: finding $(basename "$f") (log: $log), copied to tests/fuzz/regressions/$r/" >&2
    rm -f "$f"
    n=$((n + 1))
  done
  # A harness that died without a stats line is a finding too (killed, or crashed outside an input).
  if [ -z "$execs" ]; then
    echo "fuzz.sh: $r: no final statistics (see $log)" >&2
    n=$((n + 1))
  fi
  total_findings=$((total_findings + n))
  printf '%-18s %12s %8s %8s %9s\n' "$r" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$n"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$r" "$seconds" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$n" \
    >>"$build/fuzz_history.tsv"
done
if [ "$total_findings" -gt 0 ]; then
  echo "fuzz.sh: $total_findings finding(s); the inputs are in tests/fuzz/regressions/ (replayed by ctest)" >&2
  exit 1
fi
