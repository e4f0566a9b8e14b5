"""Tests of scripts/report.py (the plots, HTML page and README table of `gimbal report`).

Input: tests/report/fixture/, a trimmed `gimbal experiment` sweep (vllm against gimbal on the default
scenario, two rates, two seeds; tests/report/make_fixture.sh regenerates it) with the headline.json
`gimbal report` computed from it. The expected figures below are that headline.json's, formatted.

Run: /usr/bin/python3 -m pytest tests/report (ctest runs it as report_py_tests, label unit).
"""
import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "report.py")
FIXTURE = os.path.join(ROOT, "tests", "report", "fixture")
SCENARIO = "qwen3-8xh200"
KINDS = ["latency_vs_rate", "latency_cdf", "throughput_latency", "expert_load", "step_breakdown",
         "step_time_series", "ablation"]
# The gimbal row of fixture/headline.json: change against vllm at 60 req/s, mean [95% CI].
GIMBAL_ROW = ("| sim | qwen3-8xh200 | 60 | **gimbal** | 2 | -50.2% [-76.6, -23.8] (paper -42.9%) | "
              "-22.5% [-40.4, -4.6] (paper -33.3%) | -12.8% [-53.8, +28.1] (paper -44.3%) | "
              "+2.7% [-11.4, +16.8] (paper +3.0%) |")


def load_module():
    spec = importlib.util.spec_from_file_location("gimbal_report", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """Runs report.py as `gimbal report` does, on a copy of the fixture; returns the output folder."""
    work = tmp_path_factory.mktemp("report")
    data = work / "results"
    shutil.copytree(FIXTURE, data)
    out = data / "report"
    r = subprocess.run([sys.executable, SCRIPT, "--results", str(data / "results.json"),
                        "--headline", str(data / "headline.json"), "--out", str(out)],
                       capture_output=True, text=True, cwd=str(work))
    assert r.returncode == 0, r.stderr
    return out


def read(path):
    with open(path) as f:
        return f.read()


def test_page_shows_the_headline_table_with_the_fixture_figures(report_dir):
    page = read(report_dir / "index.html")
    assert "<title>Gimbal report: report-fixture</title>" in page
    assert '<table id="headline-table">' in page
    assert "8 points; stacks: vllm, gimbal; seeds: 1, 2; baseline <b>vllm</b>" in page
    # One row: gimbal against vllm at the highest rate, with the paper's figures under it.
    assert page.count('<tr class="headline">') == 1
    row = page[page.index('<tr class="headline">'):]
    row = row[:row.index("</tr>")]
    for cell in ("<td>sim</td>", "<td>60</td>", "<td>gimbal</td>", "<td>2</td>",
                 "-50.2% [-76.6, -23.8]<br><small>paper -42.9%</small>",
                 "-22.5% [-40.4, -4.6]<br><small>paper -33.3%</small>",
                 "-12.8% [-53.8, +28.1]<br><small>paper -44.3%</small>",
                 "+2.7% [-11.4, +16.8]<br><small>paper +3.0%</small>"):
        assert cell in row
    assert "<h2>%s</h2>" % SCENARIO in page
    assert "live-table" not in page


def test_every_plot_is_a_png_listed_and_shown(report_dir):
    plots = json.loads(read(report_dir / "plots.json"))
    assert [p["kind"] for p in plots] == KINDS
    page = read(report_dir / "index.html")
    for p in plots:
        assert p["scenario"] == SCENARIO
        assert p["file"] == "%s__%s.png" % (p["kind"], SCENARIO)
        with open(report_dir / p["file"], "rb") as f:
            png = f.read()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(png) > 5000, p["file"]  # a drawn figure, not an empty canvas
        assert '<img src="%s"' % p["file"] in page
    # The top-rate points carry measured per-GPU loads, so the heatmap (not the per-layer
    # fallback) is drawn.
    caption = next(p["caption"] for p in plots if p["kind"] == "expert_load")
    assert caption.startswith("Per-GPU routed-expert load over time as the simulator measured it")


def test_markdown_table_for_the_readme(report_dir):
    md = read(report_dir / "results.md").splitlines()
    assert "Suite `report-fixture`; every change is against `vllm`" in md[0]
    assert "gimbal experiment --suite tests/report/fixture/suite.yaml" in md[0]
    assert md[2] == ("| source | scenario | rate (req/s) | stack | seeds | mean TTFT | mean TPOT | "
                     "p99 TTFT | output throughput |")
    assert GIMBAL_ROW in md
    assert md[-1].startswith("Full report with plots: `") and md[-1].endswith("index.html`.")


def test_request_csvs_feed_the_cdfs():
    mod = load_module()
    rep = mod.Report(os.path.join(FIXTURE, "results.json"), os.path.join(FIXTURE, "headline.json"), "unused")
    assert rep.stacks == ["vllm", "gimbal"]
    assert rep.top_rate(SCENARIO) == 60
    top = rep.pts(SCENARIO, "sim", "vllm", 60)
    assert [p["seed"] for p in top] == [1, 2]
    ttft, e2e = rep.read_requests(top[0])
    assert len(ttft) == len(e2e) == 40
    assert ttft[0] == pytest.approx(30.8785)
    assert all(t <= e for t, e in zip(ttft, e2e))
    low = rep.pts(SCENARIO, "sim", "vllm", 20)[0]
    assert rep.read_requests(low) == ([], [])  # no CSV kept for the low rate
    by_rate = rep.by_rate(SCENARIO, "sim", "gimbal", "mean_ttft_ms")
    assert list(by_rate) == [20, 60] and all(len(v) == 2 for v in by_rate.values())


def test_live_points_get_their_own_table(tmp_path):
    results = json.loads(read(os.path.join(FIXTURE, "results.json")))
    headline = json.loads(read(os.path.join(FIXTURE, "headline.json")))
    live = copy.deepcopy(next(p for p in results["points"]
                              if p["stack"] == "gimbal" and p["rate"] == 60 and p["seed"] == 1))
    live.update(source="live", id="live-gimbal", time_scale=0.1)
    live.pop("requests_csv")
    headline["live"] = {
        "dir": "/runs/live",
        "rows": [{"scenario": SCENARIO, "rate": 60, "stack": "gimbal", "sim_seeds": [1, 2], "live_seed": 1,
                  "metrics": {"mean_ttft_ms": {"sim": 61.6, "live": 67.76, "gap_pct": 10.0},
                              "mean_tpot_ms": {"sim": 11.84, "live": 9.472, "gap_pct": -20.0}}}],
        "unmatched": ["vllm"],
    }
    (tmp_path / "points").mkdir()
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "headline.json").write_text(json.dumps(headline))
    (tmp_path / "live_points.json").write_text(json.dumps([live]))
    mod = load_module()
    rep = mod.Report(str(tmp_path / "results.json"), str(tmp_path / "headline.json"), str(tmp_path / "out"),
                     str(tmp_path / "live_points.json"))
    assert rep.sources == ["sim", "live"]
    assert rep.live_gap_sentence() == ("Gap = (live - simulated) / simulated. Mean absolute gap 15.0% over 2 "
                                       "figures; largest -20.0% (mean TPOT, gimbal).")
    html = rep.html_live_table()
    assert "<td>gimbal</td><td>61.6</td><td>67.8</td><td>+10.0%</td>" in html
    assert "<td>11.84</td><td>9.47</td><td>-20.0%</td>" in html
    assert "n/a" in html  # throughput figures absent from the row
    assert "no simulated point of the same scenario, stack and rate: vllm." in html
    assert "emulator time scale 0.1, converted to model time" in rep.live_intro()


def test_missing_arguments_and_files_fail(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--results", "x.json"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "--headline" in r.stderr
    r = subprocess.run([sys.executable, SCRIPT, "--results", str(tmp_path / "none.json"), "--headline",
                        os.path.join(FIXTURE, "headline.json"), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "none.json" in r.stderr


def test_tuned_baseline_is_one_row_and_one_band(tmp_path):
    """Members of a tuned baseline (`vllm-best/<setting>`) are not drawn or listed one by one: the table
    has the group's row with the winning setting per metric, and a table of gimbal against it."""
    results = json.loads(read(os.path.join(FIXTURE, "results.json")))
    headline = json.loads(read(os.path.join(FIXTURE, "headline.json")))
    members = ["vllm-best/b1024-i1", "vllm-best/b2048-i2"]
    for k, name in enumerate(members):
        for p in [p for p in results["points"] if p["stack"] == "vllm"]:
            q = copy.deepcopy(p)
            q.update(stack=name, id=p["id"].replace("vllm", name.replace("/", "-")))
            q.pop("requests_csv", None)
            q["summary"]["mean_ttft_ms"] *= 0.8 + 0.1 * k
            results["points"].append(q)
    results["stacks"] += members
    gimbal = next(r for r in headline["rows"] if r["stack"] == "gimbal")
    tuned = copy.deepcopy(gimbal)
    tuned.update(stack="vllm-best", is_headline=False, tuned=True, members=2)
    vs = copy.deepcopy(gimbal)
    vs.update(against="vllm-best")
    for i, m in enumerate(tuned["metrics"]):
        setting = members[i % 2].split("/")[1]
        tuned["metrics"][m].update(mean_pct=-10.0 - i, ci_lo_pct=-12.0 - i, ci_hi_pct=-8.0 - i, paper_pct=None,
                                   best_stack=members[i % 2], best_setting=setting)
        vs["metrics"][m].update(mean_pct=-5.0 - i, ci_lo_pct=-7.0 - i, ci_hi_pct=-3.0 - i,
                                against_stack=members[i % 2], against_setting=setting)
    headline["rows"].append(tuned)
    headline["vs_tuned"] = [vs]
    data = tmp_path / "results"
    shutil.copytree(FIXTURE, data)
    (data / "results.json").write_text(json.dumps(results))
    (data / "headline.json").write_text(json.dumps(headline))
    mod = load_module()
    rep = mod.Report(str(data / "results.json"), str(data / "headline.json"), str(data / "report"))
    assert rep.stacks == ["vllm", "gimbal"]
    assert rep.members == {"vllm-best": members}
    assert set(rep.color) == {"vllm", "gimbal"}
    means = rep.member_means(SCENARIO, "vllm-best", "mean_ttft_ms")
    assert list(means) == [20, 60] and all(len(v) == 2 for v in means.values())
    base = sum(rep.by_rate(SCENARIO, "sim", "vllm", "mean_ttft_ms")[60]) / 2
    assert means[60] == pytest.approx([0.8 * base, 0.9 * base])
    rep.run()
    plots = json.loads(read(data / "report" / "plots.json"))
    assert [p["kind"] for p in plots] == KINDS  # members add no plot
    rate_caption = next(p["caption"] for p in plots if p["kind"] == "latency_vs_rate")
    assert "Grey: the range of the tuned baselines' settings (vllm-best, 2 settings)" in rate_caption
    md = read(data / "report" / "results.md")
    assert "`vllm-best` is, for each metric, the best of its 2 engine settings" in md
    assert ("| sim | qwen3-8xh200 | 60 | vllm-best (best of 2) | 2 | -10.0% [-12.0, -8.0] (b1024-i1) | "
            "-11.0% [-13.0, -9.0] (b2048-i2) | -12.0% [-14.0, -10.0] (b1024-i1) | "
            "-13.0% [-15.0, -11.0] (b2048-i2) |") in md
    assert ("| sim | qwen3-8xh200 | 60 | **gimbal** | vllm-best | 2 | -5.0% [-7.0, -3.0] (b1024-i1) | "
            "-6.0% [-8.0, -4.0] (b2048-i2) | -7.0% [-9.0, -5.0] (b1024-i1) | -8.0% [-10.0, -6.0] (b2048-i2) |"
            ) in md
    assert GIMBAL_ROW in md  # gimbal against vllm is unchanged
    assert "vllm-best/" not in md  # no member row
    page = read(data / "report" / "index.html")
    assert '<table id="tuned-table">' in page
    assert '<tr class="tuned">' in page
    assert "-10.0% [-12.0, -8.0]<br><small>b1024-i1</small>" in page
    assert "stacks: vllm, gimbal, vllm-best (2 settings);" in page
