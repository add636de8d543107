#!/usr/bin/env bash
# Installs what the build needs, builds, and runs the test suite (everything not labelled "slow").
#   scripts/test.sh            the default suite (what CI runs)
#   scripts/test.sh --slow     also the slow tests
#   scripts/test.sh --sanitize the suite again in an ASan/UBSan build (build-asan/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slow=0
sanitize=0
for arg in "$@"; do
  case "$arg" in
    --slow) slow=1 ;;
    --sanitize) sanitize=1 ;;
    *) echo "test.sh: unknown option '$arg' (expected --slow or --sanitize)" >&2; exit 2 ;;
  esac
done
bash "$root/scripts/setup.sh"
jobs="$(nproc)"
labels=(-LE slow)
[ "$slow" = 1 ] && labels=()
bash "$root/scripts/build.sh"
(cd "$root/build" && ctest --output-on-failure -j "$jobs" "${labels[@]}")
if [ "$sanitize" = 1 ]; then
  ZEBRA_BUILD_DIR="$root/build-asan" bash "$root/scripts/build.sh" -DZEBRA_SANITIZE=ON -DZEBRA_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" "${labels[@]}")
fi
