#include "sim/metrics.h"

#include <gtest/gtest.h>

namespace gimbal::sim {
namespace {

RequestRecord Done(int64_t id, int64_t prompt, double ttft) {
  RequestRecord r;
  r.id = id;
  r.arrival = 1.0;
  r.first_token = 1.0 + ttft;
  r.finish = 2.0 + ttft;
  r.prompt_tokens = prompt;
  r.output_tokens = 2;
  return r;
}

TEST(MetricsTest, TtftByPromptDecileGroupsByLengthNotByArrival) {
  // 25 requests in reverse length order: lengths 250, 240, ..., 10; TTFT = length / 1000 s.
  std::vector<RequestRecord> recs;
  for (int i = 0; i < 25; ++i) {
    const int64_t len = 250 - 10 * i;
    recs.push_back(Done(i, len, static_cast<double>(len) / 1000));
  }
  recs.push_back(RequestRecord{});  // one that never finished: not in any decile
  recs.back().id = 99;
  recs.back().prompt_tokens = 5;
  nlohmann::ordered_json out;
  Summarise(recs, LogHistogram(), Slo{}, out);
  const auto& d = out["ttft_by_prompt_decile"];
  ASSERT_EQ(d.size(), 10u);
  // 25 = 10 * 2 + 5: deciles 1-5 hold 3 requests, 6-10 hold 2.
  EXPECT_EQ(d[0]["requests"].get<int64_t>(), 3);
  EXPECT_EQ(d[0]["prompt_tokens_min"].get<int64_t>(), 10);
  EXPECT_EQ(d[0]["prompt_tokens_max"].get<int64_t>(), 30);
  EXPECT_NEAR(d[0]["mean_ttft_ms"].get<double>(), 20.0, 1e-9);
  EXPECT_EQ(d[5]["requests"].get<int64_t>(), 2);
  EXPECT_EQ(d[5]["prompt_tokens_min"].get<int64_t>(), 160);
  EXPECT_EQ(d[9]["prompt_tokens_min"].get<int64_t>(), 240);
  EXPECT_EQ(d[9]["prompt_tokens_max"].get<int64_t>(), 250);
  EXPECT_NEAR(d[9]["mean_ttft_ms"].get<double>(), 245.0, 1e-9);
  EXPECT_NEAR(d[9]["p99_ttft_ms"].get<double>(), 249.9, 1e-6);  // linear between 240 and 250
  int64_t total = 0;
  for (const auto& x : d) total += x["requests"].get<int64_t>();
  EXPECT_EQ(total, 25);
  EXPECT_FALSE(out.contains("p999_ttft_ms"));  // fewer than 1,000 requests
}

TEST(MetricsTest, FewerThanTenRequestsHaveNoDecilesAndAThousandHaveP999) {
  std::vector<RequestRecord> few;
  for (int i = 0; i < 9; ++i) few.push_back(Done(i, 100, 0.1));
  nlohmann::ordered_json out;
  Summarise(few, LogHistogram(), Slo{}, out);
  EXPECT_TRUE(out["ttft_by_prompt_decile"].empty());

  std::vector<RequestRecord> many;
  for (int i = 0; i < 1000; ++i) many.push_back(Done(i, 100, i == 999 ? 9.0 : 0.001 * i));
  nlohmann::ordered_json big;
  Summarise(many, LogHistogram(), Slo{}, big);
  ASSERT_TRUE(big.contains("p999_ttft_ms"));
  // Sorted TTFTs 0, 1, ..., 998 ms and 9,000 ms: rank 0.999 · 999 = 998.001, so the 99.9th
  // percentile is 998 + 0.001 · (9,000 − 998) ms, linear between the last two.
  EXPECT_NEAR(big["p999_ttft_ms"].get<double>(), 1006.002, 1e-6);
}

}  // namespace
}  // namespace gimbal::sim
