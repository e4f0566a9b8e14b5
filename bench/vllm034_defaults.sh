#!/usr/bin/env bash
# How vLLM 0.34's two changed engine defaults move the comparison (docs/baseline.md, "vLLM
# 0.34.0"). Not a test: figures are printed.
#
#   bash bench/vllm034_defaults.sh            # seed 1, a few minutes on one core
#   SEED=2 SCENARIOS="suite/h200x8-high-bursty" bash bench/vllm034_defaults.sh
#
# vLLM 0.34 allocates KV in blocks of 64 tokens by default (0.33: 16) and sizes the KV cache from
# memory measured after warm-up, up to the whole GPU less the activation peak and 512 MiB (0.33: 92%
# of the GPU). The engine model's defaults are 0.34's; this runs each scenario's `vllm` stack and
# Gimbal's stack twice, once with vLLM 0.33's
#   engine.block_size=16, engine.gpu_memory_utilization=0.92, engine.activation_reserve_gb=4
# and once at the model's defaults (64, 1.0 and 4.5: the 4 GB reserve for activations and CUDA
# graphs plus 0.5 GiB outside PyTorch), and prints mean / p99 TTFT, mean TPOT and req/s of each,
# and Gimbal's change against vllm in each world.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
SEED="${SEED:-1}"
SCENARIOS="${SCENARIOS:-suite/h200x8-high-bursty suite/h200x8-high-heavytail suite/h200x32-high-bursty suite/a100x2-high-heavytail prefix-multiturn-h200x8 prefix-agentic-h200x8}"
V033=(--set engine.block_size=16 --set engine.gpu_memory_utilization=0.92
      --set engine.activation_reserve_gb=4)
[ -x "$GIMBAL" ] || { echo "vllm034_defaults: $GIMBAL missing; build first (make build)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-v034.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "seed $SEED; each row: mean TTFT ms, p99 TTFT ms, mean TPOT ms, req/s; Gimbal's change against vllm in brackets"
for sc in $SCENARIOS; do
  file="$ROOT/configs/scenarios/$sc.yaml"
  # Prefix scenarios compare gimbal-prefix (the gimbal stack with the engines' KV events).
  gstack=gimbal
  grep -q 'name: gimbal-prefix$' "$file" && gstack=gimbal-prefix
  echo "== $sc (vllm against $gstack)"
  for world in 0.33 0.34; do
    extra=()
    [ "$world" = 0.33 ] && extra=("${V033[@]}")
    "$GIMBAL" simulate -c "$file" --seed "$SEED" --stack vllm --stack "$gstack" \
      --json "$WORK/out.json" "${extra[@]}" >/dev/null
    python3 - "$WORK/out.json" "$world" "$gstack" <<'PY'
import json, sys
runs = {r["stack"]: r for r in json.load(open(sys.argv[1]))["runs"]}
keys = ["mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "request_throughput"]
v, g = runs["vllm"], runs[sys.argv[3]]
fmt = lambda r: " / ".join(f"{r[k]:.1f}" if k != "request_throughput" else f"{r[k]:.2f}" for k in keys)
gain = " / ".join(f"{(g[k] / v[k] - 1) * 100:+.1f}%" for k in keys)
kv = v.get("kv_capacity_tokens_per_rank")
print(f"  {sys.argv[2]} defaults (KV {kv} tokens per rank): vllm {fmt(v)}; {sys.argv[3]} {fmt(g)} [{gain}]")
PY
  done
done
