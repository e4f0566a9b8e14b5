#!/usr/bin/env bash
# The OpenAI Python client against `gimbal serve` in front of emulated engines, as users call it:
# completions, chat, streams with usage, errors (tests/openai/test_openai.py), and the router in
# front of one API server per DP rank, vLLM's external load-balancing layout
# (tests/openai/test_dp_external_lb.py, docs/router.md).
#
#   bash tests/openai/run.sh GIMBAL [VENV]     # ctest: openai_client_tests, label python
#
# GIMBAL is the built binary (or set $GIMBAL). VENV (default build/openai-venv) is created when
# missing and gets tests/openai/requirements.txt from PyPI; it is reused while the requirements
# are unchanged, so only the first run needs PyPI. Extra arguments after VENV go to pytest.
#
# Started here, on loopback with ephemeral ports, and stopped on exit whatever happens:
#   - cluster: `gimbal engine --dp 4`, one HTTP port per DP rank, all ranks one emulated EP group;
#   - router:  `gimbal serve` with one backend per rank port (names dp0..dp3), reading /metrics;
#   - hybrid:  `gimbal engine --dp 4 --ranks-per-port 2` (a port per node of 2 ranks, as vLLM's
#              hybrid load balancing) behind its own router (backends node0, node1);
#   - victim:  a one-rank `gimbal engine` behind its own router, which the tests kill to see how
#              a server-side failure reaches the client.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GIMBAL="${1:-${GIMBAL:-}}"
VENV="${2:-$ROOT/build/openai-venv}"
shift $(($# > 2 ? 2 : $#))
PYTHON="${PYTHON:-python3}"
MODEL=qwen3-30b-a3b
DP=4
HERE="$ROOT/tests/openai"

if [ -z "$GIMBAL" ] || [ ! -x "$GIMBAL" ]; then
  echo "tests/openai: usage: run.sh GIMBAL [VENV]; '$GIMBAL' is not an executable gimbal binary" >&2
  exit 2
fi
export GIMBAL_DATA_DIR="${GIMBAL_DATA_DIR:-$ROOT/data}"

# --- the client's virtual environment -------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || {
    echo "tests/openai: '$PYTHON -m venv $VENV' failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
if ! cmp -s "$HERE/requirements.txt" "$VENV/.requirements.txt"; then
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --retries 2 --timeout 30 \
      -q -r "$HERE/requirements.txt" >"$VENV/pip.log" 2>&1; then
    echo "tests/openai: could not install tests/openai/requirements.txt into $VENV." >&2
    echo "tests/openai: these tests need PyPI (pip) once, to fetch the pinned OpenAI client;" >&2
    echo "tests/openai: is PyPI reachable from here? The end of pip's log:" >&2
    tail -n 5 "$VENV/pip.log" >&2
    exit 1
  fi
  cp "$HERE/requirements.txt" "$VENV/.requirements.txt"
fi

# --- the servers ------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-openai.XXXXXX")"
# shellcheck source=../../scripts/lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
procs_init tests/openai "$WORK"


router_config() {  # file, backend name prefix, dispatch policy, state source, then backend URLs
  local file=$1 prefix=$2 policy=$3 source=$4; shift 4
  {
    echo "listen: {address: 127.0.0.1}"
    echo "backends:"
    local k=0 url
    for url in "$@"; do
      echo "  - {name: $prefix$k, url: \"$url\", model: $MODEL}"
      k=$((k + 1))
    done
    echo "dispatch: {policy: $policy}"
    echo "state: {source: $source, scrape_interval_s: 0.05}"
    echo "health: {interval_s: 0.2, timeout_s: 1}"
    echo "limits: {max_attempts: 2, upstream_connect_timeout_s: 1}"
    echo "admin: {token: openai-tests}"
  } >"$file"
}

# Start processes in the script's own shell (PIDS must be filled here, not in a subshell).
"$GIMBAL" engine --dp "$DP" --model "$MODEL" --gpu h200 --port 0 --threads 2 --drain-timeout 2 \
  --time-scale 0.05 >"$WORK/cluster.log" 2>&1 &
PIDS+=("$!")
procs_wait_for_line "$WORK/cluster.log" "engine $((DP - 1)) on http" "$!" >/dev/null
mapfile -t RANK_URLS < <(grep -Eo 'engine [0-9]+ on http://[0-9.:]+' "$WORK/cluster.log" | awk '{print $4}')
[ "${#RANK_URLS[@]}" -eq "$DP" ] || { echo "tests/openai: expected $DP rank URLs" >&2; exit 1; }

# The hybrid layout: 2 "nodes" of 2 ranks, one port each (--ranks-per-port 2), one EP group.
"$GIMBAL" engine --dp "$DP" --ranks-per-port 2 --model "$MODEL" --gpu h200 --port 0 --threads 2 \
  --drain-timeout 2 --time-scale 0.2 >"$WORK/hybrid.log" 2>&1 &
PIDS+=("$!")
procs_wait_for_line "$WORK/hybrid.log" "engine $((DP - 1)) on http" "$!" >/dev/null
mapfile -t NODE_URLS < <(grep -Eo 'engine [0-9]+ on http://[0-9.:]+' "$WORK/hybrid.log" | awk '{print $4}' | uniq)
[ "${#NODE_URLS[@]}" -eq 2 ] || { echo "tests/openai: expected 2 node URLs" >&2; exit 1; }

# The victim is started from a subshell, so that this shell does not report its SIGKILL.
( "$GIMBAL" engine --dp 1 --model "$MODEL" --gpu h200 --port 0 --threads 1 --drain-timeout 1 \
  --time-scale 1 >"$WORK/victim.log" 2>&1 & echo $! >"$WORK/victim.pid" )
VICTIM_PID="$(cat "$WORK/victim.pid")"
PIDS+=("$VICTIM_PID")
procs_wait_for_line "$WORK/victim.log" "engine 0 on http" "$VICTIM_PID" >/dev/null
VICTIM_URL="$(grep -Eo 'engine 0 on http://[0-9.:]+' "$WORK/victim.log" | awk '{print $4}')"

router_config "$WORK/router.yaml" dp round_robin metrics "${RANK_URLS[@]}"
router_config "$WORK/hybrid-router.yaml" node least_requests auto "${NODE_URLS[@]}"
router_config "$WORK/victim-router.yaml" dp least_requests metrics "$VICTIM_URL"
for name in router hybrid-router victim-router; do
  "$GIMBAL" serve --port 0 --config "$WORK/$name.yaml" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  procs_wait_for_line "$WORK/$name.log" "listening on port [0-9]+" "$!" >/dev/null
done
port_of() { grep -Eo 'listening on port [0-9]+' "$WORK/$1.log" | head -n1 | awk '{print $4}'; }

export GIMBAL_OPENAI_MODEL="$MODEL"
export GIMBAL_OPENAI_ROUTER="http://127.0.0.1:$(port_of router)"
export GIMBAL_OPENAI_RANKS="${RANK_URLS[*]}"
export GIMBAL_OPENAI_HYBRID_ROUTER="http://127.0.0.1:$(port_of hybrid-router)"
export GIMBAL_OPENAI_NODES="${NODE_URLS[*]}"
export GIMBAL_OPENAI_VICTIM_ROUTER="http://127.0.0.1:$(port_of victim-router)"
export GIMBAL_OPENAI_VICTIM_PID="$VICTIM_PID"
export GIMBAL_OPENAI_ADMIN_TOKEN=openai-tests
export PYTHONDONTWRITEBYTECODE=1
echo "tests/openai: router $GIMBAL_OPENAI_ROUTER over ranks ${RANK_URLS[*]};" \
  "victim router $GIMBAL_OPENAI_VICTIM_ROUTER"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$HERE" "$@"
