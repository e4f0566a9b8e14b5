#!/usr/bin/env python3
"""TTFT tail of a live comparison, by prompt-length decile, against issue 13's targets.

Reads the live folder of scripts/live-demo.sh (OUT/live: live.json and each stack's
`gimbal bench --json` file) and prints, for every stack, mean and p99 TTFT over the completed
requests and per prompt-length decile: the bench's own `ttft_by_prompt_decile` (`sim::Summarise`,
the same cut the simulator reports). Then the
headline stack's changes against the baseline's, each beside its target:

    p99 TTFT                  <= -20 %
    longest-decile p99 TTFT   <=   0 %   (no worse)
    mean TTFT                 <= -30 %

When the demo's simulated points sit next to the live folder (OUT/results.json, written by
`gimbal experiment`), the same figures for the simulated runs of the same scenario follow.

    python3 bench/live_tail.py out/demo/live
    python3 bench/live_tail.py out/demo/live --baseline vllm-baseline --headline gimbal

Percentiles interpolate linearly between order statistics (as core/stats'
PercentileSorted), so mean and p99 match the bench JSON's own `mean_ttft_ms` and `p99_ttft_ms`.
Exit status: 0 when every figure was computed (targets met or not), 1 when a stack had failed
requests (its TTFTs then describe only the survivors; the figures are still printed), 2 on bad
input. Python 3 standard library only.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tail_targets import TAIL_TARGETS  # noqa: E402  (bench/lib)

# (label, key into this script's figures, largest allowed change in %), from the shared targets.
_KEYS = {"p99_ttft_ms": ("p99 TTFT", "p99"), "longest_decile_p99": ("longest-decile p99 TTFT",
                                                                    "long_p99"),
         "mean_ttft_ms": ("mean TTFT", "mean")}
TARGETS = [(*_KEYS[key], limit) for key, _, limit in TAIL_TARGETS]


class InputError(Exception):
    pass


def from_summary(s):
    """A run summary with `sim::Summarise`'s keys (as `gimbal bench` and the simulator write them)
    -> {"n", "mean", "p99", "deciles": [{"lo", "hi", "n", "mean", "p99"}]}."""
    deciles = [{"lo": x["prompt_tokens_min"], "hi": x["prompt_tokens_max"], "n": x["requests"],
                "mean": x["mean_ttft_ms"], "p99": x["p99_ttft_ms"]}
               for x in s.get("ttft_by_prompt_decile") or []]
    return {"n": s.get("completed", 0), "mean": s.get("mean_ttft_ms", 0.0),
            "p99": s.get("p99_ttft_ms", 0.0), "deciles": deciles}


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    except ValueError as e:
        raise InputError(f"{path} is not JSON: {e}") from e


def load_bench(path):
    """A `gimbal bench --json` file -> (summary of completed requests, failed count)."""
    d = load_json(path)
    keys = ("completed", "failed", "mean_ttft_ms", "p99_ttft_ms")
    if not isinstance(d, dict) or not all(isinstance(d.get(k), (int, float)) for k in keys):
        raise InputError(f"{path} is not a `gimbal bench --json` result (no {', '.join(keys)})")
    if d["completed"] >= 10 and not isinstance(d.get("ttft_by_prompt_decile"), list):
        raise InputError(f"{path} has no ttft_by_prompt_decile (written by an older gimbal bench?)")
    return from_summary(d), d["failed"]


def live_stacks(live_dir):
    """[(stack, bench JSON path)] from live.json, or every *.json holding per-request TTFTs."""
    manifest = os.path.join(live_dir, "live.json")
    if os.path.isfile(manifest):
        m = load_json(manifest)
        runs = m.get("runs") if isinstance(m, dict) else None
        if not isinstance(runs, list) or not runs:
            raise InputError(f"{manifest} lists no runs")
        out = []
        for r in runs:
            if not isinstance(r, dict) or not isinstance(r.get("stack"), str) or \
                    not isinstance(r.get("bench_json"), str):
                raise InputError(f"{manifest}: every run needs a stack and a bench_json")
            out.append((r["stack"], os.path.join(live_dir, r["bench_json"])))
        return out
    names = sorted(f for f in os.listdir(live_dir) if f.endswith(".json"))
    out = [(f[:-5], os.path.join(live_dir, f)) for f in names]
    if not out:
        raise InputError(f"{live_dir} holds neither live.json nor any bench JSON")
    return out


def simulated(out_dir):
    """{stack: summary} of the simulated points in OUT/results.json (one seed and rate), or {}."""
    path = os.path.join(out_dir, "results.json")
    if not os.path.isfile(path):
        return {}
    d = load_json(path)
    out = {}
    for p in d.get("points", []) if isinstance(d, dict) else []:
        if not isinstance(p, dict) or p.get("source", "sim") != "sim":
            continue
        s = p.get("summary")
        if not isinstance(s, dict):
            continue
        out[p.get("stack")] = (from_summary(s), s.get("failed", 0), p.get("rate"))
    return out


def change(new, old):
    return 100.0 * (new / old - 1.0) if old > 0 else float("nan")


def print_stack(name, s, failed):
    note = f", {failed} FAILED (TTFTs of the survivors only)" if failed else ""
    print(f"{name}: {s['n']} completed{note}")
    print(f"  all requests        mean {s['mean']:9.1f} ms   p99 {s['p99']:9.1f} ms")
    print(f"  {'decile':<7}{'prompt tokens':>15}{'n':>6}{'mean ms':>10}{'p99 ms':>10}")
    for i, d in enumerate(s["deciles"]):
        span = f"{d['lo']}-{d['hi']}"
        print(f"  {i + 1:<7}{span:>15}{d['n']:>6}{d['mean']:>10.1f}{d['p99']:>10.1f}")


def print_changes(label, base, head, base_name, head_name):
    """Prints the headline's changes against the baseline; True when every target is met."""
    long = lambda s, k: s["deciles"][-1][k] if s["deciles"] else None
    figures = {"mean": (head["mean"], base["mean"]), "p99": (head["p99"], base["p99"]),
               "long_p99": (long(head, "p99"), long(base, "p99")),
               "long_mean": (long(head, "mean"), long(base, "mean"))}
    print(f"{label}: {head_name} vs {base_name}")
    print(f"  {'':<26}{base_name:>14}{head_name:>14}{'change':>9}  target")
    met = True
    rows = TARGETS + [("longest-decile mean TTFT", "long_mean", None)]
    for name, key, target in rows:
        h, b = figures[key]
        if h is None or b is None:
            print(f"  {name:<26}{'-':>14}{'-':>14}{'-':>9}  (fewer than ten completed requests)")
            met = False
            continue
        c = change(h, b)
        verdict = ""
        if target is not None:
            ok = c <= target
            met &= ok
            verdict = f"<= {target:+.0f}% " + ("met" if ok else "MISSED")
        print(f"  {name:<26}{b:>11.1f} ms{h:>11.1f} ms{c:>+8.1f}%  {verdict}".rstrip())
    return met


def ordered(stacks, first):
    """The stacks in `first`'s order, then the rest in their own order."""
    return {k: stacks[k] for k in first if k in stacks} | \
        {k: v for k, v in stacks.items() if k not in first}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("live_dir", help="OUT/live of scripts/live-demo.sh (or OUT itself)")
    ap.add_argument("--baseline", default="vllm-baseline", help="baseline stack (vllm-baseline)")
    ap.add_argument("--headline", default="gimbal", help="stack compared with it (gimbal)")
    args = ap.parse_args(argv)

    live_dir = args.live_dir.rstrip("/") or "/"
    if os.path.isdir(os.path.join(live_dir, "live")) and \
            not os.path.isfile(os.path.join(live_dir, "live.json")):
        live_dir = os.path.join(live_dir, "live")
    if not os.path.isdir(live_dir):
        raise InputError(f"{args.live_dir} is not a folder")

    live = {name: load_bench(path) for name, path in live_stacks(live_dir)}
    for want in (args.baseline, args.headline):
        if want not in live:
            raise InputError(f"no stack '{want}' in {live_dir} (have: {', '.join(live)})")
    first = (args.baseline, args.headline)
    live = ordered(live, first)
    print(f"== live ({live_dir})")
    for name, (s, failed) in live.items():
        print_stack(name, s, failed)
    print()
    met = print_changes("live", live[args.baseline][0], live[args.headline][0], args.baseline,
                        args.headline)
    print(f"live: {'every target met' if met else 'NOT every target met'}")

    sim = simulated(os.path.dirname(os.path.abspath(live_dir)))
    if args.baseline in sim and args.headline in sim:
        sim = ordered(sim, first)
        print()
        rate = sim[args.headline][2]
        print(f"== simulated (results.json next to the live folder, rate {rate})")
        for name, (s, failed, _) in sim.items():
            print_stack(name, s, failed)
        print()
        print_changes("simulated", sim[args.baseline][0], sim[args.headline][0], args.baseline,
                      args.headline)

    failed = [n for n, (_, f) in live.items() if f]
    if failed:
        print(f"live_tail: requests failed in {', '.join(failed)}: the TTFTs above leave them out",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as e:
        print(f"live_tail: {e}", file=sys.stderr)
        sys.exit(2)
