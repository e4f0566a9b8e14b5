// Router::Impl (internal to router/): state shared by the request path (router.cc, proxy.cc)
// and the background monitors (monitor.cc).
#pragma once

#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/io_runtime.h"
#include "net/prometheus.h"
#include "router/engine_table.h"
#include "router/request_body.h"
#include "router/router.h"

namespace gimbal::router {

// Outcomes counted in gimbal_router_requests_total{outcome}.
enum class Outcome {
  kOk,            // 2xx delivered whole
  kEngineError,   // the engine's non-2xx answer passed through
  kBadRequest,    // refused by the router (400, 401, 404, 405, 413, 415)
  kRejected,      // 429: every engine saturated
  kUnavailable,   // 503 no healthy engine, or 502 after every attempt failed
  kStreamError,   // an engine broke off a stream already under way
  kClientGone,    // a write to the client timed out (it stopped reading)
  kCancelled,     // the client closed its connection first; the upstream request was abandoned
};

struct RouterMetrics {
  explicit RouterMetrics(net::MetricsRegistry& reg);
  net::Counter& outcome(Outcome o) { return *outcomes[static_cast<size_t>(o)]; }

  std::vector<net::Counter*> outcomes;
  net::CounterFamily& dispatches;        // {engine}
  net::CounterFamily& upstream_failures; // {engine}
  net::CounterFamily& scrape_warnings;   // {engine}
  net::CounterFamily& pushed_states;     // {engine}
  net::HistogramFamily& decision;        // seconds
  net::HistogramFamily& ttft;            // seconds, streams only
  net::HistogramFamily& latency;         // seconds, {stream}
};

class Router::Impl : public net::HttpHandler, public std::enable_shared_from_this<Router::Impl> {
 public:
  Impl(RouterConfig config, net::IoRuntime& io, std::shared_ptr<const DispatchPolicy> dispatch,
       std::shared_ptr<const QueuePolicy> queue, std::function<double()> clock);

  boost::asio::awaitable<void> Handle(net::HttpRequest& req, net::ResponseWriter& w) override;

  // proxy.cc
  boost::asio::awaitable<void> HandleCompletion(net::HttpRequest& req, net::ResponseWriter& w,
                                                bool chat);
  // monitor.cc
  void StartMonitors();
  void StopMonitors();
  boost::asio::awaitable<void> ScrapeLoop(int engine);
  boost::asio::awaitable<void> HealthLoop(int engine);
  // Reads the engine's /gimbal/state/stream into the table while it offers one.
  boost::asio::awaitable<void> PushLoop(int engine);
  // One connection to the state stream, read until it ends. False when the engine does not offer
  // one and the source is `auto` (stop trying).
  boost::asio::awaitable<bool> ReadPushedState(int engine, bool* warned);
  StateSource SourceOf(int engine) const;
  // Sleeps `seconds` unless stopping; false when stopping.
  boost::asio::awaitable<bool> Pause(double seconds);

  // Every endpoint but the completions, answered synchronously.
  net::HttpResponse Respond(const net::HttpRequest& req);
  std::string EnginesJson() const;
  bool Authorized(const net::HttpRequest& req) const;

  RouterConfig config;
  net::IoRuntime& io;
  std::shared_ptr<const DispatchPolicy> dispatch;
  std::shared_ptr<const QueuePolicy> queue;
  std::function<double()> clock;
  EngineTable table;
  TokenRatio ratio;
  std::set<std::string> models;
  net::MetricsRegistry registry;
  RouterMetrics metrics;
  // Children of the families the request path updates, looked up once (With() takes a lock and
  // builds a key).
  std::vector<net::Counter*> dispatch_counters;  // by engine
  std::vector<net::Counter*> failure_counters;   // by engine
  net::Histogram* decision_seconds = nullptr;
  net::Histogram* ttft_seconds = nullptr;
  net::Histogram* latency_seconds[2] = {nullptr, nullptr};  // [stream]
  net::HttpClient upstream;  // requests to engines
  net::HttpClient probe;     // /metrics and /health, short timeouts
  net::HttpClient push;      // /gimbal/state/stream, read timeout push_stale_s
  std::unique_ptr<net::HttpServer> server;
  std::atomic<uint64_t> next_id{1};
  std::atomic<bool> stopping{false};
  std::atomic<bool> draining{false};
  std::atomic<int> monitors_running{0};
  std::mutex timers_mu;
  std::vector<std::shared_ptr<boost::asio::steady_timer>> timers;  // GUARDED_BY(timers_mu)
  // Completions being handled, so that a drain that runs out of time can end each one with an
  // error its client can read (an SSE error event, or 503) instead of a cut connection.
  struct InFlight {
    boost::asio::any_io_executor executor;  // the request's: every field below is used only there
    net::ClientCancel* cancel = nullptr;
    bool active = true;  // false once the request's handler returned
    bool cut = false;    // the drain ended it
  };
  std::mutex inflight_mu;
  std::set<std::shared_ptr<InFlight>> inflight;  // GUARDED_BY(inflight_mu)
  // Cancels every in-flight completion's upstream request with `cut` set (proxy.cc).
  void CutInFlight();

  mutable std::mutex placement_mu;
  std::string placement_json;  // GUARDED_BY(placement_mu)
  uint64_t placement_version = 0;  // GUARDED_BY(placement_mu)
};

}  // namespace gimbal::router
