#include "router/config.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <set>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/backend_name.h"
#include "core/yaml_reader.h"

namespace gimbal::router {

const char* StateSourceName(StateSource s) {
  switch (s) {
    case StateSource::kAuto:
      return "auto";
    case StateSource::kMetrics:
      return "metrics";
    case StateSource::kPush:
      return "push";
  }
  return "auto";
}

bool ParseStateSource(const std::string& text, StateSource* out) {
  for (StateSource s : {StateSource::kAuto, StateSource::kMetrics, StateSource::kPush}) {
    if (text == StateSourceName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

const char* PrefixIndexModeName(PrefixIndexMode m) {
  switch (m) {
    case PrefixIndexMode::kNone:
      return "none";
    case PrefixIndexMode::kApproximate:
      return "approximate";
    case PrefixIndexMode::kAuto:
      return "auto";
  }
  return "auto";
}

bool ParsePrefixIndexMode(const std::string& text, PrefixIndexMode* out) {
  for (PrefixIndexMode m :
       {PrefixIndexMode::kNone, PrefixIndexMode::kApproximate, PrefixIndexMode::kAuto}) {
    if (text == PrefixIndexModeName(m)) {
      *out = m;
      return true;
    }
  }
  return false;
}

namespace {

// A ZeroMQ endpoint the router can connect to: tcp://host:port or ipc://path.
std::string EndpointProblem(const std::string& e) {
  if (e.rfind("tcp://", 0) == 0) {
    const auto colon = e.rfind(':');
    if (colon <= 6 || colon + 1 >= e.size()) return "'" + e + "' is not tcp://host:port";
    for (size_t i = colon + 1; i < e.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(e[i]))) {
        return "'" + e + "' is not tcp://host:port";
      }
    }
    return "";
  }
  if (e.rfind("ipc://", 0) == 0 && e.size() > 6) return "";
  return "'" + e + "' is not a tcp://host:port or ipc://path endpoint";
}

constexpr const char* kStateSources = "expected auto, metrics or push";
// Upper bounds of sizes, counts and durations: beyond them a value is a typo or hostile.
constexpr int64_t kMaxBodyBytes = int64_t{1} << 30;
constexpr int64_t kMaxInflight = 1'000'000;
constexpr size_t kMaxBackends = 4096;
constexpr double kMaxSeconds = 86400;  // timeouts and intervals: at most a day

Params ReadParams(const YamlReader& r, const std::string& key) {
  Params p;
  if (!r.Has(key)) return p;
  YamlReader child = r.Child(key);
  if (!child.IsMap()) {
    child.Fail("expected a map of parameters");
    return p;
  }
  for (const auto& k : child.Keys()) p.Set(k, child.String(k, std::nullopt));
  return p;
}

Result<RouterConfig> FromReader(const YamlReader& root) {
  RouterConfig c;
  root.CheckKeys({"listen", "limits", "backends", "dispatch", "queue", "prefix_cache", "classes",
                  "state", "health", "admin", "seed"});
  if (root.Has("listen")) {
    auto l = root.Child("listen");
    l.CheckKeys({"address", "port", "threads", "max_connections"});
    c.address = l.String("address", c.address);
    c.port = static_cast<uint16_t>(l.Int("port", c.port, 0, 65535));
    c.threads = static_cast<int>(l.Int("threads", c.threads, 1, 256));
    c.max_connections = static_cast<size_t>(
        l.Int("max_connections", static_cast<int64_t>(c.max_connections), 0, int64_t{1} << 30));
  }
  if (root.Has("limits")) {
    auto l = root.Child("limits");
    l.CheckKeys({"body_limit_bytes", "answer_limit_bytes", "stream_event_limit_bytes",
                 "idle_timeout_s", "read_timeout_s", "write_timeout_s",
                 "upstream_connect_timeout_s", "upstream_header_timeout_s",
                 "upstream_read_timeout_s", "max_inflight_per_engine", "retry_after_s",
                 "max_attempts", "drain_timeout_s"});
    c.body_limit_bytes = static_cast<size_t>(
        l.Int("body_limit_bytes", static_cast<int64_t>(c.body_limit_bytes), 1, kMaxBodyBytes));
    c.answer_limit_bytes = static_cast<size_t>(
        l.Int("answer_limit_bytes", static_cast<int64_t>(c.answer_limit_bytes), 1, kMaxBodyBytes));
    c.stream_event_limit_bytes = static_cast<size_t>(
        l.Int("stream_event_limit_bytes", static_cast<int64_t>(c.stream_event_limit_bytes), 1,
              kMaxBodyBytes));
    c.idle_timeout_s = l.Double("idle_timeout_s", c.idle_timeout_s, 0.001, kMaxSeconds);
    c.read_timeout_s = l.Double("read_timeout_s", c.read_timeout_s, 0.001, kMaxSeconds);
    c.write_timeout_s = l.Double("write_timeout_s", c.write_timeout_s, 0.001, kMaxSeconds);
    c.upstream_connect_timeout_s =
        l.Double("upstream_connect_timeout_s", c.upstream_connect_timeout_s, 0.001, kMaxSeconds);
    c.upstream_header_timeout_s =
        l.Double("upstream_header_timeout_s", c.upstream_header_timeout_s, 0.001, kMaxSeconds);
    c.upstream_read_timeout_s =
        l.Double("upstream_read_timeout_s", c.upstream_read_timeout_s, 0.001, kMaxSeconds);
    c.max_inflight_per_engine =
        l.Int("max_inflight_per_engine", c.max_inflight_per_engine, 1, kMaxInflight);
    c.retry_after_s = static_cast<int>(l.Int("retry_after_s", c.retry_after_s, 0, 3600));
    c.max_attempts = static_cast<int>(l.Int("max_attempts", c.max_attempts, 1, 100));
    c.drain_timeout_s = l.Double("drain_timeout_s", c.drain_timeout_s, 0, kMaxSeconds);
  }
  const auto backends = root.Items("backends", true);
  if (backends.size() > kMaxBackends) {
    root.Fail(fmt::format("{} backends, more than the {} allowed", backends.size(), kMaxBackends),
              "backends");
  }
  for (const auto& b : backends) {
    if (!root.ok()) break;
    b.CheckKeys({"name", "url", "model", "max_inflight", "state", "kv_events", "kv_events_replay"});
    BackendConfig bc;
    bc.name = b.String("name", "");
    bc.url = b.String("url", std::nullopt);
    if (b.ok()) {
      if (std::string problem = BackendUrlProblem(bc.url); !problem.empty()) {
        b.Fail(bc.name.empty() ? problem : "backend '" + bc.name + "': " + problem, "url");
      }
    }
    bc.model = b.String("model", std::nullopt);
    bc.max_inflight = b.Int("max_inflight", 0, 0, kMaxInflight);
    if (b.Has("state")) {
      StateSource src;
      if (ParseStateSource(b.String("state", ""), &src)) {
        bc.state = src;
      } else {
        b.Fail(kStateSources, "state");
      }
    }
    for (const char* key : {"kv_events", "kv_events_replay"}) {
      std::string endpoint = b.String(key, "");
      if (!endpoint.empty()) {
        if (std::string problem = EndpointProblem(endpoint); !problem.empty()) b.Fail(problem, key);
      }
      (std::string_view(key) == "kv_events" ? bc.kv_events : bc.kv_events_replay) = endpoint;
    }
    if (bc.kv_events.empty() && !bc.kv_events_replay.empty()) {
      b.Fail("kv_events_replay needs kv_events", "kv_events_replay");
    }
    c.backends.push_back(std::move(bc));
  }
  if (root.Has("classes")) {
    auto cl = root.Child("classes");
    cl.CheckKeys({"tenants"});
    if (cl.Has("tenants")) {
      auto t = cl.Child("tenants");
      if (!t.IsMap()) {
        t.Fail("expected a map of user names to traffic classes");
      } else {
        for (const auto& user : t.Keys()) {
          c.tenant_classes[user] = static_cast<int>(t.Int(user, std::nullopt, 0, 1'000'000));
        }
      }
    }
  }
  if (root.Has("prefix_cache")) {
    auto p = root.Child("prefix_cache");
    p.CheckKeys({"index", "block_tokens", "chars_per_token", "capacity_blocks", "catch_up_s",
                 "event_max_message_bytes", "event_queue_messages", "replay_timeout_s", "hash",
                 "vllm_hash_algo", "python_hash_seed"});
    if (p.Has("index") && !ParsePrefixIndexMode(p.String("index", ""), &c.prefix_cache.index)) {
      p.Fail("expected none, approximate or auto", "index");
    }
    c.prefix_cache.block_tokens = p.Int("block_tokens", c.prefix_cache.block_tokens, 1, 1 << 20);
    c.prefix_cache.chars_per_token =
        p.Double("chars_per_token", c.prefix_cache.chars_per_token, 0.1, 100);
    c.prefix_cache.capacity_blocks =
        p.Int("capacity_blocks", c.prefix_cache.capacity_blocks, 1, int64_t{1} << 26);
    c.prefix_cache.catch_up_s = p.Double("catch_up_s", c.prefix_cache.catch_up_s, 0, kMaxSeconds);
    c.prefix_cache.event_max_message_bytes = p.Int(
        "event_max_message_bytes", c.prefix_cache.event_max_message_bytes, 1024, int64_t{1} << 30);
    c.prefix_cache.event_queue_messages =
        p.Int("event_queue_messages", c.prefix_cache.event_queue_messages, 1, 1 << 20);
    c.prefix_cache.replay_timeout_s =
        p.Double("replay_timeout_s", c.prefix_cache.replay_timeout_s, 0.001, 60);
    const std::string hash = p.Enum("hash", "gimbal", {"gimbal", "vllm"});
    c.prefix_cache.hash =
        hash == "vllm" ? PrefixCacheConfig::Hash::kVllm : PrefixCacheConfig::Hash::kGimbal;
    c.prefix_cache.vllm_hash_algo = p.Enum("vllm_hash_algo", c.prefix_cache.vllm_hash_algo,
                                           {"sha256", "sha256_cbor", "xxhash", "xxhash_cbor"});
    if (p.Has("python_hash_seed"))
      c.prefix_cache.python_hash_seed = p.String("python_hash_seed", "");
  }
  if (root.Has("dispatch")) {
    auto d = root.Child("dispatch");
    d.CheckKeys({"policy", "params"});
    c.dispatch_policy = d.String("policy", c.dispatch_policy);
    c.dispatch_params = ReadParams(d, "params");
  }
  if (root.Has("queue")) {
    auto q = root.Child("queue");
    q.CheckKeys({"policy", "params"});
    c.queue_policy = q.String("policy", "");
    c.queue_params = ReadParams(q, "params");
  }
  if (root.Has("state")) {
    auto s = root.Child("state");
    s.CheckKeys({"scrape_interval_s", "scrape_timeout_s", "chars_per_token",
                 "adapt_chars_per_token", "source", "push_stale_s"});
    c.scrape_interval_s = s.Double("scrape_interval_s", c.scrape_interval_s, 0.001, kMaxSeconds);
    c.scrape_timeout_s = s.Double("scrape_timeout_s", c.scrape_timeout_s, 0.001, kMaxSeconds);
    c.chars_per_token = s.Double("chars_per_token", c.chars_per_token, 0.1, 100);
    c.adapt_chars_per_token = s.Bool("adapt_chars_per_token", c.adapt_chars_per_token);
    if (s.Has("source") && !ParseStateSource(s.String("source", ""), &c.state_source)) {
      s.Fail(kStateSources, "source");
    }
    c.push_stale_s = s.Double("push_stale_s", c.push_stale_s, 0.01, kMaxSeconds);
  }
  if (root.Has("health")) {
    auto h = root.Child("health");
    h.CheckKeys({"interval_s", "timeout_s", "failures_to_eject", "successes_to_readmit",
                 "max_ejected_fraction"});
    c.health_interval_s = h.Double("interval_s", c.health_interval_s, 0.001, kMaxSeconds);
    c.health_timeout_s = h.Double("timeout_s", c.health_timeout_s, 0.001, kMaxSeconds);
    c.failures_to_eject =
        static_cast<int>(h.Int("failures_to_eject", c.failures_to_eject, 1, 1000));
    c.successes_to_readmit =
        static_cast<int>(h.Int("successes_to_readmit", c.successes_to_readmit, 1, 1000));
    c.max_ejected_fraction = h.Double("max_ejected_fraction", c.max_ejected_fraction, 0, 1);
  }
  if (root.Has("admin")) {
    auto a = root.Child("admin");
    a.CheckKeys({"token", "token_env"});
    c.admin_token = a.String("token", "");
    std::string env = a.String("token_env", "");
    if (!env.empty()) {
      const char* v = std::getenv(env.c_str());
      if (v == nullptr || *v == '\0') {
        a.Fail("environment variable '" + env + "' is not set", "token_env");
      } else {
        c.admin_token = v;
      }
    }
  }
  c.seed = static_cast<uint64_t>(root.Int("seed", 1, 0));
  if (!root.ok()) return root.status();
  return c;
}

}  // namespace

Result<RouterConfig> LoadRouterConfig(const std::string& path) {
  auto r = YamlReader::FromFile(path);
  if (!r.ok()) return r.status();
  return FromReader(r.value());
}

Result<RouterConfig> ParseRouterConfig(const std::string& yaml, const std::string& name) {
  auto r = YamlReader::FromString(yaml, name);
  if (!r.ok()) return r.status();
  return FromReader(r.value());
}

Status AddBackend(RouterConfig& config, const std::string& spec, const std::string& default_model) {
  BackendConfig b;
  size_t eq = spec.find('=');
  b.url = spec.substr(0, eq);
  b.model = eq == std::string::npos ? default_model : spec.substr(eq + 1);
  if (b.model.empty()) {
    return InvalidArgument("backend '" + spec + "': no model; write URL=MODEL or pass --model");
  }
  config.backends.push_back(std::move(b));
  return Status::Ok();
}

std::string BackendUrlProblem(std::string_view url) {
  while (!url.empty() && (url.front() == ' ' || url.front() == '\t')) url.remove_prefix(1);
  while (!url.empty() && (url.back() == ' ' || url.back() == '\t')) url.remove_suffix(1);
  const std::string quoted = fmt::format("'{}'", url);
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return fmt::format("expected a URL starting with http://, got {}", quoted);
  }
  const std::string_view rest = url.substr(kScheme.size());
  const std::string_view authority = rest.substr(0, rest.find('/'));
  for (char c : url) {
    if (std::iscntrl(static_cast<unsigned char>(c)) || c == ' ' || c == '\t') {
      return fmt::format("URL {} contains a space or a control character", quoted);
    }
  }
  for (char c : {'@', '?', '#'}) {
    if (authority.find(c) != std::string_view::npos) {
      return fmt::format("URL {} has a '{}' in its host part; expected http://host[:port][/path]",
                         quoted, c);
    }
  }
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return fmt::format("URL {}: unterminated IPv6 address (a '[' without its ']')", quoted);
    }
    host = authority.substr(1, close - 1);
    if (host.empty()) return fmt::format("URL {}: empty IPv6 address in '[]'", quoted);
    const std::string_view address = host.substr(0, host.find('%'));  // then a zone, as %eth0
    bool valid = !address.empty() && address.find(':') != std::string_view::npos;
    for (char c : address) {
      valid = valid && (std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.');
    }
    for (char c : host.substr(address.size())) {
      valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '%' || c == '-' ||
                        c == '_' || c == '.');
    }
    if (!valid) return fmt::format("URL {}: '{}' is not an IPv6 address", quoted, host);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return fmt::format("URL {}: unexpected '{}' after the IPv6 address", quoted, after);
      }
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port = authority.substr(colon + 1);
      if (port.find(':') != std::string_view::npos) {
        return fmt::format("URL {}: an IPv6 address must be in brackets, as in http://[::1]:8000",
                           quoted);
      }
    }
    if (host.empty()) return fmt::format("URL {}: missing host", quoted);
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        return fmt::format("URL {}: unexpected '{}' in host '{}'", quoted, c, host);
      }
    }
  }
  if (has_port) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return fmt::format("URL {}: bad port '{}', expected 1..65535", quoted, port);
    }
  }
  return "";
}

namespace {

// Whether `s` is UTF-8 without control characters (a model name is answered in /v1/models JSON
// and compared with requests' `model`). nlohmann's serializer checks the UTF-8 (overlong forms,
// surrogates and values past U+10FFFF included): its strict dump throws on anything else.
bool PrintableUtf8(const std::string& s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
  }
  try {
    (void)nlohmann::json(s).dump();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

}  // namespace

Status ValidateRouterConfig(RouterConfig& config) {
  // A bearer token is one run of visible characters: one with a space or a control character
  // could never match what a client sends (headers are trimmed, the scheme is split at spaces).
  for (const char ch : config.admin_token) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgument(
          "admin token: only visible ASCII characters (no spaces) can be sent as a bearer token");
    }
  }
  if (config.backends.empty()) {
    return InvalidArgument(
        "no backends: add 'backends:' to the config or pass --backend URL=MODEL");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < config.backends.size(); ++i) {
    auto& b = config.backends[i];
    if (b.name.empty()) b.name = fmt::format("e{}", i);
    if (std::string problem = BackendNameProblem(b.name); !problem.empty()) {
      return InvalidArgument(fmt::format("backends[{}]: name {}", i, problem));
    }
    if (!names.insert(b.name).second) {
      return InvalidArgument("backend name '" + b.name + "' is used twice");
    }
    if (b.model.empty() || b.model.size() > 512 || !PrintableUtf8(b.model)) {
      return InvalidArgument("backend '" + b.name +
                             "': model must be 1-512 bytes of UTF-8 without control characters");
    }
    if (std::string problem = BackendUrlProblem(b.url); !problem.empty()) {
      return InvalidArgument("backend '" + b.name + "': " + problem);
    }
    std::string err;
    if (!net::Url::Parse(b.url, &b.parsed, &err)) {
      return InvalidArgument("backend '" + b.name + "': " + err);
    }
    for (const std::string* e : {&b.kv_events, &b.kv_events_replay}) {
      if (e->empty()) continue;
      if (std::string problem = EndpointProblem(*e); !problem.empty()) {
        return InvalidArgument("backend '" + b.name + "': KV events: " + problem);
      }
    }
    if (b.kv_events.empty() && !b.kv_events_replay.empty()) {
      return InvalidArgument("backend '" + b.name + "': kv_events_replay needs kv_events");
    }
    if (b.max_inflight == 0) b.max_inflight = config.max_inflight_per_engine;
  }
  return Status::Ok();
}

}  // namespace gimbal::router
