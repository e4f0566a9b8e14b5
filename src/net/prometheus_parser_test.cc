#include "net/prometheus_parser.h"

#include <cmath>

#include <gtest/gtest.h>

namespace gimbal::net {
namespace {

// Written from vLLM's documented production metrics (docs/usage/metrics): names, label sets
// (model_name, engine) and types; the numbers are made up.
constexpr const char* kVllmFixture =
    R"(# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-30B-A3B"} 12.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-30B-A3B"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-30B-A3B"} 0.4375
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen3-30B-A3B"} 1.234e+06
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="Qwen/Qwen3-30B-A3B"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="Qwen/Qwen3-30B-A3B"} 40.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-30B-A3B"} 42.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen3-30B-A3B"} 42.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen3-30B-A3B"} 7.25
)";

// Older vLLM versions (before v0.10) named KV usage gpu_cache_usage_perc, no engine label.
constexpr const char* kOldVllmFixture = R"(# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.9
vllm:num_requests_waiting{model_name="m"} 7
)";

const PromSample* Find(const PromParseResult& r, const std::string& name) {
  for (const auto& s : r.samples) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// The value of the first sample named `name`; NaN when absent.
double Value(const PromParseResult& r, const std::string& name) {
  const PromSample* s = Find(r, name);
  return s ? s->value : std::nan("");
}

TEST(PrometheusParser, ReadsVllmMetrics) {
  auto r = ParsePrometheusText(kVllmFixture);
  EXPECT_EQ(r.warnings, 0);
  EXPECT_EQ(r.samples.size(), 9u);
  const auto* waiting = Find(r, "vllm:num_requests_waiting");
  ASSERT_NE(waiting, nullptr);
  EXPECT_EQ(waiting->value, 3);
  EXPECT_EQ(waiting->Label("model_name"), "Qwen/Qwen3-30B-A3B");
  EXPECT_EQ(waiting->Label("engine"), "0");
  EXPECT_EQ(Value(r, "vllm:kv_cache_usage_perc"), 0.4375);
  EXPECT_EQ(Value(r, "vllm:prompt_tokens_total"), 1.234e6);
  EXPECT_EQ(r.types["vllm:time_to_first_token_seconds"], "histogram");
  EXPECT_EQ(r.types["vllm:num_requests_running"], "gauge");
  int inf_buckets = 0;
  for (const auto& s : r.samples) inf_buckets += s.Label("le") == "+Inf";
  EXPECT_EQ(inf_buckets, 1);
}

TEST(PrometheusParser, ReadsOlderNames) {
  auto r = ParsePrometheusText(kOldVllmFixture);
  EXPECT_EQ(r.warnings, 0);
  EXPECT_EQ(Value(r, "vllm:gpu_cache_usage_perc"), 0.9);
  EXPECT_EQ(Value(r, "vllm:num_requests_waiting"), 7);
}

TEST(PrometheusParser, HandlesEscapesSpecialValuesAndTimestamps) {
  auto r = ParsePrometheusText(
      "a{x=\"q\\\"u\\\\o\\nte\",} NaN\n"
      "b +Inf 1700000000000\n"
      "c{} -Inf\r\n"
      "  d 1e-3\n");
  EXPECT_EQ(r.warnings, 0);
  ASSERT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(r.samples[0].Label("x"), "q\"u\\o\nte");
  EXPECT_TRUE(std::isnan(r.samples[0].value));
  EXPECT_TRUE(std::isinf(r.samples[1].value));
  EXPECT_LT(r.samples[2].value, 0);
  EXPECT_EQ(r.samples[3].value, 0.001);
}

TEST(PrometheusParser, SkipsGarbageWithWarnings) {
  auto r = ParsePrometheusText(
      "vllm:num_requests_waiting{model_name=\"m\"} 4\n"
      "this is not a metric\n"
      "{orphan=\"1\"} 3\n"
      "x{unterminated=\"1} 3\n"
      "y{a=\"1\" b=\"2\"} 3\n"
      "z 12abc\n"
      "w 1 2 3\n"
      "v\n"
      "# TYPE\n"
      "\x01\x02\xff binary\n"
      "vllm:num_requests_running{model_name=\"m\"} 2\n");
  EXPECT_EQ(r.samples.size(), 2u);
  EXPECT_EQ(r.warnings, 9);
  EXPECT_FALSE(r.messages.empty());
  EXPECT_NE(r.messages[0].find("line 2"), std::string::npos);
  // An engine's bytes reach the router's log quoted and escaped: no terminal control sequences.
  auto c = ParsePrometheusText("a \x1b[2J\r\x08\xff\xfe\v" + std::string(300, 'x') + "\n");
  ASSERT_EQ(c.messages.size(), 1u);
  for (char ch : c.messages[0]) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << c.messages[0];
  EXPECT_NE(c.messages[0].find("bad value \"\\u001b[2J"), std::string::npos) << c.messages[0];
  EXPECT_LT(c.messages[0].size(), 100u) << c.messages[0];
}

TEST(PrometheusParser, OnlyTheNamesAskedForAreParsedAndKept) {
  std::string page = "# TYPE vllm:num_requests_waiting gauge\n# TYPE other gauge\n";
  for (int i = 0; i < 1000; ++i) page += "other{i=\"" + std::to_string(i) + "\"} 1\nbad line\n";
  page += "vllm:num_requests_waiting{model_name=\"m\"} 4\nvllm:num_requests_waitingx 1\n";
  auto keep = [](std::string_view name) { return name == "vllm:num_requests_waiting"; };
  auto r = ParsePrometheusText(page, keep);
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_EQ(r.samples[0].value, 4);
  EXPECT_EQ(r.warnings, 0);  // lines of other names are skipped, not parsed
  EXPECT_EQ(r.types.size(), 1u);
  EXPECT_EQ(ParsePrometheusText(page).samples.size(), 1002u);
}

TEST(PrometheusParser, NeverThrowsOnRandomBytes) {
  std::string junk;
  uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1103515245u + 12345u;
    junk += static_cast<char>((x >> 16) & 0xff);
    if (i % 50 == 0) junk += "\nm{a=\"";
  }
  auto r = ParsePrometheusText(junk);
  EXPECT_GT(r.warnings, 0);
}

}  // namespace
}  // namespace gimbal::net
