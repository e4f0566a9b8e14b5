#!/usr/bin/env bash
# Runs Gimbal's scenario suite (configs/scenarios/suite/*.yaml and the prefix-reuse scenarios
# configs/scenarios/prefix-*.yaml) and writes docs/results/suite.md: per scenario, every stack
# against the vllm stack (mean TTFT, mean TPOT, p99 TTFT, request throughput, goodput), a summary
# over the high-load scenarios with the issue's targets, TTFT by prompt-length decile at high load
# (the longest decile of vllm and gimbal, then every stack's ten deciles), the per-rank step-time
# breakdown of vllm and gimbal at high load, the prefix scenarios' targets (issue 14: gimbal-prefix
# against the best prefix-aware peer and vllm, prefix-cache hit rates), and docs/results/analysis.md.
# The prefix scenarios skip the vllm-best sweep (their targets do not use it).
#
#   bench/suite.sh                  run the suite, two scenarios at a time, write suite.md
#   bench/suite.sh --saturation     sweep the probes in configs/scenarios/suite/saturation/ and
#                                   write docs/results/saturation.md (the suite's load levels)
#   bench/suite.sh --only REGEX     run only scenarios whose name matches (report still written)
#   bench/suite.sh --jobs N         scenarios at once (default 2)
#   bench/suite.sh --no-report      run, keep the JSON, skip writing docs/results/
#   bench/suite.sh --report-dir DIR write suite.md into DIR instead of docs/results/ (the
#                                   analysis is still read from docs/results/analysis.md)
#   bench/suite.sh --results-dir DIR  keep the JSON results in DIR (default build/suite-results/)
#   bench/suite.sh --report-only    simulate nothing: write suite.md from the JSON results there
#
# Needs the gimbal binary ($GIMBAL, else build/release/src/cli/gimbal from `make build`) and
# Debian's /usr/bin/python3 (table formatting only). JSON results go to build/suite-results/.
# docs/results/suite-design.md describes the suite, the stacks and the training/report split.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="$ROOT/configs/scenarios/suite"
PREFIX="$ROOT/configs/scenarios"   # prefix-*.yaml: the prefix-reuse scenarios (issue 14)
RESULTS="$ROOT/build/suite-results"
DOCS="$ROOT/docs/results"
PY=/usr/bin/python3
JOBS=2
ONLY=""
MODE=suite
REPORT=1
REPORT_DIR=""
REPORT_ONLY=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --saturation) MODE=saturation ;;
    --only) ONLY="$2"; shift ;;
    --jobs) JOBS="$2"; shift ;;
    --no-report) REPORT=0 ;;
    --report-dir) REPORT_DIR="$2"; shift ;;
    --results-dir) RESULTS="$2"; shift ;;
    --report-only) REPORT_ONLY=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "bench/suite.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

GIMBAL="${GIMBAL:-}"
if [[ -z "$GIMBAL" && "$REPORT_ONLY" == 0 ]]; then
  for c in "$ROOT/build/release/src/cli/gimbal"; do
    if [[ -x "$c" ]]; then GIMBAL="$c"; break; fi
  done
fi
if [[ "$REPORT_ONLY" == 0 && ( -z "$GIMBAL" || ! -x "$GIMBAL" ) ]]; then
  echo "bench/suite.sh: no gimbal binary; build one (cmake --preset release && cmake --build --preset release) or set GIMBAL" >&2
  exit 2
fi
if [[ ! -x "$PY" ]]; then echo "bench/suite.sh: $PY not found" >&2; exit 2; fi
export GIMBAL_DATA_DIR="${GIMBAL_DATA_DIR:-$ROOT/data}"
mkdir -p "$RESULTS" "$DOCS"

# ---------------------------------------------------------------------------------------------
# Saturation: per probe, sweep workload.rate on the vllm stack. The saturation rate is the
# largest offered rate whose p99 TTFT stays within 3x the p99 TTFT at the sweep's lowest rate
# (the point where queueing takes over: beyond it p99 TTFT explodes by an order of magnitude).
# A coarse geometric grid brackets the knee, then bisection narrows it to 5%.
# ---------------------------------------------------------------------------------------------
if [[ "$MODE" == saturation ]]; then
  mkdir -p "$RESULTS/saturation"
  probe() {  # probe FILE RATE -> prints "rate thr mean_ttft p99_ttft mean_tpot peak_kv"
    local f="$1" r="$2" out
    out="$RESULTS/saturation/$(basename "$f" .yaml)-$r.json"
    "$GIMBAL" simulate -c "$f" --set "workload.rate=$r" --json "$out" >/dev/null
    "$PY" - "$out" "$r" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))["runs"][0]
kv = max(e["peak_kv_usage"] for e in d["engines"])
print(sys.argv[2], d["request_throughput"], d["mean_ttft_ms"], d["p99_ttft_ms"], d["mean_tpot_ms"], kv)
EOF
  }
  sweep() {  # sweep FILE START -> writes RESULTS/saturation/NAME.tsv
    local f="$1" lo="$2" name base hi r line p99
    name="$(basename "$f" .yaml)"
    : > "$RESULTS/saturation/$name.tsv"
    line="$(probe "$f" "$lo")"; echo "$line" >> "$RESULTS/saturation/$name.tsv"
    base="$(echo "$line" | awk '{print $4}')"
    r="$lo"; hi=""
    for _ in 1 2 3 4 5 6 7 8; do
      r="$(awk -v r="$r" 'BEGIN{printf "%.4g", r*1.5}')"
      line="$(probe "$f" "$r")"; echo "$line" >> "$RESULTS/saturation/$name.tsv"
      p99="$(echo "$line" | awk '{print $4}')"
      if awk -v p="$p99" -v b="$base" 'BEGIN{exit !(p > 3*b)}'; then hi="$r"; break; fi
      lo="$r"
    done
    [[ -z "$hi" ]] && { echo "$name: no knee below $r req/s" >&2; return; }
    while awk -v lo="$lo" -v hi="$hi" 'BEGIN{exit !(hi > 1.05*lo)}'; do
      r="$(awk -v lo="$lo" -v hi="$hi" 'BEGIN{printf "%.4g", (lo+hi)/2}')"
      line="$(probe "$f" "$r")"; echo "$line" >> "$RESULTS/saturation/$name.tsv"
      p99="$(echo "$line" | awk '{print $4}')"
      if awk -v p="$p99" -v b="$base" 'BEGIN{exit !(p > 3*b)}'; then hi="$r"; else lo="$r"; fi
    done
    echo "sat $lo $hi" >> "$RESULTS/saturation/$name.tsv"
    echo "$name: saturation ~ $lo req/s (knee below $hi)"
  }
  declare -A START=([saturation-a100x2]=2 [saturation-h200x8]=20 [saturation-h200x32]=4)
  pids=()
  for f in "$SUITE"/saturation/*.yaml; do
    n="saturation-$(basename "$f" .yaml)"
    sweep "$f" "${START[$n]:-2}" &
    pids+=($!)
    if (( ${#pids[@]} >= JOBS )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
  wait
  "$PY" - "$RESULTS/saturation" "$DOCS/saturation.md" <<'EOF'
import glob, os, sys
src, out = sys.argv[1], sys.argv[2]
lines = ["# Measured saturation of the suite's cluster shapes", "",
         "Written by `bench/suite.sh --saturation`. Method: the vllm stack alone (vLLM 0.34 at its "
         "defaults: its DP balancer, FCFS engines, max_num_seqs 1024 on H200 and 256 on A100) on Poisson arrivals with the suite's lognormal prompts "
         "(mean 1,500) and outputs (mean 250); the offered rate is swept on a 1.5x geometric grid "
         "and then bisected to 5%. **Saturation** is the largest offered rate whose p99 TTFT stays "
         "within 3x the p99 TTFT at the lowest rate probed: beyond it requests queue (max_num_seqs "
         "or KV capacity binds) and p99 TTFT grows by an order of magnitude. Where max_num_seqs no longer "
         "binds (1024 on H200) overload shows as an achieved-throughput plateau instead; the suite's "
         "loads and why they stay at the earlier measurement are in suite-design.md (Loads).", ""]
for f in sorted(glob.glob(os.path.join(src, "*.tsv"))):
    name = os.path.basename(f)[:-4]
    rows, sat = [], None
    for ln in open(f):
        p = ln.split()
        if p[0] == "sat":
            sat = (float(p[1]), float(p[2]))
        else:
            rows.append([float(x) for x in p])
    rows.sort()
    lines += [f"## {name}", ""]
    if sat:
        lines += [f"Saturation: **{sat[0]:.3g} req/s** (p99 TTFT explodes by {sat[1]:.3g} req/s).", ""]
    lines += ["| offered req/s | achieved req/s | mean TTFT ms | p99 TTFT ms | mean TPOT ms | peak KV usage |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]:.4g} | {r[1]:.2f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.1f} | {r[5]:.2f} |")
    lines.append("")
open(out, "w").write("\n".join(lines))
print("wrote", out)
EOF
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Suite: every scenario, two at a time (run_suite; its wall seconds go to RESULTS/wall_s for the
# report, which --report-only writes from the results already there).
# ---------------------------------------------------------------------------------------------
run_suite() {
start=$(date +%s)
scenarios=()
for f in "$SUITE"/*.yaml "$PREFIX"/prefix-*.yaml; do
  n="$(basename "$f" .yaml)"
  if [[ -n "$ONLY" && ! "$n" =~ $ONLY ]]; then continue; fi
  scenarios+=("$f")
done
if (( ${#scenarios[@]} == 0 )); then echo "bench/suite.sh: no scenario selected" >&2; exit 2; fi
# Largest first so the two lanes finish together.
mapfile -t scenarios < <(for f in "${scenarios[@]}"; do
  case "$f" in *h200x32*) echo "0 $f" ;; *h200x8*) echo "1 $f" ;; *) echo "2 $f" ;; esac
done | sort | cut -d' ' -f2-)
echo "bench/suite.sh: ${#scenarios[@]} scenarios, $JOBS at a time, with $GIMBAL"
# The vllm-best sweep: the vllm stack over the settings a vLLM user tunes (docs/baseline.md,
# "The tuned baseline"), run on each scenario's requests after its own stacks.
SWEEP="$("$PY" -c '
stacks = []
for b in (1024, 2048, 4096, 8192, 16384):
    for i in (1, 2, 4):
        for q in (256, 1024):
            stacks.append(f"{{name: vllm-b{b}-i{i}-s{q}, dispatch: {{policy: vllm, snapshot_interval_ms: 100}}, "
                          f"queue: fcfs, engine: {{max_num_batched_tokens: {b}, prefill_schedule_interval: {i}, "
                          f"max_num_seqs: {q}}}}}")
print("[" + ", ".join(stacks) + "]")
')"
mkdir -p "$RESULTS/sweep"
printf '%s\n' "${scenarios[@]}" | xargs -P "$JOBS" -I{} sh -c '
  f="$1"; n="$(basename "$f" .yaml)"; t0=$(date +%s)
  if "$2" simulate -c "$f" --json "$3/$n.json" > "$3/$n.txt" 2>&1; then
    t1=$(date +%s)
    case "$n" in prefix-*) echo "  $n: $(( t1 - t0 )) s"; exit 0 ;; esac
    if "$2" simulate -c "$f" --set "stacks=$4" --json "$3/sweep/$n.json" > "$3/sweep/$n.txt" 2>&1; then
      echo "  $n: $(( t1 - t0 )) s, vllm-best sweep (30 settings) $(( $(date +%s) - t1 )) s"
    else
      echo "  $n: vllm-best sweep FAILED (see $3/sweep/$n.txt)"; exit 1
    fi
  else
    echo "  $n: FAILED (see $3/$n.txt)"; exit 1
  fi' _ {} "$GIMBAL" "$RESULTS" "$SWEEP"
echo "bench/suite.sh: simulations took $(( $(date +%s) - start )) s"
echo "$(( $(date +%s) - start ))" > "$RESULTS/wall_s"
# CPU seconds of the simulations (user + system of this shell's children), which, unlike the wall
# time, do not depend on what else the machine runs.
# `times` into a file, not a pipe: in a pipe it runs in a subshell and reports that one's (none).
times > "$RESULTS/times"
awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); n += 60 * t[1] + t[2] }
               printf "%.0f\n", n }' "$RESULTS/times" > "$RESULTS/cpu_s"
}

if (( REPORT_ONLY )); then
  if ! compgen -G "$RESULTS/*.json" > /dev/null; then
    echo "bench/suite.sh: no results in $RESULTS; run bench/suite.sh without --report-only first" >&2
    exit 2
  fi
else
  run_suite
  (( REPORT )) || exit 0
fi

mkdir -p "${REPORT_DIR:-$DOCS}"
PYTHONPATH="$ROOT/bench/lib" "$PY" - "$RESULTS" "$SUITE" "${REPORT_DIR:-$DOCS}" \
  "$(cat "$RESULTS/wall_s" 2>/dev/null || echo '?')" "$DOCS/analysis.md" "$PREFIX" \
  "$(cat "$RESULTS/cpu_s" 2>/dev/null || echo '?')" <<'EOF'
import glob, json, math, os, sys
from tail_targets import fpct, judged, pct  # bench/lib
results, suite, docs, wall, ana, prefix, cpu = sys.argv[1:8]
TRAIN = ["h200x8-medium-bursty", "h200x8-high-bursty"]   # docs/results/suite-design.md
BASELINES = ["vllm", "round-robin", "least-requests", "power-of-two", "llmd", "sglang",
             "dynamo"]
# Issue 12's targets: geometric mean over the high-load scenarios, against vLLM 0.34 at its
# defaults (vllm) and against its best setting per metric (vllm-best).
TARGETS = {"mean_ttft_ms": -45.0, "mean_tpot_ms": -30.0, "p99_ttft_ms": -40.0,
           "request_throughput": 3.0}
TARGETS_BEST = {"mean_ttft_ms": -25.0, "mean_tpot_ms": -10.0, "p99_ttft_ms": -20.0,
                "request_throughput": 1.0}
LOWER_BETTER = {"mean_ttft_ms", "mean_tpot_ms", "p99_ttft_ms", "p99_tpot_ms", "mean_e2el_ms"}
KEYS = [("mean_ttft_ms", "TTFT mean"), ("mean_tpot_ms", "TPOT mean"), ("p99_ttft_ms", "TTFT p99"),
        ("request_throughput", "req/s"), ("request_goodput", "goodput")]
SHAPE_ORDER = {"a100x2": 0, "h200x8": 1, "h200x32": 2}
LOAD_ORDER = {"low": 0, "medium": 1, "high": 2}

def order(name):
    p = name.split("-")
    return (SHAPE_ORDER.get(p[0], 9), LOAD_ORDER.get(p[1], 9), name)

def yaml_of(n):  # the scenario file: the suite's, or a prefix scenario's
    return os.path.join(prefix if n.startswith("prefix-") else suite, n + ".yaml")

data = {}
for f in glob.glob(os.path.join(results, "*.json")):
    n = os.path.basename(f)[:-5]
    if os.path.exists(yaml_of(n)):
        data[n] = json.load(open(f))
names = sorted(data, key=order)

# vllm-best: per scenario and per metric, the best vllm setting of the sweep (the composite row is
# what a vLLM user could reach for that one metric by tuning).
best_of = {}
for n in names:
    f = os.path.join(results, "sweep", n + ".json")
    if not os.path.exists(f):
        continue
    sw = json.load(open(f))["runs"]
    row, how = {"stack": "vllm-best"}, {}
    for k, _ in KEYS + [("num_requests", "")]:
        pick = (min if k in LOWER_BETTER else max)(sw, key=lambda r: r[k])
        row[k], how[k] = pick[k], pick["stack"][len("vllm-"):]
        if k == "p99_ttft_ms":  # the decile tables show the setting best at p99 TTFT
            for kk in ("ttft_by_prompt_decile", "p999_ttft_ms"):
                if kk in pick:
                    row[kk] = pick[kk]
    best_of[n] = how
    data[n]["runs"].insert(1, row)

def runs(n):
    return {r["stack"]: r for r in data[n]["runs"]}

def slo_of(n):
    import re
    txt = open(yaml_of(n)).read()
    t = re.search(r"ttft_ms:\s*([0-9.]+)", txt)
    p = re.search(r"tpot_ms:\s*([0-9.]+)", txt)
    return (t.group(1) if t else "-", p.group(1) if p else "-")

out = ["# Scenario suite results", "",
       "Written by `bench/suite.sh` (do not edit by hand; the hand-written part is "
       "[analysis.md](analysis.md), copied in at the end). The suite, the stacks, the load levels "
       "and the training/report split are described in [suite-design.md](suite-design.md); the "
       "measured saturation in [saturation.md](saturation.md). Every figure is the percentage "
       "change of a stack against the **vllm** stack of the same scenario (same requests, same "
       "seed): negative is better for TTFT and TPOT, positive is better for throughput and goodput. "
       f"Training scenarios (used to tune Gimbal's defaults): {', '.join('`'+t+'`' for t in TRAIN)}; "
       "all others are for reporting only.", "",
       "**vllm** is vLLM 0.34 at its defaults; **vllm-best** is, per scenario and per metric, the "
       "best of the vllm stack over `max_num_batched_tokens` {1024, 2048, 4096, 8192, 16384} x "
       "`prefill_schedule_interval` {off, 2, 4} x `max_num_seqs` {256, 1024} (30 settings, "
       "docs/baseline.md), so each of its cells may come from a different setting; "
       "**vllm-2025** is the engine model of vLLM of 2025 the suite used before.",
       "",
       (f"Simulation wall time for this run: {wall} s on two lanes" +
        (f" ({cpu} CPU-seconds)." if cpu.isdigit() else ".")) if wall.isdigit() else "", ""]

# --- summary over high-load scenarios ---
high = [n for n in names if "-high-" in n]
report_high = [n for n in high if n not in TRAIN]
def geo(n_list, stack, key):
    vals = []
    for n in n_list:
        rr = runs(n)
        if stack in rr and rr["vllm"][key] > 0 and rr[stack][key] > 0:
            vals.append(math.log(rr[stack][key] / rr["vllm"][key]))
    return 100.0 * (math.exp(sum(vals) / len(vals)) - 1.0) if vals else float("nan")

stacks_all = []
for n in names:
    for r in data[n]["runs"]:
        if r["stack"] not in stacks_all:
            stacks_all.append(r["stack"])

out += ["## Summary over the high-load scenarios", "",
        f"Geometric mean over the {len(high)} high-load scenarios of each stack's ratio to vllm, "
        "as a percentage change (the per-scenario figures are below).", "",
        "| stack | " + " | ".join(k[1] for k in KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
for s in stacks_all:
    if s == "vllm":
        continue
    out.append(f"| {s} | " + " | ".join(fpct(geo(high, s, k)) for k, _ in KEYS) + " |")
out.append("")

def mark(v, t):
    ok = v <= t if t < 0 else v >= t
    return f"{fpct(v)} {'met' if ok else 'missed'}"

def geo_vs(n_list, ref, key):
    vals = []
    for n in n_list:
        rr = runs(n)
        if "gimbal" in rr and ref in rr and rr[ref][key] > 0 and rr["gimbal"][key] > 0:
            vals.append(math.log(rr["gimbal"][key] / rr[ref][key]))
    return 100.0 * (math.exp(sum(vals) / len(vals)) - 1.0) if vals else float("nan")

out += ["### Targets (issue 12) for the gimbal stack", "",
        "Geometric mean over the high-load scenarios of gimbal's ratio to vllm (vLLM 0.34 at its "
        "defaults) and to vllm-best (vLLM's best setting for that metric); then each high-load "
        "scenario alone. The 2 x A100 scenarios, closest to the paper's testbed, must meet the "
        "first set on their own.", "",
        "| against | TTFT mean | TPOT mean | TTFT p99 | req/s |", "|---|---|---|---|---|",
        "| vllm: target | " + " | ".join(f"{t:+.0f}%" for t in TARGETS.values()) + " |",
        "| vllm: measured | " + " | ".join(mark(geo_vs(high, "vllm", k), t) for k, t in TARGETS.items()) + " |",
        "| vllm-best: target | " + " | ".join(f"{t:+.0f}%" for t in TARGETS_BEST.values()) + " |",
        "| vllm-best: measured | " + " | ".join(mark(geo_vs(high, "vllm-best", k), t) for k, t in TARGETS_BEST.items()) + " |",
        "",
        "| scenario | against | TTFT mean | TPOT mean | TTFT p99 | req/s | best baseline router mean / p99 TTFT |",
        "|---|---|---|---|---|---|---|"]
for n in high:
    rr = runs(n)
    if "gimbal" not in rr:
        continue
    g = rr["gimbal"]
    tag = " (train)" if n in TRAIN else ""
    bm = min((rr[b]["mean_ttft_ms"], b) for b in BASELINES if b in rr)
    bp = min((rr[b]["p99_ttft_ms"], b) for b in BASELINES if b in rr)
    router = (f"{bm[1]} {bm[0]:.0f} ms / {bp[1]} {bp[0]:.0f} ms (gimbal {g['mean_ttft_ms']:.0f} / "
              f"{g['p99_ttft_ms']:.0f}; ahead: {'yes' if g['mean_ttft_ms'] < bm[0] else 'no'} / "
              f"{'yes' if g['p99_ttft_ms'] < bp[0] else 'no'})")
    for ref, tg in (("vllm", TARGETS), ("vllm-best", TARGETS_BEST)):
        if ref not in rr:
            continue
        cells = [mark(pct(g[k], rr[ref][k]), t) for k, t in tg.items()]
        out.append(f"| {n}{tag} | {ref} | " + " | ".join(cells) + f" | {router if ref == 'vllm' else ''} |")
out.append("")

# --- the tail by prompt length ---
out += ["### Tail targets (issue 13) and the longest prompts, high-load scenarios", "",
        "Per scenario, gimbal against vllm: p99 TTFT at least 20% lower, the p99 TTFT of the decile "
        "of requests with the longest prompts (`ttft_by_prompt_decile` in each run's JSON) no worse, "
        "mean TTFT at least 30% lower. Where a mean gain is bought with the long prompts' wait, the "
        "middle column shows it.", "",
        "| scenario | longest decile: prompt tokens | vllm mean / p99 TTFT ms | gimbal mean / p99 TTFT ms "
        "| TTFT p99 (-20%) | longest-decile p99 (+0%) | TTFT mean (-30%) | met |",
        "|---|---|---|---|---|---|---|---|"]
tail_met = tail_all = 0
for n in high:
    rr = runs(n)
    if "gimbal" not in rr or not rr["vllm"].get("ttft_by_prompt_decile"):
        continue
    v, g = rr["vllm"]["ttft_by_prompt_decile"][-1], rr["gimbal"]["ttft_by_prompt_decile"][-1]
    checks = judged(rr["vllm"], rr["gimbal"])
    met = sum(1 for row in checks if row[5])
    tail_met += met
    tail_all += len(checks)
    tag = " (train)" if n in TRAIN else ""
    out.append(f"| {n}{tag} | {v['prompt_tokens_min']}-{v['prompt_tokens_max']} | {v['mean_ttft_ms']:.0f} / "
               f"{v['p99_ttft_ms']:.0f} | {g['mean_ttft_ms']:.0f} / {g['p99_ttft_ms']:.0f} | "
               + " | ".join(f"{fpct(c)} {'met' if ok else 'missed'}" for _, _, _, c, _, ok in checks)
               + f" | {met}/3 |")
out += ["", f"Tail targets met: {tail_met} of {tail_all}.", ""]

# Every stack, every decile: mean / p99 TTFT, one collapsed table per high-load scenario.
out += ["### TTFT by prompt-length decile, every stack, high-load scenarios", "",
        "Mean / p99 TTFT in ms of each tenth of the requests by prompt length (1: the shortest; the "
        "header gives the decile's prompt tokens in vllm's run, and every stack serves the same "
        "requests). A p99 in bold is more than 10% above vllm's in the same decile. vllm-best is the "
        "setting with the lowest p99 TTFT over all requests (named in the row); p99.9 is TTFT over "
        "all requests.", ""]
for n in high:
    rr = runs(n)
    ref = rr["vllm"].get("ttft_by_prompt_decile") or []
    shown = [r for r in data[n]["runs"] if len(r.get("ttft_by_prompt_decile") or []) == 10]
    if len(ref) != 10 or not shown:
        continue
    p999 = any("p999_ttft_ms" in r for r in shown)
    out += [f"<details><summary><b>{n}</b>{' (training)' if n in TRAIN else ''}: {len(shown)} stacks"
            "</summary>", "",
            "| stack | " + " | ".join(f"{d['decile']}: {d['prompt_tokens_min']}-{d['prompt_tokens_max']}"
                                      for d in ref) + (" | p99.9 |" if p999 else " |"),
            "|---" * (11 + p999) + "|"]
    for r in shown:
        cells = []
        for d, v in zip(r["ttft_by_prompt_decile"], ref):
            p99 = f"{d['p99_ttft_ms']:.0f}"
            if r["stack"] != "vllm" and d["p99_ttft_ms"] > 1.1 * v["p99_ttft_ms"]:
                p99 = f"**{p99}**"
            cells.append(f"{d['mean_ttft_ms']:.0f} / {p99}")
        if p999:
            cells.append(f"{r['p999_ttft_ms']:.0f}" if "p999_ttft_ms" in r else "n/a")
        label = r["stack"] if r["stack"] != "vllm-best" else f"vllm-best ({best_of[n]['p99_ttft_ms']})"
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += ["", "</details>", ""]

# --- prefix reuse (issue 14) ---
PREFIX_TRAIN = ["prefix-multiturn-h200x8"]   # w_cache is tuned on it (suite-design.md)
PEERS = ["llmd", "sglang", "dynamo"]
PREFIX_STACKS = ["vllm", "gimbal", "gimbal-prefix", "gimbal-prefix-approx", "gimbal-prefix-nobonus"] + PEERS
pnames = sorted((n for n in names if n.startswith("prefix-")),  # workload, shape, high first
                key=lambda n: (n.split("-")[1], SHAPE_ORDER.get(n.split("-")[2], 9), n.endswith("-medium")))
phigh = [n for n in pnames if not n.endswith("-medium")]
if pnames:
    out += ["## Prefix reuse (issue 14)", "",
            "The prefix scenarios (`configs/scenarios/prefix-*.yaml`: multi-turn chat and agentic "
            "sessions that resend their history; loads in docs/scenarios.md, \"Prefix scenarios\"). "
            "**Gimbal** here is `gimbal-prefix`: the full gimbal stack (dispatch, queue, step budgets) "
            "with the prefix index the engines' KV-cache events give it. The peers are llm-d, SGLang "
            "and Dynamo (`llmd`, `sglang`, `dynamo`), each with the prefix index of its default "
            "deployment; the **best peer** is, per metric, the peer with the lowest value (for the hit "
            "rate, the highest). Hit rate is `prefix_cache_hit_rate` (prompt tokens found in the "
            "engines' prefix caches over those looked up). Targets at high load: mean TTFT at least "
            "20% and p99 TTFT at least 15% below the best peer's, mean TTFT at least 50% below vllm's, "
            "hit rate at least 95% of the best peer's. "
            f"`{PREFIX_TRAIN[0]}` is the training scenario of the one prefix default (`w_cache`); the "
            "others are for reporting only.", "",
            "| scenario | gimbal-prefix mean / p99 TTFT ms | best peer mean / p99 TTFT ms | mean vs best peer (-20%) "
            "| p99 vs best peer (-15%) | mean vs vllm (-50%) | hit rate: gimbal-prefix / best peer | "
            "hit-rate ratio (>= 95%) | met |", "|---|---|---|---|---|---|---|---|---|"]
    p_met = p_all = 0
    for n in phigh:
        rr = runs(n)
        if "gimbal-prefix" not in rr or not all(p in rr for p in PEERS):
            continue
        g = rr["gimbal-prefix"]
        bm = min((rr[p]["mean_ttft_ms"], p) for p in PEERS)
        bp = min((rr[p]["p99_ttft_ms"], p) for p in PEERS)
        bh = max((rr[p]["prefix_cache_hit_rate"], p) for p in PEERS)
        c_mean, c_p99 = pct(g["mean_ttft_ms"], bm[0]), pct(g["p99_ttft_ms"], bp[0])
        c_vllm = pct(g["mean_ttft_ms"], rr["vllm"]["mean_ttft_ms"])
        ratio = 100.0 * g["prefix_cache_hit_rate"] / bh[0] if bh[0] > 0 else float("nan")
        oks = [c_mean <= -20.0, c_p99 <= -15.0, c_vllm <= -50.0, ratio >= 95.0]
        p_met += sum(oks)
        p_all += len(oks)
        yn = lambda ok: "met" if ok else "missed"
        tag = " (train)" if n in PREFIX_TRAIN else ""
        out.append(f"| {n}{tag} | {g['mean_ttft_ms']:.0f} / {g['p99_ttft_ms']:.0f} | {bm[1]} {bm[0]:.0f} / "
                   f"{bp[1]} {bp[0]:.0f} | {fpct(c_mean)} {yn(oks[0])} | {fpct(c_p99)} {yn(oks[1])} | "
                   f"{fpct(c_vllm)} {yn(oks[2])} | {g['prefix_cache_hit_rate']:.3f} / {bh[1]} {bh[0]:.3f} | "
                   f"{ratio:.1f}% {yn(oks[3])} | {sum(oks)}/4 |")
    out += ["", f"Prefix targets met: {p_met} of {p_all}.", "",
            "Every prefix scenario, high and medium load: mean / p99 TTFT in ms and the prefix-cache "
            "hit rate of each stack (`gimbal` has no prefix index; `-approx` uses the router's own "
            "index instead of KV events; `-nobonus` sets `w_cache` 0).", "",
            "| scenario | " + " | ".join(PREFIX_STACKS) + " |", "|---" * (len(PREFIX_STACKS) + 1) + "|"]
    for n in pnames:
        rr = runs(n)
        cells = [f"{rr[s]['mean_ttft_ms']:.0f} / {rr[s]['p99_ttft_ms']:.0f} ({rr[s]['prefix_cache_hit_rate']:.3f})"
                 if s in rr else "n/a" for s in PREFIX_STACKS]
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    out += ["", "TTFT by prompt-length decile at high load (mean / p99 ms; a p99 in bold is more "
            "than 10% above the best peer's at p99 over all requests in the same decile):", ""]
    for n in phigh:
        rr = runs(n)
        if not all(s in rr for s in ["vllm", "gimbal-prefix"] + PEERS):
            continue
        ref = rr["vllm"].get("ttft_by_prompt_decile") or []
        if len(ref) != 10:
            continue
        bp = min((rr[p]["p99_ttft_ms"], p) for p in PEERS)[1]
        out += [f"<details><summary><b>{n}</b>: deciles</summary>", "",
                "| stack | " + " | ".join(f"{d['decile']}: {d['prompt_tokens_min']}-{d['prompt_tokens_max']}"
                                          for d in ref) + " |", "|---" * 11 + "|"]
        for s in ["vllm", "gimbal-prefix"] + PEERS:
            cells = []
            for d, b in zip(rr[s]["ttft_by_prompt_decile"], rr[bp]["ttft_by_prompt_decile"]):
                p99 = f"{d['p99_ttft_ms']:.0f}"
                if s == "gimbal-prefix" and d["p99_ttft_ms"] > 1.1 * b["p99_ttft_ms"]:
                    p99 = f"**{p99}**"
                cells.append(f"{d['mean_ttft_ms']:.0f} / {p99}")
            out.append(f"| {s}{' (best p99 peer)' if s == bp else ''} | " + " | ".join(cells) + " |")
        out += ["", "</details>", ""]

# --- per scenario ---
out += ["## Per scenario", ""]
for n in names:
    rr = runs(n)
    v = rr["vllm"]
    d = data[n]
    ttft_slo, tpot_slo = slo_of(n)
    tag = " (training)" if n in TRAIN + PREFIX_TRAIN else ""
    out += [f"### {n}{tag}", "",
            f"{d['model']} on {d['dp']} x {d['gpu']}, {v['num_requests']} requests, seed {d['seed']}; "
            f"SLO TTFT {ttft_slo} ms, TPOT {tpot_slo} ms. vllm: mean TTFT {v['mean_ttft_ms']:.0f} ms, "
            f"p99 TTFT {v['p99_ttft_ms']:.0f} ms, mean TPOT {v['mean_tpot_ms']:.1f} ms, "
            f"{v['request_throughput']:.2f} req/s, goodput {v['request_goodput']:.2f} req/s." +
            ("" if n not in best_of else " vllm-best settings (batched tokens b, interval i, max_num_seqs s): " +
             ", ".join(f"{lbl} `{best_of[n][k]}`" for k, lbl in KEYS) + "."), "",
            "| stack | " + " | ".join(k[1] for k in KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for r in d["runs"]:
        if r["stack"] == "vllm":
            continue
        out.append(f"| {r['stack']} | " + " | ".join(fpct(pct(r[k], v[k])) for k, _ in KEYS) + " |")
    out.append("")

# --- step-time breakdown ---
out += ["## Step-time breakdown at high load (vllm vs gimbal)", "",
        "Per-rank seconds, averaged over ranks: own attention + dense/shared FFN (`attn/dense`), own "
        "routed-expert compute (`experts`), all-to-all (`a2a`), and time spent waiting for the "
        "slowest rank or GPU of each lockstep phase (`straggler`); `share` is straggler wait over "
        "the simulated time. `EP max/mean` is the token-weighted max-over-mean expert load.", "",
        "| scenario | stack | attn/dense s | experts s | a2a s | straggler s | simulated s | share | EP max/mean |",
        "|---|---|---|---|---|---|---|---|---|"]
for n in high:
    rr = runs(n)
    for s in ("vllm", "gimbal"):
        if s not in rr:
            continue
        r = rr[s]
        E = r["engines"]
        m = lambda k: sum(e[k] for e in E) / len(E)
        out.append(f"| {n} | {s} | {m('attn_dense_s'):.1f} | {m('experts_s'):.1f} | {m('all_to_all_s'):.1f} | "
                   f"{m('straggler_wait_s'):.1f} | {r['simulated_seconds']:.1f} | "
                   f"{100*m('straggler_wait_s')/max(r['simulated_seconds'],1e-9):.0f}% | {r['expert_load_max_over_mean']:.2f} |")
out.append("")

out += ["## Analysis", ""]
if os.path.exists(ana):
    txt = open(ana).read().splitlines()
    if txt and txt[0].startswith("# "):
        txt = txt[1:]
    out += [ln if not ln.startswith("#") else "#" + ln for ln in txt]
else:
    out.append("(docs/results/analysis.md is missing.)")
open(os.path.join(docs, "suite.md"), "w").write("\n".join(out).rstrip() + "\n")
print("wrote", os.path.join(docs, "suite.md"))
EOF
