// gimbal bench against the in-process emulator on loopback; bounded counts and time.
#include "bench_client/bench_client.h"

#include <chrono>
#include <limits>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "engine/engine_server.h"
#include "net/raw_server.h"
#include "workload/workload.h"

namespace gimbal::bench {
namespace {

std::unique_ptr<engine::EngineService> StartEngine() {
  auto spec = engine::ClusterFromCatalog("qwen3-30b-a3b", "h100-sxm", "hgx-8gpu", 2);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  engine::EngineServiceOptions o;
  o.emulator.cluster = *spec;
  o.emulator.time_scale = 0.05;
  o.port = 0;
  o.threads = 2;
  o.served_model = "bench-model";
  auto svc = engine::EngineService::Start(o);
  EXPECT_TRUE(svc.ok()) << svc.status().ToString();
  return std::move(*svc);
}

std::vector<Request> Workload(int n, double rate) {
  WorkloadSpec w;
  w.num_requests = n;
  w.rate = rate;
  w.prompt.mean = 300;
  w.output.mean = 12;
  Rng rng(3);
  auto reqs = BuildWorkload(w, {1.0}, rng);
  EXPECT_TRUE(reqs.ok()) << reqs.status().ToString();
  return *reqs;
}

TEST(BenchClientTest, CompletesEveryRequestWithVllmKeys) {
  auto svc = StartEngine();
  BenchOptions o;
  o.base_url = svc->url(0);
  o.model = "bench-model";
  o.max_concurrency = 4;
  constexpr int kN = 24;
  auto r = RunBench(o, Workload(kN, 200));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& s = r->summary;
  EXPECT_EQ(s["completed"], kN) << s.dump(2);
  EXPECT_EQ(s["failed"], 0);
  EXPECT_EQ(s["total_input_tokens"], kN * 300);
  EXPECT_EQ(s["total_output_tokens"], kN * 12);
  for (const char* k :
       {"mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms",
        "p99_itl_ms", "mean_e2el_ms", "request_throughput", "output_throughput", "duration"}) {
    ASSERT_TRUE(s.contains(k)) << k;
    EXPECT_GT(s[k].get<double>(), 0) << k;
  }
  EXPECT_GE(s["mean_e2el_ms"].get<double>(), s["mean_ttft_ms"].get<double>());
  EXPECT_EQ(s["max_concurrency"], 4);
  for (const auto& b : r->requests) EXPECT_EQ(b.itl.size(), 11u);
  nlohmann::ordered_json details;
  AddDetails(*r, details);
  EXPECT_EQ(details["ttfts"].size(), static_cast<size_t>(kN));
  EXPECT_NE(FormatSummary(s).find("Successful requests:"), std::string::npos);
  svc->Shutdown(5);
}

TEST(BenchClientTest, ChatEndpointAndFailuresAreCounted) {
  auto svc = StartEngine();
  BenchOptions o;
  o.base_url = svc->url(1);
  o.endpoint = "/v1/chat/completions";
  o.model = "bench-model";
  auto ok = RunBench(o, Workload(6, 1000));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->summary["completed"], 6);
  EXPECT_EQ(ok->summary["total_input_tokens"], 6 * 300);  // 4 characters per token
  o.model = "no-such-model";                              // 404 from the engine
  auto bad = RunBench(o, Workload(3, 1000));
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->summary["completed"], 0);
  EXPECT_EQ(bad->summary["failed"], 3);
  EXPECT_NE(bad->summary["error_samples"][0].get<std::string>().find("404"), std::string::npos);
  svc->Shutdown(5);
}

// A server's answer as `gimbal bench` reads it: a stream of these events, closed.
std::string Stream(const std::string& events) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
         "Content-Length: " +
         std::to_string(events.size()) + "\r\n\r\n" + events;
}
std::string Token() {
  return "data: {\"choices\":[{\"text\":\"x\"}]}\n\n";
}

// A broken or hostile server fails its requests with a reason, and leaves the run's figures
// sound: usage counts out of range once wrapped the totals (INT64_MAX + INT64_MAX), a server that
// streams without end grew the request's record without end, and one that keeps a stream alive
// forever kept the run from ending.
TEST(BenchClientTest, AServerThatLiesOrNeverStopsFailsItsRequests) {
  struct Case {
    std::string answer;
    int sleep_ms;
    const char* error;
  };
  std::string endless;
  for (int i = 0; i < 100; ++i) endless += Token();
  // Values that dump() would recurse into 200,000 levels deep, and an 8 MB message.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const std::string big(8 << 20, 'x');
  const Case cases[] = {
      {Stream("data: {\"error\":" + deep + "}\n\n"), 0, "stream error: an array of 1 values"},
      {Stream(Token() + "data: {\"choices\":[],\"usage\":{\"completion_tokens\":" + deep +
              "}}\n\n"),
       0, "usage.completion_tokens is not a token count in [0, 1073741824]: an array of 1"},
      {Stream(Token() + "data: {\"choices\":[],\"usage\":{\"completion_tokens\":1073741824}}\n\n"
                        "data: [DONE]\n\n"),
       0, "usage.completion_tokens (1073741824) is more than max_tokens (12)"},
      {Stream("data: {\"error\":{\"message\":\"" + big + "\"}}\n\n"), 0,
       "stream error: \"xxxxxxxx"},
      {Stream(Token() + "data: {\"choices\":[],\"usage\":{\"completion_tokens\":" +
              std::to_string(std::numeric_limits<int64_t>::max()) +
              ",\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n"),
       0, "usage.completion_tokens is not a token count"},
      {Stream(Token() + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-5}}\n\n"
                        "data: [DONE]\n\n"),
       0, "usage.prompt_tokens is not a token count"},
      {Stream(endless + "data: [DONE]\n\n"), 0, "streamed more than max_tokens (12) tokens"},
      {Stream(Token() + Token()), 300, "ran past the total timeout (0.1 s)"},
  };
  for (const Case& c : cases) {
    net::testing::RawServer server([&](const std::string&, const std::string&) {
      if (c.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c.sleep_ms));
      return c.answer;
    });
    BenchOptions o;
    o.base_url = server.url();
    o.model = "m";
    if (c.sleep_ms > 0) o.total_timeout_s = 0.1;  // only the case about it: others may be slow
    auto r = RunBench(o, Workload(2, 1000));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->summary["completed"], 0) << c.error;
    EXPECT_EQ(r->summary["failed"], 2) << c.error;
    ASSERT_EQ(r->requests.size(), 2u);
    for (const auto& b : r->requests) {
      EXPECT_NE(b.error.find(c.error), std::string::npos) << b.error.substr(0, 200);
      EXPECT_LE(b.error.size(), 200u);  // a server's value is quoted in part
      EXPECT_LE(b.itl.size(), 12u + 16u);
    }
  }
}

// Runs n requests against a server that gives every one `answer`.
Result<BenchResult> RunAgainst(const std::string& answer, int n) {
  net::testing::RawServer server([&](const std::string&, const std::string&) { return answer; });
  BenchOptions o;
  o.base_url = server.url();
  o.model = "m";
  return RunBench(o, Workload(n, 1000));
}

// A Gimbal router names the engine that served a request (X-Gimbal-Engine): the detailed JSON
// keeps it per request, so a live run can be compared with the simulator's per-request engines.
// A value that is no backend name by the router's rule (too long, or bytes a name cannot have)
// is not kept, nor is anything without the header (an engine answering directly).
TEST(BenchClientTest, TheEngineARouterNamesIsKeptPerRequest) {
  const std::string body = Token() + "data: [DONE]\n\n";
  auto answer = [&](const std::string& engine) {
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n" +
           (engine.empty() ? std::string() : "X-Gimbal-Engine: " + engine + "\r\n") +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dp3", "dp3"},
      {"node-1:8000/e_2", "node-1:8000/e_2"},  // a name the router's config accepts
      {std::string(128, 'a'), std::string(128, 'a')},
      {std::string(129, 'a'), ""},
      {"a\"b", ""},
      {"a b", ""},
      {"", ""}};
  for (const auto& [sent, kept] : cases) {
    auto r = RunAgainst(answer(sent), 2);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->requests.size(), 2u);
    nlohmann::ordered_json details;
    AddDetails(*r, details);
    ASSERT_EQ(details["engines"].size(), 2u);
    for (const auto& e : details["engines"]) EXPECT_EQ(e, kept) << sent;
  }
}

// Requests a run could not hold or time: refused before any body is built or request sent.
TEST(BenchClientTest, RequestsPastTheBoundsAreRefusedWithTheirNumbers) {
  BenchOptions o;
  o.base_url = "http://127.0.0.1:1";  // never reached
  o.model = "m";
  std::vector<Request> huge = Workload(2, 10);
  huge[1].prompt_tokens = int64_t{1} << 30;  // one 68-byte trace line asked this
  auto r = RunBench(o, huge);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("1073741824 prompt"), std::string::npos)
      << r.status().message();
  std::vector<Request> late = Workload(2, 10);
  late[1].arrival = 2.5e10;  // 790 centuries in: the send timer's nanoseconds overflow
  r = RunBench(o, late);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("366 days"), std::string::npos) << r.status().message();
}

// Two requests whose prefix hashes agree send the same leading blocks: the engine's prefix cache
// hits them, as token ids and as chat text; without the hashes' size the prompts share nothing.
TEST(BenchClientTest, RequestsSharingPrefixHashesShareCachedBlocks) {
  struct Case {
    std::string endpoint;
    int64_t hash_tokens;
    int64_t want_hits;
  };
  for (const Case& c : {Case{"/v1/completions", 16, 320}, Case{"/v1/chat/completions", 16, 320},
                        Case{"/v1/completions", 0, 0}}) {
    SCOPED_TRACE(c.endpoint + " hash tokens " + std::to_string(c.hash_tokens));
    auto svc = StartEngine();
    BenchOptions o;
    o.base_url = svc->url(0);
    o.endpoint = c.endpoint;
    o.model = "bench-model";
    o.max_concurrency = 1;
    o.prefix_hash_tokens = c.hash_tokens;
    Request a;
    a.id = 0;
    a.prompt_tokens = 320;
    a.output_tokens = 2;
    for (uint64_t h = 1; h <= 20; ++h) a.prefix_hashes.push_back(h * 7919);
    Request b = a;
    b.id = 1;
    b.arrival = 0.01;
    b.prompt_tokens = 400;
    for (uint64_t h = 21; h <= 25; ++h) b.prefix_hashes.push_back(h * 7919);
    auto r = RunBench(o, {a, b});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->summary["completed"], 2) << r->summary.dump(2);
    EXPECT_EQ(svc->emulator().State(0).prefix_cache_hits, c.want_hits);
    svc->Shutdown(5);
  }
}

}  // namespace
}  // namespace gimbal::bench
