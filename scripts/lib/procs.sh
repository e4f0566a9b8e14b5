# Background processes of a script, stopped on exit. Source it, then call procs_init:
#
#   source "$ROOT/scripts/lib/procs.sh"
#   procs_init my-script "$WORK"     # WORK: a scratch folder, removed on exit
#   some-server ... >"$WORK/server.log" 2>&1 &
#   PIDS+=($!)
#
# On exit every process in PIDS gets SIGTERM, then SIGKILL after 5 s if it is still there. When the
# script fails, the last lines of each WORK/*.log are printed to stderr first. SIGINT and SIGTERM
# end the script with 130.

PIDS=()
PROCS_NAME=""
PROCS_WORK=""

procs_cleanup() {
  local rc=$?
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ $rc -ne 0 ] && [ -n "$PROCS_WORK" ]; then
    echo "$PROCS_NAME: failed (exit $rc); logs:" >&2
    local f
    for f in "$PROCS_WORK"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  fi
  [ -z "$PROCS_WORK" ] || rm -rf "$PROCS_WORK"
  exit $rc
}

procs_init() {  # name, scratch folder
  PROCS_NAME=$1
  PROCS_WORK=$2
  trap procs_cleanup EXIT
  trap 'exit 130' INT TERM
}
