#!/usr/bin/env bash
# Whether two gimbal binaries simulate alike, byte for byte (docs/simulator.md, "Speed"). Not a
# test: it prints one line per output file and a count.
#
#   bash bench/sim_identical.sh OLD_GIMBAL NEW_GIMBAL
#
# Every stack of ten scenarios (the default, DeepSeek-V3 over 32 GPUs, three suite scenarios, two
# prefix-caching scenarios and the three coordination scenarios), 1,500 requests or 60 sessions
# each, through both binaries: the summary JSON (without wall_seconds), the per-step CSV and the
# per-request CSV must be identical. Exit 0 when all 30 pairs are; run one after the other on
# one core (about 30 s per binary on this machine).
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: bash bench/sim_identical.sh OLD_GIMBAL NEW_GIMBAL" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-simidentical.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

run() {  # binary, output folder
  local bin=$1 out=$2 sc name size
  mkdir -p "$out"
  for sc in default deepseek-v3-32xh200 suite/h200x8-high-bursty suite/a100x2-high-skewed \
            suite/h200x32-high-heavytail prefix-agentic-h200x8 prefix-multiturn-h200x32-medium \
            coord/deepseek-v3-32xh200-skew coord/deepseek-v3-32xh200-noskew \
            coord/deepseek-v3-64xh200-skew; do
    name=$(basename "$sc")
    case "$sc" in
      prefix-*) size="workload.num_sessions=60" ;;
      *) size="workload.num_requests=1500" ;;
    esac
    "$bin" simulate -c "$ROOT/configs/scenarios/$sc.yaml" --set "$size" --json "$out/$name.json" \
      --steps-csv "$out/$name.steps.csv" --requests-csv "$out/$name.req.csv" >/dev/null
    python3 - "$out/$name.json" <<'PY'
import json, sys
def strip(o):
    if isinstance(o, dict): return {k: strip(v) for k, v in o.items() if k != "wall_seconds"}
    if isinstance(o, list): return [strip(v) for v in o]
    return o
path = sys.argv[1]
doc = strip(json.load(open(path)))
json.dump(doc, open(path, "w"), sort_keys=True)
PY
  done
}

run "$1" "$WORK/old"
run "$2" "$WORK/new"
same=0 total=0
for f in "$WORK"/old/*; do
  n=$(basename "$f")
  total=$((total + 1))
  if cmp -s "$f" "$WORK/new/$n"; then
    same=$((same + 1))
  else
    echo "DIFF $n"
  fi
done
echo "sim identical: $same of $total output files the same"
[ "$same" -eq "$total" ]
