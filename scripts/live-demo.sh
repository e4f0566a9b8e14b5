#!/usr/bin/env bash
# The live comparison: one emulated DP+EP cluster (`gimbal engine`), two routers in front of it
# (`gimbal serve`) — the vLLM-baseline stack and the Gimbal stack — and the same workload driven
# through each with `gimbal bench`, printed side by side. Loopback only, ephemeral ports, bounded
# time; every process it starts is stopped on exit. Then the simulator runs the same scenario and
# workload (`gimbal experiment` on a suite written next to the live results) and `gimbal report`
# puts simulated and live figures side by side, with the gap. Exit 0 when both live runs completed
# every request and the report was written; the last line names the report.
#
#   scripts/live-demo.sh                 # about 70 s: 900 requests at the cluster's saturation
#   GIMBAL=path/to/gimbal NUM_PROMPTS=400 RATE=30 OUT=out/demo2 scripts/live-demo.sh
#   TIME_SCALE=1 RATE=60 NUM_PROMPTS=200 scripts/live-demo.sh   # light load, real time
#
# The default load is the 4-engine cluster's saturation (its simulated throughput, about 71 req/s
# in model time), where the stacks differ. The emulated engines run at half speed (TIME_SCALE 2):
# every token of every request is streamed through a router and the client, and at full speed
# that work on a 2-core machine would compete with the engines' own clock. Live times are divided
# by the time scale before they are compared with the simulator's.
#
# Outputs, under OUT (default out/demo; emptied first, and refused unless it is empty or an earlier
# demo's folder):
#   OUT/live/live.json                 the manifest `gimbal report` reads (docs/experiments.md)
#   OUT/live/<stack>.json              `gimbal bench --json --save-detailed` per stack
#   OUT/live/scenario.yaml, suite.yaml the same cluster and workload for the simulator
#   OUT/results.json, points/          the simulated points (`gimbal experiment`)
#   OUT/report/index.html              the report; headline.json's "live" key has the table
#
# The stacks (docs/router.md, "Live comparison"), each over its own emulated cluster:
#   vllm-baseline: dispatch `vllm` (vLLM 0.33's score from /metrics scraped every 100 ms, plus
#                  picks since the scrape), no priority tag, so the engines run FCFS, with vLLM's
#                  fixed step budget.
#   gimbal:        dispatch `gimbal` on the engines' pushed state, requests tagged with the
#                  `gimbal` queue key as vLLM's `priority` (prefill-aware order with aging), and
#                  engines started with `--step-policy gimbal` (coordinated step budgets).
# Both clusters run the `priority` queue policy, as vLLM does with --scheduling-policy priority:
# lower `priority` first, ties by arrival. Untagged requests all have priority 0, so the baseline
# is served first come, first served.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
MODEL="${MODEL:-qwen3-30b-a3b}"
GPU="${GPU:-h200}"
DP="${DP:-4}"
TIME_SCALE="${TIME_SCALE:-2}"
NUM_PROMPTS="${NUM_PROMPTS:-900}"
RATE="${RATE:-36}"  # requests per second sent (wall clock): RATE x TIME_SCALE in model time
BURSTINESS="${BURSTINESS:-0.5}"
INPUT_LEN="${INPUT_LEN:-2000}"
OUTPUT_LEN="${OUTPUT_LEN:-128}"
RANGE_RATIO="${RANGE_RATIO:-0.9}"
SEED="${SEED:-1}"
RUN_TIMEOUT="${RUN_TIMEOUT:-90}"   # seconds per bench run
OUT="${OUT:-$ROOT/out/demo}"
# A router config (docs/router.md) both routers load. By default one that lifts
# limits.max_inflight_per_engine (256): at saturation the queues grow past it and the routers
# would answer 429.
ROUTER_CONFIG="${ROUTER_CONFIG:-}"

if [ ! -x "$GIMBAL" ]; then
  echo "live-demo: $GIMBAL not found; build first (make build)" >&2
  exit 2
fi
export GIMBAL_DATA_DIR="${GIMBAL_DATA_DIR:-$ROOT/data}"

if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ] && [ ! -f "$OUT/live/live.json" ]; then
  echo "live-demo: $OUT is not empty and holds no earlier demo (live/live.json); set OUT" >&2
  exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT/live"
OUT="$(cd "$OUT" && pwd)"
LIVE="$OUT/live"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-live.XXXXXX")"
# shellcheck source=lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
procs_init live-demo "$WORK"
if [ -z "$ROUTER_CONFIG" ]; then
  # The routers run on the wall clock, which is TIME_SCALE times the engines' model time: the
  # baseline's scrape interval (vLLM's 100 ms) and the gimbal queue key's constants (seconds per
  # prompt token, the overtaking cap) are scaled so that both stacks decide in model time as their
  # simulated twins do (the key times TIME_SCALE orders requests as the model-time key).
  ROUTER_CONFIG="$WORK/router.yaml"
  awk -v s="$TIME_SCALE" 'BEGIN {
    printf "limits: {max_inflight_per_engine: 100000}\n"
    printf "state: {scrape_interval_s: %.6g}\n", 0.1 * s
    printf "queue: {params: {beta: %.6g, max_overtake_ms: %.6g}}\n", 0.001 * s, 1000 * s
  }' >"$ROUTER_CONFIG"
fi


echo "== live: $MODEL on $DP x $GPU (emulated, time scale $TIME_SCALE); $NUM_PROMPTS requests at $RATE req/s"

start_engines() {  # name, then engine flags; sets BACKENDS and URLS
  local name=$1; shift
  "$GIMBAL" engine --dp "$DP" --model "$MODEL" --gpu "$GPU" --port 0 --time-scale "$TIME_SCALE" \
    --queue-policy priority --threads 2 --drain-timeout 5 "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  procs_wait_for_line "$WORK/$name.log" "engine $((DP - 1)) on http" "$pid" >/dev/null
  BACKENDS=()
  URLS=()
  local url
  for url in $(grep -Eo 'engine [0-9]+ on http://[0-9.:]+' "$WORK/$name.log" | awk '{print $4}'); do
    BACKENDS+=(--backend "$url")
    URLS+=("$url")
  done
  [ ${#BACKENDS[@]} -eq $((DP * 2)) ] || { echo "live-demo: expected $DP engine URLs" >&2; exit 1; }
}

ROUTER_PORT=""
start_router() {  # name, then serve flags; sets ROUTER_PORT
  local name=$1; shift
  "$GIMBAL" serve --port 0 --model "$MODEL" ${ROUTER_CONFIG:+--config "$ROUTER_CONFIG"} \
    "${BACKENDS[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local line
  line="$(procs_wait_for_line "$WORK/$name.log" "listening on port [0-9]+" "$pid")"
  ROUTER_PORT="$(grep -Eo '[0-9]+' <<<"${line##*port }" | head -n1)"
  [ -n "$ROUTER_PORT" ]
}
# Each stack has its own cluster: vLLM's fixed step budget for the baseline, Gimbal's coordinated
# step budgets for the gimbal stack (the engine-side third of the stack).
start_engines engines-vllm
BASE_URLS="${URLS[*]}"
start_router vllm-baseline --policy vllm --queue-policy none --state-source metrics
BASE_PORT=$ROUTER_PORT
start_engines engines-gimbal --step-policy gimbal
start_router gimbal --policy gimbal --queue-policy gimbal --state-source auto
GIMBAL_PORT=$ROUTER_PORT
echo "   engines: vllm-baseline ${BASE_URLS}; gimbal ${URLS[*]}"
echo "   routers: vllm-baseline on :$BASE_PORT, gimbal on :$GIMBAL_PORT"
sleep 0.5  # first scrapes and pushed states

run_bench() {  # name, port
  echo "-- $1"
  timeout --signal=TERM "$RUN_TIMEOUT" "$GIMBAL" bench --base-url "http://127.0.0.1:$2" \
    --model "$MODEL" --num-prompts "$NUM_PROMPTS" --request-rate "$RATE" \
    --burstiness "$BURSTINESS" --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" \
    --random-range-ratio "$RANGE_RATIO" --seed "$SEED" --send-traffic-class --save-detailed \
    --json "$LIVE/$1.json" >"$WORK/$1.bench.log" 2>&1 || {
      echo "live-demo: gimbal bench through $1 failed" >&2
      tail -n 20 "$WORK/$1.bench.log" >&2
      return 1
    }
}
run_bench vllm-baseline "$BASE_PORT"
run_bench gimbal "$GIMBAL_PORT"

python3 - "$LIVE/vllm-baseline.json" "$LIVE/gimbal.json" <<'EOF'
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

# The same scenario in the simulator: the emulated engines' cluster (`gimbal engine --dp --model
# --gpu`: catalogue defaults, one traffic class) and `gimbal bench`'s workload (same generator,
# seed and lengths), at the rate in model time (the emulator sleeps model time x TIME_SCALE).
echo "== simulated: the same scenario and workload"
lengths() {  # len, range ratio -> the length distribution `gimbal bench` draws from
  awk -v l="$1" -v r="$2" 'BEGIN {
    if (r > 0) {
      lo = int(l * (1 - r)); if (lo < 1) lo = 1
      hi = l * (1 + r); hi = (hi == int(hi)) ? hi : int(hi) + 1
      printf "{dist: uniform, low: %d, high: %d}", lo, hi
    } else printf "%d", l }'
}
SIM_RATE="$(awk -v r="$RATE" -v s="$TIME_SCALE" 'BEGIN { printf "%.10g", r * s }')"
cat >"$LIVE/scenario.yaml" <<YAML
# Written by scripts/live-demo.sh: the live demo's cluster and workload for the simulator.
name: live-demo
description: $MODEL on $DP x $GPU (DP$DP+EP$DP), $NUM_PROMPTS requests at $RATE req/s, burstiness $BURSTINESS
seed: $SEED
model: $MODEL
gpu: $GPU
topology: hgx-8gpu
cluster: {dp: $DP}
workload:
  kind: synthetic
  num_requests: $NUM_PROMPTS
  rate: $SIM_RATE
  burstiness: $BURSTINESS
  prompt: $(lengths "$INPUT_LEN" "$RANGE_RATIO")
  output: $(lengths "$OUTPUT_LEN" "$RANGE_RATIO")
stacks:
  # The live stacks: vLLM's balancer on 100 ms metrics scrapes with FCFS engines (untagged
  # requests under the priority queue) and vLLM's fixed step budget, in one router that sees all
  # its own picks (one front end); Gimbal's dispatch on pushed state, its queue order and its
  # coordinated step budgets.
  - name: vllm-baseline
    dispatch: {policy: vllm, snapshot_interval_ms: 100, frontends: 1}
    queue: fcfs
  - name: gimbal
    dispatch: {policy: gimbal, snapshot_interval_ms: 0}
    queue: gimbal
    step: gimbal
YAML
cat >"$LIVE/suite.yaml" <<YAML
# Written by scripts/live-demo.sh: one point per stack, the live run's seed and rate.
name: live-demo
description: The live demo's scenario in the simulator, next to the live run (scripts/live-demo.sh)
scenarios:
  - path: scenario.yaml
    label: live-demo
rates: [$SIM_RATE]
seeds: [$SEED]
baseline: vllm-baseline
headline: gimbal
series_bins: 50
expert_load: {bins: 30}
YAML
cat >"$LIVE/live.json" <<JSON
{"format": "gimbal.live/1", "scenario": "live-demo", "rate": $SIM_RATE, "seed": $SEED,
 "time_scale": $TIME_SCALE,
 "description": "gimbal bench against gimbal serve over gimbal engine (scripts/live-demo.sh)",
 "runs": [{"stack": "vllm-baseline", "bench_json": "vllm-baseline.json"},
          {"stack": "gimbal", "bench_json": "gimbal.json"}]}
JSON
"$GIMBAL" experiment --suite "$LIVE/suite.yaml" --out "$OUT" --jobs 2 >"$WORK/experiment.log" 2>&1 || {
  echo "live-demo: gimbal experiment failed" >&2
  tail -n 20 "$WORK/experiment.log" >&2
  exit 1
}
"$GIMBAL" report "$OUT" >"$WORK/report.log" 2>&1 || {
  echo "live-demo: gimbal report failed" >&2
  tail -n 20 "$WORK/report.log" >&2
  exit 1
}
python3 - "$OUT/report/headline.json" <<'PY'
import json, sys
live = json.load(open(sys.argv[1])).get("live", {})
names = [("mean_ttft_ms", "mean TTFT (ms)", "{:.1f}"), ("mean_tpot_ms", "mean TPOT (ms)", "{:.2f}"),
         ("p99_ttft_ms", "p99 TTFT (ms)", "{:.1f}"), ("request_throughput", "throughput (req/s)", "{:.2f}")]
print("{:<20} {:<15} {:>10} {:>10} {:>8}".format("", "stack", "simulated", "live", "gap"))
for key, label, fmt in names:
    for r in live.get("rows", []):
        c = r["metrics"][key]
        cell = lambda v: fmt.format(v) if v is not None else "-"
        gap = "{:+.1f}%".format(c["gap_pct"]) if c["gap_pct"] is not None else "-"
        print("{:<20} {:<15} {:>10} {:>10} {:>8}".format(label, r["stack"], cell(c["sim"]),
                                                         cell(c["live"]), gap))
if not live.get("rows"):
    print("live-demo: the report matched no live run with a simulated point", file=sys.stderr)
    sys.exit(1)
PY
echo "report: $OUT/report/index.html"
