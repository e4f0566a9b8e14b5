#!/usr/bin/env bash
# llm-d's vLLM simulator (llm-d-inference-sim) as the engines behind `gimbal serve`: installs a
# pinned version with `go install` into build/peers/llmd-sim, starts N instances, puts the router
# in front reading their /metrics (state.source: metrics), sends completions, chat and streamed
# requests through it and checks the answers, and shows /admin/engines while load is in flight
# next to the simulators' own gauges (docs/bench.md, "Peers: other clients and engines").
#
#   bash bench/peers/llmd_sim.sh [--out DIR] [--stand-in]
#
# Environment: LLMD_SIM_VERSION (pinned tag), LLMD_SIM_BIN (a simulator binary built elsewhere:
# skips the install), LLMD_SIM_ARGS (flags for each instance besides --port and --model; they
# differ between simulator versions), N_SIM (instances, default 2), MODEL, GIMBAL.
# --stand-in runs `gimbal engine` in the simulator's place: it checks this script's own steps (the
# router's scrape path, the request checks) and says nothing about the simulator.
# Exit status: 0 all checks passed, 1 a check failed, 3 the Go module proxy does not serve the
# simulator, 4 it is served but did not build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LLMD_SIM_MODULE=github.com/llm-d/llm-d-inference-sim
LLMD_SIM_VERSION=${LLMD_SIM_VERSION:-v0.6.1}
LLMD_SIM_ARGS=${LLMD_SIM_ARGS:---mode random --time-to-first-token 20 --inter-token-latency 10}
N_SIM=${N_SIM:-2}
MODEL=${MODEL:-qwen3-30b-a3b}
OUT=$PEERS_BUILD/llmd-sim-$(date -u +%Y%m%dT%H%M%SZ)
STAND_IN=0
while (($#)); do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --stand-in) STAND_IN=1; shift ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    *) peers_die "unknown argument $1" ;;
  esac
done
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
[[ -x $GIMBAL ]] || peers_die "no gimbal binary at $GIMBAL (build it, or set GIMBAL)"
trap peers_cleanup EXIT

# --- install ------------------------------------------------------------------------------------
SIM_DIR=$PEERS_BUILD/llmd-sim
SIM_BIN=${LLMD_SIM_BIN:-$SIM_DIR/$LLMD_SIM_VERSION/bin/llm-d-inference-sim}
if ((STAND_IN)); then
  echo "== stand-in: gimbal engine in the simulator's place (checks this script, not the simulator)"
elif [[ ! -x $SIM_BIN ]]; then
  command -v go >/dev/null || peers_die "go is not installed"
  echo "== go install $LLMD_SIM_MODULE/cmd/llm-d-inference-sim@$LLMD_SIM_VERSION (proxy: $(go env GOPROXY))"
  mkdir -p "$SIM_DIR"
  export GOPATH=$SIM_DIR/gopath GOMODCACHE=$SIM_DIR/gopath/pkg/mod GOFLAGS=-mod=mod
  # Ask the proxy first, so "not served" and "did not build" are told apart.
  if ! probe=$(cd "$SIM_DIR" && go list -m -json "$LLMD_SIM_MODULE@$LLMD_SIM_VERSION" 2>&1); then
    echo "$probe" | sed 's/^/   /' | head -5
    versions=$(cd "$SIM_DIR" && go list -m -versions "$LLMD_SIM_MODULE" 2>&1 || true)
    echo "   version list: $(echo "$versions" | head -2 | tr '\n' ' ')"
    echo "NOT SERVED: the Go module proxy does not serve $LLMD_SIM_MODULE@$LLMD_SIM_VERSION;"
    echo "nothing to run. Set LLMD_SIM_BIN to a simulator built elsewhere, or --stand-in."
    exit 3
  fi
  # cgo: the simulator's ZeroMQ and SQLite dependencies need a C compiler and libzmq headers.
  if ! GOBIN=$SIM_DIR/$LLMD_SIM_VERSION/bin CGO_ENABLED=1 \
      go install "$LLMD_SIM_MODULE/cmd/llm-d-inference-sim@$LLMD_SIM_VERSION" >"$OUT/install.log" 2>&1; then
    tail -15 "$OUT/install.log" | sed 's/^/   /'
    echo "BUILD FAILED: $LLMD_SIM_MODULE@$LLMD_SIM_VERSION is served but did not build ($OUT/install.log);"
    echo "libzmq headers (apt-get install libzmq3-dev) are the usual missing piece."
    exit 4
  fi
fi

# --- engines and router ---------------------------------------------------------------------------
BASE=$(peers_pick_ports 18800 $((N_SIM + 1))) || peers_die "no free ports"
RP=$BASE
if ((STAND_IN)); then
  peers_spawn "$OUT/engines.log" "$GIMBAL" engine --dp "$N_SIM" --model "$MODEL" --gpu h100-sxm \
    --port $((BASE + 1))
else
  for ((i = 1; i <= N_SIM; i++)); do
    # shellcheck disable=SC2086  # LLMD_SIM_ARGS is a list of flags
    peers_spawn "$OUT/sim$i.log" "$SIM_BIN" --port $((BASE + i)) --model "$MODEL" $LLMD_SIM_ARGS
  done
fi
for ((i = 1; i <= N_SIM; i++)); do
  peers_wait_http "http://127.0.0.1:$((BASE + i))/v1/models" 60 ||
    peers_die "engine $i did not answer on port $((BASE + i)) (logs in $OUT)"
done
{
  echo "listen: {address: 127.0.0.1, port: $RP}"
  echo "backends:"
  for ((i = 1; i <= N_SIM; i++)); do
    echo "  - {name: sim$i, url: \"http://127.0.0.1:$((BASE + i))\", model: \"$MODEL\"}"
  done
  echo "state: {source: metrics, scrape_interval_s: 0.1}"
  echo "admin: {token_env: PEERS_ADMIN_TOKEN}"
} >"$OUT/router.yaml"
export PEERS_ADMIN_TOKEN=peers-$$
peers_spawn "$OUT/serve.log" "$GIMBAL" serve --config "$OUT/router.yaml"
peers_wait_http "http://127.0.0.1:$RP/v1/models" 30 || peers_die "router did not start ($OUT/serve.log)"
echo "== $N_SIM engines on ports $((BASE + 1))..$((BASE + N_SIM)), gimbal serve on $RP (state from /metrics)"

# --- what the simulators expose, against what the router reads (src/router/engine_metrics.cc) -----
for ((i = 1; i <= N_SIM; i++)); do curl -sf "http://127.0.0.1:$((BASE + i))/metrics" >"$OUT/metrics$i.txt" || true; done
python3 - "$OUT/metrics1.txt" <<'EOF'
import re, sys
page = open(sys.argv[1]).read()
names = {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", page, re.M)}
read = [("vllm:num_requests_waiting", "waiting"), ("vllm:num_requests_running", "running"),
        ("vllm:kv_cache_usage_perc", "kv_usage (vLLM >= 0.10 name)"),
        ("vllm:gpu_cache_usage_perc", "kv_usage (older name, read when the new one is absent)"),
        ("vllm:cache_config_info", "kv_capacity_tokens = num_gpu_blocks x block_size"),
        ("gimbal:prefill_pending_tokens", "prefill_pending_tokens (gimbal engine only)")]
print("== /metrics of engine 1: the series the router reads")
for name, use in read:
    print(f"   {'present' if name in names else 'absent ':<8} {name:<32} -> {use}")
info = re.search(r"^vllm:cache_config_info\{([^}]*)\}", page, re.M)
if info:
    labels = dict(re.findall(r'(\w+)="([^"]*)"', info.group(1)))
    print(f"   cache_config_info labels: {', '.join(f'{k}={v}' for k, v in sorted(labels.items()))}")
others = sorted(n for n in names if n.startswith("vllm:"))
print(f"   all vllm:* series ({len(others)}): {' '.join(others)}")
EOF

# --- requests through the router -------------------------------------------------------------------
FAILS=0
check() {  # NAME: checks $OUT/NAME.out with a Python snippet on stdin
  local name=$1
  if python3 - "$OUT/$name.out" "$MODEL"; then echo "   ok    $name"; else echo "   FAIL  $name"; FAILS=$((FAILS + 1)); fi
}
post() {  # NAME PATH BODY
  curl -sS -o "$OUT/$1.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    "http://127.0.0.1:$RP$2" -d "$3" >"$OUT/$1.code" || echo 000 >"$OUT/$1.code"
}
echo "== requests through gimbal serve"
post completion /v1/completions "{\"model\": \"$MODEL\", \"prompt\": \"The capital of France is\", \"max_tokens\": 12}"
check completion <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["object"] == "text_completion" and d["choices"][0]["text"], d
assert d["usage"]["completion_tokens"] > 0, d
EOF
post chat /v1/chat/completions "{\"model\": \"$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"Say hello.\"}], \"max_tokens\": 12}"
check chat <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["object"] == "chat.completion", d
assert d["choices"][0]["message"]["role"] == "assistant" and d["choices"][0]["message"]["content"], d
EOF
post completion-stream /v1/completions "{\"model\": \"$MODEL\", \"prompt\": \"Count to ten:\", \"max_tokens\": 12, \"stream\": true, \"stream_options\": {\"include_usage\": true}}"
check completion-stream <<'EOF'
import json, sys
lines = [l[6:] for l in open(sys.argv[1]).read().splitlines() if l.startswith("data: ")]
assert lines and lines[-1] == "[DONE]", lines[-3:]
events = [json.loads(l) for l in lines[:-1]]
text = [e for e in events if e.get("choices") and e["choices"][0].get("text")]
assert len(text) >= 2, f"{len(text)} text events"
print(f"         {len(text)} text events, usage {[e['usage'] for e in events if e.get('usage')][-1:]}")
EOF
post chat-stream /v1/chat/completions "{\"model\": \"$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"Tell a story.\"}], \"max_tokens\": 12, \"stream\": true}"
check chat-stream <<'EOF'
import json, sys
lines = [l[6:] for l in open(sys.argv[1]).read().splitlines() if l.startswith("data: ")]
assert lines and lines[-1] == "[DONE]", lines[-3:]
events = [json.loads(l) for l in lines[:-1]]
assert all(e["object"] == "chat.completion.chunk" for e in events), events[:2]
deltas = [e["choices"][0]["delta"].get("content") for e in events if e.get("choices")]
assert sum(1 for d in deltas if d) >= 2, deltas
print(f"         {sum(1 for d in deltas if d)} content deltas")
EOF
post unknown-model /v1/completions '{"model": "no-such-model", "prompt": "x", "max_tokens": 2}'
if [[ $(cat "$OUT/unknown-model.code") == 404 ]]; then echo "   ok    unknown model: 404"; else
  echo "   FAIL  unknown model: $(cat "$OUT/unknown-model.code")"; FAILS=$((FAILS + 1)); fi

# --- engine state under load --------------------------------------------------------------------------
echo "== /admin/engines while 24 streamed requests of 200 tokens are in flight"
for ((k = 0; k < 24; k++)); do
  curl -sS -o /dev/null -H 'Content-Type: application/json' "http://127.0.0.1:$RP/v1/completions" \
    -d "{\"model\": \"$MODEL\", \"prompt\": \"$(printf 'word %.0s' $(seq 1 200))\", \"max_tokens\": 200, \"stream\": true}" &
  PEERS_PIDS+=("$!")
done
sleep 1
for ((s = 0; s < 3; s++)); do
  curl -sf -H "Authorization: Bearer $PEERS_ADMIN_TOKEN" "http://127.0.0.1:$RP/admin/engines" >"$OUT/admin$s.json" || true
  for ((i = 1; i <= N_SIM; i++)); do curl -sf "http://127.0.0.1:$((BASE + i))/metrics" >"$OUT/metrics$i.load$s.txt" || true; done
  sleep 0.5
done
python3 - "$OUT" "$N_SIM" <<'EOF' || FAILS=$((FAILS + 1))
import json, re, sys
out, n = sys.argv[1], int(sys.argv[2])
def gauge(page, name):
    vals = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)", page, re.M)]
    return sum(vals) if vals else None
busy = False
for s in range(3):
    try:
        d = json.load(open(f"{out}/admin{s}.json"))
    except (OSError, ValueError):
        print(f"   sample {s}: no /admin/engines answer"); continue
    for i, e in enumerate(d["engines"], 1):
        snap = e.get("snapshot") or {}
        page = open(f"{out}/metrics{i}.load{s}.txt").read()
        kv = gauge(page, "vllm:kv_cache_usage_perc")
        kv = gauge(page, "vllm:gpu_cache_usage_perc") if kv is None else kv
        print(f"   sample {s} {e['name']}: router sees waiting={snap.get('waiting')} running={snap.get('running')} "
              f"kv_usage={snap.get('kv_usage')} kv_capacity_tokens={snap.get('kv_capacity_tokens')} "
              f"age_s={snap.get('age_s', float('nan')):.2f} pushed={snap.get('pushed')} inflight={e.get('inflight')} | "
              f"engine says waiting={gauge(page, 'vllm:num_requests_waiting')} "
              f"running={gauge(page, 'vllm:num_requests_running')} kv={kv}")
        busy |= (snap.get("running") or 0) + (snap.get("waiting") or 0) > 0
ok = busy
print(f"   {'ok' if ok else 'FAIL'}    the router's scraped snapshots show the load" )
sys.exit(0 if ok else 1)
EOF
echo
if ((FAILS)); then echo "FAILED: $FAILS check(s); files in $OUT"; exit 1; fi
echo "OK: completions, chat and streaming through gimbal serve; engine state read from /metrics ($OUT)"
