#!/usr/bin/env bash
# Other load generators against `gimbal serve`: `vllm bench serve` (vLLM 0.34 or 0.33) and NVIDIA's aiperf
# run the load `gimbal bench` runs (fixed lengths, a rate, N requests, a seed), through the router
# in front of `gimbal engine`; prints mean TTFT, mean E2E latency and request throughput side by
# side with their ratios to `gimbal bench`, and checks they agree within 5 % (docs/bench.md,
# "Peers: other clients and engines").
#
#   bash bench/peers/clients.sh [--out DIR] [--tolerance 0.05]
#
# Environment: GIMBAL (binary), VLLM_VENV (a venv with vllm, 0.34.0 or 0.33.0; default build/vllm-diff-venv,
# made by bench/vllm_diff/install.sh), AIPERF_VENV (made here when missing), and the load: N RATE
# BURSTINESS ISL OSL SEED DP TIME_SCALE. Exits 1 when a client failed or a figure is off by more
# than the tolerance.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT=$PEERS_BUILD/clients-$(date -u +%Y%m%dT%H%M%SZ)
TOL=0.05
while (($#)); do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --tolerance) TOL=$2; shift 2 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) peers_die "unknown argument $1" ;;
  esac
done

MODEL=${MODEL:-qwen3-30b-a3b} GPU=${GPU:-h100-sxm} DP=${DP:-2} TIME_SCALE=${TIME_SCALE:-10}
N=${N:-72} RATE=${RATE:-6} BURSTINESS=${BURSTINESS:-100} ISL=${ISL:-512} OSL=${OSL:-64}
SEED=${SEED:-1}
VLLM_VENV=${VLLM_VENV:-$PEERS_ROOT/build/vllm-diff-venv}
AIPERF_VENV=${AIPERF_VENV:-$PEERS_BUILD/aiperf-venv}
AIPERF_VERSION=${AIPERF_VERSION:-0.13.0}

[[ -x $GIMBAL ]] || peers_die "no gimbal binary at $GIMBAL (build it, or set GIMBAL)"
[[ -x $VLLM_VENV/bin/vllm ]] || peers_die "no vllm in $VLLM_VENV (bash bench/vllm_diff/install.sh)"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
trap peers_cleanup EXIT

# --- clients ----------------------------------------------------------------------------------
# The vLLM venv may be the partial install of bench/vllm_diff: `vllm bench serve` imports the API
# server's modules, which need these three besides.
"$VLLM_VENV/bin/python" -c "import uvicorn, watchfiles, orjson" 2>/dev/null ||
  "$VLLM_VENV/bin/python" -m pip install -q uvicorn watchfiles orjson
if [[ ! -x $AIPERF_VENV/bin/aiperf ]]; then
  echo "== installing aiperf==$AIPERF_VERSION into $AIPERF_VENV"
  python3 -m venv "$AIPERF_VENV"
  "$AIPERF_VENV/bin/pip" install -q "aiperf==$AIPERF_VERSION"
fi
peers_tokenizer "$AIPERF_VENV/bin/pip"
VLLM_VER=$("$VLLM_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('vllm'))")
AIPERF_VER=$("$AIPERF_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('aiperf'))")

# --- the stack: DP engines behind the router --------------------------------------------------
BASE=$(peers_pick_ports 18700 $((DP + 1))) || peers_die "no free ports"
RP=$BASE
backends=()
for ((i = 1; i <= DP; i++)); do backends+=(--backend "http://127.0.0.1:$((BASE + i))"); done
peers_spawn "$OUT/engine.log" "$GIMBAL" engine --dp "$DP" --model "$MODEL" --gpu "$GPU" \
  --port $((BASE + 1)) --time-scale "$TIME_SCALE"
for ((i = 1; i <= DP; i++)); do
  peers_wait_http "http://127.0.0.1:$((BASE + i))/health" 30 || peers_die "engine did not start ($OUT/engine.log)"
done
peers_spawn "$OUT/serve.log" "$GIMBAL" serve --port "$RP" --model "$MODEL" "${backends[@]}"
peers_wait_http "http://127.0.0.1:$RP/v1/models" 30 || peers_die "router did not start ($OUT/serve.log)"
URL=http://127.0.0.1:$RP
echo "== $MODEL, $DP emulated $GPU engines (time scale $TIME_SCALE) behind gimbal serve on $URL"
echo "== load: $N requests, $RATE req/s, burstiness $BURSTINESS, $ISL in / $OSL out tokens, seed $SEED"

# The engines' own counters, summed over engines: prompt tokens and finished requests (what each
# client's requests weighed on the server), and the sums of their TTFT and E2E histograms (the
# server's side of the latencies, without client and router).
engine_counts() {
  local i
  for ((i = 1; i <= DP; i++)); do curl -sf "http://127.0.0.1:$((BASE + i))/metrics"; done | awk '
    /^vllm:prompt_tokens_total/ {t += $NF} /^vllm:request_success_total/ {r += $NF}
    /^vllm:time_to_first_token_seconds_sum/ {f += $NF} /^vllm:e2e_request_latency_seconds_sum/ {e += $NF}
    END {printf "%d %d %.6f %.6f\n", t, r, f, e}'
}
# run NAME COMMAND...: runs one client, records the engines' counters before and after.
run() {
  local name=$1 t0 r0 f0 e0 t1 r1 f1 e1 start rc=0
  shift
  read -r t0 r0 f0 e0 < <(engine_counts)
  start=$(date +%s.%N)
  "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  read -r t1 r1 f1 e1 < <(engine_counts)
  python3 - "$rc" $((t1 - t0)) $((r1 - r0)) "$(echo "$f1 - $f0" | bc)" "$(echo "$e1 - $e0" | bc)" \
    "$(echo "$(date +%s.%N) - $start" | bc)" >"$OUT/$name.engine.json" <<'EOF2'
import json, sys
rc, tok, req, ttft, e2e, wall = sys.argv[1:]
n = max(int(req), 1)
print(json.dumps({"rc": int(rc), "engine_prompt_tokens": int(tok), "engine_requests": int(req),
                  "engine_mean_ttft_ms": 1000 * float(ttft) / n,
                  "engine_mean_e2e_ms": 1000 * float(e2e) / n, "wall_s": round(float(wall), 1)}))
EOF2
  echo "   $name: exit $rc, $(cat "$OUT/$name.engine.json")"
}
gimbal_bench() {  # NAME INPUT_LEN SEED
  run "$1" "$GIMBAL" bench --base-url "$URL" --model "$MODEL" --num-prompts "$N" \
    --request-rate "$RATE" --burstiness "$BURSTINESS" --random-input-len "$2" \
    --random-output-len "$OSL" --seed "$3" --json "$OUT/$1.json"
}
# Mean prompt tokens per request as the engines counted them (rounded).
engine_isl() {
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(d['engine_prompt_tokens'] / max(d['engine_requests'], 1)))" "$OUT/$1.engine.json"
}

echo "== gimbal bench"
gimbal_bench gimbal "$ISL" "$SEED"
# The peers send text, which `gimbal engine` counts at 4 bytes of UTF-8 a token: their prompts of
# ISL tokens (by their tokenizer) weigh more or less than ISL on the engine. Right after each peer
# `gimbal bench` runs again at that peer's engine-counted length (a new seed: no shared prefixes),
# the same load, next in time so that the machine's load drifts least between the two.
echo "== vllm bench serve (vllm $VLLM_VER)"
run vllm "$VLLM_VENV/bin/vllm" bench serve --backend vllm --base-url "$URL" \
  --endpoint /v1/completions --model "$MODEL" --tokenizer "$TOKENIZER_DIR" \
  --dataset-name random --random-input-len "$ISL" --random-output-len "$OSL" --ignore-eos \
  --num-prompts "$N" --request-rate "$RATE" --burstiness "$BURSTINESS" --seed "$SEED" \
  --percentile-metrics ttft,tpot,itl,e2el --save-result --result-dir "$OUT" \
  --result-filename vllm.json --disable-tqdm
VLLM_ISL=$(engine_isl vllm)
echo "== gimbal bench at vllm's engine-counted prompt length, $VLLM_ISL"
gimbal_bench gimbal-at-vllm "$VLLM_ISL" $((SEED + 1))
echo "== aiperf profile (aiperf $AIPERF_VER)"
# aiperf 0.13 in Hugging Face offline mode takes a tokenizer folder for a hub name and fails; a
# folder loads from disk without it.
run aiperf env -u HF_HUB_OFFLINE -u TRANSFORMERS_OFFLINE "$AIPERF_VENV/bin/aiperf" profile \
  --model "$MODEL" --url "$URL" --endpoint-type completions --streaming \
  --tokenizer "$TOKENIZER_DIR" --isl "$ISL" --isl-stddev 0 --osl "$OSL" --osl-stddev 0 \
  --extra-inputs ignore_eos:true --request-rate "$RATE" --arrival-pattern gamma \
  --vllm-burstiness "$BURSTINESS" --request-count "$N" --random-seed "$SEED" --ui none \
  --no-server-metrics --no-gpu-telemetry --output-artifact-dir "$OUT/aiperf"
AIPERF_ISL=$(engine_isl aiperf)
echo "== gimbal bench at aiperf's engine-counted prompt length, $AIPERF_ISL"
gimbal_bench gimbal-at-aiperf "$AIPERF_ISL" $((SEED + 2))

python3 "$(dirname "${BASH_SOURCE[0]}")/compare_clients.py" "$OUT" --tolerance "$TOL" \
  --isl "$ISL" --osl "$OSL" --vllm-version "$VLLM_VER" --aiperf-version "$AIPERF_VER"
