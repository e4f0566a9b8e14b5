#include "experiment/expert_load.h"

#include <gtest/gtest.h>

namespace gimbal::experiment {
namespace {

sim::StepRecord Step(double start, std::vector<double> load) {
  sim::StepRecord s;
  s.start = start;
  s.cost.duration = 1;
  double sum = 0, top = 0;
  for (double v : load) {
    sum += v;
    top = std::max(top, v);
  }
  s.load_mean = sum / static_cast<double>(load.size());
  s.load_max = top;
  s.gpu_load = std::move(load);
  return s;
}

TEST(ExpertLoad, BinsStepRecordsAndSplitsAtTheFirstRebalance) {
  // Four one-second steps on two GPUs; a rebalance after the second evens the load.
  const std::vector<sim::StepRecord> steps = {Step(0, {3, 1}), Step(1, {3, 1}), Step(2, {2, 2}),
                                              Step(3, {2, 2})};
  nlohmann::ordered_json summary;
  summary["rebalance_history"] = {{{"step", 2}, {"time_s", 1.0}}};
  ExpertLoadOptions o;
  o.bins = 2;
  const auto el = MeasuredExpertLoad(steps, summary, o);
  EXPECT_EQ(el["method"], "measured");
  EXPECT_EQ(el["gpus"], 2);
  EXPECT_DOUBLE_EQ(el["bin_s"].get<double>(), 2.0);
  EXPECT_EQ(el["steps"], nlohmann::ordered_json::array({2.0, 2.0}));
  EXPECT_EQ(el["gpu_load"][0], nlohmann::ordered_json::array({1.5, 0.5}));
  EXPECT_EQ(el["gpu_load"][1], nlohmann::ordered_json::array({1.0, 1.0}));
  EXPECT_EQ(el["max_over_mean"], nlohmann::ordered_json::array({1.5, 1.0}));
  EXPECT_DOUBLE_EQ(el["overall_max_over_mean"].get<double>(), 1.25);
  EXPECT_EQ(el["rebalances_s"], nlohmann::ordered_json::array({1.0}));
  EXPECT_DOUBLE_EQ(el["before_first_rebalance"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(el["after_first_rebalance"].get<double>(), 1.0);
}

TEST(ExpertLoad, StaticRunsHaveNoSplitAndIdleBinsAreNull) {
  const std::vector<sim::StepRecord> steps = {Step(0, {0, 0}), Step(3, {1, 1})};
  ExpertLoadOptions o;
  o.bins = 4;
  const auto el = MeasuredExpertLoad(steps, nlohmann::ordered_json::object(), o);
  EXPECT_TRUE(el["before_first_rebalance"].is_null());
  EXPECT_TRUE(el["gpu_load"][0][0].is_null());    // no load in the first bin
  EXPECT_TRUE(el["max_over_mean"][1].is_null());  // no step at all
  EXPECT_DOUBLE_EQ(el["gpu_load"][3][1].get<double>(), 1.0);
  EXPECT_TRUE(MeasuredExpertLoad({}, {}, o).empty());
}

}  // namespace
}  // namespace gimbal::experiment
