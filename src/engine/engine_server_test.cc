// `gimbal engine` in process on loopback (ephemeral ports): the OpenAI API, /metrics, pushed
// state, statistics, placements and timing against the cost model. Every wait is bounded.
#include "engine/engine_server.h"

#include <chrono>
#include <future>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/blocking.h"
#include "net/http_client.h"
#include "net/io_runtime.h"
#include "net/prometheus_parser.h"
#include "net/sse.h"
#include "placement/placement_formats.h"
#include "policy/queue/queue_policy.h"
#include "wire/engine_state.h"

namespace gimbal::engine {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kModel = "test/emulated";

struct Reply {
  bool ok = false;
  int status = 0;
  std::string body;
  std::vector<net::SseEvent> events;
  double first_event_s = -1;  // seconds from sending to the first data event
};

class EngineServerTest : public ::testing::Test {
 protected:
  void SetUp() override { client_io_.Start(); }
  void TearDown() override {
    if (svc_) svc_->Shutdown(5);
    svc_.reset();
    client_.reset();
    client_io_.Stop();
  }

  void StartService(double time_scale, int max_num_seqs = 0, std::string admin_token = "",
                    int dp = 2, int ranks_per_server = 1) {
    auto spec = ClusterFromCatalog("qwen3-30b-a3b", "h100-sxm", "hgx-8gpu", dp);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EngineServiceOptions o;
    o.emulator.cluster = *spec;
    if (max_num_seqs > 0) o.emulator.cluster.engine.max_num_seqs = max_num_seqs;
    o.emulator.time_scale = time_scale;
    o.port = 0;
    o.ranks_per_server = ranks_per_server;
    o.threads = 2;
    o.served_model = kModel;
    o.state_stream_heartbeat_s = 0.2;
    o.admin_token = std::move(admin_token);
    auto svc = EngineService::Start(o);
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    svc_ = std::move(*svc);
  }

  net::ClientRequest Req(int engine, std::string method, std::string target,
                         std::string body = "") {
    net::ClientRequest r;
    r.method = std::move(method);
    r.host = "127.0.0.1";
    r.port = svc_->port(engine);
    r.target = std::move(target);
    r.body = std::move(body);
    if (!r.body.empty()) r.headers.Set("Content-Type", "application/json");
    return r;
  }

  static asio::awaitable<Reply> Exchange(net::HttpClient* client, net::ClientRequest req) {
    Reply out;
    const auto start = Clock::now();
    auto s = co_await client->Open(std::move(req));
    if (!s.ok()) co_return out;
    out.status = (*s)->status();
    net::SseParser parser;
    const bool sse = (*s)->headers().Get("Content-Type").find("text/event-stream") == 0;
    while (true) {
      auto piece = co_await (*s)->Next();
      if (!piece.ok()) co_return out;
      if (!piece->has_value()) break;
      out.body += **piece;
      if (sse) {
        parser.Feed(**piece, out.events);
        if (out.first_event_s < 0 && !out.events.empty()) {
          out.first_event_s = std::chrono::duration<double>(Clock::now() - start).count();
        }
      }
    }
    out.ok = true;
    co_return out;
  }

  Reply Call(net::ClientRequest req) {
    return net::RunBlocking(client_io_.context(), Exchange(client(), std::move(req)));
  }
  std::future<Reply> CallAsync(net::ClientRequest req) {
    // On a strand of its own, as RunBlocking does: the client's deadline timers run on the
    // coroutine's executor, which must not let them run beside the coroutine (client_io_ has two
    // threads; on the bare io_context TSan saw a timer handler race a stream's destructor).
    return asio::co_spawn(asio::make_strand(client_io_.context()),
                          Exchange(client(), std::move(req)), asio::use_future);
  }

  net::HttpClient* client() {
    if (!client_) client_ = std::make_unique<net::HttpClient>(client_io_.context());
    return client_.get();
  }

  std::map<std::string, double> Metrics(int engine) {
    Reply r = Call(Req(engine, "GET", "/metrics"));
    EXPECT_EQ(r.status, 200);
    net::PromParseResult page = net::ParsePrometheusText(r.body);
    EXPECT_EQ(page.warnings, 0);
    std::map<std::string, double> out;
    for (const auto& s : page.samples) {
      if (s.Label("model_name") == kModel && s.Label("engine") == std::to_string(engine)) {
        out[s.name] += s.value;
      }
    }
    return out;
  }

  // The `engine` label of every sample on the /metrics page of the server fronting `engine`, and
  // how many samples each metric has there.
  std::set<std::string> EngineLabels(int engine, std::map<std::string, int>* per_name = nullptr) {
    Reply r = Call(Req(engine, "GET", "/metrics"));
    EXPECT_EQ(r.status, 200);
    net::PromParseResult page = net::ParsePrometheusText(r.body);
    EXPECT_EQ(page.warnings, 0);
    std::set<std::string> out;
    for (const auto& s : page.samples) {
      out.insert(std::string(s.Label("engine")));
      if (per_name != nullptr) ++(*per_name)[s.name];
    }
    return out;
  }

  net::IoRuntime client_io_{2};
  std::unique_ptr<net::HttpClient> client_;
  std::unique_ptr<EngineService> svc_;
};

// The JSON of each data event before [DONE].
std::vector<json> DataEvents(const Reply& r, bool* done) {
  std::vector<json> out;
  *done = false;
  for (const auto& e : r.events) {
    if (!e.has_data) continue;
    if (e.data == "[DONE]") {
      *done = true;
      continue;
    }
    out.push_back(json::parse(e.data));
  }
  return out;
}

TEST_F(EngineServerTest, NonStreamingCompletionsCountUsage) {
  StartService(0.01);
  const std::string prompt(400, 'x');  // 100 tokens
  Reply r = Call(Req(0, "POST", "/v1/completions",
                     json{{"model", kModel}, {"prompt", prompt}, {"max_tokens", 7}}.dump()));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 100);
  EXPECT_EQ(j["usage"]["completion_tokens"], 7);
  EXPECT_EQ(j["usage"]["total_tokens"], 107);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(j["choices"][0]["text"].get<std::string>().empty());

  Reply c = Call(Req(1, "POST", "/v1/chat/completions",
                     json{{"model", kModel},
                          {"messages", {{{"role", "user"}, {"content", std::string(40, 'y')}}}},
                          {"max_tokens", 3}}
                         .dump()));
  ASSERT_EQ(c.status, 200) << c.body;
  json cj = json::parse(c.body);
  EXPECT_EQ(cj["object"], "chat.completion");
  EXPECT_EQ(cj["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(cj["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(cj["usage"]["completion_tokens"], 3);
}

TEST_F(EngineServerTest, StreamingSendsOneChunkPerTokenThenDone) {
  StartService(0.01);
  Reply r = Call(Req(0, "POST", "/v1/completions",
                     json{{"model", kModel},
                          {"prompt", std::vector<int>(50, 11)},
                          {"max_tokens", 6},
                          {"stream", true},
                          {"stream_options", {{"include_usage", true}}}}
                         .dump()));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.status, 200);
  bool done = false;
  std::vector<json> ev = DataEvents(r, &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(ev.size(), 7u);  // 6 tokens + usage
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(ev[i]["choices"].size(), 1u);
    EXPECT_EQ(ev[i]["choices"][0]["finish_reason"].is_null(), i < 5) << i;
  }
  EXPECT_EQ(ev[6]["usage"]["prompt_tokens"], 50);
  EXPECT_EQ(ev[6]["usage"]["completion_tokens"], 6);
  EXPECT_EQ(r.events.back().data, "[DONE]");

  Reply c = Call(Req(1, "POST", "/v1/chat/completions",
                     json{{"messages", {{{"role", "user"}, {"content", "hello there"}}}},
                          {"max_tokens", 4},
                          {"stream", true}}
                         .dump()));
  ASSERT_EQ(c.status, 200);
  std::vector<json> cev = DataEvents(c, &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(cev.size(), 4u);  // no usage chunk unless asked for
  EXPECT_EQ(cev[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(cev[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(cev[3]["choices"][0]["finish_reason"], "length");
}

TEST_F(EngineServerTest, ErrorsHaveTheRightStatus) {
  StartService(0.01);
  Reply unknown = Call(Req(0, "POST", "/v1/completions", R"({"model":"other","prompt":"x"})"));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["error"]["type"], "not_found_error");
  Reply batch = Call(Req(0, "POST", "/v1/completions", R"({"prompt":["a","b"]})"));
  EXPECT_EQ(batch.status, 400);
  EXPECT_EQ(json::parse(batch.body)["error"]["type"], "invalid_request_error");
  EXPECT_EQ(Call(Req(0, "POST", "/v1/completions", R"({"prompt": "x")")).status, 400);
  EXPECT_EQ(Call(Req(0, "POST", "/v1/completions", R"({"prompt":"x","max_tokens":-1})")).status,
            400);
  EXPECT_EQ(Call(Req(0, "GET", "/v1/completions")).status, 405);
  EXPECT_EQ(Call(Req(0, "GET", "/nope")).status, 404);
  const int64_t too_long = svc_->emulator().kv_capacity_tokens();
  Reply big = Call(
      Req(0, "POST", "/v1/completions",
          json{{"prompt", std::string(static_cast<size_t>(too_long) * 4, 'z')}, {"max_tokens", 1}}
              .dump()));
  EXPECT_EQ(big.status, 400) << big.body;
  // The engine keeps serving.
  Reply models = Call(Req(0, "GET", "/v1/models"));
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(json::parse(models.body)["data"][0]["id"], kModel);
  EXPECT_EQ(Call(Req(1, "GET", "/health")).status, 200);
}

TEST_F(EngineServerTest, MetricsParseAndReflectLoad) {
  StartService(0.2, /*max_num_seqs=*/4);
  auto idle = Metrics(0);
  EXPECT_EQ(idle["vllm:num_requests_waiting"], 0);
  EXPECT_EQ(idle["vllm:num_requests_running"], 0);
  EXPECT_EQ(idle.count("vllm:kv_cache_usage_perc"), 1u);
  constexpr int kBurst = 16;
  constexpr int kOutput = 200;  // long enough that the queue builds however slow the machine
  std::vector<std::future<Reply>> burst;
  for (int i = 0; i < kBurst; ++i) {
    burst.push_back(
        CallAsync(Req(0, "POST", "/v1/completions",
                      json{{"prompt", std::string(800, 'a')}, {"max_tokens", kOutput}}.dump())));
  }
  double max_waiting = 0, max_running = 0, max_kv = 0;
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline && (max_waiting == 0 || max_running == 0)) {
    auto m = Metrics(0);
    max_waiting = std::max(max_waiting, m["vllm:num_requests_waiting"]);
    max_running = std::max(max_running, m["vllm:num_requests_running"]);
    max_kv = std::max(max_kv, m["vllm:kv_cache_usage_perc"]);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_GT(max_waiting, 0);
  EXPECT_GT(max_running, 0);
  EXPECT_LE(max_running, 4);
  EXPECT_GT(max_kv, 0);
  for (auto& f : burst) {
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    EXPECT_EQ(f.get().status, 200);
  }
  auto after = Metrics(0);
  EXPECT_EQ(after["vllm:num_requests_waiting"], 0);
  EXPECT_EQ(after["vllm:num_requests_running"], 0);
  EXPECT_EQ(after["vllm:request_success_total"], kBurst);
  EXPECT_EQ(after["vllm:generation_tokens_total"], kBurst * kOutput);
  EXPECT_EQ(after["vllm:prompt_tokens_total"], kBurst * 200);
  EXPECT_EQ(after["vllm:time_to_first_token_seconds_count"], kBurst);
  EXPECT_EQ(Metrics(1)["vllm:request_success_total"], 0);  // the other engine saw none
}

TEST_F(EngineServerTest, MetricsCountPrefixCacheTokens) {
  StartService(0);  // prefix caching on, as EngineConfig defaults it
  {
    Reply r = Call(Req(0, "GET", "/metrics"));
    ASSERT_EQ(r.status, 200);
    net::PromParseResult page = net::ParsePrometheusText(r.body);
    EXPECT_EQ(page.types["vllm:prefix_cache_queries_total"], "counter");
    EXPECT_EQ(page.types["vllm:prefix_cache_hits_total"], "counter");
    auto idle = Metrics(0);
    ASSERT_EQ(idle.count("vllm:prefix_cache_queries_total"), 1u);
    EXPECT_EQ(idle["vllm:prefix_cache_queries_total"], 0);
    EXPECT_EQ(idle["vllm:prefix_cache_hits_total"], 0);
  }
  // 800 characters are 200 tokens: 12 full blocks of 16. The same prompt again hits all 12 (192
  // tokens, within the first 199); another prompt is looked up and hits nothing.
  const std::string same = json{{"prompt", std::string(800, 'a')}, {"max_tokens", 2}}.dump();
  const std::string other = json{{"prompt", std::string(800, 'b')}, {"max_tokens", 2}}.dump();
  for (const std::string* body : {&same, &same, &other}) {
    EXPECT_EQ(Call(Req(0, "POST", "/v1/completions", *body)).status, 200);
  }
  auto m = Metrics(0);
  EXPECT_EQ(m["vllm:prefix_cache_queries_total"], 600);
  EXPECT_EQ(m["vllm:prefix_cache_hits_total"], 192);
  EXPECT_EQ(Metrics(0)["vllm:prefix_cache_hits_total"], 192);  // a second scrape adds nothing
  EXPECT_EQ(Metrics(1)["vllm:prefix_cache_queries_total"], 0);
}

TEST_F(EngineServerTest, LoneRequestTtftMatchesTheCostModel) {
  // Five times slower than real time, so the modelled prefill (~0.3 s) dwarfs scheduling noise
  // on a loaded or instrumented build and the upper bound can be a ratio.
  constexpr double kScale = 5.0;
  constexpr int64_t kPrompt = 4000;
  StartService(kScale);
  // The same model priced offline: one rank prefills the prompt, the other runs a dummy step.
  const sim::ClusterSpec& spec = svc_->emulator().spec();
  auto fcfs = MakeQueuePolicy("fcfs", {});
  ASSERT_TRUE(fcfs.ok());
  auto cluster = sim::Cluster::Create(spec, fcfs->get());
  ASSERT_TRUE(cluster.ok());
  Request req;
  req.id = 1;
  req.prompt_tokens = kPrompt;
  req.output_tokens = 2;
  (*cluster)->engine(0).Add(req, 0);
  const auto plans = (*cluster)->Plan();
  ASSERT_EQ(plans[0].batch.tokens, kPrompt);  // one step prefills the whole prompt
  const double model_s = (*cluster)->Cost(plans).duration * kScale;
  ASSERT_GT(model_s, 0.001);

  for (int attempt = 0; attempt < 2; ++attempt) {
    // A new prompt each time: the same one again would hit the prefix cache.
    const json body = {
        {"prompt", std::vector<int>(kPrompt, 5 + attempt)}, {"max_tokens", 2}, {"stream", true}};
    Reply r = Call(Req(0, "POST", "/v1/completions", body.dump()));
    ASSERT_EQ(r.status, 200);
    ASSERT_GT(r.first_event_s, 0);
    EXPECT_GE(r.first_event_s, model_s * 0.999) << "model " << model_s;  // never early
    EXPECT_LT(r.first_event_s, model_s * 2) << "model " << model_s;      // not a step too many
  }
}

TEST_F(EngineServerTest, PlacementRejectsInvalidAndInstallsValid) {
  StartService(0.01);
  EXPECT_EQ(Call(Req(0, "POST", "/gimbal/placement", "{oops")).status, 400);
  Reply cur = Call(Req(0, "GET", "/gimbal/placement"));
  ASSERT_EQ(cur.status, 200);
  auto p = ParsePlacementJson(cur.body, "current");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // An expert out of range.
  json bad = json::parse(cur.body);
  bad["phy2log"][0][0] = p->experts + 5;
  Reply r1 = Call(Req(0, "POST", "/gimbal/placement", bad.dump()));
  EXPECT_EQ(r1.status, 400) << r1.body;
  EXPECT_NE(r1.body.find("error"), std::string::npos);
  // A valid placement of the wrong shape (4 GPUs for 2 ranks).
  Reply r2 = Call(Req(0, "POST", "/gimbal/placement",
                      PlacementToJson(Placement::Contiguous(p->layers, p->experts, 4))));
  EXPECT_EQ(r2.status, 400) << r2.body;
  // A valid one: swap two experts across the GPUs, posted to engine 1, visible on engine 0.
  Placement q = *p;
  std::swap(q.phy2log[0], q.phy2log[q.slots_per_gpu]);
  Reply ok = Call(Req(1, "POST", "/gimbal/placement", PlacementToJson(q)));
  EXPECT_EQ(ok.status, 200) << ok.body;
  auto now = ParsePlacementJson(Call(Req(0, "GET", "/gimbal/placement")).body, "now");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->phy2log, q.phy2log);
}

TEST_F(EngineServerTest, PlacementNeedsTheAdminTokenWhenSet) {
  StartService(0.01, 0, "sesame");
  Reply cur = Call(Req(0, "GET", "/gimbal/placement"));  // reading needs no token
  ASSERT_EQ(cur.status, 200);
  auto post = [&](const char* authorization) {
    net::ClientRequest r = Req(1, "POST", "/gimbal/placement", cur.body);
    if (authorization != nullptr) r.headers.Set("Authorization", authorization);
    return Call(std::move(r)).status;
  };
  EXPECT_EQ(post(nullptr), 401);
  for (const char* bad : {"Bearer wrong", "Bearer sesam", "Bearer sesame2", "Bearer SESAME",
                          "Basic sesame", "sesame", "Bearersesame"}) {
    EXPECT_EQ(post(bad), 401) << bad;
  }
  // The scheme in any case (RFC 7235).
  for (const char* ok : {"Bearer sesame", "bearer sesame", "BEARER sesame"}) {
    EXPECT_EQ(post(ok), 200) << ok;
  }
}

TEST_F(EngineServerTest, StateIsPushedAndStatsCountSources) {
  StartService(0.05);
  Reply st = Call(Req(1, "GET", "/gimbal/state"));
  ASSERT_EQ(st.status, 200);
  json s = json::parse(st.body);
  for (const char* k : {"waiting", "running", "kv_usage", "kv_capacity_tokens",
                        "prefill_pending_tokens", "taken_at"}) {
    EXPECT_TRUE(s.contains(k)) << k;
  }
  EXPECT_GT(s["kv_capacity_tokens"].get<int64_t>(), 0);
  // What the router reads from it.
  EngineSnapshot read;
  double moe = 0;
  ASSERT_TRUE(wire::SnapshotFromPushed(st.body, 1.0, &read, &moe));
  EXPECT_EQ(read.kv_capacity_tokens, s["kv_capacity_tokens"].get<int64_t>());
  EXPECT_GT(moe, 0);

  // Open the state stream of engine 0, then run a request there; the stream shows it running.
  const auto state_req = Req(0, "GET", "/gimbal/state/stream");  // Open reads it while it runs
  auto stream = client()->Open(state_req);
  auto opened = net::RunBlocking(client_io_.context(), std::move(stream));
  ASSERT_TRUE(opened.ok());
  ASSERT_EQ((*opened)->status(), 200);
  // Long enough (about a second of wall time) that a sample of the state catches it running
  // however late the stream's thread gets to run on a loaded machine.
  auto work = CallAsync(Req(0, "POST", "/v1/completions",
                            json{{"prompt", std::string(2000, 'q')}, {"max_tokens", 600}}.dump()));
  net::SseParser parser;
  std::vector<net::SseEvent> events;
  bool saw_running = false;
  const auto deadline = Clock::now() + 10s;
  while (!saw_running && Clock::now() < deadline) {
    auto piece = net::RunBlocking(client_io_.context(), (*opened)->Next());
    ASSERT_TRUE(piece.ok());
    ASSERT_TRUE(piece->has_value());
    parser.Feed(**piece, events);
    for (const auto& e : events) {
      if (wire::IsStateEvent(e) && json::parse(e.data)["running"].get<int>() > 0) {
        saw_running = true;
      }
    }
  }
  EXPECT_TRUE(saw_running);
  // Close the stream on the client's io threads.
  net::RunBlocking(client_io_.context(),
                   [](std::unique_ptr<net::ClientStream> gone) -> asio::awaitable<int> {
                     gone.reset();
                     co_return 0;
                   }(std::move(*opened)));
  ASSERT_EQ(work.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(work.get().status, 200);

  Reply stats = Call(Req(0, "GET", "/gimbal/stats"));
  ASSERT_EQ(stats.status, 200);
  auto counts = ParseRoutingStatsJson(stats.body, "stats");
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->sources, 2);
  double src0 = 0, src1 = 0;
  for (int l = 0; l < counts->layers; ++l) {
    for (int x = 0; x < counts->experts; ++x) {
      src0 += counts->At(l, 0, x);
      src1 += counts->At(l, 1, x);
    }
  }
  EXPECT_GT(src0, 0);
  EXPECT_EQ(src1, 0);  // engine 1 ran nothing
}

// Polls `f` until it returns true or 10 s passed.
template <typename F>
bool Eventually(F f) {
  const auto deadline = Clock::now() + 10s;
  while (!f()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

TEST_F(EngineServerTest, ClientClosingAStreamCancelsTheRequest) {
  StartService(1.0);  // real time: 6000 tokens take far longer than this test waits
  auto req = Req(0, "POST", "/v1/completions",
                 json{{"prompt", "Hello"}, {"max_tokens", 6000}, {"stream", true}}.dump());
  const bool first_event = net::RunBlocking(client_io_.context(), [&]() -> asio::awaitable<bool> {
    auto s = co_await client()->Open(std::move(req));
    if (!s.ok() || (*s)->status() != 200) co_return false;
    auto piece = co_await (*s)->Next();
    co_return piece.ok() && piece.value() && piece.value()->find("data: ") == 0;
  }());  // the stream is dropped unfinished here: its connection closes
  ASSERT_TRUE(first_event);
  EXPECT_TRUE(Eventually([&] { return Metrics(0)["gimbal:aborted_requests_total"] == 1; }));
  EXPECT_EQ(Metrics(0)["vllm:request_success_total"], 0);
}

TEST_F(EngineServerTest, ClientLeavingANonStreamingRequestCancelsIt) {
  StartService(1.0);
  const std::string body = json{{"prompt", "Hello"}, {"max_tokens", 6000}}.dump();
  asio::io_context ctx;
  asio::ip::tcp::socket sock(ctx);
  sock.connect({asio::ip::make_address("127.0.0.1"), svc_->port(0)});
  asio::write(sock, asio::buffer("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body));
  ASSERT_TRUE(Eventually([&] { return Metrics(0)["vllm:num_requests_running"] == 1; }));
  sock.close();  // nothing of the answer was written yet
  EXPECT_TRUE(Eventually([&] { return Metrics(0)["gimbal:aborted_requests_total"] == 1; }));
  EXPECT_EQ(Metrics(0)["vllm:request_success_total"], 0);
}

// The rank a completion's id names ("cmpl-<rank>-<n>").
int RankOfId(const std::string& body) {
  const std::string id = json::parse(body)["id"];
  const size_t a = id.find('-') + 1;
  return std::stoi(id.substr(a, id.find('-', a) - a));
}

// vLLM's external load balancing: an API server per DP rank (`--data-parallel-rank k`), each
// publishing only its own engine. The ranks still share one cluster.
TEST_F(EngineServerTest, EachRankHasItsOwnPortAndOnlyItsOwnSeries) {
  StartService(0.01, 0, "", /*dp=*/4);
  ASSERT_EQ(svc_->engines(), 4);
  EXPECT_EQ(svc_->servers(), 4);
  std::set<uint16_t> ports;
  for (int k = 0; k < 4; ++k) ports.insert(svc_->port(k));
  EXPECT_EQ(ports.size(), 4u);
  EXPECT_THROW(svc_->port(4), std::out_of_range);
  EXPECT_THROW(svc_->port(-1), std::out_of_range);
  for (int k = 0; k < 4; ++k) {
    std::map<std::string, int> per_name;
    EXPECT_EQ(EngineLabels(k, &per_name), std::set<std::string>{std::to_string(k)}) << k;
    for (const char* name : {"vllm:num_requests_running", "vllm:num_requests_waiting",
                             "vllm:kv_cache_usage_perc", "vllm:cache_config_info",
                             "gimbal:prefill_pending_tokens", "vllm:request_success_total"}) {
      EXPECT_EQ(per_name[name], 1) << name << " on rank " << k;
    }
  }
  for (int k = 0; k < 4; ++k) {
    Reply r = Call(Req(k, "POST", "/v1/completions", R"({"prompt":"hello","max_tokens":2})"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(RankOfId(r.body), k);
    for (int j = 0; j < 4; ++j) {  // ranks 0..k have served one each, the others none
      EXPECT_EQ(Metrics(j)["vllm:request_success_total"], j <= k ? 1 : 0) << k << " " << j;
    }
    Reply st = Call(Req(k, "GET", "/gimbal/state"));
    ASSERT_EQ(st.status, 200);
    EXPECT_EQ(json::parse(st.body)["engine"], k);
  }
}

// vLLM's hybrid load balancing: an API server per node, fronting that node's ranks.
TEST_F(EngineServerTest, ServersOfSeveralRanksBalanceOverTheirOwnRanks) {
  StartService(0.2, 0, "", /*dp=*/4, /*ranks_per_server=*/2);
  ASSERT_EQ(svc_->servers(), 2);
  EXPECT_EQ(svc_->port(0), svc_->port(1));
  EXPECT_EQ(svc_->port(2), svc_->port(3));
  EXPECT_NE(svc_->port(0), svc_->port(2));
  std::map<std::string, int> per_name;
  EXPECT_EQ(EngineLabels(2, &per_name), (std::set<std::string>{"2", "3"}));
  EXPECT_EQ(per_name["vllm:num_requests_running"], 2);
  EXPECT_EQ(per_name["vllm:cache_config_info"], 2);
  EXPECT_EQ(EngineLabels(0), (std::set<std::string>{"0", "1"}));
  // One engine's state protocol does not describe two: 404, so a router reads /metrics.
  EXPECT_EQ(Call(Req(2, "GET", "/gimbal/state")).status, 404);
  EXPECT_EQ(Call(Req(2, "GET", "/gimbal/state/stream")).status, 404);

  // Concurrent requests spread over the server's two ranks, and only those.
  const std::string body = json{{"prompt", std::string(400, 'a')}, {"max_tokens", 20}}.dump();
  std::vector<std::future<Reply>> burst;
  for (int i = 0; i < 8; ++i) burst.push_back(CallAsync(Req(2, "POST", "/v1/completions", body)));
  std::map<int, int> served;
  for (auto& f : burst) {
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    Reply r = f.get();
    ASSERT_EQ(r.status, 200) << r.body;
    ++served[RankOfId(r.body)];
  }
  EXPECT_EQ(served.size(), 2u);
  EXPECT_GT(served[2], 0);
  EXPECT_GT(served[3], 0);
  // One at a time (nothing in flight), the ranks take turns.
  std::vector<int> turns;
  for (int i = 0; i < 4; ++i) {
    Reply r = Call(Req(3, "POST", "/v1/completions", R"({"prompt":"x","max_tokens":1})"));
    ASSERT_EQ(r.status, 200) << r.body;
    turns.push_back(RankOfId(r.body));
  }
  EXPECT_NE(turns[0], turns[1]);
  EXPECT_EQ(turns[0], turns[2]);
  EXPECT_EQ(turns[1], turns[3]);
  EXPECT_EQ(Metrics(2)["vllm:request_success_total"] + Metrics(3)["vllm:request_success_total"],
            12);
  EXPECT_EQ(Metrics(0)["vllm:request_success_total"], 0);
  EXPECT_EQ(Metrics(1)["vllm:request_success_total"], 0);
}

TEST(EngineServiceLayout, RanksPerServerMustDivideTheRanks) {
  auto spec = ClusterFromCatalog("qwen3-30b-a3b", "h100-sxm", "hgx-8gpu", 4);
  ASSERT_TRUE(spec.ok());
  for (int bad : {0, 3, 8}) {
    EngineServiceOptions o;
    o.emulator.cluster = *spec;
    o.port = 0;
    o.ranks_per_server = bad;
    auto svc = EngineService::Start(o);
    ASSERT_FALSE(svc.ok()) << bad;
    EXPECT_EQ(svc.status().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(svc.status().message().find("ranks"), std::string::npos) << svc.status().message();
  }
}

}  // namespace
}  // namespace gimbal::engine
