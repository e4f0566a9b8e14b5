#!/usr/bin/env python3
"""Compares one stack's simulated results between two gimbal binaries, scenario by scenario.

The check behind "no metric worse than before" claims (docs/results/prefix.md): each binary runs
`gimbal simulate -c SCENARIO --stack STACK --json` on the same scenario files (the old binary on
its own tree's copy, under --old-root, with that tree's data), then every scalar metric is
compared. Prints the metrics that differ, how many runs are identical in every field, and the
largest worsening (throughput/goodput/completed: lower is worse; everything else: higher).

  python3 bench/stack_regress.py --old /tmp/pre14/build/pre14/src/cli/gimbal --old-root /tmp/pre14 \\
      --new build/release/src/cli/gimbal configs/scenarios/suite/*.yaml
"""
import argparse, json, os, subprocess, sys, tempfile

HIGHER = ("throughput", "goodput", "completed")
IGNORE = {"duration", "simulated_seconds", "steps"}  # not quality metrics (listed if they change)


def run(binary, root, scenario, stack, out):
    env = dict(os.environ, GIMBAL_DATA_DIR=os.path.join(root, "data"))
    subprocess.run([binary, "simulate", "-c", os.path.join(root, scenario), "--stack", stack,
                    "--json", out], check=True, env=env, stdout=subprocess.DEVNULL)
    return json.load(open(out))["runs"][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the gimbal binary before the change")
    ap.add_argument("--old-root", required=True, help="its source tree (scenarios and data)")
    ap.add_argument("--new", required=True, help="this tree's gimbal binary")
    ap.add_argument("--stack", default="gimbal")
    ap.add_argument("scenarios", nargs="+", help="scenario files, relative to the tree roots")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    worst, changed, metrics, identical = (0.0, "", ""), [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, sc in enumerate(a.scenarios):
            new = run(a.new, root, sc, a.stack, os.path.join(tmp, f"new{i}.json"))
            old = run(a.old, a.old_root, sc, a.stack, os.path.join(tmp, f"old{i}.json"))
            identical += new == old
            for k, v in new.items():
                if not isinstance(v, (int, float)) or isinstance(v, bool) or k not in old:
                    continue
                metrics += 1
                o = old[k]
                if o == v:
                    continue
                rel = 100.0 * (v - o) / abs(o) if o else float("inf")
                changed.append((sc, k, o, v, rel))
                if k not in IGNORE:
                    worse = -rel if any(h in k for h in HIGHER) else rel
                    if worse > worst[0]:
                        worst = (worse, sc, k)
    print(f"{metrics} scalar metrics over {len(a.scenarios)} scenarios; {len(changed)} differ; "
          f"runs identical in every field: {identical} of {len(a.scenarios)}")
    for c in changed:
        print("  %s %s: %g -> %g (%+.3f%%)" % c)
    print("largest worsening: %.3f%% (%s %s)" % worst if worst[1] else
          "largest worsening: none (0.000%)")


if __name__ == "__main__":
    sys.exit(main())
