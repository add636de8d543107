# Resumable phases for the long recipes (recipes/lcat_smollm2.sh, recipes/lit_smollm2.sh). Sourced, not run; the
# recipe sets `out` first.
#
# phase NAME COMMAND...: runs COMMAND unless $out/times/NAME exists, then records its wall seconds there; with
# STOP_AFTER=NAME the recipe ends after that phase.
phase() {
  local name="$1"
  shift
  if [ -f "$out/times/$name" ]; then
    echo "[$name] done before ($(cat "$out/times/$name") s)"
    return
  fi
  echo "[$name] $(date +%T) starting"
  local start=$SECONDS
  "$@"
  echo $((SECONDS - start)) > "$out/times/$name"
  echo "[$name] $(date +%T) finished in $(cat "$out/times/$name") s"
  if [ "${STOP_AFTER:-}" = "$name" ]; then exit 0; fi
}
