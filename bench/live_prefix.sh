#!/usr/bin/env bash
# Prefix-cache hit rate live against simulated (issue 14): a multi-turn session workload through
# `gimbal serve` over emulated engines (`gimbal engine`), the router knowing the engines' caches
# (a) from its own approximate record of what it sent where and (b) from the engines' KV-cache
# events; then the simulator on the same scenario and requests, with the matching stacks
# (gimbal-prefix-approx and gimbal-prefix). Prints the engines' hit rate (Σ vllm:prefix_cache_hits
# / Σ vllm:prefix_cache_queries over ranks, tokens) for each, and the gap in points.
#
#   bench/live_prefix.sh                     # about 4 minutes
#   SESSIONS=600 TIME_SCALE=1 bench/live_prefix.sh
#
# Each live run has a fresh cluster (empty caches). Loopback only, ephemeral ports; every process
# started is stopped on exit. Results: OUT/summary.json, OUT/<mode>.json (gimbal bench),
# OUT/sim.json (gimbal simulate).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
SCENARIO="${SCENARIO:-$ROOT/configs/scenarios/prefix-multiturn-h200x8.yaml}"
SESSIONS="${SESSIONS:-300}"
TIME_SCALE="${TIME_SCALE:-0.2}"
RUN_TIMEOUT="${RUN_TIMEOUT:-300}"
OUT="${OUT:-$ROOT/out/live-prefix}"
MODES="${MODES:-approximate events}"

if [ ! -x "$GIMBAL" ]; then
  echo "live_prefix: $GIMBAL not found; build first (make build)" >&2
  exit 2
fi
export GIMBAL_DATA_DIR="${GIMBAL_DATA_DIR:-$ROOT/data}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-live-prefix.XXXXXX")"
# shellcheck source=../scripts/lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
procs_init live_prefix "$WORK"

SETS=(--set "workload.num_sessions=$SESSIONS")


# Sums a counter over the engines' /metrics pages.
sum_metric() {  # name, urls...
  local name=$1; shift
  local u
  for u in "$@"; do curl -sf "$u/metrics"; done |
    awk -v n="$name" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}

run_mode() {  # approximate | events
  local mode=$1
  local engine_flags=(--config "$SCENARIO" --port 0 --time-scale "$TIME_SCALE" --threads 2
                      --queue-policy priority --step-policy gimbal --drain-timeout 5)
  [ "$mode" = events ] && engine_flags+=(--kv-events-endpoint tcp://127.0.0.1:0
                                         --kv-events-replay-endpoint tcp://127.0.0.1:0)
  "$GIMBAL" engine "${engine_flags[@]}" >"$WORK/engines-$mode.log" 2>&1 &
  local epid=$!
  PIDS+=("$epid")
  local dp
  dp="$(awk '/^cluster:/ {c = 1} c && /dp:/ {print $2; exit}' "$SCENARIO")"
  procs_wait_for_line "$WORK/engines-$mode.log" "engine $((dp - 1)) on http" "$epid" 60 >/dev/null
  if [ "$mode" = events ]; then
    procs_wait_for_line "$WORK/engines-$mode.log" "engine $((dp - 1)) publishes KV events" "$epid" 60 >/dev/null
  fi
  local urls=() backends=() events=()
  mapfile -t urls < <(grep -Eo 'engine [0-9]+ on http://[0-9.:]+' "$WORK/engines-$mode.log" | awk '{print $4}')
  local u
  for u in "${urls[@]}"; do backends+=(--backend "$u"); done
  if [ "$mode" = events ]; then
    local line
    while read -r line; do
      events+=(--kv-events "$(sed -E 's/.*KV events on ([^,]+), replay on (.*)$/\1,\2/' <<<"$line")")
    done < <(grep -E 'publishes KV events on' "$WORK/engines-$mode.log")
  fi
  # The name the engines serve (the scenario's model name).
  MODEL="$(curl -sf "${urls[0]}/v1/models" |
           python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')"
  local index=approximate
  [ "$mode" = events ] && index=auto
  "$GIMBAL" serve --port 0 --model "$MODEL" "${backends[@]}" "${events[@]}" --policy gimbal \
    --queue-policy gimbal --state-source auto --prefix-index "$index" \
    >"$WORK/router-$mode.log" 2>&1 &
  local rpid=$!
  PIDS+=("$rpid")
  local port
  port="$(procs_wait_for_line "$WORK/router-$mode.log" "listening on port [0-9]+" "$rpid" 60 |
          grep -Eo 'port [0-9]+' | awk '{print $2}' | head -n1)"
  sleep 1  # first pushed states, subscriptions connected
  echo "-- live, router index: $mode ($dp engines at time scale $TIME_SCALE, router :$port)"
  timeout --signal=TERM "$RUN_TIMEOUT" "$GIMBAL" bench --base-url "http://127.0.0.1:$port" \
    --model "$MODEL" --scenario "$SCENARIO" "${SETS[@]}" --trace-time-scale "$TIME_SCALE" \
    --send-traffic-class --json "$OUT/$mode.json" >"$WORK/bench-$mode.log" 2>&1 || {
      echo "live_prefix: gimbal bench ($mode) failed" >&2; tail -n 20 "$WORK/bench-$mode.log" >&2
      return 1; }
  local hits queries
  hits="$(sum_metric vllm:prefix_cache_hits_total "${urls[@]}")"
  queries="$(sum_metric vllm:prefix_cache_queries_total "${urls[@]}")"
  curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^gimbal_router_prefix_blocks' \
    >"$WORK/router-$mode.prefix" || true
  echo "$mode $hits $queries" >>"$WORK/live.txt"
  kill -TERM "$rpid" "$epid" 2>/dev/null || true
  wait "$rpid" "$epid" 2>/dev/null || true
}

: >"$WORK/live.txt"
for mode in $MODES; do run_mode "$mode"; done

echo "-- simulated: the same scenario and requests"
"$GIMBAL" simulate --config "$SCENARIO" "${SETS[@]}" --stack gimbal-prefix-approx \
  --stack gimbal-prefix --json "$OUT/sim.json" >"$WORK/sim.log" 2>&1 || {
    echo "live_prefix: gimbal simulate failed" >&2; tail -n 20 "$WORK/sim.log" >&2; exit 1; }

python3 - "$WORK/live.txt" "$OUT" <<'EOF'
import json, sys
live_txt, out = sys.argv[1:3]
sim = json.load(open(f"{out}/sim.json"))
runs = sim["runs"] if isinstance(sim, dict) and "runs" in sim else sim
by_stack = {r["stack"]: r for r in runs}
twin = {"approximate": "gimbal-prefix-approx", "events": "gimbal-prefix"}
rows, summary = [], {}
for line in open(live_txt):
    mode, hits, queries = line.split()
    live = int(hits) / int(queries) if int(queries) else 0.0
    bench = json.load(open(f"{out}/{mode}.json"))
    s = by_stack[twin[mode]]
    simulated = s["prefix_cache_hit_rate"]
    gap = (live - simulated) * 100
    summary[mode] = {"live_hit_rate": live, "sim_hit_rate": simulated, "gap_points": gap,
                     "live_hits": int(hits), "live_queries": int(queries),
                     "completed": bench.get("completed"), "failed": bench.get("failed"),
                     "live_mean_ttft_ms": bench.get("mean_ttft_ms"),
                     "sim_stack": twin[mode]}
    rows.append((mode, live, simulated, gap, bench.get("completed"), bench.get("failed")))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(f"{'router index':<14}{'live hit rate':>15}{'simulated':>12}{'gap (points)':>14}{'completed':>11}{'failed':>8}")
for mode, live, simulated, gap, done, failed in rows:
    print(f"{mode:<14}{live:>15.3f}{simulated:>12.3f}{gap:>+14.1f}{done:>11}{failed:>8}")
bad = [r[0] for r in rows if r[5]]
if bad:
    print("live_prefix: requests failed in " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
