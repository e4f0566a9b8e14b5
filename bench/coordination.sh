#!/usr/bin/env bash
# Runs the placement-coordination scenarios (configs/scenarios/coord/, issue 15;
# docs/results/placement-coordination.md) and prints their tables: per scenario and seed every
# stack's cross-node all-to-all fraction, mean TPOT, req/s, mean and p99 TTFT, expert-load
# max/mean and experts copied, with the change against vllm-eplb; the ablations against
# gimbal-front; and the targets (gimbal-coordinated against vllm-eplb). Not a test: figures are
# printed (Markdown), and the JSON kept.
#
#   bash bench/coordination.sh                 seeds 1 2 3, two simulations at a time (~10 min)
#   SEEDS="1" JOBS=1 bash bench/coordination.sh
#   OUT=build/coord-results bash bench/coordination.sh
#
# The no-skew control runs every stack on seed 1 and vllm-eplb and gimbal-coordinated on the
# other seeds. Needs the gimbal binary ($GIMBAL, else build/release/src/cli/gimbal) and python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
SEEDS="${SEEDS:-1 2 3}"
JOBS="${JOBS:-2}"
OUT="${OUT:-$ROOT/build/coord-results}"
[ -x "$GIMBAL" ] || { echo "coordination: $GIMBAL missing; build first (make build)" >&2; exit 2; }
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "coordination: JOBS must be a positive integer" >&2; exit 2; }
mkdir -p "$OUT"

runs=()
for seed in $SEEDS; do
  runs+=("deepseek-v3-32xh200-skew $seed all" "deepseek-v3-64xh200-skew $seed all")
  if [ "$seed" = 1 ]; then
    runs+=("deepseek-v3-32xh200-noskew $seed all")
  else
    runs+=("deepseek-v3-32xh200-noskew $seed pair")
  fi
done

run_one() {
  local sc=$1 seed=$2 which=$3
  local stacks=()
  [ "$which" = pair ] && stacks=(--stack vllm-eplb --stack gimbal-coordinated)
  local t0=$SECONDS
  "$GIMBAL" simulate -c "$ROOT/configs/scenarios/coord/$sc.yaml" --seed "$seed" ${stacks[@]+"${stacks[@]}"} \
    --json "$OUT/$sc-s$seed.json" >/dev/null
  echo "  $sc seed $seed: $((SECONDS - t0)) s" >&2
}

failed=0
pids=()
for r in "${runs[@]}"; do
  # shellcheck disable=SC2086
  run_one $r &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$JOBS" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" = 0 ] || { echo "coordination: a simulation failed" >&2; exit 1; }

python3 - "$OUT" $SEEDS <<'PY'
import json, os, sys
out, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
stacks = ["vllm-eplb", "gimbal-front", "gimbal-affinity", "gimbal-source-placement",
          "gimbal-coordinated"]
keys = [("a2a_cross_node_fraction", "{:.3f}"), ("mean_tpot_ms", "{:.1f}"),
        ("request_throughput", "{:.2f}"), ("mean_ttft_ms", "{:.0f}"), ("p99_ttft_ms", "{:.0f}")]

def load(sc, seed):
    with open(os.path.join(out, f"{sc}-s{seed}.json")) as f:
        return {r["stack"]: r for r in json.load(f)["runs"]}

def change(a, b):
    return (a / b - 1) * 100

def pct(x):
    return f"{x:+.1f}".replace("-", "\u2212")

def row(seed_label, name, r, base, extra):
    cells = []
    for k, f in keys:
        v = f.format(r[k])
        if name != "vllm-eplb":
            v += f" ({pct(change(r[k], base[k]))}%)"
        cells.append(v)
    if extra:
        cells += [f"{r.get('expert_load_max_over_mean', float('nan')):.2f}",
                  str(r.get("experts_migrated", ""))]
    bold = name == "gimbal-coordinated" and extra
    if bold:
        cells = [f"**{c}**" for c in cells]
        name = f"**{name}**"
    return f"| {seed_label} | {name} | " + " | ".join(cells) + " |"

targets = {}
for sc, title in [("deepseek-v3-32xh200-skew", "DeepSeek-V3, 32 × H200, class skew"),
                  ("deepseek-v3-64xh200-skew", "DeepSeek-V3, 64 × H200, class skew"),
                  ("deepseek-v3-32xh200-noskew", "Control: no class skew (32 × H200)")]:
    extra = "noskew" not in sc
    print(f"\n## {title}\n")
    head = "| seed | stack | cross-node | TPOT ms | req/s | TTFT ms | TTFT p99 ms |"
    head += " EP max/mean | copies |" if extra else ""
    print(head)
    print("|" + "---|" * (9 if extra else 7))
    abl = {}
    for seed in seeds:
        runs = load(sc, seed)
        base = runs["vllm-eplb"]
        label = f"{seed} ({'train' if seed == 1 else 'test'})"
        for name in stacks:
            if name not in runs:
                continue
            print(row(label if name == "vllm-eplb" else seed, name, runs[name], base, extra))
        c = runs["gimbal-coordinated"]
        targets.setdefault(sc, []).append(
            {k: change(c[k], base[k]) for k, _ in keys})
        if "gimbal-front" in runs:
            front = runs["gimbal-front"]
            abl[seed] = {n: {k: change(runs[n][k], front[k]) for k, _ in keys}
                         for n in ("gimbal-affinity", "gimbal-source-placement",
                                   "gimbal-coordinated")}
    if abl:
        print(f"\nAblations against `gimbal-front`, seeds {' / '.join(map(str, abl))}:")
        for n, what in [("gimbal-affinity", "affinity alone"),
                        ("gimbal-source-placement", "source-aware placement alone"),
                        ("gimbal-coordinated", "both")]:
            parts = []
            for k, label in [("a2a_cross_node_fraction", "cross-node"), ("mean_tpot_ms", "TPOT"),
                             ("mean_ttft_ms", "mean TTFT"), ("request_throughput", "req/s")]:
                parts.append(" / ".join(pct(abl[s][n][k]) for s in abl) + f"% {label}")
            print(f"- {what}: " + ", ".join(parts))

print("\n## Targets (gimbal-coordinated against vllm-eplb)\n")
print("| target | " + " | ".join(f"{sc} seeds {' / '.join(map(str, seeds))}" for sc in targets) + " |")
print("|---|" + "---|" * len(targets))
for k, label in [("a2a_cross_node_fraction", "cross-node ≤ −50%"), ("mean_tpot_ms", "mean TPOT ≤ −15%"),
                 ("request_throughput", "throughput ≥ +5%"), ("mean_ttft_ms", "mean TTFT no worse"),
                 ("p99_ttft_ms", "p99 TTFT no worse")]:
    cells = [" / ".join(pct(t[k]) for t in targets[sc]) + "%" for sc in targets]
    print(f"| {label} | " + " | ".join(cells) + " |")
PY
