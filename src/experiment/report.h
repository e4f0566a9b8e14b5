// `gimbal report`: the headline table (changes against the baseline stack at the highest rate,
// with t confidence intervals over seeds) and the call into scripts/report.py for the plots and
// the HTML page.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace gimbal::experiment {

// The paper's headline changes of Gimbal against vLLM at the highest load, in percent.
struct PaperHeadline {
  const char* metric;
  double change_pct;
};
const std::vector<PaperHeadline>& PaperHeadlines();

// From results.json: per (source, scenario) and every stack but the baseline, the per-seed relative
// changes (stack − baseline) / baseline in percent at the scenario's highest rate, for the
// PaperHeadlines() metrics, with their mean and `confidence` t interval ("rows"). Seeds missing
// either stack are left out.
//
// Tuned-baseline members (stacks named `group/setting`, suite.h) are not rows: each group is one
// row ("tuned": true) whose every metric is that of the member with the best mean over the seeds
// it shares with the baseline (lower for latencies, higher for throughput; ties to the first name
// in byte order), compared seed by seed with the baseline, naming the member ("best_stack",
// "best_setting") and every member's mean ("member_means"). "vs_tuned" has, per group, the
// headline stack's per-seed changes against each metric's best member ("against_stack").
Result<nlohmann::ordered_json> HeadlineTable(const nlohmann::ordered_json& results,
                                             double confidence = 0.95);

// Finds scripts/report.py: $GIMBAL_REPORT_SCRIPT, then next to the executable
// (../share/gimbal/report.py, or scripts/ in a parent of a build tree), then the source tree the
// binary was built from. Empty when none exists.
std::string FindReportScript();

struct ReportOptions {
  std::string results_dir;
  std::string out_dir;  // default results_dir/report
  // A live folder (live.h) whose runs join the report as source "live"; empty: results_dir/live
  // when it holds a live.json, else none.
  std::string live_dir;
  std::string python = "/usr/bin/python3";  // $GIMBAL_PYTHON overrides
};

// Writes out_dir/headline.json (with a "live" key holding LiveComparison when there are live
// points, and the live points in out_dir/live_points.json) and runs the script; returns the path
// of index.html.
Result<std::string> MakeReport(const ReportOptions& options);

}  // namespace gimbal::experiment
