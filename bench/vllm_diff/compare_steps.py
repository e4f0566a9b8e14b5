#!/usr/bin/env python3
"""Compare two step logs (format gimbal-vllm-diff-steps/1, README.md) and report where they part.

Per step it compares: the scheduled (id, tokens, computed_before) set, the preempted ids, the
finished ids, and prefix_hit_tokens of admissions. Prints the first `--show` differing steps and
a summary; exits 0 when the logs agree, 1 when they differ, 2 on bad input. Plain Python.

Usage: compare_steps.py A.jsonl B.jsonl [--show 5] [--summary]
With --summary it prints one line instead: steps of each log, steps that agree, preemptions in A,
and the first differing step with the fields that differ there.
"""

import argparse
import json
import sys

FORMAT = "gimbal-vllm-diff-steps/1"


def load(path):
    try:
        with open(path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"compare_steps: cannot read {path}: {e}")
    if not lines or lines[0].get("format") != FORMAT:
        sys.exit(f"compare_steps: {path}: first line must carry format '{FORMAT}'")
    return lines[0], lines[1:]


def key(step):
    sched = sorted((s["id"], s["tokens"], s["computed_before"]) for s in step["scheduled"])
    hits = sorted((s["id"], s.get("prefix_hit_tokens", 0)) for s in step["scheduled"]
                  if "admitted" in s)
    return {"scheduled": sched, "preempted": sorted(step.get("preempted", [])),
            "finished": sorted(step.get("finished", [])), "admission_hits": hits}


FIELDS = ("scheduled", "preempted", "finished", "admission_hits")


def summarize(a, b):
    """(steps that agree, index of the first differing step or None, fields differing there)."""
    agree, first, fields = 0, None, []
    for i in range(max(len(a), len(b))):
        ka = key(a[i]) if i < len(a) else None
        kb = key(b[i]) if i < len(b) else None
        if ka == kb:
            agree += 1
        elif first is None:
            first = i
            fields = [f for f in FIELDS if (ka or {}).get(f) != (kb or {}).get(f)]
    return agree, first, fields


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--show", type=int, default=5)
    ap.add_argument("--summary", action="store_true", help="one line: steps, agreeing, first diff")
    args = ap.parse_args()
    head_a, a = load(args.a)
    head_b, b = load(args.b)
    if args.summary:
        agree, first, fields = summarize(a, b)
        where = "none" if first is None else f"step {first} ({', '.join(fields)})"
        preempted = sum(len(s.get("preempted", [])) for s in a)
        print(f"steps {len(a)}/{len(b)} agree {agree} preempted {preempted} first_diff {where}")
        sys.exit(1 if first is not None else 0)
    for k in sorted(set(head_a.get("engine", {})) | set(head_b.get("engine", {}))):
        va, vb = head_a.get("engine", {}).get(k), head_b.get("engine", {}).get(k)
        if va != vb:
            print(f"engine setting {k}: {va!r} vs {vb!r}")
    shown = differing = 0
    for i in range(max(len(a), len(b))):
        ka = key(a[i]) if i < len(a) else None
        kb = key(b[i]) if i < len(b) else None
        if ka == kb:
            continue
        differing += 1
        if shown < args.show:
            shown += 1
            print(f"step {i}:")
            for field in FIELDS:
                fa = ka[field] if ka else None
                fb = kb[field] if kb else None
                if fa != fb:
                    print(f"  {field}:\n    a: {fa}\n    b: {fb}")
    print(f"{len(a)} vs {len(b)} steps; {differing} steps differ")
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
