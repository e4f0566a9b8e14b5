#!/usr/bin/env bash
# The live comparison: one emulated DP+EP cluster (`gimbal engine`), two routers in front of it
# (`gimbal serve`) — the vLLM-baseline stack and the Gimbal stack — and the same workload driven
# through each with `gimbal bench`, printed side by side. Loopback only, ephemeral ports, bounded
# time; every process it starts is stopped on exit. Exit 0 when both runs completed every request.
#
#   scripts/live-demo.sh                 # about 15 s
#   GIMBAL=path/to/gimbal NUM_PROMPTS=400 RATE=30 scripts/live-demo.sh
#
# The stacks (docs/router.md, "Live comparison"):
#   vllm-baseline: dispatch `vllm` (4·waiting + running from /metrics scraped every 100 ms, plus
#                  picks since the scrape), no priority tag, so the engines run FCFS.
#   gimbal:        dispatch `gimbal` on the engines' pushed state, requests tagged with the
#                  `gimbal` queue key as vLLM's `priority` (prefill-aware order with aging).
# The engines run the `priority` queue policy, as vLLM does with --scheduling-policy priority:
# lower `priority` first, ties by arrival. Untagged requests all have priority 0, so the baseline
# is served first come, first served by the very same engines.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
MODEL="${MODEL:-qwen3-30b-a3b}"
GPU="${GPU:-h200}"
DP="${DP:-4}"
TIME_SCALE="${TIME_SCALE:-1}"
NUM_PROMPTS="${NUM_PROMPTS:-200}"
RATE="${RATE:-60}"
BURSTINESS="${BURSTINESS:-0.5}"
INPUT_LEN="${INPUT_LEN:-2000}"
OUTPUT_LEN="${OUTPUT_LEN:-128}"
RANGE_RATIO="${RANGE_RATIO:-0.9}"
SEED="${SEED:-1}"
RUN_TIMEOUT="${RUN_TIMEOUT:-90}"   # seconds per bench run

if [ ! -x "$GIMBAL" ]; then
  echo "live-demo: $GIMBAL not found; build first (make build)" >&2
  exit 2
fi
export GIMBAL_DATA_DIR="${GIMBAL_DATA_DIR:-$ROOT/data}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-live.XXXXXX")"
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ $rc -ne 0 ]; then
    echo "live-demo: failed (exit $rc); logs:" >&2
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (bounded) for a line matching $2 in log $1 while process $3 lives; prints the line.
wait_for_line() {
  local log=$1 pattern=$2 pid=$3
  for _ in $(seq 300); do
    if grep -E -m1 "$pattern" "$log" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "live-demo: process $pid exited early" >&2; return 1; fi
    sleep 0.1
  done
  echo "live-demo: timed out waiting for '$pattern' in $log" >&2
  return 1
}

echo "== live: $MODEL on $DP x $GPU (emulated, time scale $TIME_SCALE); $NUM_PROMPTS requests at $RATE req/s"

"$GIMBAL" engine --dp "$DP" --model "$MODEL" --gpu "$GPU" --port 0 --time-scale "$TIME_SCALE" \
  --queue-policy priority --threads 2 --drain-timeout 5 >"$WORK/engine.log" 2>&1 &
ENGINE_PID=$!
PIDS+=("$ENGINE_PID")
wait_for_line "$WORK/engine.log" "engine $((DP - 1)) on http" "$ENGINE_PID" >/dev/null
BACKENDS=()
URLS=()
for url in $(grep -Eo 'engine [0-9]+ on http://[0-9.:]+' "$WORK/engine.log" | awk '{print $4}'); do
  BACKENDS+=(--backend "$url")
  URLS+=("$url")
done
[ ${#BACKENDS[@]} -eq $((DP * 2)) ] || { echo "live-demo: expected $DP engine URLs" >&2; exit 1; }

ROUTER_PORT=""
start_router() {  # name, then serve flags; sets ROUTER_PORT
  local name=$1; shift
  "$GIMBAL" serve --port 0 --model "$MODEL" "${BACKENDS[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local line
  line="$(wait_for_line "$WORK/$name.log" "listening on port [0-9]+" "$pid")"
  ROUTER_PORT="$(grep -Eo '[0-9]+' <<<"${line##*port }" | head -n1)"
  [ -n "$ROUTER_PORT" ]
}
start_router vllm-baseline --policy vllm --queue-policy none --state-source metrics
BASE_PORT=$ROUTER_PORT
start_router gimbal --policy gimbal --queue-policy gimbal --state-source auto
GIMBAL_PORT=$ROUTER_PORT
echo "   engines: ${URLS[*]}"
echo "   routers: vllm-baseline on :$BASE_PORT, gimbal on :$GIMBAL_PORT"
sleep 0.5  # first scrapes and pushed states

run_bench() {  # name, port
  echo "-- $1"
  timeout --signal=TERM "$RUN_TIMEOUT" "$GIMBAL" bench --base-url "http://127.0.0.1:$2" \
    --model "$MODEL" --num-prompts "$NUM_PROMPTS" --request-rate "$RATE" \
    --burstiness "$BURSTINESS" --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" \
    --random-range-ratio "$RANGE_RATIO" --seed "$SEED" --send-traffic-class \
    --json "$WORK/$1.json" >"$WORK/$1.bench.log" 2>&1 || {
      echo "live-demo: gimbal bench through $1 failed" >&2
      tail -n 20 "$WORK/$1.bench.log" >&2
      return 1
    }
}
run_bench vllm-baseline "$BASE_PORT"
run_bench gimbal "$GIMBAL_PORT"

python3 - "$WORK/vllm-baseline.json" "$WORK/gimbal.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
rows = [("completed", "completed", "{:.0f}"), ("failed", "failed", "{:.0f}"),
        ("mean TTFT (ms)", "mean_ttft_ms", "{:.1f}"), ("p99 TTFT (ms)", "p99_ttft_ms", "{:.1f}"),
        ("mean TPOT (ms)", "mean_tpot_ms", "{:.2f}"), ("p99 TPOT (ms)", "p99_tpot_ms", "{:.2f}"),
        ("mean E2E (ms)", "mean_e2el_ms", "{:.1f}"),
        ("throughput (req/s)", "request_throughput", "{:.2f}"),
        ("output (tok/s)", "output_throughput", "{:.0f}")]
print("{:<20} {:>15} {:>15}".format("", "vllm-baseline", "gimbal"))
for label, key, fmt in rows:
    cells = [fmt.format(r[key]) if isinstance(r.get(key), (int, float)) else "-" for r in (a, b)]
    print("{:<20} {:>15} {:>15}".format(label, *cells))
bad = [n for n, r in (("vllm-baseline", a), ("gimbal", b))
       if r.get("failed", 1) != 0 or r.get("completed", 0) != r.get("num_prompts", -1)]
if bad:
    print("live-demo: requests failed in " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
