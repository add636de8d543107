#!/usr/bin/env bash
# Installs what the build needs, checks the formatting (scripts/format.sh --check), builds, and runs the test
# suite (everything not labelled "slow" or "fault").
#   scripts/test.sh            the default suite
#   scripts/test.sh --slow     also the slow tests
#   scripts/test.sh --sanitize the suite again in an ASan/UBSan build (build-asan/), the fault tests (label
#                              fault: kill -9, full disk, read-only folders) and a short fuzzing run of every
#                              reader (scripts/fuzz.sh, ZEBRA_CI_FUZZ_SECONDS each, default 5); CI (.ci/run) runs this
#   scripts/test.sh --interop  also the interop suite against Hugging Face transformers (scripts/interop.sh;
#                              downloads torch and transformers from PyPI into a cached venv on first use)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slow=0
sanitize=0
interop=0
for arg in "$@"; do
  case "$arg" in
    --slow) slow=1 ;;
    --sanitize) sanitize=1 ;;
    --interop) interop=1 ;;
    *) echo "test.sh: unknown option '$arg' (expected --slow, --sanitize or --interop)" >&2; exit 2 ;;
  esac
done
bash "$root/scripts/setup.sh"
# Seconds, so it runs first; its verdict comes at the end, after the tests have run.
format_ok=1
bash "$root/scripts/format.sh" --check || format_ok=0
jobs="$(nproc)"
# The fault tests run once, in the Release build, with --sanitize (CI).
labels=(-LE "slow|fault")
[ "$slow" = 1 ] && labels=(-LE fault)
bash "$root/scripts/build.sh"
(cd "$root/build" && ctest --output-on-failure -j "$jobs" "${labels[@]}")
if [ "$sanitize" = 1 ]; then
  ZEBRA_BUILD_DIR="$root/build-asan" bash "$root/scripts/build.sh" -DZEBRA_SANITIZE=ON -DZEBRA_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" "${labels[@]}")
  (cd "$root/build" && ctest --output-on-failure -L fault)
  bash "$root/scripts/fuzz.sh" --seconds "${ZEBRA_CI_FUZZ_SECONDS:-5}" --jobs "$jobs"
fi
if [ "$interop" = 1 ]; then
  ZEBRA_BIN="$root/build/zebra" bash "$root/scripts/interop.sh"
fi
if [ "$format_ok" = 0 ]; then
  echo "test.sh: the tests passed but the formatting check failed (files listed above; scripts/format.sh fixes them)" >&2
  exit 1
fi
