#!/usr/bin/env bash
# vLLM 0.34's cache-aware admission as a tuned baseline on the prefix scenarios
# (docs/results/prefix.md, "Against vLLM 0.34's cache-aware admission"). Not a test: figures are
# printed.
#
#   bash bench/vllm_cache_aware.sh              # seed 1, about half a minute on one core
#   SEED=2 GIMBAL=build/release/src/cli/gimbal bash bench/vllm_cache_aware.sh
#
# For each high-load prefix scenario: the `vllm` stack at vLLM 0.34's defaults (window 0, 64-token
# blocks), then with `engine.block_size` B (vLLM's --block-size: smaller blocks let prefix hits
# land on finer boundaries), `engine.cache_aware_admission_window` W and
# `engine.cache_aware_admission_threshold` T over the grid below, and `gimbal-prefix` at its
# defaults; mean and p99 TTFT of each, the best vllm setting per metric, and gimbal-prefix against
# that best.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
SEED="${SEED:-1}"
BLOCKS="${BLOCKS:-64 16}"
WINDOWS="${WINDOWS:-16 64 256}"
THRESHOLDS="${THRESHOLDS:-0 0.5}"
SCENARIOS="${SCENARIOS:-prefix-multiturn-h200x8 prefix-agentic-h200x8 prefix-multiturn-h200x32 prefix-agentic-h200x32}"
[ -x "$GIMBAL" ] || { echo "vllm_cache_aware: $GIMBAL missing; build first (make build)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-cacheaware.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# run OUT.json STACK [--set ...]: one simulation; prints "mean p99" TTFT in ms.
run() {
  local out=$1 stack=$2
  shift 2
  "$GIMBAL" simulate -c "$ROOT/configs/scenarios/$sc.yaml" --seed "$SEED" --stack "$stack" \
    --json "$out" "$@" >/dev/null
  python3 - "$out" "$stack" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = next(x for x in d["runs"] if x["stack"] == sys.argv[2])
print(f'{s["mean_ttft_ms"]:.1f} {s["p99_ttft_ms"]:.1f}')
PY
}

echo "seed $SEED; vllm = vLLM 0.34 at its defaults; bs B = block_size; caw W / cat T = cache_aware_admission_window / _threshold"
for sc in $SCENARIOS; do
  echo "== $sc"
  printf '  %-30s %12s %12s\n' setting "mean TTFT ms" "p99 TTFT ms"
  rows="$WORK/$sc.rows"
  : >"$rows"
  read -r m p < <(run "$WORK/d.json" vllm)
  printf '  %-30s %12s %12s\n' "vllm (defaults)" "$m" "$p"
  echo "vllm(defaults) $m $p" >>"$rows"
  for b in $BLOCKS; do
    if [ "$b" != 64 ]; then
      read -r m p < <(run "$WORK/w.json" vllm --set "engine.block_size=$b")
      printf '  %-30s %12s %12s\n' "vllm bs $b" "$m" "$p"
      echo "vllm(bs$b) $m $p" >>"$rows"
    fi
    for w in $WINDOWS; do
      for t in $THRESHOLDS; do
        read -r m p < <(run "$WORK/w.json" vllm --set "engine.block_size=$b" \
          --set "engine.cache_aware_admission_window=$w" \
          --set "engine.cache_aware_admission_threshold=$t")
        printf '  %-30s %12s %12s\n' "vllm bs $b caw $w cat $t" "$m" "$p"
        echo "vllm(bs$b,caw$w,cat$t) $m $p" >>"$rows"
      done
    done
  done
  read -r gm gp < <(run "$WORK/g.json" gimbal-prefix)
  printf '  %-30s %12s %12s\n' gimbal-prefix "$gm" "$gp"
  awk -v gm="$gm" -v gp="$gp" '
    NR == 1 || $2 < bm { bm = $2; bmn = $1 }
    NR == 1 || $3 < bp { bp = $3; bpn = $1 }
    NR == 1 { dm = $2; dp = $3 }
    END {
      printf "  best vllm: mean %.1f (%s, %+.1f%% vs defaults), p99 %.1f (%s, %+.1f%% vs defaults)\n",
        bm, bmn, (bm / dm - 1) * 100, bp, bpn, (bp / dp - 1) * 100
      printf "  gimbal-prefix vs best vllm: mean TTFT %+.1f%%, p99 TTFT %+.1f%%\n",
        (gm / bm - 1) * 100, (gp / bp - 1) * 100
    }' "$rows"
done
