// Router: `gimbal serve`, the OpenAI-compatible front door over vLLM-like engines.
//
// Serves POST /v1/completions and /v1/chat/completions (streaming or not), GET /v1/models,
// /health and /metrics, and the token-protected /admin/engines and /admin/placement. Each request
// is dispatched by the configured DispatchPolicy over the EngineTable (scraped engine state plus
// the router's own reservations), optionally tagged with vLLM's integer `priority` from the
// queue policy's key (DESIGN §2.2), and forwarded; streamed answers pass through event by event.
// A request is retried on another engine only while nothing has reached its client. See
// docs/router.md for the configuration, endpoints and metrics.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "policy/dispatch/dispatch_policy.h"
#include "policy/queue/queue_policy.h"
#include "router/config.h"

namespace gimbal::net {
class IoRuntime;
}

namespace gimbal::router {

struct RouterDeps {
  // Override the policies named in the config (tests use small local ones).
  std::shared_ptr<const DispatchPolicy> dispatch_policy;
  std::shared_ptr<const QueuePolicy> queue_policy;
  // Seconds on a monotonic clock; default: steady clock since Create().
  std::function<double()> clock;
};

class Router {
 public:
  // Validates the config, builds the policies. Nothing listens yet.
  static Result<std::unique_ptr<Router>> Create(RouterConfig config, RouterDeps deps = {});
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Binds the port, starts the threads, the scrapers and the health checks.
  Status Start();
  // The bound port (after Start).
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish (up to drain_timeout_s), stops background
  // work and the threads. True when every request finished in time. Idempotent.
  bool Drain();
  // The router's own Prometheus page.
  std::string MetricsText() const;
  // The /admin/engines JSON.
  std::string EnginesJson() const;

  class Impl;

 private:
  Router() = default;
  std::unique_ptr<net::IoRuntime> io_;  // outlives impl_'s coroutines
  std::shared_ptr<Impl> impl_;
};

}  // namespace gimbal::router
