"""Issue 13's per-scenario tail targets for the gimbal stack against vllm, and the percentage
helpers the bench reports share (bench/suite.sh, bench/shapes.sh, bench/live_tail.py)."""
import math

# (key, label, largest allowed % change against vllm; lower is better for all three). The key is
# a run summary's key, or "longest_decile_p99": the p99 TTFT of its longest-prompt decile.
TAIL_TARGETS = [
    ("p99_ttft_ms", "TTFT p99", -20.0),
    ("longest_decile_p99", "longest-decile TTFT p99", 0.0),
    ("mean_ttft_ms", "TTFT mean", -30.0),
]


def pct(x, ref):
    """% change of x against ref; nan for 0 against 0, +-inf for anything else against 0."""
    if ref == 0:
        return float("nan") if x == 0 else math.copysign(float("inf"), x)
    return 100.0 * (x / ref - 1.0)


def fpct(v):
    return "n/a" if v != v else f"{v:+.1f}%"


def metric(run, key):
    """A run summary's figure for a TAIL_TARGETS key (nan when the run lacks it)."""
    if key == "longest_decile_p99":
        d = run.get("ttft_by_prompt_decile") or []
        return d[-1]["p99_ttft_ms"] if d else float("nan")
    return run.get(key, float("nan"))


def judged(vllm_run, gimbal_run):
    """[(label, vllm value, gimbal value, % change, target, met)] for one scenario."""
    rows = []
    for key, label, target in TAIL_TARGETS:
        v, g = metric(vllm_run, key), metric(gimbal_run, key)
        c = pct(g, v)
        rows.append((label, v, g, c, target, c == c and c <= target))
    return rows
