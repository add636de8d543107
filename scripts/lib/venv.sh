# Sourced by the scripts that need Python packages from PyPI (scripts/interop.sh, bench/peers/venv.sh):
#   ensure_venv DIR PIN...   creates the virtual environment DIR with exactly PIN... installed, unless DIR
#                            already holds those pins (a rerun installs nothing). Extra pip arguments: PIP_ARGS.
ensure_venv() {
  local venv="$1"
  shift
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    bash "$root/scripts/setup.sh" --interop  # Debian splits venv/ensurepip into python3-venv
  fi
  local stamp="$venv/.zebra-pins"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$*" ]; then
    echo "venv: creating $venv ($*)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check ${PIP_ARGS:-} "$@" >&2
    echo "$*" > "$stamp"
  fi
}
