// `gimbal serve` with no backends: the router over embedded emulated engines, end to end on
// loopback (the same StartEmbeddedEngines the command calls). Bounded counts and time.
#include "router/embedded.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/blocking.h"
#include "net/eventually.h"
#include "net/http_client.h"
#include "net/io_runtime.h"
#include "net/prometheus_parser.h"
#include "router/router.h"

namespace gimbal::router {
namespace {

using testutil::Eventually;

namespace asio = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::string engine;
  std::string body;
};

Reply Post(net::IoRuntime& io, net::HttpClient& client, uint16_t port, const std::string& target,
           const json& body) {
  net::ClientRequest req;
  req.method = "POST";
  req.host = "127.0.0.1";
  req.port = port;
  req.target = target;
  req.body = body.dump();
  req.headers.Set("Content-Type", "application/json");
  return net::RunBlocking(io.context(), [&]() -> asio::awaitable<Reply> {
    Reply out;
    auto r = co_await client.Send(std::move(req));
    if (!r.ok()) co_return out;
    out.status = r->status;
    out.engine = std::string(r->headers.Get("X-Gimbal-Engine"));
    out.body = r->body;
    co_return out;
  }());
}

// A router on an ephemeral loopback port with frequent health probes, and two embedded engines at
// twenty times real speed.
RouterConfig TestConfig() {
  RouterConfig config;
  config.port = 0;
  config.threads = 2;
  config.health_interval_s = 0.05;
  return config;
}

EmbeddedEngineOptions TwoEngines() {
  EmbeddedEngineOptions eo;
  eo.dp = 2;
  eo.time_scale = 0.05;
  return eo;
}

TEST(EmbeddedEnginesTest, ServeWithoutBackendsAnswersCompletions) {
  RouterConfig config = TestConfig();
  EmbeddedEngineOptions eo = TwoEngines();
  auto engines = StartEmbeddedEngines(eo, config);
  ASSERT_TRUE(engines.ok()) << engines.status().ToString();
  ASSERT_EQ(config.backends.size(), 2u);
  EXPECT_EQ(config.queue_policy, "gimbal");  // the full Gimbal stack by default
  EXPECT_EQ((*engines)->emulator().ranks(), 2);

  auto router = Router::Create(config);
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  ASSERT_TRUE((*router)->Start().ok());

  net::IoRuntime io(1);
  io.Start();
  net::HttpClient client(io.context());
  const uint16_t port = (*router)->port();

  Reply r = Post(io, client, port, "/v1/completions",
                 {{"model", "qwen3-30b-a3b"}, {"prompt", "Hello, world"}, {"max_tokens", 8}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.engine == "dp0" || r.engine == "dp1") << r.engine;
  json j = json::parse(r.body);
  EXPECT_EQ(j["usage"]["completion_tokens"], 8) << r.body;
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");

  Reply chat = Post(io, client, port, "/v1/chat/completions",
                    {{"model", "qwen3-30b-a3b"},
                     {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                     {"max_tokens", 4},
                     {"stream", true}});
  ASSERT_EQ(chat.status, 200) << chat.body;
  EXPECT_NE(chat.body.find("chat.completion.chunk"), std::string::npos);
  EXPECT_NE(chat.body.find("data: [DONE]"), std::string::npos);

  // The router reads the engines' pushed state (bounded wait: they push at least once a second).
  const bool pushed = Eventually(
      [&] {
        json e = json::parse((*router)->EnginesJson());
        for (const auto& row : e["engines"]) {
          if (row["snapshot"].is_null() || !row["snapshot"]["pushed"].get<bool>() ||
              row["snapshot"]["kv_capacity_tokens"].get<int64_t>() <= 0) {
            return false;
          }
        }
        return true;
      },
      3s);
  EXPECT_TRUE(pushed) << (*router)->EnginesJson();

  EXPECT_TRUE((*router)->Drain());
  EXPECT_TRUE((*engines)->Shutdown(5));
  io.Stop();
}

// A prompt that extends one an engine has cached goes to that engine, whether the router learns
// the engines' caches from their KV-cache events or keeps its own record of what it sent where.
TEST(EmbeddedEnginesTest, APromptGoesWhereItsPrefixIsCached) {
  for (const bool events : {true, false}) {
    SCOPED_TRACE(events ? "KV events" : "approximate record");
    RouterConfig config = TestConfig();
    EmbeddedEngineOptions eo = TwoEngines();
    eo.kv_events = events;
    auto engines = StartEmbeddedEngines(eo, config);
    ASSERT_TRUE(engines.ok()) << engines.status().ToString();
    EXPECT_EQ(config.backends[0].kv_events.empty(), !events);
    auto router = Router::Create(config);
    ASSERT_TRUE(router.ok()) << router.status().ToString();
    ASSERT_TRUE((*router)->Start().ok());
    net::IoRuntime io(1);
    io.Start();
    net::HttpClient client(io.context());
    const uint16_t port = (*router)->port();

    // 4,000 characters at 4 per token: 1,000 tokens, 15 full blocks of the engines' 64 (vLLM
    // 0.34's default), which the router hashes in too.
    const int64_t block = (*engines)->emulator().spec().engine.block_size;
    ASSERT_EQ(block, 64);
    EXPECT_EQ(config.prefix_cache.block_tokens, block);
    const int64_t blocks = 1000 / block;
    const std::string history(4000, 'h');
    Reply first = Post(io, client, port, "/v1/completions",
                       {{"model", "qwen3-30b-a3b"}, {"prompt", history}, {"max_tokens", 4}});
    ASSERT_EQ(first.status, 200) << first.body;
    auto row_of = [&](const json& j) {
      for (const auto& row : j["engines"]) {
        if (row["name"] == first.engine) return row;
      }
      return json();
    };
    if (events) {
      // The engine's events reach the router's index (bounded wait).
      EXPECT_TRUE(Eventually(
          [&] {
            json row = row_of(json::parse((*router)->EnginesJson()));
            return row["prefix_cache"]["source"] == "events" &&
                   row["prefix_cache"]["events"]["blocks"].get<int64_t>() >= blocks;
          },
          5s))
          << (*router)->EnginesJson();
    } else {
      EXPECT_EQ(row_of(json::parse((*router)->EnginesJson()))["prefix_cache"]["source"],
                "approximate");
    }
    for (int k = 1; k <= 3; ++k) {
      Reply next = Post(io, client, port, "/v1/completions",
                        {{"model", "qwen3-30b-a3b"},
                         {"prompt", history + std::string(static_cast<size_t>(100 * k), 'x')},
                         {"max_tokens", 4}});
      ASSERT_EQ(next.status, 200) << next.body;
      EXPECT_EQ(next.engine, first.engine) << "turn " << k;
    }
    // The router's own hit-rate estimate saw the shared blocks.
    // Each later prompt holds the blocks of the history (and the x blocks of the previous turn
    // the record has, or the engine still caches).
    const std::string metrics = (*router)->MetricsText();
    const std::string key = "gimbal_router_prefix_blocks{kind=\"matched\"} ";
    const size_t at = metrics.find(key);
    ASSERT_NE(at, std::string::npos) << metrics;
    EXPECT_GE(std::stoll(metrics.substr(at + key.size())), 3 * blocks) << metrics;
    EXPECT_TRUE((*router)->Drain());
    EXPECT_TRUE((*engines)->Shutdown(5));
    io.Stop();
  }
}

// The router's admin token guards the embedded engines' own admin endpoint too: their ports are
// on loopback, but anyone there could otherwise change the placement behind the router's back.
TEST(EmbeddedEnginesTest, EnginesPlacementNeedsTheRoutersAdminToken) {
  RouterConfig config;
  config.port = 0;
  config.threads = 1;
  config.admin_token = "sesame";
  EmbeddedEngineOptions eo;
  eo.dp = 2;
  eo.time_scale = 0.05;
  eo.threads = 1;
  auto engines = StartEmbeddedEngines(eo, config);
  ASSERT_TRUE(engines.ok()) << engines.status().ToString();

  net::IoRuntime io(1);
  io.Start();
  net::HttpClient client(io.context());
  auto call = [&](const std::string& method, const std::string& body,
                  const std::string& authorization) {
    net::ClientRequest req;
    req.method = method;
    req.host = "127.0.0.1";
    req.port = (*engines)->port(1);
    req.target = "/gimbal/placement";
    req.body = body;
    if (!body.empty()) req.headers.Set("Content-Type", "application/json");
    if (!authorization.empty()) req.headers.Set("Authorization", authorization);
    return net::RunBlocking(io.context(), [&]() -> asio::awaitable<Reply> {
      Reply out;
      auto r = co_await client.Send(std::move(req));
      if (!r.ok()) co_return out;
      out.status = r->status;
      out.body = r->body;
      co_return out;
    }());
  };
  Reply current = call("GET", "", "");
  ASSERT_EQ(current.status, 200) << current.body;
  EXPECT_EQ(call("POST", current.body, "").status, 401);
  EXPECT_EQ(call("POST", current.body, "Bearer wrong").status, 401);
  Reply ok = call("POST", current.body, "Bearer sesame");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(call("POST", current.body, "bearer sesame").status, 200);
  EXPECT_TRUE((*engines)->Shutdown(5));

  // Without a router token (its /admin/* refused), the engines' endpoint is closed too: it was
  // open to any local process.
  config.admin_token.clear();
  engines = StartEmbeddedEngines(eo, config);
  ASSERT_TRUE(engines.ok()) << engines.status().ToString();
  current = call("GET", "", "");
  ASSERT_EQ(current.status, 200) << current.body;
  EXPECT_EQ(call("POST", current.body, "").status, 401);
  EXPECT_EQ(call("POST", current.body, "Bearer ").status, 401);
  EXPECT_TRUE((*engines)->Shutdown(5));
  io.Stop();
}

// Sum of the samples of `name` on a Prometheus page whose `label` is `value` (any when empty).
double Sample(const std::string& page, const std::string& name, const std::string& label = "",
              const std::string& value = "") {
  double sum = 0;
  for (const auto& s : net::ParsePrometheusText(page).samples) {
    if (s.name == name && (label.empty() || s.Label(label) == value)) sum += s.value;
  }
  return sum;
}

// The router and one real-time embedded engine (6000 output tokens take far longer than any
// wait here), and a client on its own io thread.
class EmbeddedCancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.port = 0;
    config_.threads = 2;
    config_.health_interval_s = 0.05;
    EmbeddedEngineOptions eo;
    eo.dp = 1;
    eo.time_scale = 1;
    auto engines = StartEmbeddedEngines(eo, config_);
    ASSERT_TRUE(engines.ok()) << engines.status().ToString();
    engines_ = std::move(*engines);
    auto router = Router::Create(config_);
    ASSERT_TRUE(router.ok()) << router.status().ToString();
    router_ = std::move(*router);
    ASSERT_TRUE(router_->Start().ok());
    io_.Start();
  }
  void TearDown() override {
    if (router_) {
      EXPECT_TRUE(router_->Drain());
    }
    if (engines_) {
      EXPECT_TRUE(engines_->Shutdown(5));
    }
    io_.Stop();
  }

  // Opens a long streaming completion through the router, reads its first event and drops the
  // stream unfinished, which closes the connection. True when the first event came.
  bool OpenReadFirstEventAndClose() {
    net::ClientRequest req;
    req.method = "POST";
    req.host = "127.0.0.1";
    req.port = router_->port();
    req.target = "/v1/completions";
    req.headers.Set("Content-Type", "application/json");
    req.body = json{
        {"model", "qwen3-30b-a3b"},
        {"prompt", "Hello"},
        {"max_tokens", 6000},
        {"stream",
         true}}.dump();
    return net::RunBlocking(io_.context(), [&]() -> asio::awaitable<bool> {
      auto s = co_await client_.Open(std::move(req));
      if (!s.ok() || (*s)->status() != 200) co_return false;
      auto piece = co_await (*s)->Next();
      co_return piece.ok() && piece.value() && piece.value()->find("data: ") == 0;
    }());
  }

  double RouterMetric(const std::string& name, const std::string& label, const std::string& value) {
    return Sample(router_->MetricsText(), name, label, value);
  }
  std::string EngineMetrics() {
    return net::RunBlocking(io_.context(), [&]() -> asio::awaitable<std::string> {
      net::ClientRequest m;
      m.host = "127.0.0.1";
      m.port = engines_->port(0);
      m.target = "/metrics";
      auto r = co_await client_.Send(std::move(m));
      co_return r.ok() ? r->body : std::string();
    }());
  }

  RouterConfig config_;
  std::unique_ptr<engine::EngineService> engines_;
  std::unique_ptr<Router> router_;
  net::IoRuntime io_{1};
  net::HttpClient client_{io_.context()};
};

// The router abandons the upstream request and releases its reservation; the engine sees the
// router's connection close and cancels the request.
TEST_F(EmbeddedCancelTest, ClientClosingAStreamCancelsItInRouterAndEngine) {
  ASSERT_TRUE(OpenReadFirstEventAndClose());
  EXPECT_TRUE(Eventually(
      [&] { return RouterMetric("gimbal_router_requests_total", "outcome", "cancelled") == 1; }));
  EXPECT_TRUE(Eventually(
      [&] { return RouterMetric("gimbal_router_engine_inflight", "engine", "dp0") == 0; }));
  EXPECT_EQ(RouterMetric("gimbal_router_engine_reserved_prefill_tokens", "engine", "dp0"), 0);
  EXPECT_EQ(RouterMetric("gimbal_router_requests_total", "", ""), 1);
  EXPECT_TRUE(
      Eventually([&] { return Sample(EngineMetrics(), "gimbal:aborted_requests_total") == 1; }));
  EXPECT_EQ(Sample(EngineMetrics(), "vllm:request_success_total"), 0);
}

// The cancelled request leaves the engine's batch long before its 6000 tokens: the engine stops
// spending step time on it.
TEST_F(EmbeddedCancelTest, ClientClosingAStreamStopsTheEngineComputingIt) {
  ASSERT_TRUE(OpenReadFirstEventAndClose());
  EXPECT_TRUE(
      Eventually([&] { return Sample(EngineMetrics(), "gimbal:aborted_requests_total") == 1; }));
  EXPECT_TRUE(
      Eventually([&] { return Sample(EngineMetrics(), "vllm:num_requests_running") == 0; }));
  const engine::RankState s = engines_->emulator().State(0);
  EXPECT_EQ(s.snapshot.running + s.snapshot.waiting, 0);
}

TEST(EmbeddedEnginesTest, UnknownModelIsAnError) {
  RouterConfig config;
  EmbeddedEngineOptions eo;
  eo.model = "no-such-model";
  auto engines = StartEmbeddedEngines(eo, config);
  EXPECT_FALSE(engines.ok());
  EXPECT_TRUE(config.backends.empty());
}

}  // namespace
}  // namespace gimbal::router
