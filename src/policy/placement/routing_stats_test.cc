#include "policy/placement/routing_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace gimbal {
namespace {

bool Contains(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

TEST(RoutingStats, WindowKeepsTheLastNSteps) {
  RoutingStats st(1, 2, 3, {RoutingStatsOptions::Mode::kWindow, 2, 1.0});
  st.Add(0, 1, 2, 5);
  st.EndStep();
  st.Add(0, 1, 2, 7);
  st.Add(0, 0, 0, 1);
  st.EndStep();
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 1, 2), 12);
  st.EndStep();  // an empty step pushes the first out
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 1, 2), 7);
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 0, 0), 1);
  EXPECT_EQ(st.steps_recorded(), 3);
}

TEST(RoutingStats, DecayWeighsRecentStepsMore) {
  RoutingStats st(1, 1, 2, {RoutingStatsOptions::Mode::kDecay, 0, 0.5});
  ASSERT_TRUE(st.RecordStep(std::vector<double>{8, 0}).ok());
  ASSERT_TRUE(st.RecordStep(std::vector<double>{0, 8}).ok());
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 0, 0), 4);
  EXPECT_DOUBLE_EQ(st.Counts().At(0, 0, 1), 8);
}

TEST(RoutingStats, RecordStepRejectsBadCountsWithTheirPlace) {
  RoutingStats st(2, 2, 2);
  std::vector<double> step(8, 1.0);
  step[7] = -1;
  Status s = st.RecordStep(step);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "layer 1, source 1, expert 1")) << s.message();
  EXPECT_FALSE(st.RecordStep(std::vector<double>(3, 1.0)).ok());
}

TEST(RoutingStats, MergeSumsWindowsAlignedOnTheNewestStep) {
  RoutingStatsOptions o{RoutingStatsOptions::Mode::kWindow, 3, 1.0};
  RoutingStats a(1, 1, 1, o), b(1, 1, 1, o);
  ASSERT_TRUE(a.RecordStep(std::vector<double>{1}).ok());
  ASSERT_TRUE(b.RecordStep(std::vector<double>{10}).ok());
  ASSERT_TRUE(b.RecordStep(std::vector<double>{20}).ok());
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_DOUBLE_EQ(a.Counts().At(0, 0, 0), 31);
  // Two more steps push out the oldest merged step (10) only.
  ASSERT_TRUE(a.RecordStep(std::vector<double>{0}).ok());
  ASSERT_TRUE(a.RecordStep(std::vector<double>{0}).ok());
  EXPECT_DOUBLE_EQ(a.Counts().At(0, 0, 0), 21);  // the window now holds [20 + 1, 0, 0]
}

TEST(RoutingStats, MergeRejectsOtherShapes) {
  SourceExpertCounts a = SourceExpertCounts::Zeros(1, 2, 3), b = SourceExpertCounts::Zeros(1, 3, 3);
  a.At(0, 1, 2) = 4;
  SourceExpertCounts c = a;
  ASSERT_TRUE(a.Merge(c).ok());
  EXPECT_DOUBLE_EQ(a.At(0, 1, 2), 8);
  Status s = a.Merge(b);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "cannot merge shape 1x3x3 into 1x2x3")) << s.message();
}

TEST(RoutingStats, JsonRoundTrips) {
  SourceExpertCounts a = SourceExpertCounts::Zeros(2, 2, 3);
  for (size_t i = 0; i < a.counts.size(); ++i) a.counts[i] = static_cast<double>(i) * 1.5;
  Result<SourceExpertCounts> b = ParseRoutingStatsJson(RoutingStatsToJson(a), "t");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->counts, a.counts);
  EXPECT_EQ(b->ExpertTotals()[4], a.At(1, 0, 1) + a.At(1, 1, 1));
}

TEST(RoutingStats, MalformedStatisticsAreRejectedWithAMessageNamingTheProblem) {
  const std::string head = R"({"layers": 1, "sources": 2, "experts": 2, "counts": )";
  struct Case {
    std::string text, want;
  };
  const Case cases[] = {
      {head + "[[[1, 2], [3, -4]]]}", "layer 0, source 1, expert 1 is negative"},
      {head + "[[[1, 2], [3]]]}", "layer 0, source 1: expected an array of 2 expert counts"},
      {head + "[[[1, 2]]]}", "layer 0: expected an array of 2 sources, got 1"},
      {head + "[[[1, 2], [3, \"x\"]]]}", "layer 0, source 1, expert 1: expected a number"},
      {head + "[[[1, 2], [3, \"NaN\"]]]}", "expected a number"},
      {R"({"layers": 1, "sources": 2, "counts": []})", "missing key 'experts'"},
      {R"({"layers": 1, "sources": 2, "experts": 2})", "missing key 'counts'"},
      {R"({"layers": 0, "sources": 2, "experts": 2, "counts": []})", "'layers' must be a positive"},
      {"[1, 2", "malformed JSON"},
      {head + "[[[1, 2], [3, 1e308]]]}",
       "layer 0, source 1, expert 1 (counts[0][1][1]) is 1e+308, more than the maximum 1e+15"},
      {R"({"layers": 1048576, "sources": 1048576, "experts": 64, "counts": []})",
       "1048576 layers x 1048576 sources x 64 experts = 70368744177664 counts, more than the "
       "67108864 allowed"},
  };
  for (const Case& c : cases) {
    Result<SourceExpertCounts> r = ParseRoutingStatsJson(c.text, "stats.json");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_TRUE(Contains(r.status(), c.want)) << r.status().message();
    EXPECT_TRUE(Contains(r.status(), "stats.json")) << r.status().message();
  }
  SourceExpertCounts nan = SourceExpertCounts::Zeros(2, 2, 2);
  nan.At(1, 0, 1) = std::numeric_limits<double>::quiet_NaN();
  Status s = nan.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "layer 1, source 0, expert 1 is not finite")) << s.message();
  nan.counts.pop_back();
  EXPECT_TRUE(Contains(nan.Validate(), "7 counts, expected 2 layers x 2 sources x 2 experts"));
}

// Found by fuzz/placement_stats.cc: nlohmann throws out_of_range, not parse_error, for a number
// too large for a double.
TEST(RoutingStats, ANumberTooLargeForADoubleIsAnErrorNotAnException) {
  auto r = ParseRoutingStatsJson("{\"layers\": 1e+30847}", "s.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("s.json"), std::string::npos) << r.status().ToString();
}

}  // namespace
}  // namespace gimbal
