#include "router/config.h"

#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "core/yaml_reader.h"

namespace gimbal::router {

const char* StateSourceName(StateSource s) {
  switch (s) {
    case StateSource::kAuto: return "auto";
    case StateSource::kMetrics: return "metrics";
    case StateSource::kPush: return "push";
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

namespace {

constexpr const char* kStateSources = "expected auto, metrics or push";

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
  root.CheckKeys({"listen", "limits", "backends", "dispatch", "queue", "state", "health", "admin",
                  "seed"});
  if (root.Has("listen")) {
    auto l = root.Child("listen");
    l.CheckKeys({"address", "port", "threads"});
    c.address = l.String("address", c.address);
    c.port = static_cast<uint16_t>(l.Int("port", c.port, 0, 65535));
    c.threads = static_cast<int>(l.Int("threads", c.threads, 1, 256));
  }
  if (root.Has("limits")) {
    auto l = root.Child("limits");
    l.CheckKeys({"body_limit_bytes", "idle_timeout_s", "read_timeout_s", "write_timeout_s",
                 "upstream_connect_timeout_s", "upstream_header_timeout_s",
                 "upstream_read_timeout_s", "max_inflight_per_engine", "retry_after_s",
                 "max_attempts", "drain_timeout_s"});
    c.body_limit_bytes = static_cast<size_t>(
        l.Int("body_limit_bytes", static_cast<int64_t>(c.body_limit_bytes), 1));
    c.idle_timeout_s = l.Double("idle_timeout_s", c.idle_timeout_s, 0.001);
    c.read_timeout_s = l.Double("read_timeout_s", c.read_timeout_s, 0.001);
    c.write_timeout_s = l.Double("write_timeout_s", c.write_timeout_s, 0.001);
    c.upstream_connect_timeout_s =
        l.Double("upstream_connect_timeout_s", c.upstream_connect_timeout_s, 0.001);
    c.upstream_header_timeout_s =
        l.Double("upstream_header_timeout_s", c.upstream_header_timeout_s, 0.001);
    c.upstream_read_timeout_s =
        l.Double("upstream_read_timeout_s", c.upstream_read_timeout_s, 0.001);
    c.max_inflight_per_engine = l.Int("max_inflight_per_engine", c.max_inflight_per_engine, 1);
    c.retry_after_s = static_cast<int>(l.Int("retry_after_s", c.retry_after_s, 0, 3600));
    c.max_attempts = static_cast<int>(l.Int("max_attempts", c.max_attempts, 1, 100));
    c.drain_timeout_s = l.Double("drain_timeout_s", c.drain_timeout_s, 0);
  }
  for (const auto& b : root.Items("backends", true)) {
    b.CheckKeys({"name", "url", "model", "max_inflight", "state"});
    BackendConfig bc;
    bc.name = b.String("name", "");
    bc.url = b.String("url", std::nullopt);
    bc.model = b.String("model", std::nullopt);
    bc.max_inflight = b.Int("max_inflight", 0, 0);
    if (b.Has("state")) {
      StateSource src;
      if (ParseStateSource(b.String("state", ""), &src)) {
        bc.state = src;
      } else {
        b.Fail(kStateSources, "state");
      }
    }
    c.backends.push_back(std::move(bc));
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
    c.scrape_interval_s = s.Double("scrape_interval_s", c.scrape_interval_s, 0.001);
    c.scrape_timeout_s = s.Double("scrape_timeout_s", c.scrape_timeout_s, 0.001);
    c.chars_per_token = s.Double("chars_per_token", c.chars_per_token, 0.1, 100);
    c.adapt_chars_per_token = s.Bool("adapt_chars_per_token", c.adapt_chars_per_token);
    if (s.Has("source") && !ParseStateSource(s.String("source", ""), &c.state_source)) {
      s.Fail(kStateSources, "source");
    }
    c.push_stale_s = s.Double("push_stale_s", c.push_stale_s, 0.01);
  }
  if (root.Has("health")) {
    auto h = root.Child("health");
    h.CheckKeys({"interval_s", "timeout_s", "failures_to_eject", "successes_to_readmit"});
    c.health_interval_s = h.Double("interval_s", c.health_interval_s, 0.001);
    c.health_timeout_s = h.Double("timeout_s", c.health_timeout_s, 0.001);
    c.failures_to_eject = static_cast<int>(h.Int("failures_to_eject", c.failures_to_eject, 1, 1000));
    c.successes_to_readmit =
        static_cast<int>(h.Int("successes_to_readmit", c.successes_to_readmit, 1, 1000));
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

Status AddBackend(RouterConfig& config, const std::string& spec,
                  const std::string& default_model) {
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

Status ValidateRouterConfig(RouterConfig& config) {
  if (config.backends.empty()) {
    return InvalidArgument("no backends: add 'backends:' to the config or pass --backend URL=MODEL");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < config.backends.size(); ++i) {
    auto& b = config.backends[i];
    if (b.name.empty()) b.name = fmt::format("e{}", i);
    if (!names.insert(b.name).second) {
      return InvalidArgument("backend name '" + b.name + "' is used twice");
    }
    std::string err;
    if (!net::Url::Parse(b.url, &b.parsed, &err)) {
      return InvalidArgument("backend '" + b.name + "': " + err);
    }
    if (b.max_inflight == 0) b.max_inflight = config.max_inflight_per_engine;
  }
  return Status::Ok();
}

}  // namespace gimbal::router
