#include "router/engine_metrics.h"

#include <gtest/gtest.h>

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
      "vllm:num_requests_running{model_name=\"m\"} 1\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.75\n");
  EngineSnapshot s;
  ASSERT_TRUE(SnapshotFromMetrics(old, "m", 0, &s));
  EXPECT_EQ(s.kv_usage, 0.75);
  EXPECT_FALSE(SnapshotFromMetrics(net::ParsePrometheusText("up 1\n"), "m", 0, &s));
}

}  // namespace
}  // namespace gimbal::router
