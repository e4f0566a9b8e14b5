#!/usr/bin/env bash
# Simulator speed, Gimbal against Vidur (docs/results/vidur.md): dense Llama-3-8B on one H100 at
# 5 req/s, the same requests through both, then Gimbal's own speed bench for reference.
#
#   bench/vidur/install.sh                  # once: the venv with vidur 0.0.26
#   bench/vidur/run.sh                      # about 1.5 minutes on the 2-core machine
#   bench/vidur/run.sh --gimbal-requests 50000 --vidur-requests 4000 --repeats 2   # the defaults
#   bench/vidur/run.sh --no-speed-bench     # skip sim_speed_bench (MoE, not matched to Vidur)
#
# Prints wall seconds, simulated requests and simulated seconds per wall second for each, and the
# ratio Gimbal / Vidur. Vidur runs fewer requests (it is much slower); compare rates, not totals.
# Uses GIMBAL (default build/release/src/cli/gimbal) and SPEED_BENCH (default
# build/release/bench/sim_speed_bench) as built; waits up to 5 minutes for one that is missing
# (a rebuild in progress). VENV (default build/vidur-venv), WORK (default build/vidur-work).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

GIMBAL="${GIMBAL:-build/release/src/cli/gimbal}"
SPEED_BENCH="${SPEED_BENCH:-build/release/bench/sim_speed_bench}"
VENV="${VENV:-build/vidur-venv}"
WORK="${WORK:-build/vidur-work}"
SPEED=1
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-speed-bench) SPEED=0; shift;;
    --gimbal-requests|--vidur-requests|--repeats)
      [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
      ARGS+=("$1" "$2"); shift 2;;
    -h|--help) sed -n '2,15p' "$0"; exit 0;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

[ -x "$VENV/bin/python" ] ||
  { echo "run.sh: no venv at $VENV; run bench/vidur/install.sh" >&2; exit 2; }

wait_for() {  # a binary another engineer may be rebuilding
  local waited=0
  until [ -x "$1" ]; do
    if [ "$waited" -ge 300 ]; then echo "run.sh: $1 missing; build it first" >&2; exit 2; fi
    [ "$waited" -eq 0 ] && echo "waiting for $1 ..." >&2
    sleep 10; waited=$((waited + 10))
  done
}
wait_for "$GIMBAL"

mkdir -p "$WORK"
"$VENV/bin/python" bench/vidur/make_profile.py "$WORK/profile"
echo "vidur $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("vidur"))')," \
     "gimbal $GIMBAL; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== dense Llama-3-8B, 1 x H100, Poisson 5 req/s (bench/vidur/gimbal-llama3-8b-h100.yaml)"
"$VENV/bin/python" bench/vidur/compare.py --gimbal "$GIMBAL" --work "$WORK" \
  --profile "$WORK/profile" "${ARGS[@]}"

if [ "$SPEED" = 1 ]; then
  wait_for "$SPEED_BENCH"
  echo "== for reference, not matched to Vidur: $SPEED_BENCH 20000 40 (Qwen3-30B-A3B, DP8+EP8)"
  "$SPEED_BENCH" 20000 40
fi
