// RouterConfig: everything `gimbal serve` reads from router.yaml (schema in docs/router.md).
//
// LoadRouterConfig validates the whole file and names the first bad key with its line; unknown
// keys are errors. Flags of `gimbal serve` override fields after loading.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/params.h"
#include "core/status.h"
#include "kvevents/subscriber.h"
#include "net/http_types.h"

namespace gimbal::router {

// Where the router reads an engine's state besides its own reservations.
//   kMetrics: scrape /metrics only (stock vLLM).
//   kPush:    subscribe to the engine's /gimbal/state/stream (gimbal engine) and keep retrying it;
//             /metrics is scraped only while no fresh pushed state is at hand.
//   kAuto:    kPush when the engine offers the stream, else kMetrics (decided per engine at start:
//             a 404 or a non-event-stream answer means it does not).
enum class StateSource { kAuto, kMetrics, kPush };
const char* StateSourceName(StateSource s);
bool ParseStateSource(const std::string& text, StateSource* out);

// What the router knows of each engine's prefix cache (docs/router.md, "Prefix-aware dispatch").
//   kNone:        nothing: every engine's cached_prompt_tokens is 0.
//   kApproximate: the router's own bounded record of the prompt blocks it sent to each engine.
//   kAuto:        the engine's KV-cache events where the backend names `kv_events` (the index
//                 falls back to the approximate record while the event feed is stale), the
//                 approximate record elsewhere.
enum class PrefixIndexMode { kNone, kApproximate, kAuto };
const char* PrefixIndexModeName(PrefixIndexMode m);
bool ParsePrefixIndexMode(const std::string& text, PrefixIndexMode* out);

struct PrefixCacheConfig {
  PrefixIndexMode index = PrefixIndexMode::kAuto;
  // Tokens per hashed block: the engines' KV block size, so that the router's block hashes are
  // the engines' (the emulated engines hash prompts this way; wire::PromptBlockOptions). 64 is
  // vLLM 0.34's default (16 before); an engine whose KV events name another size is answered
  // from the approximate record, with a warning.
  int64_t block_tokens = 64;
  // Prompt characters per token when cutting text into blocks: the engines' ratio, fixed (not the
  // adapted estimate, which would move block boundaries).
  double chars_per_token = 4;
  int64_t capacity_blocks = 65536;  // per engine, in each index (approximate and events)
  double catch_up_s = kvevents::SubscriberOptions{}.catch_up_s;
  // The KV-event subscriber's bounds (kvevents::SubscriberOptions, whose defaults they take): the
  // largest event frame accepted (a larger one drops that engine's connection, which is then made
  // again), the messages queued per engine before the publisher side drops (seen as a gap), and
  // how long a replay may take.
  int64_t event_max_message_bytes = kvevents::SubscriberOptions{}.max_message_bytes;
  int64_t event_queue_messages = kvevents::SubscriberOptions{}.rcv_hwm;
  double replay_timeout_s = kvevents::SubscriberOptions{}.replay_timeout_s;
  // How the engines name blocks in their KV-cache events. kGimbal: the emulated engines' hashes
  // of the prompt as read (text or ids). kVllm: a real vLLM's hashes of token ids
  // (kvevents::VllmBlockHasher with vllm_hash_algo and python_hash_seed, which must equal the
  // engines' --prefix-caching-hash-algo and PYTHONHASHSEED); only prompts sent as token ids can
  // be matched then, others are answered from the approximate record.
  enum class Hash { kGimbal, kVllm };
  Hash hash = Hash::kGimbal;
  std::string vllm_hash_algo = "sha256";
  std::optional<std::string> python_hash_seed;  // unset: the engines run without PYTHONHASHSEED
};

struct BackendConfig {
  std::string name;  // unique; default "e<index>"
  std::string url;   // http://host:port[/prefix]
  net::Url parsed;
  std::string model;                 // the model name the backend serves
  int64_t max_inflight = 0;          // 0: the router-wide default
  std::optional<StateSource> state;  // unset: RouterConfig::state_source
  // ZeroMQ endpoints of the engine's KV-cache event publisher and its replay socket (vLLM's
  // --kv-events-config endpoint and replay_endpoint, as the router connects to them); "" = none.
  std::string kv_events;
  std::string kv_events_replay;
};

struct RouterConfig {
  // listen
  std::string address = "127.0.0.1";
  uint16_t port = 8000;
  int threads = 4;
  // Open client connections; 0: (open-file limit - 64) / 2 (net::ConnectionCapFor).
  size_t max_connections = 0;
  // limits
  size_t body_limit_bytes = 4 << 20;
  // An engine's whole (non-streamed) answer, and one event of a streamed one, may be at most this
  // large; more fails the attempt (the engine counts a failure), so a broken engine cannot grow
  // the router's memory without end.
  size_t answer_limit_bytes = size_t{64} << 20;
  size_t stream_event_limit_bytes = size_t{1} << 20;
  double idle_timeout_s = 60;
  double read_timeout_s = 30;
  double write_timeout_s = 30;
  double upstream_connect_timeout_s = 5;
  double upstream_header_timeout_s = 600;
  double upstream_read_timeout_s = 120;
  int64_t max_inflight_per_engine = 256;
  int retry_after_s = 1;
  int max_attempts = 3;  // engines tried per request before giving up (never after a byte was sent)
  double drain_timeout_s = 30;
  // backends
  std::vector<BackendConfig> backends;
  // dispatch
  std::string dispatch_policy = "gimbal";
  Params dispatch_params;
  // queue ordering through vLLM's `priority` field; empty policy: leave requests untouched
  std::string queue_policy;
  Params queue_params;
  PrefixCacheConfig prefix_cache;
  // Class hints for dispatch (DispatchRequest::class_hint): a request's `user` mapped to a traffic
  // class (`classes.tenants`); the `x-gimbal-class` header and the body's `gimbal_traffic_class`
  // come first (docs/router.md, "Class hints").
  std::map<std::string, int> tenant_classes;
  // engine state
  double scrape_interval_s = 0.1;
  double scrape_timeout_s = 1;
  double chars_per_token = 4;
  bool adapt_chars_per_token = true;              // learn the ratio from responses' `usage`
  StateSource state_source = StateSource::kAuto;  // default for backends without `state`
  // Pushed state older than this counts as stale: /metrics is scraped again, and a state stream
  // silent this long is reconnected (gimbal engine pushes at least once a second).
  double push_stale_s = 3;
  // health
  double health_interval_s = 1;
  double health_timeout_s = 1;
  int failures_to_eject = 3;
  int successes_to_readmit = 2;
  // Failed requests (which a client may cause) eject at most this share of a model's engines.
  double max_ejected_fraction = 0.5;
  // admin
  std::string admin_token;  // empty: admin endpoints disabled
  uint64_t seed = 1;
};

// Reads and validates a router config file.
Result<RouterConfig> LoadRouterConfig(const std::string& path);
// Same from YAML text; `name` labels messages.
Result<RouterConfig> ParseRouterConfig(const std::string& yaml, const std::string& name);
// Adds a backend given as "URL" or "URL=model"; the model defaults to `default_model`.
Status AddBackend(RouterConfig& config, const std::string& spec, const std::string& default_model);
// Checks cross-field rules (unique names, well-formed URLs, at least one backend).
Status ValidateRouterConfig(RouterConfig& config);
// What is wrong with a backend URL, or "" when it is a well-formed http://host[:port][/path]: a
// host (a name, an IPv4 address or a bracketed IPv6 address such as [::1]), an optional port of
// digits in 1..65535, no user info, query or fragment. Stricter than net::Url::Parse.
std::string BackendUrlProblem(std::string_view url);

}  // namespace gimbal::router
