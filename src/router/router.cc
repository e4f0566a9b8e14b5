// Router: owns and wires the engine table, the completion proxy (completion_proxy.h) and the
// engine monitor (engine_monitor.h); answers the small endpoints; start, drain and stop.
#include "router/router.h"

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/secure_compare.h"
#include "core/thread_annotations.h"
#include "net/http_server.h"
#include "net/io_runtime.h"
#include "net/prometheus.h"
#include "router/completion_proxy.h"
#include "router/engine_monitor.h"
#include "router/engine_table.h"
#include "router/prefix_cache.h"
#include "wire/openai_error.h"
#include "wire/priority_tag.h"

namespace gimbal::router {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

// Every family the router counts in, registered in the order /metrics lists them.
struct RouterMetrics {
  explicit RouterMetrics(net::MetricsRegistry& reg);
  CompletionProxy::Metrics ForProxy() const {
    return {outcomes, dispatches, upstream_failures, decision, ttft, latency};
  }
  EngineMonitor::Metrics ForMonitor() const {
    return {scrape_warnings, pushed_states, scrape_failures};
  }

  std::vector<net::Counter*> outcomes;    // by Outcome
  net::CounterFamily& dispatches;         // {engine}
  net::CounterFamily& upstream_failures;  // {engine}
  net::CounterFamily& scrape_warnings;    // {engine}
  net::CounterFamily& scrape_failures;    // {engine}
  net::CounterFamily& pushed_states;      // {engine}
  net::HistogramFamily& decision;         // seconds
  net::HistogramFamily& ttft;             // seconds, streams only
  net::HistogramFamily& latency;          // seconds, {stream}
};

RouterMetrics::RouterMetrics(net::MetricsRegistry& reg)
    : dispatches(reg.AddCounter("gimbal_router_dispatches_total",
                                "Requests dispatched to each engine (retries included).",
                                {"engine"})),
      upstream_failures(reg.AddCounter(
          "gimbal_router_upstream_failures_total",
          "Requests an engine failed (connection refused, reset, timed out).", {"engine"})),
      scrape_warnings(reg.AddCounter(
          "gimbal_router_scrape_warnings_total",
          "Malformed /metrics lines skipped and implausible engine state values dropped.",
          {"engine"})),
      scrape_failures(reg.AddCounter(
          "gimbal_router_scrape_failures_total",
          "/metrics scrapes that got no page (refused, timed out, not 200, over the size limit).",
          {"engine"})),
      pushed_states(reg.AddCounter("gimbal_router_pushed_states_total",
                                   "Engine states read from engines' /gimbal/state/stream.",
                                   {"engine"})),
      decision(reg.AddHistogram(
          "gimbal_router_decision_seconds", "Time to choose an engine (policy and bookkeeping).",
          {}, {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2})),
      ttft(reg.AddHistogram("gimbal_router_ttft_seconds",
                            "Time from a streamed request's arrival to its first data event.", {},
                            net::LatencyBuckets())),
      latency(reg.AddHistogram("gimbal_router_request_duration_seconds",
                               "Time from a request's arrival to its last byte.", {"stream"},
                               net::LatencyBuckets())) {
  auto& fam = reg.AddCounter("gimbal_router_requests_total", "Requests by outcome.", {"outcome"});
  for (const char* o : {"ok", "engine_error", "bad_request", "rejected", "unavailable",
                        "stream_error", "client_gone", "cancelled", "too_large", "timed_out"}) {
    outcomes.push_back(&fam.With({o}));
  }
}

std::vector<EngineInfo> EngineInfos(const RouterConfig& config) {
  std::vector<EngineInfo> infos;
  for (const auto& b : config.backends) infos.push_back({b.name, b.model, b.max_inflight});
  return infos;
}

}  // namespace

// The HTTP handler: completions go to the proxy, every other endpoint is answered here.
class Router::Impl : public net::HttpHandler {
 public:
  Impl(RouterConfig config, net::IoRuntime& io, std::shared_ptr<const DispatchPolicy> dispatch,
       std::shared_ptr<const QueuePolicy> queue, std::function<double()> clock,
       std::unique_ptr<PrefixCache> prefix_cache);

  boost::asio::awaitable<void> Handle(net::HttpRequest& req, net::ResponseWriter& w) override;
  // Every endpoint but the completions, answered synchronously (Respond) and sent (Answer).
  boost::asio::awaitable<void> Answer(net::HttpRequest& req, net::ResponseWriter& w);
  net::HttpResponse Respond(const net::HttpRequest& req);
  std::string EnginesJson() const;
  bool Authorized(const net::HttpRequest& req) const;

  // In construction order: the table and the metrics before the parts that write them.
  const RouterConfig config;
  const std::shared_ptr<const DispatchPolicy> dispatch;
  const std::shared_ptr<const QueuePolicy> queue;
  const std::function<double()> clock;
  std::unique_ptr<PrefixCache> prefix_cache;  // before the table, which points to it
  EngineTable table;
  net::MetricsRegistry registry;
  RouterMetrics metrics;
  CompletionProxy proxy;
  // Shared with its loops, which may outlive this object until the io runtime is destroyed.
  std::shared_ptr<EngineMonitor> monitor;
  std::unique_ptr<net::HttpServer> server;
  std::atomic<bool> stopping{false};
  std::atomic<bool> draining{false};

 private:
  mutable Mutex placement_mu_;
  std::string placement_json_ GIMBAL_GUARDED_BY(placement_mu_);
  uint64_t placement_version_ GIMBAL_GUARDED_BY(placement_mu_) = 0;
};

Router::Impl::Impl(RouterConfig cfg, net::IoRuntime& io, std::shared_ptr<const DispatchPolicy> d,
                   std::shared_ptr<const QueuePolicy> q, std::function<double()> clk,
                   std::unique_ptr<PrefixCache> prefixes)
    : config(std::move(cfg)),
      dispatch(std::move(d)),
      queue(std::move(q)),
      clock(std::move(clk)),
      prefix_cache(std::move(prefixes)),
      table(EngineInfos(config), config.failures_to_eject, config.successes_to_readmit, config.seed,
            config.push_stale_s, config.max_ejected_fraction),
      metrics(registry),
      proxy(config, io, table, dispatch, queue, clock, metrics.ForProxy()),
      monitor(std::make_shared<EngineMonitor>(config, io, table, clock, metrics.ForMonitor())) {
  table.set_prefix_cache(prefix_cache.get());
  registry.AddCallbackGauge(
      "gimbal_router_prefix_blocks",
      "Prompt blocks of dispatched requests (looked_up) and, of those, blocks the picked engine "
      "held as far as the router knew (matched): its prefix-cache hit-rate estimate.",
      {"kind"}, [this] {
        return std::vector<std::pair<std::vector<std::string>, double>>{
            {{"looked_up"}, static_cast<double>(prefix_cache->looked_up_blocks())},
            {{"matched"}, static_cast<double>(prefix_cache->matched_blocks())}};
      });
  registry.AddCallbackGauge("gimbal_router_snapshot_age_seconds",
                            "Age of each engine's last scraped state.", {"engine"}, [this] {
                              std::vector<std::pair<std::vector<std::string>, double>> out;
                              for (const auto& r : table.Rows(clock()))
                                out.push_back({{r.info.name}, r.view.snapshot_age});
                              return out;
                            });
  registry.AddCallbackGauge(
      "gimbal_router_engine_inflight", "Requests the router has in flight on each engine.",
      {"engine"}, [this] {
        std::vector<std::pair<std::vector<std::string>, double>> out;
        for (const auto& r : table.Rows(clock())) {
          out.push_back({{r.info.name}, static_cast<double>(r.view.inflight)});
        }
        return out;
      });
  registry.AddCallbackGauge(
      "gimbal_router_engine_reserved_prefill_tokens",
      "Prompt tokens dispatched to each engine whose first token has not arrived.", {"engine"},
      [this] {
        std::vector<std::pair<std::vector<std::string>, double>> out;
        for (const auto& r : table.Rows(clock())) {
          out.push_back({{r.info.name}, static_cast<double>(r.view.reserved_prefill)});
        }
        return out;
      });
  registry.AddCallbackGauge("gimbal_router_engine_healthy", "1 when the engine is admitted.",
                            {"engine"}, [this] {
                              std::vector<std::pair<std::vector<std::string>, double>> out;
                              for (const auto& r : table.Rows(clock())) {
                                out.push_back({{r.info.name}, r.view.healthy ? 1.0 : 0.0});
                              }
                              return out;
                            });
  // The server is made in Start(), before it can serve /metrics.
  registry.AddCallbackGauge(
      "gimbal_router_open_connections", "Client connections open now.", {}, [this] {
        return std::vector<std::pair<std::vector<std::string>, double>>{
            {{}, server ? static_cast<double>(server->open_connections()) : 0}};
      });
  registry.AddCallbackCounter(
      "gimbal_router_connections_shed_total",
      "Client connections ended at the connection cap (listen.max_connections): evicted, the "
      "one that waited longest for a request, closed to make room; refused, answered 503 when "
      "every connection was serving.",
      {"how"}, [this] {
        const double evicted = server ? static_cast<double>(server->evicted_connections()) : 0;
        const double refused = server ? static_cast<double>(server->refused_connections()) : 0;
        return std::vector<std::pair<std::vector<std::string>, double>>{{{"evicted"}, evicted},
                                                                        {{"refused"}, refused}};
      });
  registry.AddCallbackGauge(
      "gimbal_router_chars_per_token",
      "Prompt characters per token used to estimate each model's prompt tokens.", {"model"},
      [this] {
        std::vector<std::pair<std::vector<std::string>, double>> out;
        for (const auto& [model, ratio] : proxy.chars_per_token()) out.push_back({{model}, ratio});
        return out;
      });
}

bool Router::Impl::Authorized(const net::HttpRequest& req) const {
  if (config.admin_token.empty()) return false;
  return BearerMatches(req.headers.Get("Authorization"), config.admin_token);
}

std::string Router::Impl::EnginesJson() const {
  json engines = json::array();
  auto rows = table.Rows(clock());
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const auto& s = r.view.snapshot;
    engines.push_back({
        {"name", r.info.name},
        {"url", config.backends[i].url},
        {"model", r.info.model},
        {"healthy", r.view.healthy},
        {"max_inflight", r.info.max_inflight},
        {"inflight", r.view.inflight},
        {"reserved_prefill_tokens", r.view.reserved_prefill},
        {"reserved_kv_tokens", r.view.reserved_kv_tokens},
        {"picks_since_snapshot", r.view.picks_since_snapshot},
        {"dispatched_total", r.dispatched_total},
        {"ejections", r.ejections},
        {"ejected_on_requests", r.ejected_on_requests},
        {"consecutive_failures", r.consecutive_failures},
        {"state_source", StateSourceName(monitor->SourceOf(static_cast<int>(i)))},
        {"moe_pressure", r.view.moe_pressure},
        {"prefix_cache", prefix_cache->EngineJson(static_cast<int>(i))},
        {"snapshot", r.has_snapshot ? json{{"waiting", s.waiting},
                                           {"running", s.running},
                                           {"kv_usage", s.kv_usage},
                                           {"kv_capacity_tokens", s.kv_capacity_tokens},
                                           {"prefill_pending_tokens", s.prefill_pending_tokens},
                                           {"pushed", r.pushed},
                                           {"own_accounting", r.own_accounting},
                                           {"age_s", r.view.snapshot_age}}
                                    : json(nullptr)},
    });
  }
  json out = {{"dispatch_policy", dispatch->name()},
              {"queue_policy", queue ? json(queue->name()) : json(nullptr)},
              {"chars_per_token",
               [this] {
                 json per_model = json::object();
                 for (const auto& [model, ratio] : proxy.chars_per_token())
                   per_model[model] = ratio;
                 return per_model;
               }()},
              {"prefix_index", PrefixIndexModeName(config.prefix_cache.index)},
              {"engines", engines}};
  return out.dump(2, ' ', false, json::error_handler_t::replace);
}

// Not a coroutine itself: a completion runs as the proxy's coroutine, with no frame here.
asio::awaitable<void> Router::Impl::Handle(net::HttpRequest& req, net::ResponseWriter& w) {
  if (CompletionProxy::Serves(req.path())) return proxy.Handle(req, w);
  return Answer(req, w);
}

asio::awaitable<void> Router::Impl::Answer(net::HttpRequest& req, net::ResponseWriter& w) {
  net::HttpResponse r = Respond(req);
  co_await w.Send(std::move(r));
}

net::HttpResponse Router::Impl::Respond(const net::HttpRequest& req) {
  const std::string_view path = req.path();
  const bool get = req.method == "GET", post = req.method == "POST";
  if (path == "/v1/models" && get) {
    json data = json::array();
    for (const auto& m : proxy.models()) {
      data.push_back({{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", "gimbal"}});
    }
    return net::MakeResponse(200, "application/json",
                             json{{"object", "list"}, {"data", data}}.dump(
                                 -1, ' ', false, json::error_handler_t::replace));
  }
  if (path == "/health" && get) {
    std::string status = draining ? "draining" : table.AnyHealthy() ? "ok" : "no healthy engine";
    return net::MakeResponse(status == "ok" ? 200 : 503, "application/json",
                             json{{"status", status}}.dump());
  }
  if (path == "/metrics" && get) {
    return net::MakeResponse(200, "text/plain; version=0.0.4; charset=utf-8", registry.Render());
  }
  if (path == "/admin/engines" || path == "/admin/placement") {
    if (config.admin_token.empty()) {
      return wire::OpenAiError(403, "admin endpoints are disabled: set admin.token in the config");
    }
    if (!Authorized(req)) {
      net::HttpResponse r = wire::OpenAiError(401, "missing or wrong bearer token");
      r.headers.Set("WWW-Authenticate", "Bearer");
      return r;
    }
    if (path == "/admin/engines" && get) {
      return net::MakeResponse(200, "application/json", EnginesJson());
    }
    if (path == "/admin/placement" && post) {
      if (Status nesting = wire::CheckJsonNesting(req.body); !nesting.ok()) {
        return wire::OpenAiError(400, "placement: " + nesting.message());
      }
      json j = json::parse(req.body, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        return wire::OpenAiError(400, "placement must be a JSON object");
      }
      uint64_t version;
      {
        MutexLock lock(placement_mu_);
        placement_json_ = req.body;
        version = ++placement_version_;
      }
      return net::MakeResponse(202, "application/json",
                               json{{"accepted", true}, {"version", version}}.dump());
    }
    if (path == "/admin/placement" && get) {
      MutexLock lock(placement_mu_);
      return net::MakeResponse(200, "application/json",
                               placement_json_.empty() ? "null" : placement_json_);
    }
    return wire::OpenAiError(405, "method not allowed");
  }
  return wire::OpenAiError(404, "no route for " + req.method + " " + std::string(path));
}

Result<std::unique_ptr<Router>> Router::Create(RouterConfig config, RouterDeps deps) {
  GIMBAL_RETURN_IF_ERROR(ValidateRouterConfig(config));
  if (!deps.dispatch_policy) {
    // Prefix blocks as the router hashes them: the engines' KV block size (llm-d, Dynamo).
    DispatchDeps dd;
    dd.kv_block_size = config.prefix_cache.block_tokens;
    auto p = MakeDispatchPolicy(config.dispatch_policy, config.dispatch_params, dd);
    if (!p.ok()) return p.status().WithContext("dispatch");
    deps.dispatch_policy = std::move(p).value();
  }
  if (!deps.queue_policy && !config.queue_policy.empty()) {
    auto q = MakeQueuePolicy(config.queue_policy, config.queue_params);
    if (!q.ok()) return q.status().WithContext("queue");
    deps.queue_policy = std::move(q).value();
  }
  if (!deps.clock) {
    auto t0 = std::chrono::steady_clock::now();
    deps.clock = [t0] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
  }
  auto prefixes = PrefixCache::Create(config.prefix_cache, config.backends);
  if (!prefixes.ok()) return prefixes.status();
  std::unique_ptr<Router> r(new Router());
  r->io_ = std::make_unique<net::IoRuntime>(config.threads);
  r->impl_ = std::make_shared<Impl>(std::move(config), *r->io_, std::move(deps.dispatch_policy),
                                    std::move(deps.queue_policy), std::move(deps.clock),
                                    std::move(prefixes).value());
  return r;
}

Router::~Router() {
  Drain();
  if (impl_) impl_->server.reset();  // the server holds impl_ as its handler
  impl_.reset();
  io_.reset();
}

Status Router::Start() {
  auto& impl = *impl_;
  net::HttpServerOptions o;
  o.address = impl.config.address;
  o.port = impl.config.port;
  o.body_limit = impl.config.body_limit_bytes;
  o.idle_timeout_s = impl.config.idle_timeout_s;
  o.read_timeout_s = impl.config.read_timeout_s;
  o.write_timeout_s = impl.config.write_timeout_s;
  o.max_connections = impl.config.max_connections;
  o.error_response = [](int status, std::string_view message) {
    return wire::OpenAiError(status, std::string(message));
  };
  impl.server = std::make_unique<net::HttpServer>(*io_, o, impl_);
  GIMBAL_RETURN_IF_ERROR(impl.server->Start());
  io_->Start();
  impl.monitor->Start();
  impl.prefix_cache->Start();
  spdlog::info(
      "gimbal serve: listening on {}:{} (up to {} connections) with {} engines, dispatch "
      "'{}'",
      o.address, impl.server->port(), impl.server->max_connections(), impl.config.backends.size(),
      impl.dispatch->name());
  return Status::Ok();
}

uint16_t Router::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

bool Router::Drain() {
  if (!impl_ || impl_->stopping.exchange(true)) return true;
  impl_->draining = true;
  impl_->monitor->RequestStop();  // no new probes while the requests drain
  bool ok = true;
  if (impl_->server) {
    ok = impl_->server->Drain(impl_->config.drain_timeout_s);
    if (!ok) {
      // Out of time: the requests still running end with an error their clients can read.
      impl_->proxy.CutInFlight();
      impl_->server->Drain(2.0);
    }
  }
  impl_->monitor->Stop();
  impl_->prefix_cache->Stop();
  impl_->proxy.CloseIdle();
  io_->Stop();
  return ok;
}

std::string Router::MetricsText() const {
  return impl_->registry.Render();
}
std::string Router::EnginesJson() const {
  return impl_->EnginesJson();
}

}  // namespace gimbal::router
