// End-to-end tests of the gimbal binary: exit codes, messages and outputs a user sees.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

struct CmdResult {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `gimbal args`, or the shell command `args` itself when `raw` (to wrap it in timeout).
CmdResult Gimbal(const std::string& args, bool raw = false) {
  const std::string cmd = (raw ? args : std::string(GIMBAL_BINARY) + " " + args) + " 2>&1";
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

std::string Src(const std::string& rel) {
  return std::string(GIMBAL_SOURCE_DIR) + "/" + rel;
}

std::filesystem::path TempDir() {
  auto d = std::filesystem::temp_directory_path() /
           ("gimbal_cli_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(d);
  return d;
}

const char* kSmall =
    " --set workload.num_requests=60 --set 'workload.schedule=[{start: 0, rate: 20}]'";

TEST(CliTest, SimulatePrintsEveryStackAndWritesJsonAndCsv) {
  const auto dir = TempDir();
  const std::string json = (dir / "out.json").string();
  const std::string req = (dir / "req.csv").string();
  const std::string steps = (dir / "steps.csv").string();
  CmdResult r = Gimbal("simulate -c " + Src("configs/scenarios/default.yaml") + kSmall +
                       " --json " + json + " --requests-csv " + req + " --steps-csv " + steps);
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
    for (const char* k :
         {"mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms",
          "mean_itl_ms", "mean_e2el_ms", "request_throughput", "output_throughput", "engines"}) {
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
  const std::string base =
      "simulate -c " + Src("configs/scenarios/default.yaml") + kSmall + " --seed 5 --json ";
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

// A scenario name that is not UTF-8 is written as U+FFFD (a strict dump threw, and the process
// aborted), and a --json or CSV file that cannot be written is an error, not exit 0.
TEST(CliTest, NonUtf8NamesAreWrittenAndUnwritableOutputsFail) {
  const auto dir = TempDir();
  const auto path = dir / "raw.yaml";
  {
    std::ofstream out(path);
    out << "name: x\xff\xfey\n";
    std::ifstream in(Src("configs/scenarios/default.yaml"));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("name:", 0) != 0) out << line << "\n";
    }
  }
  CmdResult r = Gimbal("simulate -c " + path.string() + kSmall + " --stack vllm --json " +
                       (dir / "o.json").string());
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(Slurp(dir / "o.json"), nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["scenario"], "x\xef\xbf\xbd\xef\xbf\xbdy");
  for (const char* flag : {"--json", "--requests-csv", "--steps-csv"}) {
    r = Gimbal("simulate -c " + Src("configs/scenarios/default.yaml") + kSmall + " --stack vllm " +
               flag + " /dev/full");
    EXPECT_EQ(r.code, 2) << flag << ": " << r.output;
    EXPECT_NE(r.output.find("cannot write /dev/full"), std::string::npos) << r.output;
  }
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

// `gimbal --version` prints the version of the top-level `project(gimbal VERSION x.y.z)`, read here
// from the CMakeLists.txt itself, so a version written into the code by hand shows up.
TEST(CliTest, VersionIsTheCMakeProjectVersion) {
  const std::string cmake = Slurp(Src("CMakeLists.txt"));
  const std::string key = "project(gimbal VERSION ";
  const size_t at = cmake.find(key);
  ASSERT_NE(at, std::string::npos) << "no `" << key << "` in CMakeLists.txt";
  const size_t from = at + key.size();
  const std::string version = cmake.substr(from, cmake.find_first_of(" )", from) - from);
  ASSERT_FALSE(version.empty());
  CmdResult r = Gimbal("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.output, "gimbal " + version + "\n");
}

// Commands that used to run away (allocate gigabytes, spin, hang) are wrapped in `timeout`.
TEST(CliTest, SizeCountAndThreadOptionsAreRangeCheckedUpFront) {
  struct Case {
    std::string args, message;
  };
  const std::string engine = "engine --model qwen3-30b-a3b --gpu h200 --port 0 ";
  const Case cases[] = {
      {engine + "--dp 100000", "gimbal engine: --dp must be in 1..1024, got 100000"},
      {engine + "--dp 2 --threads 100000",
       "gimbal engine: --threads must be in 1..256, got 100000"},
      {engine + "--dp 2 --threads 0", "gimbal engine: --threads must be in 1..256, got 0"},
      {engine + "--dp -3", "gimbal engine: --dp must be in 1..1024, got -3"},
      {engine + "--dp 2 --default-max-tokens 0", "--default-max-tokens must be in 1..1073741824"},
      {engine + "--dp 2 --redundant-slots 100000000", "--redundant-slots must be in -1..1024"},
      {engine + "--dp 2 --time-scale nan", "--time-scale must be a number in [0, 1000], got nan"},
      {"engine --model qwen3-30b-a3b --gpu h200 --dp 8 --port 65530",
       "--port 65530 with 8 engines needs ports up to 65537"},
      {"serve --engine-dp 100000", "gimbal serve: --engine-dp must be in 1..1024, got 100000"},
      {"serve --port 70000", "gimbal serve: --port must be in 0..65535, got 70000"},
      {"bench --model m --num-prompts 1000000000000",
       "gimbal bench: --num-prompts must be in 1..10000000, got 1000000000000"},
      {"bench --model m --threads 100000", "gimbal bench: --threads must be in 1..256"},
      {"bench --model m --request-rate 1e-9", "--request-rate must be inf or a number in"},
      {"bench --model m --request-rate 5abc", "--request-rate '5abc' is not a number or inf"},
      {"bench --model m --request-rate 0x10", "--request-rate '0x10' is not a number or inf"},
      {"bench --model m --total-timeout 0", "--total-timeout must be"},
      {"bench --model m --request-rate +-5", "--request-rate '+-5' is not a number or inf"},
      {"experiment -s x.yaml -o /tmp/x --jobs 100000", "--jobs must be in 0..1024"},
  };
  for (const Case& c : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    CmdResult r = Gimbal("timeout -s KILL 60 " + std::string(GIMBAL_BINARY) + " " + c.args, true);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_LT(s, 10) << c.args;
  }
}

TEST(CliTest, HostileScenarioValuesAndTracePathsFailAtOnce) {
  const std::string base = "timeout -s KILL 60 " + std::string(GIMBAL_BINARY) + " simulate -c " +
                           Src("configs/scenarios/default.yaml") + " ";
  const std::string trace =
      " --set workload.kind=azure --set workload.num_requests=null"
      " --set workload.schedule=null --set workload.burstiness=null"
      " --set workload.prompt=null --set workload.output=null"
      " --set workload.sessions=null --set workload.path=";
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {"--set workload.num_requests=1000000000000",
       "'workload.num_requests': expected an integer in [1, 10000000], got '1000000000000'"},
      {"--set 'workload.schedule=[{start: 0, rate: 1e-9}]'", "'workload.schedule[0].rate'"},
      {"--set workload.schedule=null --set workload.rate=1e-9", "'workload.rate'"},
      {trace + "/dev/zero", "/dev/zero: is not a regular file (a device, pipe or socket)"},
  };
  for (const Case& c : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    CmdResult r = Gimbal(base + c.args, true);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_LT(s, 10) << c.args;
  }
}

TEST(CliTest, DuplicateScenarioKeyNamesFileLineAndKey) {
  const auto dir = TempDir();
  const auto path = dir / "dup.yaml";
  std::ofstream(path) << Slurp(Src("configs/scenarios/default.yaml")) << "\nseed: 4\nseed: 5\n";
  CmdResult r = Gimbal("simulate -c " + path.string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(path.string() + ":"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'seed': duplicate key (first given on line"), std::string::npos)
      << r.output;
  std::filesystem::remove_all(dir);
}

TEST(CliTest, PlaceRefusesHugeCountsInsteadOfPrintingNaN) {
  const auto dir = TempDir();
  auto stats = nlohmann::json::parse(std::ifstream(Src("examples/placement/stats.json")));
  for (auto& layer : stats["counts"]) {
    for (auto& source : layer) {
      for (auto& count : source) count = 1e308;
    }
  }
  const auto path = dir / "stats.json";
  std::ofstream(path) << stats.dump();
  CmdResult r = Gimbal("place --stats " + path.string() + " --topology " +
                       Src("examples/placement/topology.yaml") + " --policy eplb");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(path.string() + ": routing statistics: count at layer 0, source 0, "
                                          "expert 0 (counts[0][0][0]) is 1e+308"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("nan"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}

TEST(CliTest, ServeRejectsAMalformedBackendUrl) {
  CmdResult flag = Gimbal(
      "timeout -s KILL 60 " + std::string(GIMBAL_BINARY) + " serve --backend 'http://[::1=m'",
      true);
  EXPECT_EQ(flag.code, 2) << flag.output;
  EXPECT_NE(flag.output.find("backend 'e0': URL 'http://[::1': unterminated IPv6 address"),
            std::string::npos)
      << flag.output;
  const auto dir = TempDir();
  const auto path = dir / "router.yaml";
  std::ofstream(path) << "backends:\n  - {name: a, url: 'http://h:99999', model: m}\n";
  CmdResult file = Gimbal(
      "timeout -s KILL 60 " + std::string(GIMBAL_BINARY) + " serve --config " + path.string(),
      true);
  EXPECT_EQ(file.code, 2) << file.output;
  EXPECT_NE(file.output.find(path.string() + ":2:"), std::string::npos) << file.output;
  EXPECT_NE(file.output.find("backend 'a': URL 'http://h:99999': bad port '99999'"),
            std::string::npos)
      << file.output;
  std::filesystem::remove_all(dir);
}

// A gimbal process in the background, its stdout and stderr in a file.
class Background {
 public:
  Background(const std::vector<std::string>& args, std::filesystem::path log)
      : log_(std::move(log)) {
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv{const_cast<char*>(GIMBAL_BINARY)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(GIMBAL_BINARY, argv.data());
      _exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string Log() const { return Slurp(log_); }
  // Waits up to `seconds` for `text` in the log; the log from `text` on, or "" on timeout.
  std::string WaitFor(const std::string& text, double seconds) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      const std::string log = Log();
      // Once the line holding it is complete: a line can be written in several pieces.
      if (const size_t at = log.find(text);
          at != std::string::npos && log.find('\n', at) != std::string::npos) {
        return log.substr(at);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
  }
  void Signal(int sig) const { kill(pid_, sig); }
  // The exit status if the process ends within `seconds`, else -1.
  int Wait(double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

int PortAfter(const std::string& log_tail) {
  size_t i = 0;
  while (i < log_tail.size() && !std::isdigit(static_cast<unsigned char>(log_tail[i]))) ++i;
  return std::atoi(log_tail.c_str() + i);
}

// Opens a streamed completion that lasts minutes and returns its socket once the answer started.
int StartLongRequest(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
  const std::string body =
      R"({"model": "qwen3-30b-a3b", "prompt": "hi", "max_tokens": 20000, "stream": true})";
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  if (send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) return -1;
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::array<char, 512> buf{};
  if (recv(fd, buf.data(), buf.size(), 0) <= 0) return -1;
  return fd;
}

// The first SIGINT drains (and waits for the long request); the second exits at once.
void ExpectSecondSignalExitsAtOnce(const std::vector<std::string>& args, const std::string& ready,
                                   const std::string& command) {
  const auto dir = TempDir();
  Background p(args, dir / "log.txt");
  const std::string tail = p.WaitFor(ready, 120);
  ASSERT_FALSE(tail.empty()) << p.Log();
  const int fd = StartLongRequest(PortAfter(tail.substr(ready.size())));
  ASSERT_GE(fd, 0) << p.Log();
  p.Signal(SIGINT);
  ASSERT_FALSE(p.WaitFor("gimbal " + command + ": draining", 30).empty()) << p.Log();
  EXPECT_EQ(p.Wait(0.5), -1) << "the drain should wait for the request\n" << p.Log();
  const auto t0 = std::chrono::steady_clock::now();
  p.Signal(SIGINT);
  const int status = p.Wait(15);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  close(fd);
  ASSERT_NE(status, -1) << "still running after a second SIGINT\n" << p.Log();
  ASSERT_TRUE(WIFEXITED(status)) << p.Log();
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT) << p.Log();
  EXPECT_LT(s, 5);
  EXPECT_NE(p.Log().find("gimbal " + command + ": second SIGINT; exiting at once without draining"),
            std::string::npos)
      << p.Log();
  std::filesystem::remove_all(dir);
}

TEST(CliTest, SecondSigintForcesEngineExit) {
  ExpectSecondSignalExitsAtOnce({"engine", "--dp", "1", "--model", "qwen3-30b-a3b", "--gpu", "h200",
                                 "--port", "0", "--drain-timeout", "120"},
                                "gimbal engine: engine 0 on http://127.0.0.1:", "engine");
}

TEST(CliTest, SecondSigintForcesServeExit) {
  ExpectSecondSignalExitsAtOnce({"serve", "--port", "0", "--engine-dp", "1"},
                                "gimbal serve: listening on port ", "serve");
}

}  // namespace
