#!/usr/bin/env bash
# Runs Gimbal's report-only scenario shapes (configs/scenarios/shapes/*.yaml: models, GPUs and
# length distributions no default was tuned on) and writes docs/results/shapes.md: per scenario
# every stack's TTFT (mean, p99, p99.9), TPOT, request throughput and the TTFT of the decile of
# longest prompts, then gimbal against vllm on the tail targets of docs/results/shapes-design.md.
#
#   bench/shapes.sh                  run every shape file, two at a time, write shapes.md
#   bench/shapes.sh --saturation     sweep the probes in configs/scenarios/shapes/saturation/ and
#                                    write docs/results/shapes-saturation.md (the shapes' loads)
#   bench/shapes.sh --only REGEX     run only scenarios whose name matches (report still written)
#   bench/shapes.sh --jobs N         simulations at once (default 2)
#   bench/shapes.sh --report-dir DIR write the report into DIR instead of docs/results/
#   bench/shapes.sh --bin PATH       the gimbal binary (default $GIMBAL, else
#                                    build/release/src/cli/gimbal from `make build`)
#
# Needs python3 (Debian's /usr/bin/python3, else the one on PATH; standard library only). JSON
# results go to build/shapes-results/. docs/results/shapes-design.md describes the shapes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHAPES="$ROOT/configs/scenarios/shapes"
RESULTS="$ROOT/build/shapes-results"
DOCS="$ROOT/docs/results"
JOBS=2
ONLY=""
MODE=shapes
REPORT_DIR=""
GIMBAL="${GIMBAL:-}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --saturation) MODE=saturation ;;
    --only) ONLY="${2:?--only needs a REGEX}"; shift ;;
    --jobs) JOBS="${2:?--jobs needs N}"; shift ;;
    --report-dir) REPORT_DIR="${2:?--report-dir needs DIR}"; shift ;;
    --bin) GIMBAL="${2:?--bin needs PATH}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench/shapes.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench/shapes.sh: --jobs wants a positive integer, got '$JOBS'" >&2; exit 2
fi

GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
if [[ ! -x "$GIMBAL" ]]; then
  echo "bench/shapes.sh: no gimbal binary at '$GIMBAL'; build one (make build) or pass --bin PATH" >&2
  exit 2
fi
GIMBAL="$(cd "$(dirname "$GIMBAL")" && pwd)/$(basename "$GIMBAL")"
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY="$(command -v python3 || true)"; fi
if [[ -z "$PY" ]]; then echo "bench/shapes.sh: python3 not found" >&2; exit 2; fi
export GIMBAL_DATA_DIR="${GIMBAL_DATA_DIR:-$ROOT/data}"
OUTDIR="${REPORT_DIR:-$DOCS}"
mkdir -p "$RESULTS" "$OUTDIR"

# ---------------------------------------------------------------------------------------------
# Saturation, as bench/suite.sh --saturation measures it: per probe, the vllm stack alone on
# Poisson arrivals, workload.rate swept on a 1.5x geometric grid from a low start until a rate
# overloads, then bisected to 5%. A rate overloads when its p99 TTFT exceeds 3x the p99 TTFT at
# the lowest rate (requests queue: max_num_seqs or KV capacity binds), or when the engines no
# longer keep up with arrivals (completions while requests still arrive fall below 90% of the
# offered rate: the throughput plateau, which is how overload shows where max_num_seqs does not
# bind and every request is admitted at once). Saturation = the largest rate that does neither.
# ---------------------------------------------------------------------------------------------
if [[ "$MODE" == saturation ]]; then
  mkdir -p "$RESULTS/saturation"
  exec "$PY" - "$GIMBAL" "$SHAPES/saturation" "$RESULTS/saturation" "$OUTDIR/shapes-saturation.md" "$JOBS" "$ONLY" <<'EOF'
import csv, glob, json, os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

gimbal, src, res, out, jobs, only = sys.argv[1:7]
# First rate of each sweep: about a fifth of the saturation it finds, as bench/suite.sh starts
# (2 req/s against 9.3 on a100x2, 20 against 126 on h200x8). The p99 TTFT at this rate is the
# reference, so it must be a light load but not an idle one: at a twentieth of saturation the
# reference p99 is only the longest prompts' own prefill, and the 3x knee then falls where p99
# merely grows with the batch, long before requests queue.
START = {"longdoc": 0.9, "chat": 18.0, "heavytail": 9.0}
KNEE, KEEPUP = 3.0, 0.9

def probe(f, rate):
    """One run of probe file f at `rate`; returns the row of the sweep table."""
    name = os.path.basename(f)[:-5]
    stem = os.path.join(res, f"{name}-{rate:.4g}")
    cmd = [gimbal, "simulate", "-c", f, "--set", f"workload.rate={rate:.4g}",
           "--json", stem + ".json", "--requests-csv", stem + ".csv"]
    if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit(f"bench/shapes.sh: probe failed: {' '.join(cmd)}")
    r = json.load(open(stem + ".json"))["runs"][0]
    rows = list(csv.DictReader(open(stem + ".csv")))
    last = max(float(x["arrival_s"]) for x in rows)
    lo = last / 4   # skip the ramp-up; count completions while requests still arrive
    done = sum(1 for x in rows if x["finish_s"] and lo <= float(x["finish_s"]) <= last)
    keepup = done / (last - lo) if last > lo else float("nan")
    kv = max(e["peak_kv_usage"] for e in r["engines"])
    return {"rate": rate, "thr": r["request_throughput"], "keepup": keepup,
            "mean_ttft": r["mean_ttft_ms"], "p99_ttft": r["p99_ttft_ms"],
            "mean_tpot": r["mean_tpot_ms"], "kv": kv}

def sweep(f):
    name = os.path.basename(f)[:-5]
    rate = START.get(name, 1.0)
    rows = [probe(f, rate)]
    base = rows[0]["p99_ttft"]
    def why(row):
        if row["p99_ttft"] > KNEE * base:
            return "p99 TTFT knee"
        if row["keepup"] < KEEPUP * row["rate"]:
            return "throughput plateau"
        return None
    lo, hi, reason = rate, None, None
    for _ in range(12):
        rate = float(f"{rate * 1.5:.4g}")
        row = probe(f, rate); rows.append(row)
        if why(row):
            hi, reason = rate, why(row); break
        lo = rate
    if hi is None:
        print(f"{name}: no overload below {rate:.4g} req/s", file=sys.stderr)
        return name, rows, None
    while hi > 1.05 * lo:
        rate = float(f"{(lo + hi) / 2:.4g}")
        row = probe(f, rate); rows.append(row)
        if why(row):
            hi, reason = rate, why(row)
        else:
            lo = rate
    print(f"{name}: saturation ~ {lo:.3g} req/s ({reason} by {hi:.3g})")
    return name, rows, (lo, hi, reason, base)

files = sorted(f for f in glob.glob(os.path.join(src, "*.yaml"))
               if not only or re.search(only, os.path.basename(f)[:-5]))
if not files:
    sys.exit("bench/shapes.sh: no saturation probe selected")
with ThreadPoolExecutor(max_workers=int(jobs)) as ex:
    results = list(ex.map(sweep, files))

lines = ["# Measured saturation of the report-only shapes", "",
         "Written by `bench/shapes.sh --saturation` (do not edit by hand). Method, as "
         "`bench/suite.sh --saturation` ([saturation.md](saturation.md)): the vllm stack alone "
         "(vLLM 0.34 at its defaults) on Poisson arrivals with each shape's own traffic classes and "
         "prompt and output lengths (configs/scenarios/shapes/saturation/); the offered rate is "
         "swept on a 1.5x geometric grid and then bisected to 5%. A rate **overloads** when its p99 "
         f"TTFT exceeds {KNEE:g}x the p99 TTFT at the lowest rate probed (requests queue: "
         "max_num_seqs or KV capacity binds), or when the engines stop keeping up with arrivals: "
         "the completions counted while requests still arrive (from the first quarter of the "
         f"arrival span to the last arrival) fall below {KEEPUP:.0%} of the offered rate (the "
         "achieved-throughput plateau, which is how overload shows where max_num_seqs does not "
         "bind). **Saturation** is the largest rate probed that does neither. `achieved req/s` is "
         "the run's completed requests over its whole duration (drain included); `keep-up req/s` "
         "the rate of completions during arrivals.", ""]
for name, rows, sat in sorted(results):
    lines += [f"## {name}", ""]
    if sat:
        lines += [f"Saturation: **{sat[0]:.3g} req/s** (overloaded at {sat[1]:.3g} req/s: "
                  f"{sat[2]}; p99 TTFT at the lowest rate {sat[3]:.0f} ms).", ""]
    else:
        lines += ["No overload within the sweep.", ""]
    lines += ["| offered req/s | achieved req/s | keep-up req/s | mean TTFT ms | p99 TTFT ms | "
              "mean TPOT ms | peak KV usage |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["rate"]):
        lines.append(f"| {r['rate']:.4g} | {r['thr']:.2f} | {r['keepup']:.2f} | "
                     f"{r['mean_ttft']:.0f} | {r['p99_ttft']:.0f} | {r['mean_tpot']:.1f} | "
                     f"{r['kv']:.2f} |")
    lines.append("")
open(out, "w").write("\n".join(lines))
print("wrote", out)
EOF
fi

# ---------------------------------------------------------------------------------------------
# Shapes: every scenario file, JOBS at a time, then the report.
# ---------------------------------------------------------------------------------------------
start=$(date +%s)
scenarios=()
for f in "$SHAPES"/*.yaml; do
  [[ -e "$f" ]] || continue
  n="$(basename "$f" .yaml)"
  if [[ -n "$ONLY" && ! "$n" =~ $ONLY ]]; then continue; fi
  scenarios+=("$f")
done
if (( ${#scenarios[@]} == 0 )); then echo "bench/shapes.sh: no scenario selected" >&2; exit 2; fi
echo "bench/shapes.sh: ${#scenarios[@]} scenarios, $JOBS at a time, with $GIMBAL"
printf '%s\n' "${scenarios[@]}" | xargs -P "$JOBS" -I{} sh -c '
  f="$1"; n="$(basename "$f" .yaml)"; t0=$(date +%s)
  if "$2" simulate -c "$f" --json "$3/$n.json" > "$3/$n.txt" 2>&1; then
    echo "  $n: $(( $(date +%s) - t0 )) s"
  else
    echo "  $n: FAILED (see $3/$n.txt)"; exit 1
  fi' _ {} "$GIMBAL" "$RESULTS"
wall=$(( $(date +%s) - start ))
echo "bench/shapes.sh: simulations took $wall s"

names=()
for f in "${scenarios[@]}"; do names+=("$(basename "$f" .yaml)"); done
PYTHONPATH="$ROOT/bench/lib" "$PY" - "$RESULTS" "$SHAPES" "$OUTDIR/shapes.md" "$wall" "$JOBS" \
  "${names[@]}" <<'EOF'
import json, math, os, re, sys
results, shapes, out, wall, jobs = sys.argv[1:6]
names = sys.argv[6:]
from tail_targets import TAIL_TARGETS as TARGETS, fpct, judged  # bench/lib

def rate_of(n):
    m = re.search(r"^\s+rate:\s*([0-9.eE+]+)", open(os.path.join(shapes, n + ".yaml")).read(), re.M)
    return m.group(1) if m else "?"

def description_of(n):
    """The scenario file's `description:` (the shape, its load and its arrivals)."""
    m = re.search(r'^description:\s*"?(.*?)"?\s*$', open(os.path.join(shapes, n + ".yaml")).read(), re.M)
    return m.group(1) if m else ""

data = {n: json.load(open(os.path.join(results, n + ".json"))) for n in names}
names.sort(key=lambda n: (re.sub(r"-[0-9.]+x$", "", n), n))
out_lines = ["# Report-only scenario shapes: results", "",
             "Written by `bench/shapes.sh` (do not edit by hand). The shapes, their sources and "
             "their loads are described in [shapes-design.md](shapes-design.md), the measured "
             "saturation in [shapes-saturation.md](shapes-saturation.md). No default of Gimbal was "
             "tuned on any of these scenarios. Figures are absolute; the target table gives "
             "gimbal's change against **vllm** (vLLM 0.34 at its defaults) on the same requests.",
             "", f"Simulation wall time for this run: {wall} s, {jobs} at a time.", "",
             "## Targets: gimbal against vllm", "",
             "| scenario | " + " | ".join(f"{lbl} (target {t:+.0f}%)" for _, lbl, t in TARGETS) +
             " | met |", "|---" * (len(TARGETS) + 2) + "|"]
met_total, judged_total = 0, 0
for n in names:
    rr = {r["stack"]: r for r in data[n]["runs"]}
    if "gimbal" not in rr or "vllm" not in rr:
        continue
    rows = judged(rr["vllm"], rr["gimbal"])
    met = sum(r[5] for r in rows)
    met_total, judged_total = met_total + met, judged_total + len(rows)
    out_lines.append(f"| {n} | " + " | ".join(f"{fpct(r[3])} {'met' if r[5] else 'missed'}" for r in rows)
                     + f" | {met}/{len(rows)} |")
out_lines += ["", f"Targets met: {met_total} of {judged_total}.", ""]

out_lines += ["## Per scenario", "",
              "Every stack's TTFT (mean, p99, p99.9 where at least 1,000 requests completed), mean "
              "TPOT and request throughput, and the TTFT of the decile of requests with the longest "
              "prompts (`ttft_by_prompt_decile[-1]` of the run's JSON); then gimbal's targets.", ""]
for n in names:
    d = data[n]
    out_lines += [f"### {n}", "", f"{d['model']} on {d['dp']} x {d['gpu']}, "
                  f"{d['runs'][0]['num_requests']} requests at {rate_of(n)} req/s, seed {d['seed']}: "
                  + description_of(n) + ".", "",
                  "| stack | TTFT mean ms | TTFT p99 ms | TTFT p99.9 ms | TPOT mean ms | req/s | "
                  "longest decile: prompt tokens | TTFT mean ms | TTFT p99 ms |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for r in d["runs"]:
        dec = (r.get("ttft_by_prompt_decile") or [None])[-1]
        p999 = f"{r['p999_ttft_ms']:.0f}" if "p999_ttft_ms" in r else "-"
        dcells = (f"{dec['prompt_tokens_min']}-{dec['prompt_tokens_max']} | "
                  f"{dec['mean_ttft_ms']:.0f} | {dec['p99_ttft_ms']:.0f}") if dec else "- | - | -"
        out_lines.append(f"| {r['stack']} | {r['mean_ttft_ms']:.0f} | {r['p99_ttft_ms']:.0f} | "
                         f"{p999} | {r['mean_tpot_ms']:.1f} | {r['request_throughput']:.2f} | "
                         f"{dcells} |")
    out_lines.append("")
    rr = {r["stack"]: r for r in d["runs"]}
    if "gimbal" in rr and "vllm" in rr:
        out_lines += ["| target (gimbal vs vllm) | vllm ms | gimbal ms | change | target | |",
                      "|---|---|---|---|---|---|"]
        for lbl, v, g, c, t, ok in judged(rr["vllm"], rr["gimbal"]):
            out_lines.append(f"| {lbl} | {v:.0f} | {g:.0f} | {fpct(c)} | <= {t:+.0f}% | "
                             f"{'met' if ok else 'missed'} |")
        out_lines.append("")
open(out, "w").write("\n".join(out_lines))
print("wrote", out)
EOF
