// CompletionProxy (internal to router/): the router's request path for /v1/completions and
// /v1/chat/completions.
//
// Per request: admission (POST only, JSON content type, a readable body, a served model), the
// prompt-token estimate (chars per token, learnt from answers' `usage` when adapting), the queue
// policy's key written into vLLM's `priority` when a queue policy is set, the dispatch pick and
// reservation in the EngineTable, forwarding, and the answer passed through: whole, or event by
// event for streams. A failure before any byte reached the client (connection error, 502/503/504,
// a broken answer) is reported to the table and retried on another engine, up to max_attempts
// engines in all; once a byte reached the client it is not retried (a stream ends with an SSE
// error event). No healthy engine: 503; every one saturated: 429 with Retry-After. Every request
// ends counted in exactly one Outcome, with its reservation released. CutInFlight() ends the
// requests still running when a drain runs out of time, each with an error its client can read
// (503, or an SSE error event).
//
// The proxy reads engine state only through the EngineTable; it writes reservations and the
// health that requests observe. Thread-safe: requests run concurrently on the io threads.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "core/thread_annotations.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/io_runtime.h"
#include "net/prometheus.h"
#include "policy/dispatch/dispatch_policy.h"
#include "policy/queue/queue_policy.h"
#include "router/config.h"
#include "router/engine_table.h"
#include "router/token_ratio.h"

namespace gimbal::router {

// Outcomes counted in gimbal_router_requests_total{outcome}, in the order of its label values.
enum class Outcome {
  kOk,           // 2xx delivered whole
  kEngineError,  // the engine's non-2xx answer passed through
  kBadRequest,   // refused by the router (400, 401, 404, 405, 413, 415)
  kRejected,     // 429: every engine saturated
  kUnavailable,  // 503 no healthy engine, or 502 after every attempt failed
  kStreamError,  // an engine broke off a stream already under way
  kClientGone,   // a write to the client timed out (it stopped reading)
  kCancelled,    // the client closed its connection first; the upstream request was abandoned
  kTooLarge,     // the engine's answer or one stream event was over the router's size limits
  kTimedOut,     // the engine's answer was slower than the router's time limits (504)
};

class CompletionProxy {
 public:
  // Where it counts; the families must outlive the proxy.
  struct Metrics {
    std::vector<net::Counter*> outcomes;    // indexed by Outcome
    net::CounterFamily& dispatches;         // {engine}
    net::CounterFamily& upstream_failures;  // {engine}
    net::HistogramFamily& decision;         // seconds, no labels
    net::HistogramFamily& ttft;             // seconds, no labels, streams only
    net::HistogramFamily& latency;          // seconds, {stream}: "false" | "true"
  };

  // `config` gives the backends (table row i is backend i), limits and timeouts; `queue` may be
  // null (requests are not tagged); `clock` the router's monotonic seconds.
  CompletionProxy(RouterConfig config, net::IoRuntime& io, EngineTable& table,
                  std::shared_ptr<const DispatchPolicy> dispatch,
                  std::shared_ptr<const QueuePolicy> queue, std::function<double()> clock,
                  Metrics metrics);

  // True for the paths this proxy answers.
  static bool Serves(std::string_view path);
  // Answers a request to one of those paths (any method: other than POST is a 405).
  boost::asio::awaitable<void> Handle(net::HttpRequest& req, net::ResponseWriter& w);

  // Ends every completion still running: its upstream request is cancelled and its client gets
  // the shutdown error. For a drain out of time.
  void CutInFlight();
  // Closes the idle upstream connections.
  void CloseIdle();

  // The models the backends serve.
  std::vector<std::string> models() const {
    std::vector<std::string> out;
    for (const auto& [model, ratio] : ratios_) out.push_back(model);
    return out;
  }
  // Prompt characters per token used for the estimates of each model's prompts (learnt when
  // adapting, from that model's engines only: models' tokenizers differ, and one model's engines
  // must not move another's estimate).
  std::vector<std::pair<std::string, double>> chars_per_token() const {
    std::vector<std::pair<std::string, double>> out;
    for (const auto& [model, ratio] : ratios_) out.emplace_back(model, ratio.get());
    return out;
  }

 private:
  // A completion being handled, so that a drain that runs out of time can end it with an error
  // its client can read instead of a cut connection.
  struct InFlight : std::enable_shared_from_this<InFlight> {
    // The request's executor: `cancel`, `active` and `cut` are used only there.
    boost::asio::any_io_executor executor;
    net::ClientCancel* cancel = nullptr;
    bool active = true;  // false once the request's handler returned
    bool cut = false;    // the drain ended it
    // Links of the proxy's list of requests in flight (under inflight_mu_).
    InFlight* prev = nullptr;
    InFlight* next = nullptr;
  };

  boost::asio::awaitable<void> HandleCompletion(net::HttpRequest& req, net::ResponseWriter& w,
                                                bool chat);
  boost::asio::awaitable<void> RefuseMethod(net::HttpRequest& req, net::ResponseWriter& w);
  void Count(Outcome o) { metrics_.outcomes[static_cast<size_t>(o)]->Inc(); }
  void Register(const std::shared_ptr<InFlight>& f);
  void Unregister(const std::shared_ptr<InFlight>& f);

  const RouterConfig config_;
  EngineTable& table_;
  const std::shared_ptr<const DispatchPolicy> dispatch_;
  const std::shared_ptr<const QueuePolicy> queue_;
  const std::function<double()> clock_;
  // The models the backends serve, each with its own estimate; made once, never changed.
  std::map<std::string, TokenRatio> ratios_;
  std::unordered_map<uint64_t, int> tenant_class_;  // affinity key of a `user` -> traffic class
  Metrics metrics_;
  // Children looked up once (With() takes a lock and builds a key).
  std::vector<net::Counter*> dispatch_counters_;  // by engine
  std::vector<net::Counter*> failure_counters_;   // by engine
  net::Histogram* decision_seconds_ = nullptr;
  net::Histogram* ttft_seconds_ = nullptr;
  net::Histogram* latency_seconds_[2] = {nullptr, nullptr};  // [stream]
  net::HttpClient upstream_;                                 // requests to engines
  std::atomic<uint64_t> next_id_{1};
  Mutex inflight_mu_;
  // The requests in flight, linked through their InFlight (no allocation per request); each is
  // kept alive by its handler until it unlinks itself.
  InFlight* inflight_ GIMBAL_GUARDED_BY(inflight_mu_) = nullptr;
};

}  // namespace gimbal::router
