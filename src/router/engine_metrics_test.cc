#include "router/engine_metrics.h"

#include <string>

#include <gtest/gtest.h>

#include "testing/sample_snapshot.h"

namespace gimbal::router {
namespace {

TEST(SnapshotFromMetrics, SumsCountsOverEnginesAndTakesMaxKv) {
  auto page = net::ParsePrometheusText(R"(# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="1",model_name="m"} 2.0
vllm:num_requests_running{engine="0",model_name="m"} 7.0
vllm:num_requests_running{engine="0",model_name="other"} 100.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
vllm:cache_config_info{block_size="16",num_gpu_blocks="1000",model_name="m"} 1.0
)");
  EngineSnapshot s;
  ASSERT_TRUE(SnapshotFromMetrics(page, "m", 4.0, &s));
  EXPECT_EQ(s.waiting, 5);
  EXPECT_EQ(s.running, 7);
  EXPECT_EQ(s.kv_usage, 0.5);
  EXPECT_EQ(s.kv_capacity_tokens, 16000);
  EXPECT_EQ(s.taken_at, 4.0);
  EXPECT_EQ(s.prefill_pending_tokens, -1);
}

TEST(SnapshotFromMetrics, OlderKvNameAndNonVllmPages) {
  auto old = net::ParsePrometheusText(
      "vllm:num_requests_running{model_name=\"m\"} 1\nvllm:gpu_cache_usage_perc{model_name=\"m\"} "
      "0.75\n");
  EngineSnapshot s;
  ASSERT_TRUE(SnapshotFromMetrics(old, "m", 0, &s));
  EXPECT_EQ(s.kv_usage, 0.75);
  EXPECT_FALSE(SnapshotFromMetrics(net::ParsePrometheusText("up 1\n"), "m", 0, &s));
}

// gimbal::testing::SampleSnapshot() stands for the snapshot the front end held before the report.
TEST(SnapshotFromMetrics, ImplausibleCountsAreDroppedKeepingThePreviousValue) {
  for (std::string bad :
       {"-1e308", "NaN", "+Inf", "-Inf", "1e300", "-3", "2e9", "18446744073709551616"}) {
    SCOPED_TRACE(bad);
    auto page = net::ParsePrometheusText("vllm:num_requests_waiting{model_name=\"m\"} " + bad +
                                         "\nvllm:num_requests_running{model_name=\"m\"} 4\n");
    ASSERT_EQ(page.warnings, 0);
    EngineSnapshot s = gimbal::testing::SampleSnapshot();
    wire::ValueWarnings w;
    ASSERT_TRUE(SnapshotFromMetrics(page, "m", 4.0, &s, &w));
    EXPECT_EQ(s.waiting, 7);  // kept
    EXPECT_EQ(s.running, 4);  // read
    EXPECT_EQ(s.taken_at, 4.0);
    EXPECT_EQ(w.count, 1);
    EXPECT_EQ(w.first.rfind("vllm:num_requests_waiting = ", 0), 0u) << w.first;
  }
}

TEST(SnapshotFromMetrics, OneImplausibleEngineDropsTheWholeSum) {
  auto page = net::ParsePrometheusText(R"(vllm:num_requests_waiting{engine="0"} 2
vllm:num_requests_waiting{engine="1"} -1e308
vllm:num_requests_running{engine="0"} 600000000
vllm:num_requests_running{engine="1"} 600000000
)");
  EngineSnapshot s = gimbal::testing::SampleSnapshot();
  wire::ValueWarnings w;
  // Both counts dropped (the running sum is above 1e9): nothing usable, *out untouched.
  EXPECT_FALSE(SnapshotFromMetrics(page, "m", 4.0, &s, &w));
  EXPECT_EQ(s.taken_at, 1);
  EXPECT_EQ(s.waiting, 7);
  EXPECT_EQ(w.count, 2);
  // Without a warnings sink too.
  EXPECT_FALSE(SnapshotFromMetrics(page, "m", 4.0, &s));
}

TEST(SnapshotFromMetrics, KvUsageOutsideTheUnitIntervalIsDropped) {
  for (std::string bad : {"1.5", "-0.5", "NaN", "+Inf", "-1e308", "1e300"}) {
    SCOPED_TRACE(bad);
    auto page = net::ParsePrometheusText("vllm:num_requests_running 1\nvllm:kv_cache_usage_perc " +
                                         bad + "\n");
    EngineSnapshot s = gimbal::testing::SampleSnapshot();
    wire::ValueWarnings w;
    ASSERT_TRUE(SnapshotFromMetrics(page, "m", 0, &s, &w));
    EXPECT_EQ(s.kv_usage, 0.4);
    EXPECT_EQ(w.count, 1);
  }
  // Within the tolerance: clamped, no warning.
  auto page =
      net::ParsePrometheusText("vllm:num_requests_running 1\nvllm:kv_cache_usage_perc 1.005\n");
  EngineSnapshot s = gimbal::testing::SampleSnapshot();
  wire::ValueWarnings w;
  ASSERT_TRUE(SnapshotFromMetrics(page, "m", 0, &s, &w));
  EXPECT_EQ(s.kv_usage, 1.0);
  EXPECT_EQ(w.count, 0);
}

TEST(SnapshotFromMetrics, ImplausibleCapacityAndPendingTokensAreDropped) {
  for (std::string labels : {R"(block_size="16",num_gpu_blocks="99999999999999999999")",
                             R"(block_size="16",num_gpu_blocks="-5")",
                             R"(block_size="1000000000",num_gpu_blocks="1000000000")"}) {
    SCOPED_TRACE(labels);
    auto page = net::ParsePrometheusText("vllm:num_requests_running 1\nvllm:cache_config_info{" +
                                         labels + "} 1\ngimbal:prefill_pending_tokens 1e300\n");
    EngineSnapshot s = gimbal::testing::SampleSnapshot();
    wire::ValueWarnings w;
    ASSERT_TRUE(SnapshotFromMetrics(page, "m", 0, &s, &w));
    EXPECT_EQ(s.kv_capacity_tokens, 5000);
    EXPECT_EQ(s.prefill_pending_tokens, 900);
    EXPECT_EQ(w.count, 2);
  }
  // "None" (before profiling) is no value rather than a bad one; -1 pending is "not reported".
  auto page = net::ParsePrometheusText(
      "vllm:num_requests_running "
      "1\nvllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"None\"}"
      " 1\ngimbal:prefill_pending_tokens -1\n");
  EngineSnapshot s = gimbal::testing::SampleSnapshot();
  wire::ValueWarnings w;
  ASSERT_TRUE(SnapshotFromMetrics(page, "m", 0, &s, &w));
  EXPECT_EQ(s.kv_capacity_tokens, 0);
  EXPECT_EQ(s.prefill_pending_tokens, -1);
  EXPECT_EQ(w.count, 0);
}

}  // namespace
}  // namespace gimbal::router
