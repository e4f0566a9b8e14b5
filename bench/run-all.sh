#!/usr/bin/env bash
# Runs Gimbal's benchmarks one after another (`make bench`; docs/bench.md, "Running every
# benchmark"). Each prints its own figures; this adds a header per benchmark, its wall time, a
# summary at the end, and a log of everything under build/bench-results/.
#
#   bash bench/run-all.sh                    every benchmark below, quick settings (~8 minutes)
#   bash bench/run-all.sh --only sim,suite   just these (comma-separated names, in this order)
#   bash bench/run-all.sh --skip router      all but these
#   bash bench/run-all.sh --full             the settings docs/ quotes (placement adds ~10 minutes)
#   bash bench/run-all.sh --list             the names, what each measures and takes, then exit
#
# Benchmarks, in the order they run (times on the 2-core development machine, quick settings):
#   sim        simulator speed, 100,000 requests at 40 req/s, every stack of the default
#              scenario (bench/sim_speed_bench; docs/simulator.md)                    ~1 min
#   fidelity   simulated DeepSeek-V3 prefill/decode throughput per H800 node against published
#              figures (bench/fidelity.sh; docs/fidelity.md)                         seconds
#   placement  placement planning time at DeepSeek-V3 scale, quality against EPLB, gap to the
#              exact optimum (bench/placement/placement_bench; docs/placement.md)    ~2.5 min
#              quick: --scale 9, --versus 20 at Zipf 0.8, --gap 20; --full: --versus 20 at
#              Zipf 0.8 and 1.0, --gap 100 (as docs/placement.md)                      ~12 min
#   suite      the scenario suite, every stack against vllm (bench/suite.sh; results in
#              build/suite-results/, the report in OUT/suite/suite.md; docs/results/ only with --update-docs)
#                                                                                      ~2 min
#   shapes     the report-only shapes against the tail targets (bench/shapes.sh; the report in
#              OUT/shapes/shapes.md; docs/results/ only with --update-docs)            ~1 min
#   coordination  placement coordination on DeepSeek-V3 over 4 and 8 nodes, seeds 1-3, against
#              vllm-eplb (bench/coordination.sh; docs/results/placement-coordination.md) ~1 min
#   router     router overhead, throughput against nginx and SGLang's gateway (smg, when
#              bench/router/install-smg.sh installed it), held streams (bench/router/run.sh;
#              docs/router.md); needs wrk and nginx, else skipped    ~1.5 min, ~4.5 with smg
#
# Options: --build DIR (default build/release: `make build` first, `make bench` does), --out DIR
# (logs; default build/bench-results), --update-docs (let bench/suite.sh rewrite
# docs/results/suite.md and shapes.md). Exits 1 when a benchmark failed, 2 on bad usage.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ALL=(sim fidelity placement suite shapes coordination router)
BUILD=build/release
OUT=build/bench-results
FULL=0
UPDATE_DOCS=0
only=""
skip=""

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only | --skip | --build | --out)
      [[ $# -ge 2 ]] || { echo "bench/run-all.sh: $1 needs a value (see --help)" >&2; exit 2; }
      case "$1" in
        --only) only="$2" ;;
        --skip) skip="$2" ;;
        --build) BUILD="$2" ;;
        --out) OUT="$2" ;;
      esac
      shift
      ;;
    --full) FULL=1 ;;
    --update-docs) UPDATE_DOCS=1 ;;
    --list) awk '/^# Benchmarks, in the order/ { on = 1; next } on && /^# Options:/ { exit } on { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench/run-all.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

[[ "$BUILD" == /* ]] || BUILD="$ROOT/$BUILD"
[[ "$OUT" == /* ]] || OUT="$ROOT/$OUT"

known() { local n; for n in "${ALL[@]}"; do [[ "$n" == "$1" ]] && return 0; done; return 1; }
for n in ${only//,/ } ${skip//,/ }; do
  known "$n" || { echo "bench/run-all.sh: no benchmark '$n' (one of: ${ALL[*]})" >&2; exit 2; }
done
selected=()
for n in "${ALL[@]}"; do
  if [[ -n "$only" && ",$only," != *",$n,"* ]]; then continue; fi
  if [[ ",$skip," == *",$n,"* ]]; then continue; fi
  selected+=("$n")
done
[[ ${#selected[@]} -gt 0 ]] || { echo "bench/run-all.sh: nothing selected" >&2; exit 2; }

GIMBAL="$BUILD/src/cli/gimbal"
need() {  # need FILE...: every file is an executable of the build
  local f
  for f in "$@"; do
    [[ -x "$f" ]] || { echo "missing $f: build it first (make build, or cmake --build $BUILD)"; return 1; }
  done
}

bench_sim() {
  need "$BUILD/bench/sim_speed_bench" || return 1
  "$BUILD/bench/sim_speed_bench" 100000 40
}

bench_fidelity() {
  need "$GIMBAL" || return 1
  bash bench/fidelity.sh "$GIMBAL"
}

bench_placement() {
  local pb="$BUILD/bench/placement/placement_bench"
  need "$pb" || return 1
  "$pb" --scale 9
  "$pb" --versus 20 --zipf 0.8
  if (( FULL )); then
    "$pb" --versus 20 --zipf 1.0
    "$pb" --gap 100 --exact-seconds 10
  else
    "$pb" --gap 20 --exact-seconds 10
  fi
}

bench_suite() {
  need "$GIMBAL" || return 1
  if (( UPDATE_DOCS )); then
    GIMBAL="$GIMBAL" bash bench/suite.sh
    echo "full tables: docs/results/suite.md"
    return
  fi
  # The full report, written beside the log instead of over docs/results/suite.md; its summary
  # over the high-load scenarios is printed here.
  GIMBAL="$GIMBAL" bash bench/suite.sh --report-dir "$OUT/suite"
  sed -n '/^## Summary/,/^## Per scenario/p' "$OUT/suite/suite.md" | sed '$d'
  echo "every stack, per scenario: $OUT/suite/suite.md; docs/results/suite.md with --update-docs"
}

bench_shapes() {
  need "$GIMBAL" || return 1
  if (( UPDATE_DOCS )); then
    bash bench/shapes.sh --bin "$GIMBAL"
    return
  fi
  bash bench/shapes.sh --bin "$GIMBAL" --report-dir "$OUT/shapes"
  sed -n '/^## Targets/,/^Targets met/p' "$OUT/shapes/shapes.md"
}

bench_coordination() {
  need "$GIMBAL" || return 1
  GIMBAL="$GIMBAL" OUT="$OUT/coordination" bash bench/coordination.sh
}

bench_router() {
  need "$GIMBAL" "$BUILD/bench/router/router_bench_tool" || return 1
  local cmd
  for cmd in wrk nginx; do
    if ! command -v "$cmd" >/dev/null; then
      echo "skipped: $cmd is not installed (scripts/install-deps.sh)"
      return 3
    fi
  done
  BUILD="$BUILD" bash bench/router/run.sh
}

mkdir -p "$OUT"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
log="$OUT/run-all-$stamp.log"
echo "bench/run-all.sh: ${selected[*]} with $BUILD$( (( FULL )) && echo ', full settings'); log $log" | tee "$log"
summary=()
failed=0
i=0
for n in "${selected[@]}"; do
  i=$((i + 1))
  echo | tee -a "$log"
  echo "== [$i/${#selected[@]}] $n ($(date -u +%H:%M:%S) UTC)" | tee -a "$log"
  t0=$SECONDS
  set +e
  ( set -euo pipefail; "bench_$n" ) 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  set -e
  dt=$((SECONDS - t0))
  case "$rc" in
    0) status=ok ;;
    3) status=skipped ;;
    *) status="FAILED (exit $rc)"; failed=1 ;;
  esac
  echo "== $n: $status, ${dt} s" | tee -a "$log"
  summary+=("$(printf '  %-10s %-18s %5d s' "$n" "$status" "$dt")")
done
{
  echo
  echo "== summary"
  printf '%s\n' "${summary[@]}"
  echo "log: $log"
} | tee -a "$log"
exit "$failed"
