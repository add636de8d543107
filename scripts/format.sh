#!/usr/bin/env bash
# Formats the C++ sources (src/, tests/, bench/) with clang-format and the repository's .clang-format.
#   scripts/format.sh                 formats every tracked .cpp/.hpp in place
#   scripts/format.sh --check         changes nothing; lists the files whose formatting differs, exit 1 if any
#   scripts/format.sh [--check] F...  only the files F
# CLANG_FORMAT overrides the binary (default clang-format, Debian 12's version 14 from scripts/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
check=0
files=()
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    -*) echo "format.sh: unknown option '$arg' (expected --check or file names)" >&2; exit 2 ;;
    *) files+=("$arg") ;;
  esac
done
clang_format="${CLANG_FORMAT:-clang-format}"
if ! command -v "$clang_format" >/dev/null; then
  echo "format.sh: $clang_format not found (scripts/setup.sh installs Debian's clang-format)" >&2
  exit 2
fi
version="$("$clang_format" --version | sed -n 's/.*version \([0-9]*\).*/\1/p')"
if [ "$version" != 14 ]; then
  echo "format.sh: warning: $clang_format is version ${version:-unknown}; .clang-format is written for 14" >&2
fi
if [ ${#files[@]} -eq 0 ]; then
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files -- 'src/*.cpp' 'src/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'bench/*.cpp' \
      'bench/*.hpp')
  else
    mapfile -t files < <(find src tests bench -name '*.cpp' -o -name '*.hpp' | sort)
  fi
fi
if [ "$check" = 0 ]; then
  [ ${#files[@]} -eq 0 ] || "$clang_format" -i --style=file "${files[@]}"
  exit 0
fi
differ=0
for f in "${files[@]}"; do
  if ! "$clang_format" --style=file "$f" | cmp -s - "$f"; then
    echo "$f"
    differ=$((differ + 1))
  fi
done
if [ "$differ" -gt 0 ]; then
  echo "format.sh: $differ of ${#files[@]} files differ from .clang-format (scripts/format.sh formats them)" >&2
  exit 1
fi
