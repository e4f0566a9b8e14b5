#!/usr/bin/env python3
"""Runs policy-stack variants against the vllm stack on scenarios, and prints each variant's change.

The tuning searches of docs/policies.md and the alternatives measured in docs/results/analysis.md
were run with this script: each variant is one stack, given as a flow-YAML map like a scenario's
`stacks:` entries; the scenario's own stacks are replaced by `vllm` (vLLM 0.33 at its defaults,
as in the suite) and the variants, so every variant serves the same requests.

  python3 bench/stack_sweep.py [--seed N] [--bin PATH] [--jobs N] \\
      --stack 'NAME={dispatch: ..., queue: ..., step: ...}' [--stack ...] SCENARIO.yaml...

Per scenario and stack it prints mean and p99 TTFT, the p99 TTFT of the decile of longest
prompts, mean TPOT, request throughput and prefix-cache hit rate, each with its change against
vllm. Standard library only; needs a built `gimbal` (default build/release/src/cli/gimbal).
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VLLM = "{name: vllm, dispatch: {policy: vllm, snapshot_interval_ms: 100}, queue: fcfs}"


def parse_stack(text):
    name, sep, body = text.partition("=")
    body = body.strip()
    if not sep or not name or not (body.startswith("{") and body.endswith("}")):
        raise argparse.ArgumentTypeError(f"expected NAME={{...}}, got '{text}'")
    return name.strip(), body


def run(binary, scenario, stacks, seed, out_dir):
    flow = "[" + ", ".join([VLLM] + [f"{{name: {n}, {b[1:-1]}}}" for n, b in stacks]) + "]"
    out = os.path.join(out_dir, os.path.basename(scenario) + ".json")
    cmd = [binary, "simulate", "-c", scenario, "--set", f"stacks={flow}", "--json", out]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{scenario}: gimbal simulate failed:\n{done.stderr.strip()}")
    with open(out) as f:
        return json.load(f)["runs"]


def pct(x, ref):
    return f"{100.0 * (x / ref - 1.0):+6.1f}%" if ref else "   n/a"


def report(scenario, runs):
    by = {r["stack"]: r for r in runs}
    v = by["vllm"]
    lines = [os.path.basename(scenario)]
    for r in runs:
        dec, vdec = r.get("ttft_by_prompt_decile") or [], v.get("ttft_by_prompt_decile") or []
        long_p99 = dec[-1]["p99_ttft_ms"] if dec else float("nan")
        vlong = vdec[-1]["p99_ttft_ms"] if vdec else 0
        lines.append(
            f"  {r['stack']:22s} mean {r['mean_ttft_ms']:8.0f} ({pct(r['mean_ttft_ms'], v['mean_ttft_ms'])})"
            f"  p99 {r['p99_ttft_ms']:8.0f} ({pct(r['p99_ttft_ms'], v['p99_ttft_ms'])})"
            f"  longest-decile p99 {long_p99:8.0f} ({pct(long_p99, vlong)})"
            f"  TPOT {pct(r['mean_tpot_ms'], v['mean_tpot_ms'])}"
            f"  req/s {pct(r['request_throughput'], v['request_throughput'])}"
            f"  hit {r.get('prefix_cache_hit_rate', 0.0):.3f}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenarios", nargs="+", help="scenario YAML files")
    ap.add_argument("--stack", action="append", type=parse_stack, required=True,
                    help="NAME={flow-YAML stack map without the name}; repeatable")
    ap.add_argument("--seed", type=int, help="override the scenarios' seed")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/release/src/cli/gimbal"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    names = [n for n, _ in args.stack]
    if "vllm" in names or len(set(names)) != len(names):
        ap.error("stack names must be unique and not 'vllm' (the reference)")
    if not os.access(args.bin, os.X_OK):
        ap.error(f"no gimbal binary at {args.bin} (make build, or --bin PATH)")
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        jobs = [pool.submit(run, args.bin, s, args.stack, args.seed, tmp) for s in args.scenarios]
        try:
            for s, j in zip(args.scenarios, jobs):
                print(report(s, j.result()))
        except RuntimeError as e:
            print(f"stack_sweep: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
