"""Runs Gimbal and Vidur on the same requests and prints their simulation speeds (run.sh).

Gimbal: `gimbal simulate` on gimbal-llama3-8b-h100.yaml, timed from outside (process start,
scenario load and workload generation included). Vidur: vidur_speed.py in a fresh process per
run on the first --vidur-requests of the same requests, timing Simulator.run() only (its setup:
fitting or loading its predictors and generating requests, is reported apart). Runs alternate
(Gimbal, Vidur, Vidur native, Gimbal, ...) and each row keeps its fastest repeat, the usual
choice on a shared machine; rates are compared, not totals, as the request counts differ.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "gimbal-llama3-8b-h100.yaml"


def run_gimbal(gimbal, n, work, requests_csv=None):
    out = work / "gimbal.json"
    cmd = [gimbal, "simulate", "-c", str(SCENARIO.relative_to(HERE.parents[1])),
           "--set", f"workload.num_requests={n}", "--json", str(out)]
    if requests_csv:
        cmd += ["--requests-csv", str(requests_csv)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=HERE.parents[1])
    wall = time.perf_counter() - t0
    r = json.loads(out.read_text())["runs"][0]
    if r["completed"] != n:
        sys.exit(f"gimbal completed {r['completed']} of {n} requests")
    return {"name": "gimbal simulate", "requests": n, "wall_s": wall,
            "sim_s": r["simulated_seconds"], "steps": r["steps"],
            "mean_ttft_ms": r["mean_ttft_ms"], "mean_tpot_ms": r["mean_tpot_ms"]}


def run_vidur(n, requests_csv, profile, work, native, log):
    cmd = [sys.executable, str(HERE / "vidur_speed.py"), "--requests", str(requests_csv),
           "--profile", str(profile), "--work", str(work / "vidur"), "--limit", str(n)]
    if native:
        cmd.append("--native")
    p = subprocess.run(cmd, check=False, capture_output=True, text=True)
    log.write(p.stderr)
    if p.returncode != 0:
        sys.exit(f"vidur failed (exit {p.returncode}); see {log.name}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    name = "vidur (native predictor)" if native else "vidur"
    return {"name": name, "requests": r["requests"], "wall_s": r["wall_s"], "sim_s": r["sim_s"],
            "steps": r["batches"], "setup_s": r["setup_s"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gimbal", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--gimbal-requests", type=int, default=50000)
    ap.add_argument("--vidur-requests", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    if min(a.gimbal_requests, a.vidur_requests, a.repeats) < 1:
        sys.exit("--gimbal-requests, --vidur-requests and --repeats must be at least 1")
    if a.vidur_requests > a.gimbal_requests:
        sys.exit("--vidur-requests must not exceed --gimbal-requests (Vidur replays Gimbal's)")

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    requests_csv = work / "requests.csv"
    run_gimbal(a.gimbal, a.gimbal_requests, work, requests_csv)  # writes the shared requests

    best = {}
    with open(work / "vidur.log", "w") as log:
        for _ in range(a.repeats):
            for row in (run_gimbal(a.gimbal, a.gimbal_requests, work),
                        run_vidur(a.vidur_requests, requests_csv, a.profile, work, False, log),
                        run_vidur(a.vidur_requests, requests_csv, a.profile, work, True, log)):
                if row["name"] not in best or row["wall_s"] < best[row["name"]]["wall_s"]:
                    best[row["name"]] = row

    print(f"{'simulator':<26} {'requests':>8} {'wall (s)':>9} {'sim (s)':>9} "
          f"{'requests/wall s':>15} {'sim s/wall s':>12} {'steps':>7} {'steps/wall s':>12}")
    for r in best.values():
        r["req_per_s"] = r["requests"] / r["wall_s"]
        r["sim_per_s"] = r["sim_s"] / r["wall_s"]
        print(f"{r['name']:<26} {r['requests']:>8} {r['wall_s']:>9.2f} {r['sim_s']:>9.1f} "
              f"{r['req_per_s']:>15.0f} {r['sim_per_s']:>12.1f} {r['steps']:>7} "
              f"{r['steps'] / r['wall_s']:>12.0f}")
    g = best["gimbal simulate"]
    for name in ("vidur", "vidur (native predictor)"):
        v = best[name]
        print(f"Gimbal / {name}: {g['req_per_s'] / v['req_per_s']:.1f}x requests per wall s, "
              f"{g['sim_per_s'] / v['sim_per_s']:.1f}x simulated s per wall s "
              f"(Vidur setup, not counted: {v['setup_s']:.2f} s)")
    print(f"(best of {a.repeats}; Gimbal's wall time includes process start and workload "
          f"generation; Vidur's log: {work / 'vidur.log'})")


if __name__ == "__main__":
    main()
