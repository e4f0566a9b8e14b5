// `gimbal serve` with no backends: the router over embedded emulated engines, end to end on
// loopback (the same StartEmbeddedEngines the command calls). Bounded counts and time.
#include "router/embedded.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/blocking.h"
#include "net/http_client.h"
#include "net/io_runtime.h"
#include "router/router.h"

namespace gimbal::router {
namespace {

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

TEST(EmbeddedEnginesTest, ServeWithoutBackendsAnswersCompletions) {
  RouterConfig config;
  config.port = 0;
  config.threads = 2;
  config.health_interval_s = 0.05;
  EmbeddedEngineOptions eo;
  eo.dp = 2;
  eo.time_scale = 0.05;
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
  bool pushed = false;
  for (int i = 0; i < 300 && !pushed; ++i) {
    json e = json::parse((*router)->EnginesJson());
    pushed = true;
    for (const auto& row : e["engines"]) {
      pushed &= !row["snapshot"].is_null() && row["snapshot"]["pushed"].get<bool>() &&
                row["snapshot"]["kv_capacity_tokens"].get<int64_t>() > 0;
    }
    if (!pushed) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(pushed) << (*router)->EnginesJson();

  EXPECT_TRUE((*router)->Drain());
  EXPECT_TRUE((*engines)->Shutdown(5));
  io.Stop();
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
