// The router against hostile clients and broken backends, on loopback: every case ends only the
// request or connection at fault, no client is given another's answer, and the router keeps
// serving with its memory back near where it started. Bounded in count and time; 127.0.0.1 only.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/blocking.h"
#include "net/eventually.h"
#include "net/http_client.h"
#include "net/prometheus_parser.h"
#include "net/raw_server.h"
#include "router/router.h"
#include "testing/fake_vllm.h"

namespace gimbal::router {
namespace {

using net::testing::RawServer;
using nlohmann::json;
using namespace std::chrono_literals;

// Long prompts get large keys, so tagging is on and rewrites every body.
class ByPromptLength : public QueuePolicy {
 public:
  double Key(const QueueEntry& e) const override {
    return e.arrival + static_cast<double>(e.prompt_tokens);
  }
  std::string name() const override { return "test_by_prompt"; }
};

// An engine made of raw bytes: /health and /metrics answered, no state stream, and completions
// answered by `answer` (the request body in, the raw response out).
RawServer::Script Engine(std::function<std::string(const std::string& body)> answer) {
  return [answer](const std::string& head, const std::string& body) -> std::string {
    auto plain = [](int status, const std::string& text) {
      return "HTTP/1.1 " + std::to_string(status) +
             " X\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text;
    };
    if (head.rfind("GET /health", 0) == 0) return plain(200, "");
    if (head.rfind("GET /metrics", 0) == 0) {
      return plain(200, "vllm:num_requests_waiting{model_name=\"test-model\"} 0\n");
    }
    if (head.rfind("POST ", 0) == 0) return answer(body);
    return plain(404, "no");
  };
}

// A JSON answer that carries the request body, so each client can tell its own answer.
std::string Echo(const std::string& body) {
  const std::string json_text = "{\"echo\":" + body + "}";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(json_text.size()) + "\r\n\r\n" + json_text;
}

// A whole completion answer whose `usage` reports `prompt_tokens`.
std::string UsageAnswer(int prompt_tokens) {
  const std::string body = R"({"choices":[{"text":"x"}],"usage":{"prompt_tokens":)" +
                           std::to_string(prompt_tokens) + R"(,"completion_tokens":1}})";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096;
}

class RouterHostileTest : public ::testing::Test {
 protected:
  void TearDown() override {
    router_.reset();
    client_.reset();
    io_.Stop();
  }

  RouterConfig Config(const std::vector<std::string>& urls) {
    RouterConfig c;
    c.address = "127.0.0.1";
    c.port = 0;
    c.threads = 2;
    c.scrape_interval_s = 0.05;
    c.health_interval_s = 0.05;
    c.health_timeout_s = 0.5;
    c.failures_to_eject = 2;
    c.successes_to_readmit = 1;
    c.read_timeout_s = 1;
    c.admin_token = "sesame";
    c.drain_timeout_s = 5;
    c.idle_timeout_s = 2;  // a raw connection left open ends soon
    for (const auto& u : urls) EXPECT_TRUE(AddBackend(c, u, "test-model").ok());
    return c;
  }

  void Start(RouterConfig c, bool tagging = true) {
    RouterDeps deps;
    if (tagging) deps.queue_policy = std::make_shared<ByPromptLength>();
    auto r = Router::Create(std::move(c), std::move(deps));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    router_ = std::move(r).value();
    ASSERT_TRUE(router_->Start().ok());
    io_.Start();
    client_ = std::make_unique<net::HttpClient>(io_.context());
  }

  Result<net::ClientResponse> Post(const std::string& body,
                                   const std::string& target = "/v1/completions",
                                   const std::string& token = "") {
    net::ClientRequest req = JsonPost(body, target);
    if (!token.empty()) req.headers.Set("Authorization", "Bearer " + token);
    return net::RunBlocking(io_.context(), client_->Send(std::move(req)));
  }

  std::string Raw(const std::string& bytes) {
    return net::testing::ExchangeRaw(router_->port(), bytes);
  }

  // Sum of the router's samples of `name` whose `label` is `value`.
  double RouterMetric(const std::string& name, const std::string& label, const std::string& value) {
    double sum = 0;
    for (const auto& s : net::ParsePrometheusText(router_->MetricsText()).samples) {
      if (s.name == name && (label.empty() || s.Label(label) == value)) sum += s.value;
    }
    return sum;
  }

  // A JSON POST to the router.
  net::ClientRequest JsonPost(std::string body, const std::string& target = "/v1/completions") {
    net::ClientRequest req;
    req.method = "POST";
    req.host = "127.0.0.1";
    req.port = router_->port();
    req.target = target;
    req.body = std::move(body);
    req.headers.Set("Content-Type", "application/json");
    return req;
  }

  static std::string Prompt(const std::string& who) {
    return json{{"model", "test-model"}, {"prompt", who}, {"max_tokens", 4}}.dump();
  }

  // GET /admin/engines, parsed (null when it failed).
  json AdminEngines() {
    net::ClientRequest req;
    req.host = "127.0.0.1";
    req.port = router_->port();
    req.target = "/admin/engines";
    req.headers.Set("Authorization", "Bearer sesame");
    auto r = net::RunBlocking(io_.context(), client_->Send(req));
    return r.ok() ? json::parse(r->body, nullptr, false) : json();
  }

  void ExpectServing() {
    auto r = Post(Prompt("still serving"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << r->body;
  }

  net::IoRuntime io_{1};
  std::unique_ptr<Router> router_;
  std::unique_ptr<net::HttpClient> client_;
};

TEST_F(RouterHostileTest, AChunkedRequestWithA64KiBTrailerGets431AndTheRouterLivesOn) {
  RawServer engine(Engine(Echo));
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));
  const std::string body = Prompt("hi");
  std::ostringstream req;
  req << "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      << "Transfer-Encoding: chunked\r\n\r\n"
      << std::hex << body.size() << "\r\n"
      << body << "\r\n0\r\nX: " << std::string(65536, 'a') << "\r\n\r\n";
  std::string out = Raw(req.str());
  EXPECT_NE(out.find("HTTP/1.1 431"), std::string::npos) << out.substr(0, 300);
  ExpectServing();
}

TEST_F(RouterHostileTest, DeeplyNestedBodiesAreRefusedWithoutRecursion) {
  RawServer engine(Engine(Echo));
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));
  const std::string nested =
      "{\"prompt\":\"x\",\"e\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = Post(nested);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("nests deeper"), std::string::npos) << r->body;
  // The admin endpoint that stores a placement refuses it the same way.
  auto admin = Post("{\"p\":" + std::string(100000, '[') + std::string(100000, ']') + "}",
                    "/admin/placement", "sesame");
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->status, 400) << admin->body;
  // Nesting within the bound is forwarded.
  auto fine = Post("{\"prompt\":\"x\",\"e\":" + std::string(50, '[') + std::string(50, ']') + "}");
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(fine->status, 200) << fine->body;
  EXPECT_EQ(engine.requests() > 0, true);
}

TEST_F(RouterHostileTest, TaggingRewritesOnlyThePriorityAndKeepsEveryOtherByte) {
  std::mutex mu;
  std::string seen;
  RawServer engine(Engine([&](const std::string& body) {
    std::lock_guard<std::mutex> lock(mu);
    seen = body;
    return Echo(body);
  }));
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));
  // 2 MB of empty arrays: forwarded as sent, plus the one member.
  std::string arrays;
  for (int i = 0; i < 500000; ++i) arrays += i == 0 ? "[]" : ",[]";
  const std::string body = "{ \"prompt\" : \"hi\",\n \"x\": [" + arrays + "], \"priority\": 7 }";
  auto r = Post(body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 200);
  std::lock_guard<std::mutex> lock(mu);
  const size_t p = seen.find("\"priority\": ");
  ASSERT_NE(p, std::string::npos);
  EXPECT_EQ(seen.substr(0, p), body.substr(0, p));  // every byte before the value kept
  EXPECT_EQ(seen.back(), '}');
  EXPECT_TRUE(json::accept(seen));
  EXPECT_NE(json::parse(seen)["priority"].get<int64_t>(), 7);
}

TEST_F(RouterHostileTest, ABackendAnswering100ContinueNeverCrossesAnswers) {
  RawServer engine(
      Engine([](const std::string& body) { return "HTTP/1.1 100 Continue\r\n\r\n" + Echo(body); }));
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));
  for (const char* who : {"alice", "bob", "carol", "dave", "erin"}) {
    auto r = Post(Prompt(who));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["echo"]["prompt"], who);
  }
}

TEST_F(RouterHostileTest, ABackendsOversizedTrailerFailsThatRequestOnly) {
  RawServer bad(Engine([](const std::string&) {
    return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX: " +
           std::string(70000, 't') + "\r\n\r\n";
  }));
  ASSERT_NO_FATAL_FAILURE(Start(Config({bad.url()})));
  auto r = Post(Prompt("alice"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 502) << r->body;
  auto again = Post(Prompt("bob"));  // the router is still there
  ASSERT_TRUE(again.ok()) << again.status().ToString();
}

// An answer over the router's size limits may be the request's doing (echo of a long prompt, a
// large n), so it fails that request with a 502 naming the limit and blames no engine: were the
// engine ejected, or the request retried on the next one, a client could take every engine out
// of service with a few such requests.
TEST_F(RouterHostileTest, AnAnswerOverTheLimitFailsThatRequestAndBlamesNoEngine) {
  // One engine answers 8 MiB, in chunks; the other answers as asked.
  std::atomic<int> huge_posts{0}, echo_posts{0};
  RawServer huge(Engine([&](const std::string&) {
    ++huge_posts;
    std::string out =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    const std::string chunk(64 << 10, 'x');
    for (int i = 0; i < 128; ++i) out += "10000\r\n" + chunk + "\r\n";
    return out + "0\r\n\r\n";
  }));
  RawServer echo(Engine([&](const std::string& body) {
    ++echo_posts;
    return Echo(body);
  }));
  RouterConfig c = Config({huge.url(), echo.url()});
  c.answer_limit_bytes = 1 << 20;
  c.dispatch_policy = "round_robin";
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  int too_large = 0, answered = 0;
  for (const char* who : {"alice", "bob", "carol", "dave"}) {
    auto r = Post(Prompt(who));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_LT(r->body.size(), 4096u);
    if (r->status == 502) {
      ++too_large;
      EXPECT_NE(r->body.find("limits.answer_limit_bytes"), std::string::npos) << r->body;
    } else {
      ++answered;
      EXPECT_EQ(r->status, 200) << r->body;
      EXPECT_NE(r->body.find(who), std::string::npos) << r->body.substr(0, 200);
    }
  }
  // Round robin alternates: the large engine stayed in service (ejected, it would have had one
  // request and the other engine three), and its requests went nowhere else.
  EXPECT_EQ(too_large, 2);
  EXPECT_EQ(answered, 2);
  EXPECT_EQ(huge_posts.load(), 2);
  EXPECT_EQ(echo_posts.load(), 2);
  EXPECT_EQ(RouterMetric("gimbal_router_requests_total", "outcome", "too_large"), 2);
  EXPECT_EQ(RouterMetric("gimbal_router_upstream_failures_total", "engine", "e0"), 0);
}

TEST_F(RouterHostileTest, AStreamEventOverTheLimitFailsThatStreamOnly) {
  std::atomic<int> posts{0};
  RawServer huge(Engine([&](const std::string&) {
    ++posts;
    const std::string event = "data: " + std::string(300000, 'y') + "\n\n";
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " +
           std::to_string(event.size()) + "\r\n\r\n" + event;
  }));
  RouterConfig c = Config({huge.url()});
  c.stream_event_limit_bytes = 100000;
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  auto r = Post(R"({"model":"test-model","prompt":"hi","max_tokens":1,"stream":true})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // Nothing reached the client before the event: the client gets an error naming the limit, not
  // 300 kB.
  EXPECT_EQ(r->status, 502) << r->body.substr(0, 200);
  EXPECT_NE(r->body.find("limits.stream_event_limit_bytes"), std::string::npos) << r->body;
  EXPECT_LT(r->body.size(), 4096u);
  // The engine is still in service: the next request (whole, within the answer limit) is
  // answered by it, where an ejected engine would leave a 503.
  auto again = Post(Prompt("bob"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->status, 200) << again->body.substr(0, 200);
  EXPECT_EQ(posts.load(), 2);
}

// A request slower than the router's time limits (a long generation before a whole answer, a
// long prefill before a stream's first event) says as much about the request as about the engine:
// it fails with a 504 naming the limit and is not sent to another engine. Before, each such
// request ejected every engine it reached, and a few of them at once took all out of service.
TEST_F(RouterHostileTest, ARequestSlowerThanTheTimeLimitsFailsAloneAndEjectsNoEngine) {
  std::atomic<int> posts{0};
  auto slow_then_answer = [&](const std::string& body) {
    ++posts;
    if (body.find("slow") != std::string::npos) std::this_thread::sleep_for(2500ms);
    return Echo(body);
  };
  RawServer a(Engine(slow_then_answer)), b(Engine(slow_then_answer));
  RouterConfig c = Config({a.url(), b.url()});
  c.upstream_header_timeout_s = 1;
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  std::vector<std::thread> clients;
  std::atomic<int> timed_out{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      auto r = Post(Prompt("slow"));
      if (r.ok() && r->status == 504 &&
          r->body.find("limits.upstream_header_timeout_s") != std::string::npos) {
        ++timed_out;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(timed_out.load(), 4);
  // Each was sent once, to one engine (two with two failures each would have been ejected).
  EXPECT_TRUE(testutil::Eventually([&] { return posts.load() == 4; }, 5s)) << posts.load();
  auto quick = Post(Prompt("quick"));
  ASSERT_TRUE(quick.ok()) << quick.status().ToString();
  EXPECT_EQ(quick->status, 200) << quick->body;
  EXPECT_EQ(RouterMetric("gimbal_router_requests_total", "outcome", "timed_out"), 4);
  EXPECT_EQ(RouterMetric("gimbal_router_upstream_failures_total", "engine", "e0") +
                RouterMetric("gimbal_router_upstream_failures_total", "engine", "e1"),
            0);
  // A stream's head comes before the prefill: one that does not come within the limit says the
  // engine is stuck, and counts against it (the request still fails alone).
  auto stream = Post(R"({"model":"test-model","prompt":"slow","max_tokens":1,"stream":true})");
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  EXPECT_EQ(stream->status, 504) << stream->body;
  EXPECT_EQ(RouterMetric("gimbal_router_upstream_failures_total", "engine", "e0") +
                RouterMetric("gimbal_router_upstream_failures_total", "engine", "e1"),
            1);
}

// The characters-per-token ratio the router learns from `usage` is learned from plain text
// prompts only: an engine that honestly reports 8 prompt tokens for a truncated request
// (truncate_prompt_tokens), or counts a tool schema or an image the text does not show, says
// nothing of the text's ratio. One client's such requests moved every client's estimate.
TEST_F(RouterHostileTest, OneClientsTruncatedPromptsDoNotMoveTheTokenEstimate) {
  RawServer engine(Engine([](const std::string&) { return UsageAnswer(8); }));
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));
  const std::string text(400, 'a');
  auto ratio = [&] { return RouterMetric("gimbal_router_chars_per_token", "", ""); };
  const double before = ratio();
  EXPECT_EQ(before, 4);
  for (const json& extra : {json{{"truncate_prompt_tokens", 8}}, json{{"suffix", "s"}},
                            json{{"tools", json::array({json{{"type", "function"}}})}}}) {
    for (int i = 0; i < 10; ++i) {
      json body = {{"model", "test-model"}, {"prompt", text}, {"max_tokens", 1}};
      body.update(extra);
      auto r = Post(body.dump());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_EQ(r->status, 200) << r->body;
    }
  }
  EXPECT_EQ(ratio(), before);
  // A plain prompt still teaches it (400 characters in 8 tokens: 50 per token, held to 20).
  ASSERT_EQ(Post(json{{"model", "test-model"}, {"prompt", text}, {"max_tokens", 1}}.dump())->status,
            200);
  EXPECT_GT(ratio(), before);
}

// One model's engines teach only that model's estimate: models' tokenizers differ, and an engine
// reporting prompt_tokens of 1 moved every model's estimate to the clamp (4 to 19.8 characters
// per token), a fifth of every prompt's true size.
TEST_F(RouterHostileTest, OneModelsUsageDoesNotMoveAnotherModelsEstimate) {
  RawServer liar(Engine([](const std::string&) { return UsageAnswer(1); }));
  RawServer other(Engine(Echo));
  RouterConfig c = Config({liar.url(), other.url()});
  c.backends[1].model = "other-model";
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  const std::string text(400, 'a');
  for (int i = 0; i < 20; ++i) {
    auto r = Post(json{{"model", "test-model"}, {"prompt", text}, {"max_tokens", 1}}.dump());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->status, 200) << r->body;
  }
  EXPECT_GT(RouterMetric("gimbal_router_chars_per_token", "model", "test-model"), 10);
  EXPECT_EQ(RouterMetric("gimbal_router_chars_per_token", "model", "other-model"), 4);
}

// A probe's whole answer is bounded by its timeout, not only each read: an engine whose /health
// said 503 with a body that trickled in (a byte every 50 ms, each within the read timeout) held
// the probe for seconds per round and stayed admitted.
TEST_F(RouterHostileTest, AHealthAnswerThatTricklesInCountsAsAFailedProbe) {
  std::string trickle = "HTTP/1.1 503 X\r\nContent-Length: 100\r\n\r\n";
  for (int i = 0; i < 100; ++i) trickle += std::string(RawServer::kPause) + "x";  // 5 s
  const RawServer::Script inner = Engine(Echo);
  RawServer engine([&](const std::string& head, const std::string& body) -> std::string {
    if (head.rfind("GET /health", 0) == 0) return trickle;
    return inner(head, body);
  });
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));  // health.timeout_s 0.5, eject after 2
  EXPECT_TRUE(testutil::Eventually(
      [&] { return RouterMetric("gimbal_router_engine_healthy", "engine", "e0") == 0; }, 3s));
}

// A scrape that gets no page is counted (and logged once a minute): the engine's state ages, and
// before nothing said why.
TEST_F(RouterHostileTest, FailedScrapesAreCounted) {
  const RawServer::Script inner = Engine(Echo);
  RawServer engine([&](const std::string& head, const std::string& body) -> std::string {
    if (head.rfind("GET /metrics", 0) == 0) {
      return "HTTP/1.1 500 X\r\nContent-Length: 4\r\n\r\nboom";
    }
    return inner(head, body);
  });
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));
  EXPECT_TRUE(testutil::Eventually(
      [&] { return RouterMetric("gimbal_router_scrape_failures_total", "engine", "e0") >= 2; },
      3s));
  // Its state is the router's own accounting, so the picks since a snapshot never pile up.
  for (int i = 0; i < 3; ++i) ExpectServing();
  auto engines = [&] { return AdminEngines(); };
  EXPECT_TRUE(testutil::Eventually(
      [&] {
        const json e = engines()["engines"][0];
        return e["snapshot"].is_object() && e["snapshot"]["own_accounting"] == true &&
               e["picks_since_snapshot"] == 0;
      },
      3s))
      << engines().dump();
}

// A /metrics page that answers 200 but gives no usable request count (another server's page,
// another model's series, NaN counts) is a failed scrape: counted, and the engine's state is the
// router's own accounting, so the picks since a snapshot do not pile up and shut it out.
TEST_F(RouterHostileTest, PagesWithoutUsableCountsAreFailedScrapes) {
  const std::vector<std::string> pages = {
      "<html><body>not metrics</body></html>",
      "vllm:num_requests_waiting{model_name=\"other-model\"} 0\n",
      "vllm:num_requests_waiting{model_name=\"test-model\"} NaN\n"
      "vllm:num_requests_running{model_name=\"test-model\"} NaN\n"};
  const RawServer::Script inner = Engine(Echo);
  std::vector<std::unique_ptr<RawServer>> engines;
  std::vector<std::string> urls;
  for (const std::string& page : pages) {
    engines.push_back(std::make_unique<RawServer>(
        [&inner, page](const std::string& head, const std::string& body) -> std::string {
          if (head.rfind("GET /metrics", 0) == 0) {
            return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(page.size()) +
                   "\r\n\r\n" + page;
          }
          return inner(head, body);
        }));
    urls.push_back(engines.back()->url());
  }
  ASSERT_NO_FATAL_FAILURE(Start(Config(urls)));
  for (const char* e : {"e0", "e1", "e2"}) {
    EXPECT_TRUE(testutil::Eventually(
        [&] { return RouterMetric("gimbal_router_scrape_failures_total", "engine", e) >= 2; }, 3s))
        << e;
  }
  for (int i = 0; i < 6; ++i) ExpectServing();
  EXPECT_TRUE(testutil::Eventually(
      [&] {
        const json all = AdminEngines()["engines"];
        if (!all.is_array() || all.size() != 3) return false;
        for (const json& e : all) {
          if (!e["snapshot"].is_object() || e["snapshot"]["own_accounting"] != true ||
              e["picks_since_snapshot"] != 0) {
            return false;
          }
        }
        return true;
      },
      5s))
      << AdminEngines().dump();
}

// An engine whose pushed state stream sends events that are not states (not JSON): each is counted
// as a warning on that engine instead of vanishing.
TEST_F(RouterHostileTest, UnreadablePushedStatesAreCounted) {
  const RawServer::Script inner = Engine(Echo);
  std::string events;
  for (int i = 0; i < 40; ++i) events += std::string(RawServer::kPause) + "data: {not json\n\n";
  RawServer engine([&](const std::string& head, const std::string& body) -> std::string {
    if (head.rfind("GET /gimbal/state/stream", 0) == 0) {
      return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " +
             std::to_string(40 * std::string("data: {not json\n\n").size()) + "\r\n\r\n" + events;
    }
    return inner(head, body);
  });
  RouterConfig c = Config({engine.url()});
  c.backends[0].state = StateSource::kPush;
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  EXPECT_TRUE(testutil::Eventually(
      [&] { return RouterMetric("gimbal_router_scrape_warnings_total", "engine", "e0") >= 3; },
      5s));
  EXPECT_EQ(RouterMetric("gimbal_router_pushed_states_total", "engine", "e0"), 0);
}

// An engine that answers every request with a server error at once looks idle to every
// dispatcher, so it drew the traffic: 5xx answers are relayed to their clients and held against
// the engine (ejected after failures_to_eject in a row), and answered requests never readmit it.
TEST_F(RouterHostileTest, ServerErrorsCountAgainstTheEngine) {
  std::atomic<int> posts{0};
  const RawServer::Script inner = Engine([&](const std::string&) {
    ++posts;
    const std::string body = R"({"error":{"message":"boom","code":500}})";
    return "HTTP/1.1 500 X\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  });
  RawServer engine(inner);
  RouterConfig c = Config({engine.url()});
  c.health_interval_s = 60;    // one probe, at the start: none readmits it during the test
  c.max_ejected_fraction = 1;  // failed requests may take out every engine (the one here)
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  for (int i = 0; i < 2; ++i) {
    auto r = Post(Prompt("x"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 500) << r->body;
    EXPECT_NE(r->body.find("boom"), std::string::npos) << r->body;
  }
  EXPECT_EQ(RouterMetric("gimbal_router_upstream_failures_total", "engine", "e0"), 2);
  EXPECT_TRUE(testutil::Eventually(  // counted once the answer is sent, which the client sees first
      [&] { return RouterMetric("gimbal_router_requests_total", "outcome", "engine_error") == 2; },
      5s));
  EXPECT_EQ(RouterMetric("gimbal_router_engine_healthy", "engine", "e0"), 0);
  EXPECT_EQ(posts.load(), 2);  // not retried
}

// A client whose requests make every engine answer 500 cannot take them all out: failed
// requests eject at most health.max_ejected_fraction of a model's engines (half by default), and
// the rest go on serving everyone else.
TEST_F(RouterHostileTest, AClientThatMakesEveryEngineFailCannotTakeThemAllOut) {
  const auto answer = [](const std::string& body) {
    if (body.find("poison") == std::string::npos) return Echo(body);
    const std::string error = R"({"error":{"message":"boom","code":500}})";
    return "HTTP/1.1 500 X\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(error.size()) + "\r\n\r\n" + error;
  };
  std::vector<std::unique_ptr<RawServer>> engines;
  std::vector<std::string> urls;
  for (int i = 0; i < 4; ++i) {
    engines.push_back(std::make_unique<RawServer>(Engine(answer)));
    urls.push_back(engines.back()->url());
  }
  RouterConfig c = Config(urls);
  c.health_interval_s = 60;  // one probe, at the start: none readmits an engine during the test
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  for (int i = 0; i < 40; ++i) {
    auto r = Post(Prompt("poison " + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 500) << r->body;
  }
  int healthy = 0;
  for (int i = 0; i < 4; ++i) {
    healthy += static_cast<int>(
        RouterMetric("gimbal_router_engine_healthy", "engine", "e" + std::to_string(i)));
  }
  EXPECT_EQ(healthy, 2);  // two of four ejected, the cap; before it, all four went
  EXPECT_EQ(RouterMetric("gimbal_router_upstream_failures_total", "", ""), 40);
  for (int i = 0; i < 8; ++i) ExpectServing();
  const json admin = AdminEngines();
  int ejected_on_requests = 0;
  for (const json& e : admin["engines"]) ejected_on_requests += e["ejected_on_requests"] == true;
  EXPECT_EQ(ejected_on_requests, 2) << admin.dump();
}

// An OpenAI stream ends with `data: [DONE]`. One that stops before it, or inside an event, was cut
// short however cleanly its connection ended: the client gets an error event and [DONE], never a
// fragment passed off as the end, and the request counts as a stream error.
TEST_F(RouterHostileTest, AStreamThatStopsBeforeItsDoneEndsWithAnErrorEvent) {
  const std::string first = "data: {\"choices\":[{\"text\":\"a\"}]}\n\n";
  std::atomic<int> posts{0};
  RawServer engine(Engine([&](const std::string&) {
    // No [DONE], then (the second request) a stream that stops inside its second event.
    const std::string events = first + (posts++ == 0 ? "" : "data: {\"choi");
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " +
           std::to_string(events.size()) + "\r\n\r\n" + events;
  }));
  ASSERT_NO_FATAL_FAILURE(Start(Config({engine.url()})));
  for (int i = 0; i < 2; ++i) {
    auto r = Post(R"({"model":"test-model","prompt":"hi","max_tokens":2,"stream":true})");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("\"text\":\"a\""), std::string::npos) << r->body;
    EXPECT_EQ(r->body.find("{\"choi\n"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("failed mid-stream"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("data: [DONE]"), std::string::npos) << r->body;
  }
  // Counted once the stream has ended, which the client can see first.
  EXPECT_TRUE(testutil::Eventually(
      [&] { return RouterMetric("gimbal_router_requests_total", "outcome", "stream_error") == 2; },
      5s));
}

// An engine that sends [DONE] and then neither ends its chunked answer nor closes: the client's
// stream ends at the [DONE], at once, with nothing after it, and the request counts as ok.
TEST_F(RouterHostileTest, AStreamThatSaysDoneButKeepsItsAnswerOpenEndsAtItsDone) {
  const std::string events = "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: [DONE]\n\n";
  RawServer engine(Engine([&](const std::string&) {
    std::ostringstream size;
    size << std::hex << events.size();
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: "
           "chunked\r\n\r\n" +
           size.str() + "\r\n" + events + "\r\n";  // no last chunk
  }));
  RouterConfig c = Config({engine.url()});
  c.upstream_read_timeout_s = 30;
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = Post(R"({"model":"test-model","prompt":"hi","max_tokens":2,"stream":true})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);  // not the 30 s read timeout
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"text\":\"a\""), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("error"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("data: [DONE]"), r->body.rfind("data: [DONE]")) << r->body;  // one
  EXPECT_TRUE(testutil::Eventually(
      [&] { return RouterMetric("gimbal_router_requests_total", "outcome", "ok") == 1; }, 5s));
  EXPECT_EQ(RouterMetric("gimbal_router_requests_total", "outcome", "timed_out"), 0);
}

// An engine that trickles a whole answer in a byte at a time, or keeps a stream going with bytes
// that never complete an event, each within the read timeout: bounded all the same, with a 504
// that names the limit, and the engine is not blamed (the request may be what is slow).
TEST_F(RouterHostileTest, AnswersAndStreamsThatTrickleForEverEndAtTheReadTimeout) {
  std::string trickle;
  for (int i = 0; i < 100; ++i) trickle += std::string(RawServer::kPause) + " ";  // 5 s
  RawServer engine(Engine([&](const std::string& body) {
    if (body.find("\"stream\":true") != std::string::npos) {
      return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 100\r\n\r\n" +
             std::string("\n") + trickle;
    }
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 101\r\n\r\n" +
           std::string("{") + trickle;
  }));
  RouterConfig c = Config({engine.url()});
  c.upstream_read_timeout_s = 0.5;  // each byte comes after 50 ms: never a silent 0.5 s
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  for (const char* body :
       {R"({"model":"test-model","prompt":"hi","max_tokens":2})",
        R"({"model":"test-model","prompt":"hi","max_tokens":2,"stream":true})"}) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = Post(body);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << body;  // not the 5 s of bytes
    EXPECT_EQ(r->status, 504) << body << ": " << r->body;
    EXPECT_NE(r->body.find("limits.upstream_read_timeout_s"), std::string::npos) << r->body;
  }
  EXPECT_TRUE(testutil::Eventually(
      [&] { return RouterMetric("gimbal_router_requests_total", "outcome", "timed_out") == 2; },
      5s));
  // Not ejected: the next request still goes to the engine (and times out again, not 503).
  auto again = Post(R"({"model":"test-model","prompt":"hi","max_tokens":2})");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->status, 504) << again->body;
}

// Clients that open connections and send nothing cannot lock others out: at
// `listen.max_connections` the one that waited longest makes room, and /metrics counts it.
TEST_F(RouterHostileTest, SilentConnectionsAtTheCapMakeRoomForClients) {
  RawServer engine(Engine(Echo));
  RouterConfig c = Config({engine.url()});
  c.max_connections = 8;
  c.idle_timeout_s = 60;  // the silent connections outlive a stalled test
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c)));
  std::vector<int> silent;
  for (int i = 0; i < 8; ++i) {
    silent.push_back(net::testing::ConnectLoopback(router_->port()));
    ASSERT_GE(silent.back(), 0);
  }
  ASSERT_TRUE(testutil::Eventually(
      [&] { return RouterMetric("gimbal_router_open_connections", "", "") == 8; }, 5s));
  for (int i = 0; i < 3; ++i) ExpectServing();  // the client's pool keeps one connection
  EXPECT_EQ(RouterMetric("gimbal_router_connections_shed_total", "how", "evicted"), 1);
  EXPECT_EQ(RouterMetric("gimbal_router_connections_shed_total", "how", "refused"), 0);
  EXPECT_EQ(RouterMetric("gimbal_router_open_connections", "", ""), 8);
  for (int fd : silent) ::close(fd);
}

TEST_F(RouterHostileTest, StreamsCutAtTheDrainTimeoutEndWithAnErrorEvent) {
  gimbal::testing::FakeVllmOptions o;
  o.chunks = 400;
  o.chunk_delay_ms = 25;  // 10 s of stream, far past the drain timeout
  gimbal::testing::FakeVllm engine(o);
  engine.Start();
  RouterConfig c = Config({engine.url()});
  c.drain_timeout_s = 0.3;
  ASSERT_NO_FATAL_FAILURE(Start(std::move(c), false));
  std::string got;
  std::thread reader([&] {
    auto r = net::RunBlocking(
        io_.context(),
        client_->Send(
            JsonPost(json{{"model", "test-model"}, {"prompt", "p"}, {"stream", true}}.dump())));
    if (r.ok()) got = r->body;
  });
  ASSERT_TRUE(testutil::Eventually([&] { return engine.completions() > 0; }, 5s));
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(router_->Drain());  // out of time
  reader.join();
  EXPECT_NE(got.find("shutting down"), std::string::npos) << got.substr(0, 300);
  EXPECT_NE(got.find("data: [DONE]"), std::string::npos);
}

// Valid requests alongside malformed ones, a backend that answers 100 Continue, an engine that
// dies mid-run: every valid request is answered (or failed with an error), each with its own
// answer, and the router's memory returns to within 20 MB of where it was.
TEST_F(RouterHostileTest, MixedRunAnswersEveryRequestWithItsOwnAnswer) {
  RawServer echo(Engine(Echo));
  RawServer interim(
      Engine([](const std::string& body) { return "HTTP/1.1 100 Continue\r\n\r\n" + Echo(body); }));
  auto dying = std::make_unique<RawServer>(Engine(Echo));
  ASSERT_NO_FATAL_FAILURE(Start(Config({echo.url(), interim.url(), dying->url()})));
  ExpectServing();
  [[maybe_unused]] const int64_t rss_before = ResidentBytes();

  std::atomic<int> answered{0}, failed{0}, crossed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      net::IoRuntime io(1);
      io.Start();
      net::HttpClient client(io.context());
      for (int i = 0; i < 30; ++i) {
        const std::string who = "client-" + std::to_string(t) + "-" + std::to_string(i);
        auto r = net::RunBlocking(io.context(), client.Send(JsonPost(Prompt(who))));
        if (!r.ok() || r->status != 200) {
          ++failed;
          continue;
        }
        auto j = json::parse(r->body, nullptr, false);
        if (j.is_discarded() || j["echo"]["prompt"] != who) {
          ++crossed;
        } else {
          ++answered;
        }
      }
    });
  }
  std::thread hostile([&] {
    const std::string nested =
        "{\"prompt\":\"x\",\"e\":" + std::string(80000, '[') + std::string(80000, ']') + "}";
    for (int i = 0; i < 5; ++i) {
      Raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX: " +
          std::string(65536, 'a') + "\r\n\r\n");
      Raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
      Raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: " +
          std::to_string(nested.size()) + "\r\n\r\n" + nested);
      Raw("GARBAGE\x01\r\n\r\n");
      if (i == 2) dying.reset();  // an engine dies mid-run
    }
  });
  hostile.join();
  for (auto& c : clients) c.join();
  EXPECT_EQ(crossed.load(), 0);
  EXPECT_EQ(answered.load() + failed.load(), 120);
  EXPECT_GE(answered.load(), 100);  // only requests caught on the dying engine may fail
  ExpectServing();
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
  // Sanitizers' shadow memory grows with every allocation: the bound holds in plain builds.
  EXPECT_LT(ResidentBytes() - rss_before, 20 << 20);
#endif
}

}  // namespace
}  // namespace gimbal::router
