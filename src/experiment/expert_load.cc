#include "experiment/expert_load.h"

#include <algorithm>
#include <cmath>

namespace gimbal::experiment {
namespace {

nlohmann::ordered_json Rounded(double v) {
  return std::round(v * 1e4) / 1e4;
}

nlohmann::ordered_json Ratio(double num, double den) {
  return den > 0 ? Rounded(num / den) : nlohmann::ordered_json(nullptr);
}

}  // namespace

nlohmann::ordered_json MeasuredExpertLoad(const std::vector<sim::StepRecord>& steps,
                                          const nlohmann::ordered_json& summary,
                                          const ExpertLoadOptions& options) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (steps.empty()) return out;
  const int bins = std::max(1, options.bins);
  const size_t gpus = steps.front().gpu_load.size();
  const double t0 = steps.front().start;
  const double t1 = steps.back().start + steps.back().cost.duration;
  const double w = t1 > t0 ? (t1 - t0) / bins : 1.0;

  std::vector<double> rebalances;
  if (summary.contains("rebalance_history")) {
    for (const auto& r : summary["rebalance_history"]) rebalances.push_back(r.value("time_s", 0.0));
  }
  std::vector<double> load(static_cast<size_t>(bins) * gpus, 0.0), mx(bins, 0.0), mn(bins, 0.0),
      n(bins, 0.0);
  double all_max = 0, all_mean = 0, pre_max = 0, pre_mean = 0, post_max = 0, post_mean = 0;
  for (const sim::StepRecord& s : steps) {
    const int b = std::clamp(static_cast<int>((s.start - t0) / w), 0, bins - 1);
    n[b] += 1;
    mx[b] += s.load_max;
    mn[b] += s.load_mean;
    for (size_t g = 0; g < gpus && g < s.gpu_load.size(); ++g) {
      load[static_cast<size_t>(b) * gpus + g] += s.gpu_load[g];
    }
    all_max += s.load_max;
    all_mean += s.load_mean;
    if (!rebalances.empty() && s.start <= rebalances.front()) {
      pre_max += s.load_max;
      pre_mean += s.load_mean;
    } else if (!rebalances.empty()) {
      post_max += s.load_max;
      post_mean += s.load_mean;
    }
  }
  nlohmann::ordered_json t = nlohmann::ordered_json::array(),
                         grid = nlohmann::ordered_json::array(),
                         ratio = nlohmann::ordered_json::array(),
                         count = nlohmann::ordered_json::array();
  for (int b = 0; b < bins; ++b) {
    t.push_back(t0 + b * w);
    count.push_back(n[b]);
    ratio.push_back(Ratio(mx[b], mn[b]));
    double sum = 0;
    for (size_t g = 0; g < gpus; ++g) sum += load[static_cast<size_t>(b) * gpus + g];
    const double mean = gpus > 0 ? sum / static_cast<double>(gpus) : 0.0;
    nlohmann::ordered_json row = nlohmann::ordered_json::array();
    for (size_t g = 0; g < gpus; ++g)
      row.push_back(Ratio(load[static_cast<size_t>(b) * gpus + g], mean));
    grid.push_back(std::move(row));
  }
  out["method"] = "measured";
  out["bin_s"] = w;
  out["t_s"] = std::move(t);
  out["gpus"] = gpus;
  out["steps"] = std::move(count);
  out["gpu_load"] = std::move(grid);
  out["max_over_mean"] = std::move(ratio);
  out["overall_max_over_mean"] = Ratio(all_max, all_mean);
  out["rebalances_s"] = rebalances;
  out["before_first_rebalance"] = rebalances.empty() ? nullptr : Ratio(pre_max, pre_mean);
  out["after_first_rebalance"] = rebalances.empty() ? nullptr : Ratio(post_max, post_mean);
  return out;
}

}  // namespace gimbal::experiment
