// End-to-end tests of the gimbal binary: exit codes, messages and outputs a user sees.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

struct CmdResult {
  int code = -1;
  std::string output;  // stdout and stderr together
};

CmdResult Gimbal(const std::string& args) {
  const std::string cmd = std::string(GIMBAL_BINARY) + " " + args + " 2>&1";
  CmdResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p) != nullptr) r.output += buf.data();
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Src(const std::string& rel) { return std::string(GIMBAL_SOURCE_DIR) + "/" + rel; }

std::filesystem::path TempDir() {
  auto d = std::filesystem::temp_directory_path() /
           ("gimbal_cli_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(d);
  return d;
}

const char* kSmall = " --set workload.num_requests=60 --set 'workload.schedule=[{start: 0, rate: 20}]'";

TEST(CliTest, SimulatePrintsEveryStackAndWritesJsonAndCsv) {
  const auto dir = TempDir();
  const std::string json = (dir / "out.json").string();
  const std::string req = (dir / "req.csv").string();
  const std::string steps = (dir / "steps.csv").string();
  CmdResult r = Gimbal("simulate -c " + Src("configs/scenarios/default.yaml") + kSmall + " --json " +
                 json + " --requests-csv " + req + " --steps-csv " + steps);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* stack : {"vllm", "round-robin", "gimbal"}) {
    EXPECT_NE(r.output.find(stack), std::string::npos) << stack;
  }
  EXPECT_NE(r.output.find("change against 'vllm'"), std::string::npos);
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  ASSERT_TRUE(j.contains("runs"));
  ASSERT_GE(j["runs"].size(), 2u);
  for (const auto& run : j["runs"]) {
    EXPECT_EQ(run["completed"], 60);
    for (const char* k : {"mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms",
                          "p99_tpot_ms", "mean_itl_ms", "mean_e2el_ms", "request_throughput",
                          "output_throughput", "engines"}) {
      EXPECT_TRUE(run.contains(k)) << k;
    }
  }
  std::ifstream rc(req);
  std::string header;
  std::getline(rc, header);
  EXPECT_EQ(header.rfind("stack,id,engine", 0), 0u);
  int rows = 0;
  for (std::string line; std::getline(rc, line);) rows++;
  EXPECT_EQ(rows, 60 * static_cast<int>(j["runs"].size()));
  std::filesystem::remove_all(dir);
}

TEST(CliTest, SameSeedSameJsonBytes) {
  const auto dir = TempDir();
  const std::string base = "simulate -c " + Src("configs/scenarios/default.yaml") + kSmall + " --seed 5 --json ";
  ASSERT_EQ(Gimbal(base + (dir / "a.json").string()).code, 0);
  ASSERT_EQ(Gimbal(base + (dir / "b.json").string()).code, 0);
  const std::string sa = Slurp(dir / "a.json");
  const std::string sb = Slurp(dir / "b.json");
  EXPECT_FALSE(sa.empty());
  EXPECT_EQ(sa, sb);
  std::filesystem::remove_all(dir);
}

TEST(CliTest, BadScenarioExitsNonZeroWithFileLineAndKey) {
  const auto dir = TempDir();
  const auto path = dir / "bad.yaml";
  std::ofstream(path) << "model: qwen3-30b-a3b\ngpu: h200\ncluster:\n  dp: many\n";
  CmdResult r = Gimbal("simulate -c " + path.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find(path.string() + ":4:7: 'cluster.dp': expected an integer"),
            std::string::npos)
      << r.output;
  std::filesystem::remove_all(dir);
}

TEST(CliTest, UnknownPolicyListsValidNames) {
  CmdResult r = Gimbal("simulate -c " + Src("configs/scenarios/default.yaml") +
                 " --set stacks.0.dispatch.policy=fastest");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("fastest"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("round_robin"), std::string::npos) << r.output;
}

TEST(CliTest, MalformedTraceNamesFileAndLine) {
  const auto dir = TempDir();
  const auto trace = dir / "t.csv";
  std::ofstream(trace) << "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                          "2023-11-16 18:15:46.6805900,100,20\n"
                          "2023-11-16 18:15:47.0000000,abc,20\n";
  CmdResult r = Gimbal("simulate -c " + Src("configs/scenarios/default.yaml") +
                 " --set workload.kind=azure --set workload.path=" + trace.string() +
                 " --set workload.num_requests=null --set workload.schedule=null"
                 " --set workload.burstiness=null --set workload.prompt=null"
                 " --set workload.output=null --set workload.sessions=null");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find(trace.string() + ":3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ContextTokens"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}

TEST(CliTest, MissingConfigAndHelp) {
  CmdResult r = Gimbal("simulate -c /nonexistent.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("cannot open"), std::string::npos);
  CmdResult h = Gimbal("simulate --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.output.find("--config"), std::string::npos);
}

}  // namespace
