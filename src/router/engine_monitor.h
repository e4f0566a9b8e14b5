// EngineMonitor (internal to router/): the router's background watch over its engines.
//
// Per engine it runs, each as a coroutine on a strand of its own:
//   - a scraper: GET /metrics every scrape_interval_s into the engine's snapshot, skipped while
//     the engine's pushed state is fresh;
//   - a health check: GET /health every health_interval_s, ejecting and readmitting the engine;
//   - for engines whose state source is not `metrics`, a reader of /gimbal/state/stream that
//     applies each pushed state (reconnecting every health_interval_s; with source `auto` it gives
//     up for good when the engine does not offer the stream).
// It writes only the EngineTable (snapshots, pushed snapshots, health) and its two counter
// families; it never blocks the request path. A loop that throws is logged and restarted after
// its interval, so an exception never silently ends the watch over an engine.
//
// Lifetime: create with std::make_shared. The loops hold the monitor (and so its HTTP clients);
// the table, the counter families and the io runtime must outlive the io runtime's last run, i.e.
// call Stop() and stop the io threads before destroying them.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/thread_annotations.h"
#include "net/http_client.h"
#include "net/io_runtime.h"
#include "net/prometheus.h"
#include "router/config.h"
#include "router/engine_table.h"

namespace gimbal::router {

class EngineMonitor : public std::enable_shared_from_this<EngineMonitor> {
 public:
  // The families it counts in, labelled {engine}.
  struct Metrics {
    net::CounterFamily& scrape_warnings;  // malformed /metrics lines, implausible values
    net::CounterFamily& pushed_states;    // states read from /gimbal/state/stream
    net::CounterFamily& scrape_failures;  // scrapes that got no page
  };

  // `config` gives the backends (table row i is backend i), intervals and timeouts; `clock` the
  // router's monotonic seconds (snapshots' taken_at).
  EngineMonitor(RouterConfig config, net::IoRuntime& io, EngineTable& table,
                std::function<double()> clock, Metrics metrics);

  // Spawns the loops on the io runtime. Once.
  void Start();
  // No further rounds: pauses end at once and the loops return after the request under way.
  // Does not wait. Idempotent.
  void RequestStop();
  // RequestStop, then waits (up to the longest probe timeout + 1 s) for the loops to return and
  // closes the idle probe connections. Idempotent; call before stopping the io threads.
  void Stop();

  // Where engine `e`'s state is read from (its own `state`, else the router-wide default).
  StateSource SourceOf(int e) const;

 private:
  using Loop = boost::asio::awaitable<void> (EngineMonitor::*)(int);

  // Runs `loop` for engine `e` until it returns; a throw is logged and the loop started again
  // after `restart_after_s` (unless stopping).
  boost::asio::awaitable<void> Supervise(int e, Loop loop, const char* what,
                                         double restart_after_s);
  boost::asio::awaitable<void> ScrapeLoop(int e);
  boost::asio::awaitable<void> HealthLoop(int e);
  boost::asio::awaitable<void> PushLoop(int e);
  // One connection to the state stream, read until it ends. False when the engine does not offer
  // one and the source is `auto` (stop trying).
  boost::asio::awaitable<bool> ReadPushedState(int e, bool* warned);
  // Sleeps `seconds` unless stopping; false when stopping.
  boost::asio::awaitable<bool> Pause(double seconds);

  const RouterConfig config_;
  net::IoRuntime& io_;
  EngineTable& table_;
  const std::function<double()> clock_;
  Metrics metrics_;
  net::HttpClient probe_;  // /metrics and /health, short timeouts
  net::HttpClient push_;   // /gimbal/state/stream, read timeout push_stale_s
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_{0};  // loops not yet returned
  Mutex timers_mu_;
  // The pauses under way, cancelled by Stop().
  std::vector<std::shared_ptr<boost::asio::steady_timer>> timers_ GIMBAL_GUARDED_BY(timers_mu_);
};

}  // namespace gimbal::router
