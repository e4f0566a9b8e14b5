#!/usr/bin/env bash
# make demo's live comparison (scripts/live-demo.sh) on a reduced load, as a test of relative
# figures: both stacks complete every request on emulated engines, each stack's live mean TTFT,
# mean TPOT and throughput stay near its simulated twin's, and Gimbal's live gains over the vLLM
# baseline in mean TTFT and mean TPOT are within 10 points of the simulated gains (issue 16's
# demo targets are 10% per metric at full load; the per-metric tolerance here is wider because a
# test machine shares its cores). About 40 s; ctest runs it alone (RUN_SERIAL).
#
# The figures are wall-clock means of a few hundred requests on a shared machine: at this load a
# stack's mean TTFT is about 80 ms, and the 10-point tolerance on the gain is about 9 ms of it,
# which a busy neighbour can move (a fresh-clone CI run once measured -11.0% against -21.4%, each
# stack within 7% of its simulated twin). So a run that misses is run once more, and the test
# fails when both miss: a real gap between live and simulated shows in both runs, one machine's
# bad moment in one.
#   tests/live/live_demo_test.sh path/to/gimbal
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
gimbal="${1:?usage: live_demo_test.sh path/to/gimbal}"
work="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-live-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
attempt() {  # n: one live run and its check; exit status 0 when every figure is within bounds
  local dir="$work/run$1"
  if ! GIMBAL="$gimbal" NUM_PROMPTS=300 RATE=20 TIME_SCALE=2 OUT="$dir/demo" \
       bash "$root/scripts/live-demo.sh" >"$work/log$1" 2>&1; then
    tail -n 60 "$work/log$1" >&2
    echo "live_demo_test: scripts/live-demo.sh failed" >&2
    exit 1  # a run that does not complete is a failure at once, not a measurement to retry
  fi
  cat "$work/log$1"
  python3 - "$dir/demo/report/headline.json" <<'PY'
import json, sys
live = json.load(open(sys.argv[1]))["live"]
rows = {r["stack"]: r["metrics"] for r in live["rows"]}
problems = []
for stack in ("vllm-baseline", "gimbal"):
    for m in ("mean_ttft_ms", "mean_tpot_ms", "request_throughput"):
        gap = rows[stack][m]["gap_pct"]
        if gap is None or abs(gap) > 25:
            problems.append(f"{stack} {m}: live {rows[stack][m]['live']:.2f} against simulated "
                            f"{rows[stack][m]['sim']:.2f} ({gap:+.1f}%), beyond 25%")
for m in ("mean_ttft_ms", "mean_tpot_ms"):
    gain = {src: (rows["gimbal"][m][src] / rows["vllm-baseline"][m][src] - 1) * 100
            for src in ("sim", "live")}
    print(f"gimbal against vllm-baseline, {m}: simulated {gain['sim']:+.1f}%, "
          f"live {gain['live']:+.1f}%")
    if abs(gain["live"] - gain["sim"]) > 10:
        problems.append(f"{m}: live gain {gain['live']:+.1f}% is more than 10 points from the "
                        f"simulated {gain['sim']:+.1f}%")
for p in problems:
    print("live_demo_test: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}
if attempt 1; then exit 0; fi
echo "live_demo_test: run 1 missed a bound; running once more (see the header)" >&2
attempt 2
