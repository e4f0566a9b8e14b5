#!/usr/bin/env python3
"""A live demo's requests beside their simulated twins, one by one (docs/router.md, the live demo).

    python3 bench/live_vs_sim.py OUT [--gimbal build/release/src/cli/gimbal]

OUT is a `scripts/live-demo.sh` folder (default out/demo). For each stack whose live result
(OUT/live/STACK.json, written with --save-detailed) names each request's engine, simulates the
same stack on OUT/live/scenario.yaml with --requests-csv and prints: how many requests went to the
same engine (the router's backend `e<i>` against the simulator's rank i), the live TTFT minus the
simulated one (mean, median and 90th percentile of its size, largest), and both p99 TTFTs. Live
times are divided by the demo's time scale (OUT/live/live.json). Standard library only.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile


def percentile(values, q):
    s = sorted(values)
    return s[int(q * (len(s) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="out/demo")
    ap.add_argument("--gimbal", default="build/release/src/cli/gimbal")
    args = ap.parse_args()
    live_dir = os.path.join(args.out, "live")
    with open(os.path.join(live_dir, "live.json")) as f:
        scale = float(json.load(f).get("time_scale", 1) or 1)
    scenario = os.path.join(live_dir, "scenario.yaml")
    for name in sorted(os.listdir(live_dir)):
        if not name.endswith(".json") or name in ("live.json",):
            continue
        with open(os.path.join(live_dir, name)) as f:
            live = json.load(f)
        if "engines" not in live or "ttfts" not in live:
            continue
        stack = name[: -len(".json")]
        with tempfile.TemporaryDirectory() as tmp:
            reqs = os.path.join(tmp, "requests.csv")
            subprocess.run([args.gimbal, "simulate", "-c", scenario, "--stack", stack,
                            "--requests-csv", reqs], check=True, stdout=subprocess.DEVNULL)
            with open(reqs) as f:
                sim = {int(r["id"]): r for r in csv.DictReader(f)}
        n = min(len(live["ttfts"]), len(sim))
        pairs = [(i, live["ttfts"][i] * 1000 / scale,
                  (float(sim[i]["first_token_s"]) - float(sim[i]["arrival_s"])) * 1000)
                 for i in range(n) if not live["errors"][i] and i in sim]
        same = sum(1 for i in range(n)
                   if live["engines"][i] == "e" + sim[i]["engine"] and not live["errors"][i])
        diff = [lt - st for _, lt, st in pairs]
        size = [abs(d) for d in diff]
        print(f"{stack}: {same} of {len(pairs)} requests on the simulated engine; live TTFT minus "
              f"simulated: mean {sum(diff) / len(diff):+.1f} ms, median size "
              f"{percentile(size, 0.5):.0f} ms, 90th {percentile(size, 0.9):.0f} ms, largest "
              f"{max(size):.0f} ms; p99 TTFT simulated {percentile([s for _, _, s in pairs], 0.99):.0f}"
              f" ms, live {percentile([l for _, l, _ in pairs], 0.99):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
