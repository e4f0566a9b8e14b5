#include "experiment/live.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace gimbal::experiment {
namespace {
namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void Write(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

nlohmann::ordered_json SimPoint(const std::string& stack, int seed, double rate, double ttft) {
  nlohmann::ordered_json p;
  p["source"] = "sim";
  p["scenario"] = "demo";
  p["stack"] = stack;
  p["seed"] = seed;
  p["rate"] = rate;
  p["summary"] = {{"mean_ttft_ms", ttft},
                  {"mean_tpot_ms", 10.0},
                  {"p99_ttft_ms", 3 * ttft},
                  {"request_throughput", 20.0},
                  {"output_throughput", 2000.0}};
  return p;
}

TEST(LivePoints, ReadsTheManifestAndConvertsToModelTime) {
  const fs::path dir = TempDir("gimbal_live_test");
  Write(dir / "live.json",
        R"({"format": "gimbal.live/1", "scenario": "demo", "rate": 30, "seed": 1,
            "time_scale": 0.5, "runs": [{"stack": "gimbal", "bench_json": "g.json"}]})");
  Write(dir / "g.json",
        R"({"num_prompts": 2, "completed": 2, "failed": 0, "duration": 4.0,
            "request_throughput": 0.5, "output_throughput": 10.0, "mean_ttft_ms": 50.0,
            "p99_ttft_ms": 80.0, "mean_tpot_ms": 5.0, "input_lens": [10, 20],
            "output_lens": [3, 1], "ttfts": [0.05, 0.04], "itls": [[0.01, 0.02], []],
            "errors": ["", ""]})");
  auto pts = LoadLivePoints(dir.string(), (dir / "req").string());
  ASSERT_TRUE(pts.ok()) << pts.status().message();
  ASSERT_EQ(pts->size(), 1u);
  const auto& p = (*pts)[0];
  EXPECT_EQ(p["source"], "live");
  EXPECT_EQ(p["scenario"], "demo");
  EXPECT_EQ(p["stack"], "gimbal");
  EXPECT_EQ(p["rate"], 30);
  // Time scale 0.5 runs twice as fast as the model: live 50 ms is 100 ms of model time.
  EXPECT_DOUBLE_EQ(p["summary"]["mean_ttft_ms"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(p["summary"]["duration"].get<double>(), 8.0);
  EXPECT_DOUBLE_EQ(p["summary"]["request_throughput"].get<double>(), 0.25);
  EXPECT_EQ(p["summary"]["completed"], 2);
  EXPECT_FALSE(p["summary"].contains("ttfts"));
  ASSERT_TRUE(p.contains("requests_path"));
  std::ifstream in(p["requests_path"].get<std::string>());
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("\n0,,,,,,10,3,,100.0000,160.0000\n"), std::string::npos) << ss.str();
  fs::remove_all(dir);
}

TEST(LivePoints, ErrorsNameTheFileAndKey) {
  const fs::path dir = TempDir("gimbal_live_err_test");
  auto none = LoadLivePoints(dir.string(), "");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("live.json"), std::string::npos);
  Write(dir / "live.json", R"({"scenario": "demo", "runs": []})");
  auto no_rate = LoadLivePoints(dir.string(), "");
  ASSERT_FALSE(no_rate.ok());
  EXPECT_NE(no_rate.status().message().find("'rate'"), std::string::npos);
  Write(dir / "live.json",
        R"({"scenario": "demo", "rate": 1, "runs": [{"stack": "a", "bench_json": "x.json"}]})");
  auto missing = LoadLivePoints(dir.string(), "");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("x.json"), std::string::npos);
  // A manifest from elsewhere reads no file outside its folder, and values of the wrong type are
  // errors naming the key (they ended the process).
  for (const char* path : {"/etc/hostname", "../x.json", "a/../../x.json"}) {
    Write(dir / "live.json", std::string(R"({"scenario": "demo", "rate": 1, "runs": [{"stack": )"
                                         R"("a", "bench_json": ")") +
                                 path + "\"}]}");
    auto outside = LoadLivePoints(dir.string(), "");
    ASSERT_FALSE(outside.ok()) << path;
    EXPECT_NE(outside.status().message().find("must name a file inside the live folder"),
              std::string::npos)
        << outside.status().message();
  }
  const std::pair<const char*, const char*> typed_cases[] = {
      {R"("time_scale": "2")", "'time_scale' must be a number"},
      {R"("seed": "x")", "'seed' must be a number"},
      {R"("seed": -1)", "'seed' must be a non-negative integer"}};
  for (const auto& [field, message] : typed_cases) {
    Write(dir / "live.json", std::string(R"({"scenario": "demo", "rate": 1, )") + field +
                                 R"(, "runs": [{"stack": "a", "bench_json": "x.json"}]})");
    auto typed = LoadLivePoints(dir.string(), "");
    ASSERT_FALSE(typed.ok()) << field;
    EXPECT_NE(typed.status().message().find(message), std::string::npos)
        << typed.status().message();
  }
  fs::remove_all(dir);
}

TEST(LiveComparison, GapIsLiveAgainstTheSimulatedMeanOfTheSameSeed) {
  nlohmann::ordered_json pts = nlohmann::ordered_json::array();
  pts.push_back(SimPoint("vllm", 1, 30, 100));
  pts.push_back(SimPoint("vllm", 2, 30, 300));   // another seed: not used, seed 1 matches
  pts.push_back(SimPoint("vllm", 1, 10, 7));     // another rate: not used
  pts.push_back(SimPoint("gimbal", 2, 30, 80));  // no seed-1 point: every seed's mean
  nlohmann::ordered_json live = SimPoint("vllm", 1, 30, 110);
  live["source"] = "live";
  pts.push_back(live);
  live = SimPoint("gimbal", 1, 30, 60);
  live["source"] = "live";
  pts.push_back(live);
  live = SimPoint("round-robin", 1, 30, 60);
  live["source"] = "live";
  pts.push_back(live);
  const auto c = LiveComparison(pts);
  ASSERT_EQ(c["rows"].size(), 2u);
  EXPECT_EQ(c["rows"][0]["stack"], "vllm");
  EXPECT_EQ(c["rows"][0]["sim_seeds"], nlohmann::ordered_json::array({1}));
  const auto& t = c["rows"][0]["metrics"]["mean_ttft_ms"];
  EXPECT_DOUBLE_EQ(t["sim"].get<double>(), 100);
  EXPECT_DOUBLE_EQ(t["live"].get<double>(), 110);
  EXPECT_NEAR(t["gap_pct"].get<double>(), 10.0, 1e-9);
  EXPECT_NEAR(c["rows"][0]["metrics"]["request_throughput"]["gap_pct"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(c["rows"][1]["metrics"]["mean_ttft_ms"]["gap_pct"].get<double>(), -25.0, 1e-9);
  EXPECT_EQ(c["unmatched"], nlohmann::ordered_json::array({"round-robin"}));
}

}  // namespace
}  // namespace gimbal::experiment
