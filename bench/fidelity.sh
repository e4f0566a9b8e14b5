#!/usr/bin/env bash
# Simulated side of docs/fidelity.md: DeepSeek-V3 on 4 H800 nodes, prefill and decode throughput
# per node, to compare with DeepSeek's and RTP-LLM's published figures.
#   bash bench/fidelity.sh [path/to/gimbal]
set -euo pipefail
cd "$(dirname "$0")/.."
gimbal=${1:-build/release/src/cli/gimbal}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
py=/usr/bin/python3; [ -x "$py" ] || py=python3

"$gimbal" simulate -c configs/fidelity/deepseek-v3-prefill-h800.yaml --json "$out/prefill.json" >/dev/null
"$py" - "$out/prefill.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
nodes = 4
print(f"prefill: {r['total_input_tokens']/r['duration']/nodes:,.0f} prompt tokens/s per node "
      f"(4096-token prompts, EP32, {r['steps']} steps, mean TTFT {r['mean_ttft_ms']:.0f} ms)")
PY

for n in 1024 2048 3072; do
  "$gimbal" simulate -c configs/fidelity/deepseek-v3-decode-h800.yaml \
      --set workload.num_requests=$n --steps-csv "$out/decode.csv" >/dev/null
  "$py" - "$out/decode.csv" "$n" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
dec = [r for r in rows if r["tokens"] == r["sequences"] and int(r["sequences"]) >= 0.9 * int(sys.argv[2])]
t = sum(float(r["duration_s"]) for r in dec)
tok = sum(int(r["tokens"]) for r in dec)
nodes = 4
print(f"decode:  {tok/t/nodes:,.0f} output tokens/s per node at {int(sys.argv[2])//32} sequences per GPU "
      f"(step {1e3*t/len(dec):.1f} ms = TPOT, {len(dec)} pure-decode steps)")
PY
done
