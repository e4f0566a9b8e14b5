# Background processes of a script, stopped on exit. Source it, then call procs_init:
#
#   source "$ROOT/scripts/lib/procs.sh"
#   procs_init my-script "$WORK"     # WORK: a scratch folder, removed on exit
#   some-server ... >"$WORK/server.log" 2>&1 &
#   PIDS+=($!)
#
# procs_wait_for_line LOG PATTERN PID [SECONDS] waits for a line of a started process's log.
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

# Waits (bounded: SECONDS, default 30) for a line matching the extended regex PATTERN in LOG while
# process PID lives; prints the line. Fails, saying why, when the process exits or time runs out.
procs_wait_for_line() {  # log, pattern, pid, [seconds]
  local log=$1 pattern=$2 pid=$3 tries=$((${4:-30} * 10))
  for _ in $(seq "$tries"); do
    if grep -E -m1 "$pattern" "$log" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "$PROCS_NAME: process $pid exited early" >&2; return 1; fi
    sleep 0.1
  done
  echo "$PROCS_NAME: timed out waiting for '$pattern' in $log" >&2
  return 1
}
