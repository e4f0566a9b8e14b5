#include "router/config.h"

#include <cstdlib>
#include <map>

#include <gtest/gtest.h>

namespace gimbal::router {
namespace {

TEST(RouterConfig, ParsesEveryBlock) {
  auto c = ParseRouterConfig(R"(
listen: {address: 0.0.0.0, port: 9000, threads: 2, max_connections: 5000}
limits: {body_limit_bytes: 1000, max_inflight_per_engine: 8, retry_after_s: 3}
backends:
  - {url: "http://127.0.0.1:8001", model: m}
  - {name: big, url: "http://127.0.0.1:8002/", model: m, max_inflight: 2}
dispatch: {policy: vllm, params: {}}
queue: {policy: gimbal, params: {beta: 0.001}}
state: {scrape_interval_s: 0.2, chars_per_token: 3.5}
health: {interval_s: 2, failures_to_eject: 4, max_ejected_fraction: 0.25}
admin: {token: t0k}
)",
                             "router.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->port, 9000);
  EXPECT_EQ(c->max_connections, 5000u);
  EXPECT_EQ(RouterConfig{}.max_connections, 0u);  // derived from the open-file limit
  EXPECT_EQ(c->dispatch_policy, "vllm");
  EXPECT_EQ(c->max_ejected_fraction, 0.25);
  EXPECT_EQ(RouterConfig{}.max_ejected_fraction, 0.5);
  EXPECT_EQ(c->queue_params.GetDouble("beta", 0), 0.001);
  ASSERT_TRUE(ValidateRouterConfig(c.value()).ok());
  EXPECT_EQ(c->backends[0].name, "e0");
  EXPECT_EQ(c->backends[0].max_inflight, 8);
  EXPECT_EQ(c->backends[1].max_inflight, 2);
  EXPECT_EQ(c->backends[1].parsed.port, 8002);
}

TEST(RouterConfig, ReadsThePrefixCacheAndEventEndpoints) {
  auto c = ParseRouterConfig(R"(
backends:
  - {url: "http://127.0.0.1:8001", model: m, kv_events: "tcp://10.0.0.1:5557",
     kv_events_replay: "tcp://10.0.0.1:5558"}
  - {url: "http://127.0.0.1:8002", model: m}
prefix_cache: {index: approximate, block_tokens: 32, chars_per_token: 3, capacity_blocks: 100}
)",
                             "router.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->prefix_cache.index, PrefixIndexMode::kApproximate);
  EXPECT_EQ(c->prefix_cache.block_tokens, 32);
  EXPECT_EQ(c->prefix_cache.chars_per_token, 3);
  EXPECT_EQ(c->prefix_cache.capacity_blocks, 100);
  EXPECT_EQ(c->backends[0].kv_events, "tcp://10.0.0.1:5557");
  EXPECT_EQ(c->backends[0].kv_events_replay, "tcp://10.0.0.1:5558");
  EXPECT_EQ(c->backends[1].kv_events, "");
  EXPECT_EQ(RouterConfig{}.prefix_cache.index, PrefixIndexMode::kAuto);  // the default
  EXPECT_EQ(c->prefix_cache.hash, PrefixCacheConfig::Hash::kGimbal);
  EXPECT_FALSE(c->prefix_cache.python_hash_seed.has_value());
  auto v = ParseRouterConfig(
      "prefix_cache: {hash: vllm, vllm_hash_algo: sha256_cbor, python_hash_seed: 42}\n", "x");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->prefix_cache.hash, PrefixCacheConfig::Hash::kVllm);
  EXPECT_EQ(v->prefix_cache.vllm_hash_algo, "sha256_cbor");
  EXPECT_EQ(v->prefix_cache.python_hash_seed, std::optional<std::string>("42"));
  // The event subscriber's bounds.
  EXPECT_EQ(v->prefix_cache.event_max_message_bytes, int64_t{16} << 20);  // the defaults
  EXPECT_EQ(v->prefix_cache.event_queue_messages, 1000);
  EXPECT_EQ(v->prefix_cache.replay_timeout_s, 0.5);
  auto b = ParseRouterConfig(
      "prefix_cache: {event_max_message_bytes: 65536, event_queue_messages: 50, "
      "replay_timeout_s: 2}\n",
      "x");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->prefix_cache.event_max_message_bytes, 65536);
  EXPECT_EQ(b->prefix_cache.event_queue_messages, 50);
  EXPECT_EQ(b->prefix_cache.replay_timeout_s, 2);
  for (const char* bad : {
           "prefix_cache: {index: precise}\n",
           "prefix_cache: {block_tokens: 0}\n",
           "prefix_cache: {capasity_blocks: 1}\n",
           "prefix_cache: {hash: sglang}\n",
           "prefix_cache: {vllm_hash_algo: md5}\n",
           "prefix_cache: {event_max_message_bytes: 10}\n",
           "prefix_cache: {event_max_message_bytes: 1e12}\n",
           "prefix_cache: {event_max_message_bytes: 1073741825}\n",
           "prefix_cache: {event_queue_messages: 1048577}\n",
           "prefix_cache: {replay_timeout_s: 61}\n",
           "prefix_cache: {event_queue_messages: 0}\n",
           "prefix_cache: {event_queue_messages: -5}\n",
           "prefix_cache: {replay_timeout_s: 0}\n",
           "prefix_cache: {replay_timeout_s: .nan}\n",
           "backends: [{url: 'http://h:1', model: m, kv_events: 'http://h:5557'}]\n",
           "backends: [{url: 'http://h:1', model: m, kv_events: 'tcp://h:port'}]\n",
           "backends: [{url: 'http://h:1', model: m, kv_events_replay: 'tcp://h:1'}]\n",
       }) {
    auto r = ParseRouterConfig(bad, "x");
    EXPECT_FALSE(r.ok()) << bad;
  }
  auto big = ParseRouterConfig("prefix_cache: {event_queue_messages: 0}\n", "router.yaml");
  EXPECT_NE(big.status().message().find("event_queue_messages"), std::string::npos)
      << big.status().message();
  auto r = ParseRouterConfig("prefix_cache: {index: precise}\n", "router.yaml");
  EXPECT_NE(r.status().message().find("none, approximate or auto"), std::string::npos)
      << r.status().message();
}

TEST(RouterConfig, ReadsTheTenantClassMap) {
  auto c = ParseRouterConfig("classes: {tenants: {alice: 2, \"bob smith\": 0}}\n", "r.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tenant_classes, (std::map<std::string, int>{{"alice", 2}, {"bob smith", 0}}));
  for (const char* bad : {"classes: {tenants: {alice: -1}}\n", "classes: {tenants: [alice]}\n",
                          "classes: {tenant: {alice: 1}}\n", "classes: {tenants: {a: x}}\n"}) {
    EXPECT_FALSE(ParseRouterConfig(bad, "r.yaml").ok()) << bad;
  }
}

TEST(RouterConfig, RejectsTyposAndBadValues) {
  EXPECT_FALSE(ParseRouterConfig("listen: {prot: 1}\n", "x").ok());
  EXPECT_FALSE(ParseRouterConfig("limits: {max_attempts: 0}\n", "x").ok());
  auto c = ParseRouterConfig("backends: [{url: 'ftp://x', model: m}]\n", "x");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("http://"), std::string::npos);
  RouterConfig flags;
  ASSERT_TRUE(AddBackend(flags, "ftp://x=m", "").ok());
  Status st = ValidateRouterConfig(flags);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("http://"), std::string::npos);
  RouterConfig empty;
  EXPECT_FALSE(ValidateRouterConfig(empty).ok());
}

TEST(RouterConfig, StateSourcePerRouterAndPerBackend) {
  auto c = ParseRouterConfig(R"(
backends:
  - {url: "http://127.0.0.1:8001", model: m}
  - {url: "http://127.0.0.1:8002", model: m, state: metrics}
state: {source: push, push_stale_s: 1.5}
)",
                             "router.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->state_source, StateSource::kPush);
  EXPECT_EQ(c->push_stale_s, 1.5);
  EXPECT_FALSE(c->backends[0].state.has_value());
  EXPECT_EQ(c->backends[1].state, StateSource::kMetrics);
  EXPECT_EQ(RouterConfig{}.state_source, StateSource::kAuto);
  auto bad = ParseRouterConfig("state: {source: pushed}\n", "x");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("auto, metrics or push"), std::string::npos);
  EXPECT_FALSE(
      ParseRouterConfig("backends: [{url: 'http://h:1', model: m, state: x}]\n", "x").ok());
}

TEST(RouterConfig, BackendFlagSyntax) {
  RouterConfig c;
  EXPECT_TRUE(AddBackend(c, "http://h:1=model-a", "").ok());
  EXPECT_TRUE(AddBackend(c, "http://h:2", "model-b").ok());
  EXPECT_FALSE(AddBackend(c, "http://h:3", "").ok());
  ASSERT_EQ(c.backends.size(), 2u);
  EXPECT_EQ(c.backends[0].model, "model-a");
  EXPECT_EQ(c.backends[1].model, "model-b");
}

// Names, models and the admin token reach response headers, JSON answers and Authorization
// comparisons: a CR LF in a name injected a header into every answer, a model that is not UTF-8
// made every /v1/models answer 500, and a token with a space could never match.
TEST(RouterConfig, NamesModelsAndTokensThatCannotBeSentAreRefused) {
  auto check = [](const std::string& name, const std::string& model, const std::string& token,
                  const char* message) {
    RouterConfig c;
    ASSERT_TRUE(AddBackend(c, "http://127.0.0.1:8001=" + model, "").ok());
    c.backends[0].name = name;
    c.admin_token = token;
    Status st = ValidateRouterConfig(c);
    if (message == nullptr) {
      EXPECT_TRUE(st.ok()) << st.message();
    } else {
      ASSERT_FALSE(st.ok()) << name << " " << model << " " << token;
      EXPECT_NE(st.message().find(message), std::string::npos) << st.message();
    }
  };
  check("e0\r\nSet-Cookie: x=1", "m", "", "backends[0]: name has the character 0x0d");
  check("e 0", "m", "", "backends[0]: name has the character 0x20");
  check(std::string(129, 'a'), "m", "", "longer than 128");
  check("dp-0.node_1:8000/rank@a+b~c", "m", "", nullptr);
  check("e0", "bad\xff", "", "model must be 1-512 bytes of UTF-8");
  check("e0", "bad\xc0\xaf", "", "model must be");  // an overlong '/'
  check("e0", "bad\x01", "", "model must be");
  check("e0", "Qwen/Qwen3-30B-A3B", "", nullptr);
  check("e0", "\xe6\xa8\xa1\xe5\x9e\x8b", "", nullptr);  // UTF-8 is fine
  check("e0", "m", "secret ", "admin token: only visible ASCII");
  check("e0", "m", "sec ret", "admin token");
  check("e0", "m", "s3cr3t-t0ken_=", nullptr);
}

TEST(RouterConfig, MalformedBackendUrlsAreRejectedNamingTheBackend) {
  for (const char* bad :
       {"http://[::1", "http://[::1:8000", "http://::1:8000", "http://[]:8000", "http://[::1]x",
        "http://[::1]:", "http://h:0", "http://h:65536", "http://h:80x", "http://:8000", "http://",
        "http://h:-1", "http://u@h:1", "http://h:1?x", "http://h]:1", "http://h[:1"}) {
    EXPECT_NE(BackendUrlProblem(bad), "") << bad;
    RouterConfig c;
    ASSERT_TRUE(AddBackend(c, std::string(bad) + "=m", "").ok());
    c.backends[0].name = "big";
    Status st = ValidateRouterConfig(c);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.message().find("backend 'big': "), std::string::npos) << st.message();
  }
  for (const char* good :
       {"http://[::1]:8000", "http://[::1]", "http://[fe80::1%eth0]:80/v", "http://127.0.0.1:8001/",
        "http://engine-0.local:1/prefix", " http://h:65535 "}) {
    EXPECT_EQ(BackendUrlProblem(good), "") << good;
  }
  RouterConfig ok;
  ASSERT_TRUE(AddBackend(ok, "http://[::1]:8001=m", "").ok());
  ASSERT_TRUE(ValidateRouterConfig(ok).ok());
  EXPECT_EQ(ok.backends[0].parsed.host, "::1");
  EXPECT_EQ(ok.backends[0].parsed.port, 8001);

  auto file = ParseRouterConfig(
      "backends:\n  - {url: 'http://127.0.0.1:8001', model: m}\n  - {name: v6, url: 'http://[::1', "
      "model: m}\n",
      "router.yaml");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("router.yaml:3:"), std::string::npos)
      << file.status().message();
  EXPECT_NE(file.status().message().find("'backends[1].url': backend 'v6': URL 'http://[::1': "
                                         "unterminated IPv6 address"),
            std::string::npos)
      << file.status().message();
}

TEST(RouterConfig, SizesCountsAndDurationsAreBounded) {
  for (const char* bad :
       {"limits: {body_limit_bytes: 1000000000000}\n",
        "limits: {max_inflight_per_engine: 1000000000000}\n",
        "limits: {upstream_read_timeout_s: 1e300}\n", "limits: {drain_timeout_s: .inf}\n",
        "listen: {threads: 100000}\n", "listen: {max_connections: -1}\n",
        "listen: {max_connections: 1e12}\n", "state: {scrape_interval_s: 1e9}\n",
        "health: {max_ejected_fraction: 1.5}\n", "health: {max_ejected_fraction: -0.1}\n",
        "backends: [{url: 'http://h:1', model: m, max_inflight: 1e12}]\n"}) {
    auto c = ParseRouterConfig(bad, "r.yaml");
    EXPECT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("r.yaml:1:"), std::string::npos) << c.status().message();
  }
}

TEST(RouterConfig, DuplicateKeysAreRejected) {
  auto c =
      ParseRouterConfig("listen: {port: 9000}\nseed: 1\nlisten: {port: 9001}\n", "router.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("router.yaml:3:1: 'listen': duplicate key"),
            std::string::npos)
      << c.status().message();
}

}  // namespace
}  // namespace gimbal::router

namespace gimbal::router {
namespace {

TEST(RouterConfig, CheckedInConfigsLoad) {
  setenv("GIMBAL_ADMIN_TOKEN", "test-token", 1);
  for (const char* name : {"router.yaml", "vllm_baseline.yaml"}) {
    auto c = LoadRouterConfig(std::string(GIMBAL_SOURCE_DIR) + "/configs/router/" + name);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status().ToString();
    EXPECT_TRUE(ValidateRouterConfig(c.value()).ok()) << name;
    EXPECT_EQ(c->backends.size(), 2u);
  }
}

}  // namespace
}  // namespace gimbal::router
