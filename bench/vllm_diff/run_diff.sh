#!/usr/bin/env bash
# Differential check: vLLM's own scheduler (0.34; 0.33 when install.sh ran with VLLM_VERSION)
# against Gimbal's engine scheduler, step by step.
#
#   bench/vllm_diff/run_diff.sh [N=8] [SEED=1]
#
# Generates N random traces (gen_trace.py; each with its own arrival rate, shared prefixes, output
# lengths and a KV cache small enough to force preemptions), runs every trace through vLLM
# (drive_vllm.py, one process for all jobs) and through gimbal_steps, in sync and in async mode,
# and prints per trace and mode: steps (vLLM/Gimbal), steps that agree, vLLM's preemptions, and the
# first differing step with the fields that differ there (compare_steps.py --summary). Totals per
# mode at the end, then the first differences sorted into kinds (classify_diff.py).
#
# Environment: VENV (default build/vllm-diff-venv, made by install.sh), GIMBAL_STEPS (the
# gimbal_steps binary; default: the first of build/*/bench/vllm_diff/gimbal_steps, newest first),
# WORK (default build/vllm-diff-work/run: traces and step logs stay there), MODES ("sync async"),
# GEN_ARGS (more gen_trace.py options, after the drawn ones so they win: "--no-prefix-caching").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n="${1:-8}"
seed="${2:-1}"
venv="${VENV:-$root/build/vllm-diff-venv}"
work="${WORK:-$root/build/vllm-diff-work/run}"
modes="${MODES:-sync async}"
steps_bin="${GIMBAL_STEPS:-}"
if [[ -z "$steps_bin" ]]; then
  steps_bin="$(ls -t "$root"/build/*/bench/vllm_diff/gimbal_steps 2>/dev/null | head -n1 || true)"
fi
[[ "$n" =~ ^[0-9]+$ && "$seed" =~ ^[0-9]+$ ]] || { echo "usage: $0 [N] [SEED]" >&2; exit 2; }
[[ -x "$venv/bin/python" ]] || { echo "run_diff: no venv at $venv (run install.sh)" >&2; exit 2; }
[[ -x "$steps_bin" ]] || {
  echo "run_diff: gimbal_steps not found; build it (-DGIMBAL_BUILD_BENCH=ON, target gimbal_steps)" \
    "or set GIMBAL_STEPS" >&2
  exit 2
}
mkdir -p "$work"
rm -f "$work"/t*.json "$work"/*.jsonl "$work"/jobs.txt

# 1. Traces: parameters drawn per trace from SEED, so a run is reproducible.
for ((i = 0; i < n; i++)); do
  args="$(python3 - "$seed" "$i" <<'EOF'
import random, sys
rng = random.Random(int(sys.argv[1]) * 1000003 + int(sys.argv[2]))
bs = 16
a = {
    "--requests": rng.randint(30, 60),
    "--seed": rng.randint(1, 10**6),
    "--prefixes": rng.randint(0, 4),
    "--prefix-len": rng.choice([16, 32, 40, 64, 96]),
    "--unique-min": rng.randint(1, 16),
    "--unique-max": rng.randint(60, 240),
    "--output-min": 1,
    "--output-max": rng.randint(20, 120),
    "--arrivals-per-step": round(rng.uniform(0.3, 2.0), 2),
    "--block-size": bs,
    "--num-blocks": rng.randint(32, 80),  # tight: decodes grow into preemptions
    "--max-num-seqs": rng.randint(4, 24),
    "--max-num-batched-tokens": rng.choice([64, 128, 256, 512]),
}
print(" ".join(f"{k} {v}" for k, v in a.items()))
EOF
)"
  # shellcheck disable=SC2086
  python3 "$here/gen_trace.py" $args ${GEN_ARGS:-} -o "$work/t$i.json"
  for m in $modes; do
    echo "$work/t$i.json $work/t$i.$m.vllm.jsonl $([[ $m == async ]] && echo async)" >>"$work/jobs.txt"
  done
done

# 2. vLLM, all jobs in one process (its start-up takes ~10 s).
"$venv/bin/python" "$here/drive_vllm.py" --batch "$work/jobs.txt" 2>"$work/vllm.stderr" || {
  echo "run_diff: drive_vllm.py failed; see $work/vllm.stderr" >&2
  tail -n 5 "$work/vllm.stderr" >&2
  exit 1
}

# 3. Gimbal, and the comparison.
declare -A tot_steps tot_agree tot_same
printf '%-6s %-6s %-11s %-6s %-8s %s\n' trace mode steps agree preempt first_difference
for ((i = 0; i < n; i++)); do
  for m in $modes; do
    flag=()
    [[ $m == async ]] && flag=(--async-scheduling)
    g="$work/t$i.$m.gimbal.jsonl"
    if ! "$steps_bin" "$work/t$i.json" "${flag[@]}" -o "$g" 2>"$work/t$i.$m.gimbal.stderr"; then
      echo "t$i    $m   gimbal_steps failed: $(tail -n1 "$work/t$i.$m.gimbal.stderr")"
    fi
    s="$(python3 "$here/compare_steps.py" --summary "$work/t$i.$m.vllm.jsonl" "$g" 2>&1 || true)"
    if [[ $s != steps* ]]; then
      printf '%-6s %-6s %s\n' "t$i" "$m" "not compared: $s"
      continue
    fi
    # "steps A/B agree K preempted P first_diff WHERE"
    read -r _ steps _ agree _ preempt _ where <<<"$s"
    printf '%-6s %-6s %-11s %-6s %-8s %s\n' "t$i" "$m" "$steps" "$agree" "$preempt" "$where"
    tot_steps[$m]=$((${tot_steps[$m]:-0} + ${steps%%/*}))
    tot_agree[$m]=$((${tot_agree[$m]:-0} + agree))
    [[ $where == none ]] && tot_same[$m]=$((${tot_same[$m]:-0} + 1))
  done
done
for m in $modes; do
  echo "$m: $n traces, ${tot_same[$m]:-0} identical; ${tot_agree[$m]:-0} of ${tot_steps[$m]:-0}" \
    "vLLM steps agree (step logs in $work)"
done
echo "first differences by kind (classify_diff.py; README.md explains each):"
python3 "$here/classify_diff.py" "$work"
