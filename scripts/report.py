#!/usr/bin/python3
"""Plots and the HTML page of `gimbal report` (docs/experiments.md).

Run by `gimbal report DIR`, which first writes headline.json (the changes against the baseline at the
highest rate with t confidence intervals over seeds, computed in C++). Reads DIR/results.json, the
per-point request CSVs under DIR/points/, and writes into --out:

  index.html, plots.json (the list of plots), results.md (the README's results section), deciles.json
  (per scenario, mean and p99 TTFT by prompt-length decile per stack at the highest rate), and per
  scenario: latency_vs_rate, latency_cdf, throughput_latency, expert_load, step_breakdown,
  step_time_series, ablation, and ttft_by_decile where the points carry the summary's
  ttft_by_prompt_decile (each <kind>__<scenario>.png).

Points carry a "source" ("sim" for `gimbal experiment`). With --live, the live points `gimbal
report` wrote (a `gimbal bench` run per stack against `gimbal serve` over `gimbal engine`) join
them: they are drawn dashed next to the simulated ones, the headline table gets a row per source,
and headline.json's "live" key becomes the simulated-versus-live table with the gap in percent.

Stacks named `group/setting` are the members of a tuned baseline (the suite's `tuned_baseline`, such
as vllm-best: the vllm stack at every engine setting of a grid). They are not drawn one by one: the
rate plots show each group as one grey band (the range of the members' means), and the tables show
the group's row from headline.json (per metric the best member, named under the figure) and the
headline stack against it ("vs_tuned").
"""
import argparse
import csv
import html
import json
import math
import os
import sys
from collections import OrderedDict, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LIVE_LABELS = OrderedDict([
    ("mean_ttft_ms", ("mean TTFT", "ms", "%.1f")),
    ("mean_tpot_ms", ("mean TPOT", "ms", "%.2f")),
    ("p99_ttft_ms", ("p99 TTFT", "ms", "%.1f")),
    ("request_throughput", ("throughput", "req/s", "%.2f")),
    ("output_throughput", ("output throughput", "tok/s", "%.0f")),
])
METRIC_LABELS = OrderedDict([
    ("mean_ttft_ms", "mean TTFT"),
    ("mean_tpot_ms", "mean TPOT"),
    ("p99_ttft_ms", "p99 TTFT"),
    ("output_throughput", "output throughput"),
])
SOURCE_STYLE = {"sim": "-"}


def safe(name):
    out = "".join(c.lower() if c.isalnum() or c in "._-" else "-" for c in name)
    return out or "-"


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def style(source):
    return SOURCE_STYLE.get(source, "--")


def is_member(stack):
    """A tuned-baseline member (`group/setting`)."""
    return "/" in stack


class Report:
    def __init__(self, results_path, headline_path, out, live_path=None):
        with open(results_path) as f:
            self.results = json.load(f)
        with open(headline_path) as f:
            self.headline = json.load(f)
        self.dir = os.path.dirname(os.path.abspath(results_path))
        self.out = out
        self.points = list(self.results.get("points", []))
        if live_path:
            with open(live_path) as f:
                self.points += json.load(f)
        self.live = self.headline.get("live")
        self.baseline = self.results.get("baseline", "")
        self.head = self.results.get("headline", "")
        self.stacks = list(self.results.get("stacks", []))
        for p in self.points:
            if p["stack"] not in self.stacks:
                self.stacks.append(p["stack"])
        # Tuned-baseline members: group -> member stacks; they leave the per-stack lists.
        self.members = OrderedDict()
        for s in self.stacks:
            if is_member(s):
                self.members.setdefault(s.split("/", 1)[0], []).append(s)
        self.stacks = [s for s in self.stacks if not is_member(s)]
        self.scenarios = []
        for p in self.points:
            if p["scenario"] not in self.scenarios:
                self.scenarios.append(p["scenario"])
        self.sources = sorted({p.get("source", "sim") for p in self.points}, key=lambda s: s != "sim")
        self.plots = []  # (scenario, kind, file, caption)
        self.deciles = OrderedDict()  # scenario -> decile_table()
        cmap = plt.get_cmap("tab10" if len(self.stacks) <= 10 else "tab20")
        self.color = {s: cmap(i % cmap.N) for i, s in enumerate(self.stacks)}

    # ---- helpers -------------------------------------------------------------------------
    def pts(self, scenario, source=None, stack=None, rate=None):
        out = []
        for p in self.points:
            if p["scenario"] != scenario:
                continue
            if source is not None and p.get("source", "sim") != source:
                continue
            if stack is not None and p["stack"] != stack:
                continue
            if rate is not None and p["rate"] != rate:
                continue
            out.append(p)
        return out

    def top_rate(self, scenario, source="sim"):
        rates = [p["rate"] for p in self.pts(scenario, source)]
        return max(rates) if rates else None

    def by_rate(self, scenario, source, stack, key):
        """rate -> list of per-seed values of summary[key]."""
        d = defaultdict(list)
        for p in self.pts(scenario, source, stack):
            v = p["summary"].get(key)
            if v is not None:
                d[p["rate"]].append(v)
        return OrderedDict(sorted(d.items()))

    def save(self, fig, scenario, kind, caption):
        name = "%s__%s.png" % (kind, safe(scenario))
        fig.savefig(os.path.join(self.out, name), dpi=90, bbox_inches="tight")
        plt.close(fig)
        self.plots.append((scenario, kind, name, caption))

    def rate_label(self, scenario):
        fr = [p for p in self.pts(scenario) if p.get("rate_fraction") is not None]
        return "request rate (req/s)"

    # ---- plots ---------------------------------------------------------------------------
    def latency_vs_rate(self, scenario):
        keys = [("mean_ttft_ms", "mean TTFT (ms)"), ("mean_tpot_ms", "mean TPOT (ms)"),
                ("p99_ttft_ms", "p99 TTFT (ms)")]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for ax, (key, label) in zip(axes, keys):
            self.member_bands(ax, scenario, key)
            for source in self.sources:
                for stack in self.stacks:
                    d = self.by_rate(scenario, source, stack, key)
                    if not d:
                        continue
                    xs = list(d.keys())
                    ys = [mean(v) for v in d.values()]
                    lo = [min(v) for v in d.values()]
                    hi = [max(v) for v in d.values()]
                    lbl = stack if source == "sim" else "%s (%s)" % (stack, source)
                    ax.plot(xs, ys, style(source), marker="o", ms=3, color=self.color[stack], label=lbl,
                            lw=2.2 if stack in (self.baseline, self.head) else 1.2)
                    ax.fill_between(xs, lo, hi, color=self.color[stack], alpha=0.12, lw=0)
            ax.set_xlabel(self.rate_label(scenario))
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7, ncol=2)
        fig.suptitle("%s: latency against request rate (mean over seeds; band: min-max)" % scenario)
        self.save(fig, scenario, "latency_vs_rate", "Mean TTFT, mean TPOT and p99 TTFT against the "
                  "request rate, per stack (mean over seeds; shaded: min to max over seeds)." +
                  self.band_caption())

    def member_means(self, scenario, group, key):
        """rate -> the means over seeds of summary[key], one per member of the group (simulated)."""
        d = defaultdict(list)
        for m in self.members[group]:
            for rate, vals in self.by_rate(scenario, "sim", m, key).items():
                d[rate].append(mean(vals))
        return OrderedDict(sorted(d.items()))

    def member_bands(self, ax, scenario, key):
        """Each tuned baseline as one grey band: min to max over its members' means, per rate."""
        for group, members in self.members.items():
            d = self.member_means(scenario, group, key)
            if not d:
                continue
            ax.fill_between(list(d.keys()), [min(v) for v in d.values()], [max(v) for v in d.values()],
                            color="0.5", alpha=0.2, lw=0,
                            label="%s: %d settings (range)" % (group, len(members)))

    def band_caption(self):
        if not self.members:
            return ""
        return (" Grey: the range of the tuned baselines' settings (%s), each setting's mean over seeds."
                % ", ".join("%s, %d settings" % (g, len(m)) for g, m in self.members.items()))

    def read_requests(self, p):
        if p.get("requests_path"):
            path = p["requests_path"]
        elif p.get("requests_csv"):
            path = os.path.join(self.dir, "points", p["requests_csv"])
        else:
            return [], []
        ttft, e2e = [], []
        if not os.path.exists(path):
            return ttft, e2e
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("ttft_ms"):
                    ttft.append(float(row["ttft_ms"]))
                    e2e.append(float(row["e2el_ms"]))
        return ttft, e2e

    def latency_cdf(self, scenario):
        rate = self.top_rate(scenario)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        drawn = False
        for source in self.sources:
            for stack in self.stacks:
                ttft, e2e = [], []
                for p in self.pts(scenario, source, stack, rate):
                    a, b = self.read_requests(p)
                    ttft += a
                    e2e += b
                for ax, vals in zip(axes, (ttft, e2e)):
                    if not vals:
                        continue
                    vals.sort()
                    n = len(vals)
                    ax.plot(vals, [(i + 1) / n for i in range(n)], style(source), color=self.color[stack],
                            label=stack if source == "sim" else "%s (%s)" % (stack, source))
                    drawn = True
        for ax, label in zip(axes, ("TTFT (ms)", "E2E latency (ms)")):
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("fraction of requests")
            ax.grid(alpha=0.3, which="both")
        if drawn:
            axes[0].legend(fontsize=7)
        fig.suptitle("%s: latency CDFs at %g req/s (all seeds pooled)" % (scenario, rate or 0))
        self.save(fig, scenario, "latency_cdf", "CDFs of TTFT and end-to-end latency at the highest "
                  "rate, every request of every seed.")

    def throughput_latency(self, scenario):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        for ax, (key, label) in zip(axes, (("mean_ttft_ms", "mean TTFT (ms)"),
                                           ("p99_e2el_ms", "p99 E2E latency (ms)"))):
            for source in self.sources:
                for stack in self.stacks:
                    thr = self.by_rate(scenario, source, stack, "output_throughput")
                    lat = self.by_rate(scenario, source, stack, key)
                    rates = [r for r in thr if r in lat]
                    if not rates:
                        continue
                    ax.plot([mean(thr[r]) for r in rates], [mean(lat[r]) for r in rates], style(source),
                            marker="o", ms=3, color=self.color[stack],
                            label=stack if source == "sim" else "%s (%s)" % (stack, source))
            for group, members in self.members.items():
                xs, ys = [], []
                for m in members:
                    thr = self.by_rate(scenario, "sim", m, "output_throughput")
                    lat = self.by_rate(scenario, "sim", m, key)
                    xs += [mean(thr[r]) for r in thr if r in lat]
                    ys += [mean(lat[r]) for r in thr if r in lat]
                if xs:
                    ax.scatter(xs, ys, s=6, color="0.5", alpha=0.3, lw=0,
                               label="%s: %d settings" % (group, len(members)))
            ax.set_xlabel("output throughput (tokens/s)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7, ncol=2)
        fig.suptitle("%s: throughput against latency (one marker per request rate)" % scenario)
        self.save(fig, scenario, "throughput_latency", "Output throughput against mean TTFT and p99 "
                  "end-to-end latency; each marker is one request rate (mean over seeds)." +
                  ("" if not self.members else " Grey dots: every setting of the tuned baselines."))

    def first_top_point(self, scenario, stack):
        rate = self.top_rate(scenario)
        pts = [p for p in self.pts(scenario, "sim", stack, rate) if p.get("first_seed")]
        if not pts:
            pts = sorted(self.pts(scenario, "sim", stack, rate), key=lambda p: p["seed"])
        return pts[0] if pts else None

    def expert_load(self, scenario):
        """Measured per-GPU expert load over time: the static baseline against rebalancing stacks."""
        rebalancing = [s for s in self.stacks
                       if self.first_top_point(scenario, s)
                       and "placement_policy" in self.first_top_point(scenario, s)["summary"]]
        shown = [s for s in [self.baseline, self.head] + rebalancing if self.first_top_point(scenario, s)]
        shown = list(OrderedDict.fromkeys(shown))[:4]
        series = [(s, self.first_top_point(scenario, s)) for s in shown]
        series = [(s, p) for s, p in series
                  if (p.get("expert_load") or {}).get("method") == "measured" and p["expert_load"]["t_s"]]
        if not series:
            fig, ax = plt.subplots(figsize=(8, 4))
            for stack in shown:
                p = self.first_top_point(scenario, stack)
                per_layer = p["summary"].get("expert_load_max_over_mean_per_layer", [])
                ax.plot(range(len(per_layer)), per_layer, label=stack, color=self.color[stack])
            ax.set_xlabel("MoE layer")
            ax.set_ylabel("max / mean GPU expert load")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.suptitle("%s: expert load per GPU" % scenario)
            self.save(fig, scenario, "expert_load", "Per-layer expert-load imbalance from the "
                      "simulator's summary (the points carry no per-step load record).")
            return
        nan = float("nan")

        def num(v):
            return nan if v is None else v

        vals = [num(v) for _, p in series for row in p["expert_load"]["gpu_load"] for v in row]
        vals = [v for v in vals if v == v]
        spread = max(0.05, max(abs(v - 1.0) for v in vals)) if vals else 0.5
        vmin, vmax = 1.0 - spread, 1.0 + spread  # centred on the mean load
        cmap = plt.get_cmap("coolwarm").copy()
        cmap.set_bad("#dddddd")
        fig, axes = plt.subplots(len(series) + 1, 1, figsize=(12, 2.6 * len(series) + 3.2), squeeze=False,
                                 gridspec_kw={"height_ratios": [1.0] * len(series) + [0.9]})
        for i, (stack, p) in enumerate(series):
            el = p["expert_load"]
            t = el["t_s"]
            ax = axes[i][0]
            grid = [[num(v) for v in col] for col in zip(*el["gpu_load"])]  # gpus x bins
            im = ax.imshow(grid, aspect="auto", origin="lower", cmap=cmap, vmin=vmin, vmax=vmax,
                           interpolation="nearest", extent=[t[0], t[-1] + el["bin_s"], -0.5, el["gpus"] - 0.5])
            for r in el.get("rebalances_s", []):
                ax.axvline(r, color="black", ls="--", lw=0.8)
            summ = p["summary"]
            if el.get("rebalances_s"):
                title = "%s: %s placement, %d rebalances; max/mean %.3f before the first, %.3f after" % (
                    stack, summ.get("placement_policy", "?"), len(el["rebalances_s"]),
                    num(el["before_first_rebalance"]), num(el["after_first_rebalance"]))
            elif "placement_policy" in summ:
                title = "%s: %s placement, no rebalance in the run; max/mean %.3f" % (
                    stack, summ.get("placement_policy", "?"), num(el["overall_max_over_mean"]))
            else:
                title = "%s: static (contiguous) placement; max/mean %.3f" % (
                    stack, num(el["overall_max_over_mean"]))
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("GPU")
            fig.colorbar(im, ax=ax, label="load / GPU mean", pad=0.01)
        ax = axes[len(series)][0]
        for stack, p in series:
            el = p["expert_load"]
            ax.step(el["t_s"], [num(v) for v in el["max_over_mean"]], where="post", color=self.color[stack],
                    label=stack)
            for r in el.get("rebalances_s", []):
                ax.axvline(r, color=self.color[stack], ls="--", lw=0.7, alpha=0.6)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("max / mean GPU load")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.suptitle("%s: measured per-GPU expert load at %g req/s, first seed" % (
            scenario, self.top_rate(scenario)))
        fig.tight_layout()
        caption = ("Per-GPU routed-expert load over time as the simulator measured it: every step's "
                   "token-expert pairs per GPU, summed over MoE layers, in equal time bins and divided "
                   "by the bin's mean GPU load (highest rate, first seed). The baseline keeps the "
                   "static contiguous placement; stacks with a placement policy rebalance inside the "
                   "run (dashed lines), so before their first rebalance they run the same placement "
                   "and after it their own. Bottom: max/mean GPU load per time bin (per-layer maxima "
                   "over per-layer means, as the run summary's expert_load_max_over_mean).")
        self.save(fig, scenario, "expert_load", caption)

    def step_breakdown(self, scenario):
        shown = list(OrderedDict.fromkeys(s for s in (self.baseline, self.head)
                                          if self.first_top_point(scenario, s)))
        fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(6.5 * max(1, len(shown)), 4.2),
                                 squeeze=False, sharey=True)
        parts = [("attn_dense_s", "attention + dense"), ("experts_s", "routed experts"),
                 ("all_to_all_s", "all-to-all"), ("straggler_wait_s", "straggler wait")]
        colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
        for ax, stack in zip(axes[0], shown):
            engines = self.first_top_point(scenario, stack)["summary"].get("engines", [])
            ranks = [e["engine"] for e in engines]
            bottom = [0.0] * len(engines)
            for (key, label), c in zip(parts, colors):
                vals = [e.get(key, 0.0) for e in engines]
                ax.bar(ranks, vals, bottom=bottom, color=c, label=label)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set_title(stack)
            ax.set_xlabel("DP rank")
            ax.set_ylabel("seconds over the run")
            ax.grid(alpha=0.3, axis="y")
        axes[0][0].legend(fontsize=7)
        fig.suptitle("%s: per-rank step time at %g req/s, first seed" % (scenario, self.top_rate(scenario)))
        self.save(fig, scenario, "step_breakdown", "Where each DP rank's step time goes at the highest "
                  "rate (first seed): attention and dense layers, routed experts, all-to-all, and "
                  "waiting for the slowest rank.")

    def step_time_series(self, scenario):
        fig, ax = plt.subplots(figsize=(12, 3.8))
        for stack in list(OrderedDict.fromkeys((self.baseline, self.head))):
            p = self.first_top_point(scenario, stack)
            if not p or not p.get("step_series"):
                continue
            s = p["step_series"]
            ax.plot(s["t_s"], s["step_ms"], color=self.color[stack], label="%s step" % stack)
            ax.plot(s["t_s"], s["experts_ms"], ":", color=self.color[stack], label="%s experts" % stack)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mean step time (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.suptitle("%s: step time over the run at %g req/s, first seed" % (scenario, self.top_rate(scenario)))
        self.save(fig, scenario, "step_time_series", "Mean step time and its routed-expert part over "
                  "time (downsampled), baseline against headline stack.")

    def ablation(self, scenario):
        rows = [r for r in self.headline.get("rows", []) if r["scenario"] == scenario and r["source"] == "sim"]
        fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(rows) + 4), 4.4))
        metrics = list(METRIC_LABELS.keys())
        width = 0.8 / len(metrics)
        mcolors = ["#4c72b0", "#dd8452", "#c44e52", "#55a868"]
        for j, m in enumerate(metrics):
            xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(rows))]
            vals = [r["metrics"][m]["mean_pct"] for r in rows]
            err = [r["metrics"][m]["half_width_pct"] or 0 for r in rows]
            ax.bar(xs, vals, width, yerr=err, capsize=2, color=mcolors[j], label=METRIC_LABELS[m])
            for i, r in enumerate(rows):
                if r["is_headline"]:
                    ax.plot([xs[i]], [r["metrics"][m]["paper_pct"]], marker="_", ms=14, mew=2,
                            color="black", label="paper" if j == 0 else None)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([self.row_label(r) for r in rows], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("change against %s (%%)" % self.baseline)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, ncol=5)
        rate = rows[0]["rate"] if rows else 0
        fig.suptitle("%s: every stack against %s at %g req/s (mean over seeds, 95%% CI)"
                     % (scenario, self.baseline, rate))
        self.save(fig, scenario, "ablation", "Change of each stack against the baseline at the highest "
                  "rate: mean over seeds with 95% t intervals; black ticks are the paper's figures for "
                  "the headline stack." + ("" if not self.members else " A tuned baseline's bars are, per "
                                           "metric, its best setting's."))

    # ---- TTFT by prompt-length decile ---------------------------------------------------
    def decile_row(self, label, source, stack, pts):
        """One row of the decile table: per decile, the mean over seeds of each seed's mean and p99
        TTFT, and the prompt-length range over the seeds; p99.9 TTFT (mean over seeds) where every
        seed has it (runs of at least 1,000 requests)."""
        deciles = []
        for d in range(10):
            cells = [p["summary"]["ttft_by_prompt_decile"][d] for p in pts]
            deciles.append({"decile": d + 1,
                            "prompt_tokens_min": min(c["prompt_tokens_min"] for c in cells),
                            "prompt_tokens_max": max(c["prompt_tokens_max"] for c in cells),
                            "mean_ttft_ms": mean([c["mean_ttft_ms"] for c in cells]),
                            "p99_ttft_ms": mean([c["p99_ttft_ms"] for c in cells])})
        p999 = [p["summary"].get("p999_ttft_ms") for p in pts]
        return OrderedDict([("label", label), ("source", source), ("stack", stack),
                            ("seeds", sorted(p["seed"] for p in pts)),
                            ("p999_ttft_ms", mean(p999) if None not in p999 else None),
                            ("deciles", deciles)])

    def decile_table(self, scenario):
        """The decile rows of a scenario at its highest rate: every stack with deciles per source,
        and per tuned baseline its member with the lowest mean p99 TTFT. None without any."""
        def with_deciles(ps):
            return [p for p in ps if len(p["summary"].get("ttft_by_prompt_decile") or []) == 10]

        rows = []
        for source in self.sources:
            rate = self.top_rate(scenario, source)
            for stack in self.stacks:
                pts = with_deciles(self.pts(scenario, source, stack, rate))
                if pts:
                    label = stack if source == "sim" else "%s (%s)" % (stack, source)
                    rows.append(self.decile_row(label, source, stack, pts))
            if source != "sim":
                continue
            for group, members in self.members.items():
                cands = [(mean([p["summary"]["p99_ttft_ms"] for p in pts]), m, pts) for m in members
                         for pts in [with_deciles(self.pts(scenario, "sim", m, rate))] if pts]
                if cands:
                    _, m, pts = min(cands, key=lambda c: (c[0], c[1]))
                    rows.append(self.decile_row("%s (%s, lowest p99 TTFT)" % (group, m.split("/", 1)[1]),
                                                source, m, pts))
        if not rows:
            return None
        return OrderedDict([("scenario", scenario), ("rate", self.top_rate(scenario)), ("rows", rows)])

    def ttft_by_decile(self, scenario, table):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
        xs = list(range(1, 11))
        pos = [d[k] for r in table["rows"] for d in r["deciles"] for k in ("mean_ttft_ms", "p99_ttft_ms")
               if d[k] > 0]
        log = bool(pos) and max(pos) > 20 * min(pos)  # both panels alike
        for ax, key, label in zip(axes, ("mean_ttft_ms", "p99_ttft_ms"), ("mean TTFT (ms)", "p99 TTFT (ms)")):
            for r in table["rows"]:
                ys = [d[key] for d in r["deciles"]]
                tuned = r["stack"] not in self.color
                ax.plot(xs, ys, style(r["source"]), marker="o", ms=3, label=r["label"],
                        color="0.5" if tuned else self.color[r["stack"]],
                        lw=2.2 if r["stack"] in (self.baseline, self.head) else 1.2)
            if log:
                ax.set_yscale("log")
            ax.set_xticks(xs)
            ax.set_xlabel("prompt-length decile (1: shortest prompts)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3, which="both")
        axes[0].legend(fontsize=7, ncol=2)
        fig.suptitle("%s: TTFT by prompt-length decile at %g req/s (mean over seeds)"
                     % (scenario, table["rate"] or 0))
        self.save(fig, scenario, "ttft_by_decile", "Mean and p99 TTFT per prompt-length decile at the "
                  "highest rate: each run's completed requests ordered by prompt length and cut into ten "
                  "equal-count groups (the summary's ttft_by_prompt_decile), mean over seeds. A stack "
                  "lower than another on the left panel but higher on the right one trades a tail for a "
                  "mean; rising curves mean long prompts wait.")

    def html_decile_table(self, table):
        rows = table["rows"]
        ranges = ["%d&ndash;%d" % (min(r["deciles"][d]["prompt_tokens_min"] for r in rows),
                                   max(r["deciles"][d]["prompt_tokens_max"] for r in rows)) for d in range(10)]
        has_p999 = any(r["p999_ttft_ms"] is not None for r in rows)
        head = "".join("<th>%d<br><small>%s tok</small></th>" % (d + 1, ranges[d]) for d in range(10))
        if has_p999:
            head += "<th>p99.9 TTFT</th>"
        bases = {r["source"]: r for r in rows if r["stack"] == self.baseline}  # per source
        out = ['<table class="decile-table" id="deciles-%s"><thead><tr><th>stack</th><th>seeds</th>%s'
               '</tr></thead><tbody>' % (html.escape(safe(table["scenario"])), head)]
        for r in rows:
            cls = ' class="headline"' if r["stack"] == self.head and r["source"] == "sim" else ""
            cells = []
            base = bases.get(r["source"])
            for d, c in enumerate(r["deciles"]):
                tint = ""
                if base is not None and r is not base and base["deciles"][d]["p99_ttft_ms"] > 0:
                    ratio = c["p99_ttft_ms"] / base["deciles"][d]["p99_ttft_ms"]
                    tint = ' class="worse"' if ratio > 1.1 else ' class="better"' if ratio < 1 / 1.1 else ""
                cells.append("<td%s>%.1f / %.1f</td>" % (tint, c["mean_ttft_ms"], c["p99_ttft_ms"]))
            if has_p999:
                cells.append("<td>%s</td>" % ("n/a" if r["p999_ttft_ms"] is None else "%.1f" % r["p999_ttft_ms"]))
            out.append("<tr%s><td>%s</td><td>%d</td>%s</tr>" % (cls, html.escape(r["label"]), len(r["seeds"]),
                                                               "".join(cells)))
        out.append("</tbody></table>")
        return "\n".join(out)

    def decile_intro(self, table):
        rows = table["rows"]
        text = ("Mean / p99 TTFT in ms per prompt-length decile at %g req/s: each run's completed requests "
                "ordered by prompt length and cut into ten equal-count groups (1: the shortest prompts; "
                "the header gives the prompt tokens over every run in the table), each figure the mean "
                "over seeds. Cells whose p99 is more than 10%% above %s's in the same decile are red, "
                "more than 10%% below green." % (table["rate"] or 0, self.baseline))
        if any(r["source"] != "sim" for r in rows):
            text += " Live rows are compared with the live %s." % self.baseline
        if any(r["p999_ttft_ms"] is not None for r in rows):
            text += " p99.9 TTFT: over all requests, where every seed completed at least 1,000."
        return text

    # ---- table and page ------------------------------------------------------------------
    def fmt_cell(self, m):
        if m["n"] == 0:
            return "n/a"
        s = "%+.1f%%" % m["mean_pct"]
        if m.get("ci_lo_pct") is not None:
            s += " [%+.1f, %+.1f]" % (m["ci_lo_pct"], m["ci_hi_pct"])
        return s

    def row_label(self, r):
        if r.get("tuned"):
            return "%s (best of %d)" % (r["stack"], r.get("members", 0))
        return r["stack"]

    @staticmethod
    def setting(m):
        """The member a tuned row's cell comes from (its setting), or None."""
        return m.get("best_setting") or m.get("against_setting")

    def vs_tuned(self):
        return self.headline.get("vs_tuned", [])

    def table_rows(self, only_headline):
        rows = self.headline.get("rows", [])
        if only_headline:
            rows = [r for r in rows if r["is_headline"]]
        return rows

    def html_table(self):
        conf = int(round(self.headline.get("confidence", 0.95) * 100))
        head = "".join("<th>%s<br><small>measured [%d%% CI] / paper</small></th>" % (html.escape(v), conf)
                       for v in METRIC_LABELS.values())
        out = ['<table id="headline-table"><thead><tr><th>source</th><th>scenario</th><th>rate (req/s)'
               '</th><th>stack</th><th>seeds</th>%s</tr></thead><tbody>' % head]
        for r in self.table_rows(False):
            cls = ' class="headline"' if r["is_headline"] else ' class="tuned"' if r.get("tuned") else ""
            cells = "".join(self.html_cell(r, m) for m in METRIC_LABELS)
            out.append("<tr%s><td>%s</td><td>%s</td><td>%g</td><td>%s</td><td>%d</td>%s</tr>" % (
                cls, html.escape(r["source"]), html.escape(r["scenario"]), r["rate"],
                html.escape(self.row_label(r)), r["n_seeds"], cells))
        out.append("</tbody></table>")
        return "\n".join(out)

    def html_cell(self, r, m):
        c = r["metrics"][m]
        if r["is_headline"] and c.get("paper_pct") is not None and "against" not in r:
            return "<td>%s<br><small>paper %+.1f%%</small></td>" % (html.escape(self.fmt_cell(c)),
                                                                   c["paper_pct"])
        if self.setting(c):
            return "<td>%s<br><small>%s</small></td>" % (html.escape(self.fmt_cell(c)),
                                                         html.escape(self.setting(c)))
        return "<td>%s</td>" % html.escape(self.fmt_cell(c))

    def tuned_intro(self):
        groups = ", ".join("`%s` (the best of its %d settings for each metric)" % (g, len(m))
                           for g, m in self.members.items())
        return ("The headline stack against %s: (stack - best) / best per seed, against the setting "
                "named under each figure." % groups)

    def html_tuned_table(self):
        conf = int(round(self.headline.get("confidence", 0.95) * 100))
        head = "".join("<th>%s<br><small>[%d%% CI] / best setting</small></th>" % (html.escape(v), conf)
                       for v in METRIC_LABELS.values())
        out = ['<table id="tuned-table"><thead><tr><th>source</th><th>scenario</th><th>rate (req/s)</th>'
               '<th>stack</th><th>against</th><th>seeds</th>%s</tr></thead><tbody>' % head]
        for r in self.vs_tuned():
            out.append("<tr><td>%s</td><td>%s</td><td>%g</td><td>%s</td><td>%s</td><td>%d</td>%s</tr>" % (
                html.escape(r["source"]), html.escape(r["scenario"]), r["rate"], html.escape(r["stack"]),
                html.escape(r["against"]), r["n_seeds"],
                "".join(self.html_cell(r, m) for m in METRIC_LABELS)))
        out.append("</tbody></table>")
        return "\n".join(out)

    def markdown_tuned(self):
        if not self.vs_tuned():
            return []
        lines = ["", self.tuned_intro().replace("the setting named under each figure",
                                                "the setting in parentheses"), "",
                 "| source | scenario | rate (req/s) | stack | against | seeds | %s |"
                 % " | ".join(METRIC_LABELS.values()),
                 "|---|---|---|---|---|---|%s" % ("---|" * len(METRIC_LABELS))]
        for r in self.vs_tuned():
            cells = ["%s (%s)" % (self.fmt_cell(r["metrics"][m]), self.setting(r["metrics"][m]))
                     for m in METRIC_LABELS]
            lines.append("| %s | %s | %g | **%s** | %s | %d | %s |" % (
                r["source"], r["scenario"], r["rate"], r["stack"], r["against"], r["n_seeds"],
                " | ".join(cells)))
        return lines

    def live_rows(self):
        return (self.live or {}).get("rows", [])

    def live_gap_sentence(self):
        rows = self.live_rows()
        gaps = [(abs(r["metrics"][m]["gap_pct"]), r["metrics"][m]["gap_pct"], r["stack"], m)
                for r in rows for m in LIVE_LABELS if r["metrics"].get(m, {}).get("gap_pct") is not None]
        if not gaps:
            return "No live run matched a simulated point."
        _, worst, stack, m = max(gaps)
        mean_abs = mean([g[0] for g in gaps])
        return ("Gap = (live - simulated) / simulated. Mean absolute gap %.1f%% over %d figures; largest "
                "%+.1f%% (%s, %s)." % (mean_abs, len(gaps), worst, LIVE_LABELS[m][0], stack))

    def live_cells(self, r, m):
        c = r["metrics"].get(m, {})
        fmt = LIVE_LABELS[m][2]
        sim = fmt % c["sim"] if c.get("sim") is not None else "n/a"
        live = fmt % c["live"] if c.get("live") is not None else "n/a"
        gap = "%+.1f%%" % c["gap_pct"] if c.get("gap_pct") is not None else "n/a"
        return sim, live, gap

    def live_intro(self):
        first = self.live_rows()[0]
        pts = [p for p in self.points if p.get("source") == "live"]
        ts = pts[0].get("time_scale", 1) if pts else 1
        return ("Scenario %s at %g req/s: the live run (`gimbal bench` against `gimbal serve` over "
                "`gimbal engine`, results in %s%s) next to the simulator on the same workload, seed %s."
                % (first["scenario"], first["rate"], self.live.get("dir", "?"),
                   "" if ts == 1 else ", emulator time scale %g, converted to model time" % ts,
                   ", ".join(str(x) for x in first["sim_seeds"])))

    def html_live_table(self):
        head = "".join("<th colspan=\"3\">%s (%s)</th>" % (html.escape(v[0]), html.escape(v[1]))
                       for v in LIVE_LABELS.values())
        sub = "".join("<th>sim</th><th>live</th><th>gap</th>" for _ in LIVE_LABELS)
        out = ['<table id="live-table"><thead><tr><th rowspan="2">stack</th>%s</tr><tr>%s</tr></thead>'
               '<tbody>' % (head, sub)]
        for r in self.live_rows():
            cells = "".join("<td>%s</td><td>%s</td><td>%s</td>" % tuple(html.escape(x) for x in self.live_cells(r, m))
                            for m in LIVE_LABELS)
            out.append("<tr><td>%s</td>%s</tr>" % (html.escape(r["stack"]), cells))
        out.append("</tbody></table>")
        unmatched = (self.live or {}).get("unmatched", [])
        if unmatched:
            out.append("<p>Live runs with no simulated point of the same scenario, stack and rate: %s.</p>"
                       % html.escape(", ".join(unmatched)))
        return "\n".join(out)

    def markdown_live(self):
        if not self.live_rows():
            return []
        lines = ["", "Simulated and live, side by side. " + self.live_intro() + " " + self.live_gap_sentence(),
                 "",
                 "| stack | %s |" % " | ".join("%s (%s): sim / live / gap" % (v[0], v[1]) for v in LIVE_LABELS.values()),
                 "|---|%s" % ("---|" * len(LIVE_LABELS))]
        for r in self.live_rows():
            lines.append("| %s | %s |" % (r["stack"], " | ".join(" / ".join(self.live_cells(r, m))
                                                                  for m in LIVE_LABELS)))
        return lines

    def markdown(self, report_rel):
        conf = int(round(self.headline.get("confidence", 0.95) * 100))
        suite_file = self.results.get("suite_file", "")
        if os.path.isabs(suite_file):
            suite_file = os.path.relpath(suite_file)
        d = os.path.relpath(self.dir)
        lines = [
            "Generated by `gimbal experiment --suite %s --out %s && gimbal report %s && "
            "bash scripts/update-readme-results.sh %s`. Suite `%s`; every change is against `%s` at "
            "each scenario's highest request rate, mean over seeds with %d%% t confidence intervals; "
            "the paper's figures are in parentheses.%s" % (
                suite_file, d, d, d, self.results.get("suite", ""), self.baseline, conf,
                "".join(" `%s` is, for each metric, the best of its %d engine settings (the winning "
                        "setting in parentheses)." % (g, len(m)) for g, m in self.members.items())),
            "",
            "| source | scenario | rate (req/s) | stack | seeds | %s |" % " | ".join(METRIC_LABELS.values()),
            "|---|---|---|---|---|%s" % ("---|" * len(METRIC_LABELS)),
        ]
        for r in self.table_rows(False):
            cells = []
            for m in METRIC_LABELS:
                c = self.fmt_cell(r["metrics"][m])
                if r["is_headline"]:
                    c += " (paper %+.1f%%)" % r["metrics"][m]["paper_pct"]
                elif self.setting(r["metrics"][m]):
                    c += " (%s)" % self.setting(r["metrics"][m])
                cells.append(c)
            stack = "**%s**" % r["stack"] if r["is_headline"] else self.row_label(r)
            lines.append("| %s | %s | %g | %s | %d | %s |" % (r["source"], r["scenario"], r["rate"], stack,
                                                           r["n_seeds"], " | ".join(cells)))
        lines += self.markdown_tuned()
        lines += self.markdown_live()
        lines += ["", "Full report with plots: `%s`." % report_rel]
        return "\n".join(lines) + "\n"

    def page(self):
        notes = self.results.get("notes", [])
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8"><title>Gimbal report: %s</title>' % html.escape(
                self.results.get("suite", "")),
            "<style>body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:4px 6px;"
            "text-align:right}tr.headline{background:#eef5ff;font-weight:bold}tr.tuned{background:#f4f4f4}td.worse{background:#fbe3e3}td.better{background:#e3f5e3}img{max-width:100%;"
            "border:1px solid #ddd;margin:6px 0}figcaption{color:#444;font-size:13px}</style>",
            "</head><body>",
            "<h1>Gimbal experiment report: %s</h1>" % html.escape(self.results.get("suite", "")),
            "<p>%s</p>" % html.escape(self.results.get("description", "")),
            "<p>Suite file <code>%s</code>; %d points; stacks: %s; seeds: %s; baseline <b>%s</b>, "
            "headline <b>%s</b>. Data: <a href=\"../results.csv\">results.csv</a>, "
            "<a href=\"../results.json\">results.json</a>, <a href=\"headline.json\">headline.json</a>.</p>" % (
                html.escape(self.results.get("suite_file", "")), len(self.points),
                html.escape(", ".join(self.stacks + ["%s (%d settings)" % (g, len(m))
                                                     for g, m in self.members.items()])),
                html.escape(", ".join(str(s) for s in self.results.get("seeds", []))),
                html.escape(self.baseline), html.escape(self.head)),
        ]
        if notes:
            parts.append("<p>Notes:</p><ul>%s</ul>" % "".join("<li>%s</li>" % html.escape(n) for n in notes))
        parts += ["<h2>Headline changes against %s at the highest load</h2>" % html.escape(self.baseline),
                  self.html_table()]
        if self.vs_tuned():
            parts += ["<h2>Against the tuned baseline</h2>",
                      "<p>%s</p>" % html.escape(self.tuned_intro().replace("`", "")),
                      self.html_tuned_table()]
        if self.live_rows():
            parts += ["<h2>Simulated and live</h2>",
                      "<p>%s</p>" % html.escape(self.live_intro()),
                      self.html_live_table(),
                      '<p id="live-gap">%s</p>' % html.escape(self.live_gap_sentence())]
        for scenario in self.scenarios:
            parts.append("<h2>%s</h2>" % html.escape(scenario))
            table = self.deciles.get(scenario)
            if table:
                parts += ["<h3>TTFT by prompt length</h3>", "<p>%s</p>" % html.escape(self.decile_intro(table)),
                          self.html_decile_table(table)]
            for sc, kind, name, caption in self.plots:
                if sc != scenario:
                    continue
                parts.append('<figure><img src="%s" alt="%s"><figcaption>%s</figcaption></figure>' % (
                    html.escape(name), html.escape(kind), html.escape(caption)))
        # Reports, after load, whether every image decoded (read by the headless-browser test).
        parts.append('<p id="image-status">checking images...</p><script>'
                     'window.addEventListener("load",function(){var im=document.images,bad=[];'
                     'for(var i=0;i<im.length;i++){if(!im[i].complete||im[i].naturalWidth===0)'
                     'bad.push(im[i].getAttribute("src"));}'
                     'document.getElementById("image-status").textContent=bad.length?'
                     '"missing images: "+bad.join(", "):"all "+im.length+" images loaded";});</script>')
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def run(self):
        os.makedirs(self.out, exist_ok=True)
        for scenario in self.scenarios:
            self.latency_vs_rate(scenario)
            self.latency_cdf(scenario)
            self.throughput_latency(scenario)
            self.expert_load(scenario)
            self.step_breakdown(scenario)
            self.step_time_series(scenario)
            self.ablation(scenario)
            table = self.decile_table(scenario)
            if table:
                self.deciles[scenario] = table
                self.ttft_by_decile(scenario, table)
        index = os.path.join(self.out, "index.html")
        with open(index, "w") as f:
            f.write(self.page())
        with open(os.path.join(self.out, "deciles.json"), "w") as f:
            json.dump(list(self.deciles.values()), f, indent=1)
        with open(os.path.join(self.out, "plots.json"), "w") as f:
            json.dump([{"scenario": s, "kind": k, "file": n, "caption": c} for s, k, n, c in self.plots], f,
                      indent=1)
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write(self.markdown(os.path.relpath(index)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--headline", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--live", help="live points written by `gimbal report` (live_points.json)")
    a = ap.parse_args()
    Report(a.results, a.headline, a.out, a.live).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
