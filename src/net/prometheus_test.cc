#include "net/prometheus.h"

#include <thread>

#include <gtest/gtest.h>

#include "net/prometheus_parser.h"

namespace gimbal::net {
namespace {

TEST(MetricsRegistry, RendersHelpTypeAndLabelledSamples) {
  MetricsRegistry reg;
  auto& req = reg.AddCounter("gimbal_requests_total", "Requests by outcome.", {"outcome"});
  req.With({"ok"}).Inc();
  req.With({"ok"}).Inc(2);
  req.With({"say \"hi\"\\"}).Inc();
  reg.AddGauge("gimbal_up", "Up.").With().Set(1);
  std::string text = reg.Render();
  EXPECT_NE(text.find("# HELP gimbal_requests_total Requests by outcome.\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE gimbal_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("gimbal_requests_total{outcome=\"ok\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("outcome=\"say \\\"hi\\\"\\\\\""), std::string::npos);
  EXPECT_NE(text.find("gimbal_up 1\n"), std::string::npos);
}

TEST(MetricsRegistry, HistogramBucketsAreCumulative) {
  MetricsRegistry reg;
  auto& h = reg.AddHistogram("lat_seconds", "Latency.", {"engine"}, {0.1, 1});
  h.With({"e0"}).Observe(0.05);
  h.With({"e0"}).Observe(0.5);
  h.With({"e0"}).Observe(5);
  auto parsed = ParsePrometheusText(reg.Render());
  EXPECT_EQ(parsed.warnings, 0);
  EXPECT_EQ(parsed.types["lat_seconds"], "histogram");
  std::map<std::string, double> le;
  double count = 0, sum = 0;
  for (const auto& s : parsed.samples) {
    if (s.name == "lat_seconds_bucket") le[std::string(s.Label("le"))] = s.value;
    if (s.name == "lat_seconds_count") count = s.value;
    if (s.name == "lat_seconds_sum") sum = s.value;
  }
  EXPECT_EQ(le["0.10000000000000001"], 1);
  EXPECT_EQ(le["1"], 2);
  EXPECT_EQ(le["+Inf"], 3);
  EXPECT_EQ(count, 3);
  EXPECT_DOUBLE_EQ(sum, 5.55);
}

TEST(MetricsRegistry, ConcurrentUpdatesAreCounted) {
  MetricsRegistry reg;
  auto& c = reg.AddCounter("n_total", "N.", {"t"});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.With({"x"}).Inc();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.With({"x"}).value(), 40000);
}

TEST(MetricsRegistry, CallbackGaugeIsEvaluatedAtRender) {
  MetricsRegistry reg;
  double v = 1;
  reg.AddCallbackGauge("age_seconds", "Age.", {"engine"}, [&] {
    return std::vector<std::pair<std::vector<std::string>, double>>{{{"e0"}, v}};
  });
  v = 2.5;
  EXPECT_NE(reg.Render().find("age_seconds{engine=\"e0\"} 2.5\n"), std::string::npos);
}

}  // namespace
}  // namespace gimbal::net
