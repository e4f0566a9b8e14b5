#!/usr/bin/env python3
"""Sort the first difference of each vLLM/Gimbal step-log pair into the kinds README.md explains.

Reads the work folder of run_diff.sh (tN.json, tN.MODE.vllm.jsonl, tN.MODE.gimbal.jsonl) and
prints, per mode and kind, how many pairs first differ that way and up to six examples
(trace@step). Later steps of a pair are not classified: after the first difference the two
schedulers run different states. Plain Python.

Kinds (README.md, "What differs"):
  same-step-hit          vLLM admits a request with a longer prefix hit than Gimbal (or admits it
                         where Gimbal does not), using blocks that a request scheduled earlier in
                         the same step is only now computing.
  async-inflight-block   async: a resumed request hits one block less in vLLM; that block's last
                         token was an output still in flight when the request was preempted.
  async-finishing-victim async: vLLM preempts a request whose last output is still in flight (it
                         finishes in the same line); Gimbal never picks a finishing request.
  priority-victim        policy priority: vLLM preempts the running request with the largest
                         (priority, arrival); Gimbal preempts the last one admitted.
  priority-requeue       policy priority: admissions differ while a preempted request waits.
                         Gimbal puts preempted requests ahead of the whole queue; vLLM puts them
                         back into the priority queue, behind waiting requests of higher priority.
  other                  none of these.

Usage: classify_diff.py WORK_DIR
"""

import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_steps  # noqa: E402


def steps(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()][1:]


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def classify(prompts, block_size, mode, a, b, policy="fcfs"):
    """(kind, first differing step) for vLLM's log `a` and Gimbal's `b`; (None, None) if equal."""
    _, first, _ = compare_steps.summarize(a, b)
    if first is None:
        return None, None
    sa = a[first] if first < len(a) else {"scheduled": [], "preempted": [], "finished": []}
    sb = b[first] if first < len(b) else {"scheduled": [], "preempted": [], "finished": []}
    adm_b = {s["id"]: s for s in sb["scheduled"] if "admitted" in s}
    for s in sa["scheduled"]:
        if "admitted" not in s:
            continue
        hv = s["prefix_hit_tokens"]
        hg = adm_b[s["id"]]["prefix_hit_tokens"] if s["id"] in adm_b else None
        if hg == hv:
            continue
        if hg is None or hg < hv:
            for o in sa["scheduled"]:  # scheduled before it in the same step
                if o["id"] == s["id"]:
                    break
                shared = common_prefix(prompts[o["id"]], prompts[s["id"]])
                if o["computed_before"] < hv and shared >= min(hv, o["computed_before"] + o["tokens"]):
                    return "same-step-hit", first
        if mode == "async" and s["admitted"] == "resumed" and hg is not None \
                and hg - hv == block_size:
            return "async-inflight-block", first
    if mode == "async" and sa["preempted"] != sb["preempted"] \
            and set(sa["preempted"]) & set(sa["finished"]):
        return "async-finishing-victim", first
    if policy == "priority" and sa["preempted"] != sb["preempted"]:
        return "priority-victim", first
    adm_a = {s["id"] for s in sa["scheduled"] if "admitted" in s}
    if policy == "priority" and adm_a != set(adm_b):
        waiting_preempted = set()  # preempted in Gimbal's log and not resumed before `first`
        for step in b[:first]:
            waiting_preempted |= set(step["preempted"])
            waiting_preempted -= {s["id"] for s in step["scheduled"] if "admitted" in s}
        if waiting_preempted:
            return "priority-requeue", first
    return "other", first


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: classify_diff.py WORK_DIR")
    work = sys.argv[1]
    kinds = {}
    for trace_path in sorted(glob.glob(os.path.join(work, "t*.json"))):
        name = os.path.basename(trace_path)[:-len(".json")]
        with open(trace_path) as f:
            trace = json.load(f)
        prompts = {str(r["id"]): r["prompt"] for r in trace["requests"]}
        block_size = trace.get("engine", {}).get("block_size", 16)
        for mode in ("sync", "async"):
            va = os.path.join(work, f"{name}.{mode}.vllm.jsonl")
            gb = os.path.join(work, f"{name}.{mode}.gimbal.jsonl")
            if not (os.path.exists(va) and os.path.exists(gb)):
                continue
            kind, first = classify(prompts, block_size, mode, steps(va), steps(gb),
                                   trace.get("engine", {}).get("policy", "fcfs"))
            if kind is not None:
                kinds.setdefault((mode, kind), []).append(f"{name}@{first}")
    if not kinds:
        print("kinds: no differences")
    for (mode, kind), where in sorted(kinds.items()):
        print(f"{mode:<6} {kind:<23} {len(where):>3}  e.g. {' '.join(where[:6])}")


if __name__ == "__main__":
    main()
