#!/usr/bin/env python3
"""Write a small random trace for drive_vllm.py (format gimbal-vllm-diff-trace/1, README.md).

Requests arrive by step; each prompt is one of `--prefixes` shared prefixes (a system prompt,
so prefix caching has something to hit) followed by unique tokens. Plain Python, no vLLM needed.

Example: gen_trace.py --requests 40 --num-blocks 96 --seed 3 -o trace.json
"""

import argparse
import json
import random
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefixes", type=int, default=3, help="distinct shared prefixes (0: none)")
    ap.add_argument("--prefix-len", type=int, default=64, help="tokens in each shared prefix")
    ap.add_argument("--unique-min", type=int, default=8)
    ap.add_argument("--unique-max", type=int, default=200)
    ap.add_argument("--output-min", type=int, default=1)
    ap.add_argument("--output-max", type=int, default=40)
    ap.add_argument("--arrivals-per-step", type=float, default=0.5,
                    help="mean arrivals per step (Poisson)")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--num-blocks", type=int, default=128)
    ap.add_argument("--max-num-seqs", type=int, default=16)
    ap.add_argument("--max-num-batched-tokens", type=int, default=256)
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--no-prefix-caching", action="store_true")
    ap.add_argument("--policy", choices=["fcfs", "priority"], default="fcfs")
    ap.add_argument("--priorities", type=int, default=1,
                    help="request priorities drawn from 0..N-1 (used by --policy priority)")
    ap.add_argument("--cache-aware-window", type=int, default=0,
                    help="vLLM 0.34's cache_aware_admission_window (0: off)")
    ap.add_argument("--cache-aware-threshold", type=float, default=0.5,
                    help="vLLM 0.34's cache_aware_admission_threshold")
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args()
    if a.requests < 0 or a.unique_min < 1 or a.unique_max < a.unique_min or a.output_min < 1 \
            or a.output_max < a.output_min or a.arrivals_per_step <= 0 or a.prefixes < 0 \
            or a.priorities < 1:
        sys.exit("gen_trace: bad ranges (need unique_min >= 1, output_min >= 1, max >= min, "
                 "arrivals-per-step > 0, priorities >= 1)")

    rng = random.Random(a.seed)
    vocab_lo, vocab_hi = 10, 29999
    prefixes = [[rng.randint(vocab_lo, vocab_hi) for _ in range(a.prefix_len)]
                for _ in range(a.prefixes)]
    requests, t = [], 0.0
    for i in range(a.requests):
        step = int(t)  # Poisson arrivals: exponential gaps in continuous steps, floored
        t += rng.expovariate(a.arrivals_per_step)
        prompt = list(rng.choice(prefixes)) if prefixes else []
        prompt += [rng.randint(vocab_lo, vocab_hi)
                   for _ in range(rng.randint(a.unique_min, a.unique_max))]
        out = rng.randint(a.output_min, a.output_max)
        prompt = prompt[: max(1, a.max_model_len - out)]
        r = {"id": f"r{i}", "arrival_step": step, "prompt": prompt, "output_tokens": out}
        if a.priorities > 1:
            r["priority"] = rng.randrange(a.priorities)
        requests.append(r)
    trace = {
        "format": "gimbal-vllm-diff-trace/1",
        "engine": {
            "block_size": a.block_size,
            "num_blocks": a.num_blocks,
            "max_num_seqs": a.max_num_seqs,
            "max_num_batched_tokens": a.max_num_batched_tokens,
            "max_model_len": a.max_model_len,
            "enable_prefix_caching": not a.no_prefix_caching,
            "policy": a.policy,
        },
        "requests": requests,
    }
    if a.cache_aware_window:
        trace["engine"]["cache_aware_admission_window"] = a.cache_aware_window
        trace["engine"]["cache_aware_admission_threshold"] = a.cache_aware_threshold
    out = sys.stdout if a.output == "-" else open(a.output, "w")
    json.dump(trace, out)
    out.write("\n")


if __name__ == "__main__":
    main()
