#!/usr/bin/env python3
"""Side-by-side figures of the runs bench/peers/clients.sh leaves in its output folder.

Each peer (vllm bench serve, aiperf) is compared with the `gimbal bench` run whose prompts weighed
the same on the engines (gimbal-at-<peer>: its engine-counted prompt length), and, for reference,
with the run at the nominal length. Exits 1 when a client failed or a mean TTFT, mean E2E latency
or request throughput is off by more than the tolerance from its same-load run. Writes
summary.json beside the runs.
"""
import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def gimbal_like(path):
    """gimbal bench and vllm bench serve write the same keys."""
    d = load(path)
    done = d.get("completed", 0)
    return {
        "completed": done,
        "failed": d.get("failed", 0),
        "ttft_ms": d.get("mean_ttft_ms"),
        "e2e_ms": d.get("mean_e2el_ms"),
        "req_s": d.get("request_throughput"),
        "in_tok": d.get("total_input_tokens", 0) / max(done, 1),
        "out_tok": d.get("total_output_tokens", 0) / max(done, 1),
    }


def aiperf(folder):
    d = load(os.path.join(folder, "profile_export_aiperf.json"))

    def avg(key):
        v = d.get(key)
        return v.get("avg") if isinstance(v, dict) else None

    done = int(avg("request_count") or 0)
    errors = sum(e.get("count", 0) for e in (d.get("error_summary") or []))
    return {
        "completed": done,
        "failed": errors,
        "ttft_ms": avg("time_to_first_token"),
        "e2e_ms": avg("request_latency"),
        "req_s": avg("request_throughput"),
        # aiperf counts with its tokenizer; the server's usage is there besides.
        "in_tok": avg("input_sequence_length"),
        "out_tok": avg("output_sequence_length"),
        "usage_in_tok": avg("usage_prompt_tokens"),
        "usage_out_tok": avg("usage_completion_tokens"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--isl", type=int, required=True)
    ap.add_argument("--osl", type=int, required=True)
    ap.add_argument("--vllm-version", default="?")
    ap.add_argument("--aiperf-version", default="?")
    a = ap.parse_args()

    runs, problems = {}, []
    readers = {
        "gimbal": lambda: gimbal_like(os.path.join(a.out, "gimbal.json")),
        "vllm": lambda: gimbal_like(os.path.join(a.out, "vllm.json")),
        "aiperf": lambda: aiperf(os.path.join(a.out, "aiperf")),
        "gimbal-at-vllm": lambda: gimbal_like(os.path.join(a.out, "gimbal-at-vllm.json")),
        "gimbal-at-aiperf": lambda: gimbal_like(os.path.join(a.out, "gimbal-at-aiperf.json")),
    }
    for name, read in readers.items():
        eng = load(os.path.join(a.out, f"{name}.engine.json"))
        try:
            r = read()
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{name}: no result ({e}); see {name}.log")
            continue
        r["rc"] = eng["rc"]
        r["engine_in_tok"] = eng["engine_prompt_tokens"] / max(eng["engine_requests"], 1)
        r["engine_requests"] = eng["engine_requests"]
        r["engine_ttft_ms"] = eng.get("engine_mean_ttft_ms")
        r["engine_e2e_ms"] = eng.get("engine_mean_e2e_ms")
        if eng["rc"] != 0:
            problems.append(f"{name}: exit status {eng['rc']}")
        if r["failed"] or not r["completed"]:
            problems.append(f"{name}: {r['completed']} completed, {r['failed']} failed")
        runs[name] = r

    versions = {"vllm": f"vllm {a.vllm_version}", "aiperf": f"aiperf {a.aiperf_version}"}
    print()
    print(f"requested: {a.isl} prompt tokens, {a.osl} output tokens per request; "
          "prompt/output columns: tokens per request")
    head = (f"{'run':<17} {'done':>5} {'engine in':>9} {'client in':>9} {'client out':>10} "
            f"{'TTFT ms':>8} {'E2E ms':>8} {'req/s':>6} {'eng TTFT':>8} {'eng E2E':>8} | {'vs':<16} {'TTFT':>6} {'E2E':>6} {'req/s':>6}")
    print(head)
    print("-" * len(head))
    summary = {"tolerance": a.tolerance, "isl": a.isl, "osl": a.osl, "runs": runs, "ratios": {}}

    def row(name, ref=None):
        r = runs.get(name)
        if r is None:
            print(f"{name:<17} (no result)")
            return
        line = (f"{name:<17} {r['completed']:>5} {r['engine_in_tok']:>9.1f} {r['in_tok']:>9.1f} "
                f"{r['out_tok']:>10.1f} {r['ttft_ms']:>8.2f} {r['e2e_ms']:>8.2f} {r['req_s']:>6.3f} "
                f"{r['engine_ttft_ms']:>8.2f} {r['engine_e2e_ms']:>8.2f}")
        if ref and ref in runs:
            g = runs[ref]
            ratios = {k: r[k] / g[k] for k in ("ttft_ms", "e2e_ms", "req_s") if g.get(k)}
            summary["ratios"][f"{name}/{ref}"] = ratios
            line += (f" | {ref:<16} {ratios['ttft_ms']:>6.3f} {ratios['e2e_ms']:>6.3f} "
                     f"{ratios['req_s']:>6.3f}")
        print(line)

    row("gimbal")
    for peer in ("vllm", "aiperf"):
        row(peer, "gimbal")
        row(peer, f"gimbal-at-{peer}")
        row(f"gimbal-at-{peer}")
    if "aiperf" in runs and runs["aiperf"].get("usage_in_tok") is not None:
        r = runs["aiperf"]
        print(f"aiperf: its tokenizer counted {r['in_tok']:.1f} in / {r['out_tok']:.1f} out per "
              f"request; the server's usage said {r['usage_in_tok']:.1f} / {r['usage_out_tok']:.1f}")
    print("(engine in: prompt tokens per request as gimbal engine counted them, 4 bytes of text a "
          "token; vllm bench serve reports the server's usage counts, aiperf its own tokenizer's;\n"
          " eng TTFT / eng E2E: the engines' own mean TTFT and E2E latency for the run's requests, "
          "from their /metrics histograms: the server's side, without client and router)")

    for peer in ("vllm", "aiperf"):
        key = f"{peer}/gimbal-at-{peer}"
        for metric, ratio in summary["ratios"].get(key, {}).items():
            if abs(ratio - 1) > a.tolerance:
                problems.append(f"{versions[peer]}: mean {metric} is {ratio:.3f}x gimbal bench "
                                f"at the same load (tolerance {a.tolerance:.0%})")
        if key not in summary["ratios"]:
            problems.append(f"{peer}: nothing to compare")
    summary["problems"] = problems
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print()
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"OK: both peers completed every request; mean TTFT, mean E2E and request throughput "
          f"within {a.tolerance:.0%} of gimbal bench at the same engine load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
