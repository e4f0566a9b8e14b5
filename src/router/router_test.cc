// The router end to end on loopback: fake vLLM backends, the router, and an HTTP client.
// Every loop is bounded in count and time; only 127.0.0.1 is used.
#include "router/router.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/blocking.h"
#include "net/eventually.h"
#include "net/http_client.h"
#include "net/prometheus_parser.h"
#include "testing/fake_vllm.h"

namespace gimbal::router {
namespace {

namespace asio = boost::asio;
using gimbal::testing::FakeVllm;
using gimbal::testing::FakeVllmOptions;
using nlohmann::json;
using namespace std::chrono_literals;

// Picks the healthy engine with the fewest router in-flight requests (lowest index on ties).
class FewestInflight : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest&, std::span<const EngineView> engines, Rng&) const override {
    int best = -1;
    for (int i = 0; i < static_cast<int>(engines.size()); ++i) {
      if (!engines[i].healthy) continue;
      if (best < 0 || engines[i].inflight < engines[best].inflight) best = i;
    }
    return best;
  }
  std::string name() const override { return "test_fewest_inflight"; }
};

// Picks engine 0 and remembers the last request's class hint.
class RecordsClassHint : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest& req, std::span<const EngineView>, Rng&) const override {
    last_hint = req.class_hint;
    return 0;
  }
  std::string name() const override { return "test_records_class_hint"; }
  mutable std::atomic<int> last_hint{-2};
};

// Key = arrival + 1 s per prompt token: long prompts get large priorities.
class ByPromptLength : public QueuePolicy {
 public:
  double Key(const QueueEntry& e) const override {
    return e.arrival + static_cast<double>(e.prompt_tokens);
  }
  std::string name() const override { return "test_by_prompt"; }
};

struct Reply {
  int status = 0;
  net::Headers headers;
  std::string body;
  std::vector<std::string> pieces;
  bool ok = false;  // transport-level success
};

class RouterTest : public ::testing::Test {
 protected:
  void TearDown() override {
    router_.reset();
    client_.reset();
    io_.Stop();
    backends_.clear();
  }

  void AddBackends(int n, FakeVllmOptions o = {}) {
    for (int i = 0; i < n; ++i) {
      backends_.push_back(std::make_unique<FakeVllm>(o));
      backends_.back()->Start();
    }
  }

  RouterConfig BaseConfig() {
    RouterConfig c;
    c.address = "127.0.0.1";
    c.port = 0;
    c.threads = 4;
    c.scrape_interval_s = 0.05;
    c.health_interval_s = 0.05;
    c.health_timeout_s = 0.5;
    c.failures_to_eject = 2;
    c.successes_to_readmit = 1;
    c.body_limit_bytes = 8192;
    c.read_timeout_s = 0.3;
    c.admin_token = "sesame";
    c.drain_timeout_s = 5;
    for (const auto& b : backends_) AddBackend(c, b->url(), "test-model");
    return c;
  }

  void StartRouter(RouterConfig c, RouterDeps deps = {}) {
    if (!deps.dispatch_policy && c.dispatch_policy == "gimbal") {
      deps.dispatch_policy = std::make_shared<FewestInflight>();
    }
    auto r = Router::Create(std::move(c), std::move(deps));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    router_ = std::move(r).value();
    ASSERT_TRUE(router_->Start().ok());
    io_.Start();
    client_ = std::make_unique<net::HttpClient>(io_.context());
  }

  Reply Call(const std::string& method, const std::string& target, const std::string& body = "",
             std::string content_type = "application/json",
             std::map<std::string, std::string> headers = {}) {
    net::ClientRequest req;
    req.method = method;
    req.host = "127.0.0.1";
    req.port = router_->port();
    req.target = target;
    req.body = body;
    if (!content_type.empty()) req.headers.Set("Content-Type", content_type);
    for (auto& [k, v] : headers) req.headers.Set(k, v);
    return net::RunBlocking(io_.context(), [&]() -> asio::awaitable<Reply> {
      Reply out;
      auto s = co_await client_->Open(std::move(req));
      if (!s.ok()) co_return out;
      out.status = s.value()->status();
      out.headers = s.value()->headers();
      for (;;) {
        auto p = co_await s.value()->Next();
        if (!p.ok()) co_return out;
        if (!p.value()) break;
        out.body += *p.value();
        out.pieces.push_back(*p.value());
      }
      out.ok = true;
      co_return out;
    }());
  }

  Reply Complete(bool stream, const std::string& model = "test-model") {
    json b = {{"model", model},
              {"prompt", "Say hello to the world, please."},
              {"max_tokens", 5},
              {"stream", stream}};
    return Call("POST", "/v1/completions", b.dump());
  }

  double Metric(const std::string& name, const std::string& label = "",
                const std::string& value = "") {
    auto page = net::ParsePrometheusText(router_->MetricsText());
    double sum = 0;
    for (const auto& s : page.samples) {
      if (s.name == name && (label.empty() || s.Label(label) == value)) sum += s.value;
    }
    return sum;
  }

  // The metric once it equals `want`, or its value after a bounded wait (1 s): the router counts
  // an outcome just after the last byte left, so the client can be a moment ahead.
  double MetricSettled(double want, const std::string& name, const std::string& label = "",
                       const std::string& value = "") {
    return testutil::EventuallyEquals([&] { return Metric(name, label, value); }, want, 1s);
  }

  // Polls the metric until it equals `want` or 10 s passed (generous: only a failure waits it
  // out); returns its last value.
  double WaitForMetric(double want, const std::string& name, const std::string& label = "",
                       const std::string& value = "") {
    return testutil::EventuallyEquals([&] { return Metric(name, label, value); }, want);
  }

  // Waits (bounded, 10 s: only a failure waits it out) until every engine has a snapshot.
  void WaitForSnapshots() {
    bool all = testutil::Eventually([&] {
      json j = json::parse(router_->EnginesJson());
      for (const auto& e : j["engines"]) {
        if (e["snapshot"].is_null()) return false;
      }
      return true;
    });
    if (!all) FAIL() << "engines were never scraped";
  }

  std::vector<std::unique_ptr<FakeVllm>> backends_;
  net::IoRuntime io_{2};
  std::unique_ptr<Router> router_;
  std::unique_ptr<net::HttpClient> client_;
};

TEST_F(RouterTest, NonStreamingAnswerPassesThrough) {
  AddBackends(2);
  StartRouter(BaseConfig());
  Reply r = Complete(false);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["usage"]["prompt_tokens"], 10);
  EXPECT_FALSE(r.headers.Get("X-Gimbal-Engine").empty());
  EXPECT_EQ(MetricSettled(1, "gimbal_router_requests_total", "outcome", "ok"), 1);
}

TEST_F(RouterTest, TheEngineGetsTheRequestsFieldsItNeedsAndNoOthers) {
  AddBackends(1);
  StartRouter(BaseConfig());
  for (const bool stream : {false, true}) {
    json b = {{"model", "test-model"}, {"prompt", "hi"}, {"max_tokens", 1}, {"stream", stream}};
    Reply r = Call("POST", "/v1/completions", b.dump(), "application/json",
                   {{"Authorization", "Bearer k"},
                    {"X-Request-Id", "req-7"},
                    {"Cookie", "session=secret"},
                    {"Accept", "*/*"}});
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 200);
    const net::Headers got = backends_[0]->last_headers();
    EXPECT_EQ(got.Get("Content-Type"), "application/json");
    EXPECT_EQ(got.Get("Accept"), stream ? "text/event-stream" : "application/json");
    EXPECT_EQ(got.Get("Authorization"), "Bearer k");
    EXPECT_EQ(got.Get("X-Request-Id"), "req-7");
    EXPECT_FALSE(got.Has("Cookie"));
    EXPECT_FALSE(got.Get("Host").empty());
    EXPECT_EQ(got.Get("Content-Length"), std::to_string(b.dump().size()));
    int accepts = 0;
    for (const auto& [k, v] : got.items()) accepts += net::EqualsIgnoreCase(k, "Accept") ? 1 : 0;
    EXPECT_EQ(accepts, 1) << "the client's own Accept is not passed on beside the router's";
  }
}

TEST_F(RouterTest, StreamChunksArriveInOrderAndUnmodified) {
  FakeVllmOptions o;
  o.chunks = 12;
  o.chunk_delay_ms = 20;  // apart enough to arrive in pieces on a loaded machine
  AddBackends(2, o);
  StartRouter(BaseConfig());
  for (int i = 0; i < 4; ++i) {
    Reply r = Complete(true);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers.Get("Content-Type"), "text/event-stream");
    EXPECT_EQ(r.body, FakeVllm::ExpectedStream(12));
    EXPECT_GE(r.pieces.size(), 3u);  // passed through as produced, not buffered whole
  }
  EXPECT_EQ(MetricSettled(4, "gimbal_router_requests_total", "outcome", "ok"), 4);
  EXPECT_EQ(Metric("gimbal_router_ttft_seconds_count"), 4);
}

TEST_F(RouterTest, ChatCompletionsAndModels) {
  AddBackends(1);
  StartRouter(BaseConfig());
  json b = {{"model", "test-model"},
            {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  Reply r = Call("POST", "/v1/chat/completions", b.dump());
  EXPECT_EQ(r.status, 200);
  Reply m = Call("GET", "/v1/models", "", "");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(json::parse(m.body)["data"][0]["id"], "test-model");
  EXPECT_EQ(Call("GET", "/health", "", "").status, 200);
}

TEST_F(RouterTest, DispatchFollowsEngineState) {
  AddBackends(2);
  backends_[0]->SetLoad(/*waiting=*/60, /*running=*/8, 0.5);
  backends_[1]->SetLoad(0, 1, 0.1);
  RouterConfig c = BaseConfig();
  c.dispatch_policy = "vllm";
  StartRouter(c);
  WaitForSnapshots();
  std::map<std::string, int> by_engine;
  for (int i = 0; i < 40; ++i) {
    Reply r = Complete(false);
    ASSERT_EQ(r.status, 200);
    by_engine[std::string(r.headers.Get("X-Gimbal-Engine"))]++;
  }
  EXPECT_GE(by_engine["e1"], 36) << "busy e0 got " << by_engine["e0"];
  EXPECT_EQ(Metric("gimbal_router_dispatches_total", "engine", "e1"), by_engine["e1"]);
}

// Waits (bounded) until every engine's snapshot is a pushed one.
bool WaitForPushed(Router& r) {
  return testutil::Eventually(
      [&] {
        json j = json::parse(r.EnginesJson());
        for (const auto& e : j["engines"]) {
          if (e["snapshot"].is_null() || !e["snapshot"]["pushed"]) return false;
        }
        return true;
      },
      3s);
}

TEST_F(RouterTest, DispatchFollowsPushedStateOverScrapedMetrics) {
  FakeVllmOptions o;
  o.push_state = true;
  AddBackends(2, o);
  // /metrics says e1 is busy; the pushed state, which is fresher, says e0 is.
  backends_[0]->SetLoad(0, 1, 0.1);
  backends_[1]->SetLoad(60, 8, 0.5);
  backends_[0]->SetPushedLoad(/*waiting=*/60, /*running=*/8, /*prefill_pending_tokens=*/50000);
  backends_[1]->SetPushedLoad(0, 1, 0);
  RouterConfig c = BaseConfig();
  c.dispatch_policy = "vllm";
  c.state_source = StateSource::kAuto;
  StartRouter(c);
  ASSERT_TRUE(WaitForPushed(*router_)) << router_->EnginesJson();
  std::map<std::string, int> by_engine;
  for (int i = 0; i < 40; ++i) {
    Reply r = Complete(false);
    ASSERT_EQ(r.status, 200);
    by_engine[std::string(r.headers.Get("X-Gimbal-Engine"))]++;
  }
  EXPECT_GE(by_engine["e1"], 36) << "busy e0 got " << by_engine["e0"];
  json j = json::parse(router_->EnginesJson());
  EXPECT_EQ(j["engines"][0]["snapshot"]["prefill_pending_tokens"], 50000);
  EXPECT_EQ(j["engines"][0]["snapshot"]["waiting"], 60);
  EXPECT_GT(Metric("gimbal_router_pushed_states_total", "engine", "e0"), 0);
}

TEST_F(RouterTest, MetricsSourceIgnoresPushedStateAndVllmEnginesFallBackToScraping) {
  FakeVllmOptions pushing;
  pushing.push_state = true;
  AddBackends(1, pushing);
  AddBackends(1);  // a vLLM-like engine: /gimbal/state/stream is 404
  backends_[0]->SetLoad(60, 8, 0.5);
  backends_[0]->SetPushedLoad(0, 0, 0);
  backends_[1]->SetLoad(0, 1, 0.1);
  RouterConfig c = BaseConfig();
  c.dispatch_policy = "vllm";
  c.backends[0].state = StateSource::kMetrics;  // e0: scraped only, even though it pushes
  StartRouter(c);
  WaitForSnapshots();
  std::map<std::string, int> by_engine;
  for (int i = 0; i < 20; ++i) {
    Reply r = Complete(false);
    ASSERT_EQ(r.status, 200);
    by_engine[std::string(r.headers.Get("X-Gimbal-Engine"))]++;
  }
  EXPECT_GE(by_engine["e1"], 18) << "e0 (busy by /metrics) got " << by_engine["e0"];
  EXPECT_EQ(backends_[0]->state_streams(), 0);
  json j = json::parse(router_->EnginesJson());
  EXPECT_FALSE(j["engines"][0]["snapshot"]["pushed"]);
  EXPECT_FALSE(j["engines"][1]["snapshot"]["pushed"]);
  EXPECT_EQ(Metric("gimbal_router_pushed_states_total"), 0);
}

TEST_F(RouterTest, FreshPushedStateStopsScrapingWithoutBusyLooping) {
  FakeVllmOptions o;
  o.push_state = true;
  AddBackends(2, o);
  StartRouter(BaseConfig());
  ASSERT_TRUE(WaitForPushed(*router_));
  std::this_thread::sleep_for(100ms);  // a scrape begun before the first push has landed
  const int scrapes = backends_[0]->metrics_scrapes() + backends_[1]->metrics_scrapes();
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  std::this_thread::sleep_for(500ms);
  getrusage(RUSAGE_SELF, &after);
  auto cpu = [](const rusage& r) {
    return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
  };
  // Idle but for 2 x 50 pushes and health checks: far from a core (a skipped scrape that forgot
  // to pause spins one).
  EXPECT_LT(cpu(after) - cpu(before), 0.25);
  EXPECT_EQ(backends_[0]->metrics_scrapes() + backends_[1]->metrics_scrapes(), scrapes);
}

TEST_F(RouterTest, ScrapingResumesWhenPushedStateStops) {
  FakeVllmOptions o;
  o.push_state = true;
  AddBackends(1, o);
  backends_[0]->SetLoad(7, 3, 0.2);
  backends_[0]->SetPushedLoad(1, 1, 0);
  RouterConfig c = BaseConfig();
  c.push_stale_s = 0.2;
  StartRouter(c);
  ASSERT_TRUE(WaitForPushed(*router_));
  EXPECT_EQ(json::parse(router_->EnginesJson())["engines"][0]["snapshot"]["waiting"], 1);
  backends_[0]->StopPushing();
  json snap;
  testutil::Eventually(
      [&] {
        snap = json::parse(router_->EnginesJson())["engines"][0]["snapshot"];
        return !snap["pushed"];
      },
      3s);
  EXPECT_FALSE(snap["pushed"]) << snap;
  EXPECT_EQ(snap["waiting"], 7);
  EXPECT_EQ(snap["running"], 3);
}

TEST_F(RouterTest, KilledBackendStreamsEndWithErrorAndNewRequestsGoElsewhere) {
  FakeVllmOptions o;
  o.chunks = 100;  // 1 s streams: still running when every one has begun, however slow the machine
  o.chunk_delay_ms = 10;
  AddBackends(2, o);
  StartRouter(BaseConfig());
  constexpr int kStreams = 6;
  std::vector<Reply> replies(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] { replies[i] = Complete(true); });
  }
  // Every stream has forwarded its first event (its time to first token is counted), so those on
  // e0 are mid-stream when it dies.
  EXPECT_TRUE(
      testutil::Eventually([&] { return Metric("gimbal_router_ttft_seconds_count") >= kStreams; }));
  backends_[0]->Kill();
  for (auto& t : threads) t.join();
  int complete = 0, errored = 0;
  for (const auto& r : replies) {
    ASSERT_TRUE(r.ok);  // the router always ends the stream properly
    ASSERT_EQ(r.status, 200);
    if (r.body == FakeVllm::ExpectedStream(100)) {
      ++complete;
    } else {
      ++errored;
      EXPECT_NE(r.body.find("\"error\""), std::string::npos) << r.body;
      EXPECT_NE(r.body.find("failed mid-stream"), std::string::npos);
      EXPECT_EQ(r.body.substr(r.body.size() - 14), "data: [DONE]\n\n");
    }
  }
  EXPECT_GE(errored, 1);  // FewestInflight spread the streams over both engines
  EXPECT_GE(complete, 1);
  // New requests right after the kill, before and after ejection: all answered by e1.
  int answered = 0;
  for (int i = 0; i < 8; ++i) {
    Reply r = Complete(false);
    answered += r.status == 200 && r.headers.Get("X-Gimbal-Engine") == "e1";
  }
  EXPECT_EQ(answered, 8);
  // Nothing silently dropped: every request the router saw has exactly one outcome.
  const int sent = kStreams + 8;
  EXPECT_EQ(MetricSettled(sent, "gimbal_router_requests_total"), sent);
  EXPECT_EQ(Metric("gimbal_router_requests_total", "outcome", "ok"), complete + answered);
  EXPECT_EQ(Metric("gimbal_router_requests_total", "outcome", "stream_error"), errored);
}

using testutil::Eventually;

TEST_F(RouterTest, ClientClosingAStreamCancelsTheUpstreamRequest) {
  FakeVllmOptions o;
  o.chunks = 2000;
  o.chunk_delay_ms = 20;  // 40 s if it ran to the end
  AddBackends(1, o);
  StartRouter(BaseConfig());
  net::ClientRequest req;
  req.method = "POST";
  req.host = "127.0.0.1";
  req.port = router_->port();
  req.target = "/v1/completions";
  req.headers.Set("Content-Type", "application/json");
  req.body =
      json{{"model", "test-model"}, {"prompt", "Hello"}, {"max_tokens", 2000}, {"stream", true}}
          .dump();
  const bool first_event = net::RunBlocking(io_.context(), [&]() -> asio::awaitable<bool> {
    auto s = co_await client_->Open(req);
    if (!s.ok() || (*s)->status() != 200) co_return false;
    auto piece = co_await (*s)->Next();
    co_return piece.ok() && piece.value() && piece.value()->find("data: ") == 0;
  }());  // the stream is dropped unfinished here: its connection closes
  ASSERT_TRUE(first_event);
  EXPECT_EQ(WaitForMetric(1, "gimbal_router_requests_total", "outcome", "cancelled"), 1);
  EXPECT_EQ(WaitForMetric(0, "gimbal_router_engine_inflight", "engine", "e0"), 0);
  EXPECT_EQ(Metric("gimbal_router_engine_reserved_prefill_tokens", "engine", "e0"), 0);
  // The router closed the upstream connection, so the engine saw its client go.
  EXPECT_TRUE(Eventually([&] { return backends_[0]->abandoned() == 1; }));
  EXPECT_EQ(Metric("gimbal_router_requests_total"), 1);           // one outcome, nothing else
  EXPECT_EQ(Metric("gimbal_router_upstream_failures_total"), 0);  // not the engine's fault
  Reply r = Complete(false);                                      // the engine stays admitted
  EXPECT_EQ(r.status, 200);
}

TEST_F(RouterTest, ClientLeavingANonStreamingRequestCancelsTheUpstreamRequest) {
  FakeVllmOptions o;
  o.first_chunk_delay_ms = 60000;  // the answer would come after a minute
  AddBackends(1, o);
  StartRouter(BaseConfig());
  const std::string body =
      json{{"model", "test-model"}, {"prompt", "Hello"}, {"max_tokens", 4}}.dump();
  asio::io_context ctx;
  asio::ip::tcp::socket sock(ctx);
  sock.connect({asio::ip::make_address("127.0.0.1"), router_->port()});
  asio::write(sock, asio::buffer("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body));
  ASSERT_TRUE(Eventually([&] { return backends_[0]->completions() == 1; }));
  EXPECT_EQ(Metric("gimbal_router_engine_inflight", "engine", "e0"), 1);
  sock.close();  // waiting for the answer, nothing written yet
  EXPECT_EQ(WaitForMetric(1, "gimbal_router_requests_total", "outcome", "cancelled"), 1);
  EXPECT_EQ(WaitForMetric(0, "gimbal_router_engine_inflight", "engine", "e0"), 0);
  EXPECT_TRUE(Eventually([&] { return backends_[0]->abandoned() == 1; }));
  EXPECT_EQ(Metric("gimbal_router_upstream_failures_total"), 0);
}

TEST_F(RouterTest, BadRequestsGetTheRightStatusAndRouterKeepsServing) {
  AddBackends(1);
  StartRouter(BaseConfig());
  auto error_of = [](const Reply& r) { return json::parse(r.body)["error"]; };
  Reply bad_json = Call("POST", "/v1/completions", "{\"model\": ");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(error_of(bad_json)["type"], "invalid_request_error");
  EXPECT_EQ(error_of(bad_json)["code"], 400);
  EXPECT_EQ(Call("POST", "/v1/completions", "{}", "text/plain").status, 415);
  Reply big = Call("POST", "/v1/completions", std::string(20000, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(error_of(big)["code"], 413);
  Reply unknown = Complete(false, "no-such-model");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(error_of(unknown)["message"].get<std::string>().find("no-such-model"),
            std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/completions").status, 405);
  EXPECT_EQ(Call("GET", "/nowhere").status, 404);
  // A slow client: header sent, body never completes.
  {
    asio::io_context ctx;
    asio::ip::tcp::socket s(ctx);
    s.connect({asio::ip::make_address("127.0.0.1"), router_->port()});
    asio::write(
        s, asio::buffer(std::string("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                    "application/json\r\nContent-Length: 500\r\n\r\n{\"model\"")));
    std::string got;
    char buf[1024];
    boost::system::error_code ec;
    for (int i = 0; i < 100 && !ec; ++i) got.append(buf, s.read_some(asio::buffer(buf), ec));
    EXPECT_NE(got.find("HTTP/1.1 408"), std::string::npos) << got;
  }
  EXPECT_EQ(Complete(false).status, 200);
  EXPECT_EQ(Complete(true).status, 200);
}

// A request's class hint: the x-gimbal-class header, else the body's gimbal_traffic_class, else the
// tenant map by `user`; none otherwise. A malformed header is the client's error.
TEST_F(RouterTest, ClassHintsReachDispatch) {
  AddBackends(1);
  RouterConfig c = BaseConfig();
  c.tenant_classes = {{"alice", 2}, {"bob", 5}};
  auto policy = std::make_shared<RecordsClassHint>();
  RouterDeps deps;
  deps.dispatch_policy = policy;
  StartRouter(c, deps);
  auto post = [&](const json& body, std::map<std::string, std::string> headers = {}) {
    Reply r = Call("POST", "/v1/completions", body.dump(), "application/json", std::move(headers));
    EXPECT_EQ(r.status, 200) << r.body;
    return policy->last_hint.load();
  };
  const json base = {{"model", "test-model"}, {"prompt", "hello"}, {"max_tokens", 2}};
  EXPECT_EQ(post(base), -1);
  json alice = base;
  alice["user"] = "alice";
  EXPECT_EQ(post(alice), 2);
  json carol = base;
  carol["user"] = "carol";
  EXPECT_EQ(post(carol), -1);
  json tagged = alice;
  tagged["gimbal_traffic_class"] = 3;
  EXPECT_EQ(post(tagged), 3);
  EXPECT_EQ(post(tagged, {{"x-gimbal-class", "7"}}), 7);
  for (const char* bad : {"x", "-1", "7x", "1e3", "99999999999"}) {
    Reply r =
        Call("POST", "/v1/completions", base.dump(), "application/json", {{"x-gimbal-class", bad}});
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("x-gimbal-class"), std::string::npos) << r.body;
  }
}

TEST_F(RouterTest, AdminEndpointsNeedTheToken) {
  AddBackends(1);
  StartRouter(BaseConfig());
  EXPECT_EQ(Call("GET", "/admin/engines", "", "").status, 401);
  EXPECT_EQ(Call("GET", "/admin/engines", "", "", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(Call("GET", "/admin/engines", "", "", {{"Authorization", "sesame"}}).status, 401);
  EXPECT_EQ(Call("POST", "/admin/placement", "{}", "application/json").status, 401);
  Reply ok = Call("GET", "/admin/engines", "", "", {{"Authorization", "Bearer sesame"}});
  ASSERT_EQ(ok.status, 200);
  EXPECT_EQ(json::parse(ok.body)["engines"][0]["name"], "e0");
  Reply placed = Call("POST", "/admin/placement", R"({"layers":[]})", "application/json",
                      {{"Authorization", "Bearer sesame"}});
  EXPECT_EQ(placed.status, 202);
  EXPECT_EQ(Complete(false).status, 200);
}

TEST_F(RouterTest, AdminBearerSchemeIsCaseInsensitiveButTheTokenIsNot) {
  AddBackends(1);
  StartRouter(BaseConfig());
  auto status = [&](const std::string& authorization) {
    return Call("GET", "/admin/engines", "", "", {{"Authorization", authorization}}).status;
  };
  // RFC 7235: the auth scheme is case-insensitive.
  for (const char* ok :
       {"Bearer sesame", "bearer sesame", "BEARER sesame", "bEaReR sesame", "Bearer  sesame"}) {
    EXPECT_EQ(status(ok), 200) << ok;
  }
  for (const char* bad : {"Bearer SESAME", "Bearer sesam", "Bearer sesame2", "Bearersesame",
                          "Basic sesame", "Bearer", "Bearer ", "sesame", "xBearer sesame"}) {
    EXPECT_EQ(status(bad), 401) << bad;
  }
}

TEST_F(RouterTest, ImplausibleScrapedCountsAreWarningsNotSignals) {
  AddBackends(2);
  // e0 claims a hugely negative queue; the vllm policy would send it everything if believed.
  backends_[0]->SetLoad(/*waiting=*/-1000000000, /*running=*/100, 0.5);
  backends_[1]->SetLoad(0, 1, 0.1);
  RouterConfig c = BaseConfig();
  c.dispatch_policy = "vllm";
  StartRouter(c);
  WaitForSnapshots();
  EXPECT_TRUE(testutil::Eventually(
      [&] { return Metric("gimbal_router_scrape_warnings_total", "engine", "e0") > 0; }, 3s));
  EXPECT_EQ(Metric("gimbal_router_scrape_warnings_total", "engine", "e1"), 0);
  json j = json::parse(router_->EnginesJson());
  EXPECT_EQ(j["engines"][0]["snapshot"]["waiting"], 0);  // dropped: the default kept
  EXPECT_EQ(j["engines"][0]["snapshot"]["running"], 100);
  std::map<std::string, int> by_engine;
  for (int i = 0; i < 20; ++i) {
    Reply r = Complete(false);
    ASSERT_EQ(r.status, 200);
    by_engine[std::string(r.headers.Get("X-Gimbal-Engine"))]++;
  }
  EXPECT_GE(by_engine["e1"], 16) << "e0 got " << by_engine["e0"];
}

TEST_F(RouterTest, ImplausiblePushedStateIsAWarningNotASignal) {
  FakeVllmOptions o;
  o.push_state = true;
  AddBackends(1, o);
  backends_[0]->SetPushedLoad(/*waiting=*/3, /*running=*/2, /*prefill_pending_tokens=*/-7);
  RouterConfig c = BaseConfig();
  c.state_source = StateSource::kPush;
  StartRouter(c);
  ASSERT_TRUE(WaitForPushed(*router_)) << router_->EnginesJson();
  EXPECT_TRUE(testutil::Eventually(
      [&] { return Metric("gimbal_router_scrape_warnings_total", "engine", "e0") > 0; }, 3s));
  json j = json::parse(router_->EnginesJson());
  EXPECT_EQ(j["engines"][0]["snapshot"]["waiting"], 3);
  EXPECT_EQ(j["engines"][0]["snapshot"]["prefill_pending_tokens"], -1);  // never read: default
}

// A monitor loop that throws is logged and started again: here the clock, read at every scrape,
// throws once, and the engine's later state still reaches the table.
TEST_F(RouterTest, AMonitorLoopThatThrowsIsRestarted) {
  AddBackends(1);
  backends_[0]->SetLoad(1, 1, 0.1);
  RouterConfig c = BaseConfig();
  c.state_source = StateSource::kMetrics;  // only the scraper reads the clock
  struct Faults {
    std::atomic<int> armed{0};
    std::atomic<int> thrown{0};
  };
  auto faults = std::make_shared<Faults>();  // the router may read the clock until it is gone
  const auto t0 = std::chrono::steady_clock::now();
  RouterDeps deps;
  deps.clock = [faults, t0] {
    if (faults->armed.exchange(0) > 0) {
      ++faults->thrown;
      throw std::runtime_error("clock failed");
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  StartRouter(c, deps);
  WaitForSnapshots();
  faults->armed = 1;
  ASSERT_TRUE(testutil::Eventually([&] { return faults->thrown.load() == 1; }, 2s));
  backends_[0]->SetLoad(9, 2, 0.3);
  json waiting = testutil::EventuallyEquals(
      [&] { return json::parse(router_->EnginesJson())["engines"][0]["snapshot"]["waiting"]; },
      json(9), 2s);
  EXPECT_EQ(waiting, 9) << "the scraper did not come back after its loop threw";
}

TEST_F(RouterTest, SaturatedEnginesGet429WithRetryAfter) {
  FakeVllmOptions o;
  o.chunks = 100;  // a 1 s stream holds the engine's only slot
  o.chunk_delay_ms = 10;
  AddBackends(1, o);
  RouterConfig c = BaseConfig();
  c.max_inflight_per_engine = 1;
  c.retry_after_s = 2;
  StartRouter(c);
  std::thread holder([&] { EXPECT_EQ(Complete(true).status, 200); });
  EXPECT_TRUE(Eventually([&] { return backends_[0]->completions() == 1; }))
      << "the holding stream never reached the engine";
  Reply r = Complete(false);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers.Get("Retry-After"), "2");
  holder.join();
  // The slot is released just after the stream's last byte left: the client can be a moment ahead.
  EXPECT_EQ(WaitForMetric(0, "gimbal_router_engine_inflight", "engine", "e0"), 0);
  EXPECT_EQ(Complete(false).status, 200);
}

TEST_F(RouterTest, NoHealthyEngineGets503) {
  AddBackends(1);
  RouterConfig c = BaseConfig();
  StartRouter(c);
  backends_[0]->Kill();
  ASSERT_TRUE(testutil::Eventually([&] { return Call("GET", "/health", "", "").status == 503; }));
  Reply r = Complete(false);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], 503);
}

TEST_F(RouterTest, PriorityTaggingFromQueuePolicy) {
  AddBackends(1);
  RouterDeps deps;
  deps.queue_policy = std::make_shared<ByPromptLength>();
  deps.clock = [] { return 100.0; };
  StartRouter(BaseConfig(), deps);
  ASSERT_EQ(Complete(false).status, 200);
  json sent = json::parse(backends_[0]->last_body());
  ASSERT_TRUE(sent.contains("priority"));
  // 31 prompt characters at 4 per token: 8 tokens; key 100 + 8 s -> 108000 ms.
  EXPECT_EQ(sent["priority"], 108000);
}

TEST_F(RouterTest, DrainFinishesStreamsInFlight) {
  FakeVllmOptions o;
  o.chunks = 20;
  o.chunk_delay_ms = 10;
  AddBackends(1, o);
  StartRouter(BaseConfig());
  Reply r;
  std::thread t([&] { r = Complete(true); });
  // Drain only once the stream is in flight (the engine has it), however slow the build.
  EXPECT_TRUE(Eventually([&] { return backends_[0]->completions() == 1; }))
      << "the stream never reached the engine";
  EXPECT_TRUE(router_->Drain());
  t.join();
  EXPECT_EQ(r.body, FakeVllm::ExpectedStream(20));
}

}  // namespace
}  // namespace gimbal::router
