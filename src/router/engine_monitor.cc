// EngineMonitor: the scrapers, state stream readers and health checks (engine_monitor.h).
#include "router/engine_monitor.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "core/json_message.h"
#include "net/prometheus_parser.h"
#include "net/sse.h"
#include "router/engine_metrics.h"
#include "wire/engine_state.h"

namespace gimbal::router {

namespace asio = boost::asio;

namespace {

// A /metrics page larger than this is not read (vLLM's are 50-200 KB); nor is a pushed state
// event (a few hundred bytes) larger than kMaxStateEventBytes: the stream is dropped and retried.
constexpr size_t kMaxMetricsPageBytes = size_t{4} << 20;
constexpr size_t kMaxStateEventBytes = size_t{64} << 10;

// Lets a warning through at most once a minute, and says how many it held back since: an engine
// can cause the same warning at every scrape or step.
class MinuteGate {
 public:
  // True when a warning may be logged at `now`; `*held_back` is then how many were not.
  bool Pass(double now, int* held_back) {
    if (now < next_) {
      ++held_back_;
      return false;
    }
    next_ = now + 60;
    *held_back = std::exchange(held_back_, 0);
    return true;
  }
  static std::string HeldBack(int n, std::string_view what) {
    return n > 0 ? "; " + std::to_string(n) + " " + std::string(what) : std::string();
  }

 private:
  double next_ = -1e300;
  int held_back_ = 0;
};

// The implausible values an engine published (counted in scrape_warnings by the caller).
class ImplausibleLog {
 public:
  void Warn(double now, const std::string& engine, std::string_view where,
            const wire::ValueWarnings& bad) {
    int held = 0;
    if (!gate_.Pass(now, &held)) return;
    spdlog::warn("engine {}: {} implausible value(s) in {} ignored (first: {}){}", engine,
                 bad.count, where, bad.first,
                 MinuteGate::HeldBack(held, "such warnings not logged before"));
  }

 private:
  MinuteGate gate_;
};

}  // namespace

EngineMonitor::EngineMonitor(RouterConfig config, net::IoRuntime& io, EngineTable& table,
                             std::function<double()> clock, Metrics metrics)
    : config_(std::move(config)),
      io_(io),
      table_(table),
      clock_(std::move(clock)),
      metrics_(metrics),
      probe_(io.context(), net::HttpClientOptions{.connect_timeout_s = config_.health_timeout_s,
                                                  .write_timeout_s = config_.health_timeout_s,
                                                  .header_timeout_s = config_.health_timeout_s,
                                                  .read_timeout_s = config_.health_timeout_s,
                                                  .max_body_bytes = kMaxMetricsPageBytes,
                                                  .max_idle_per_host = 4}),
      push_(io.context(), net::HttpClientOptions{.connect_timeout_s = config_.health_timeout_s,
                                                 .write_timeout_s = config_.health_timeout_s,
                                                 .header_timeout_s = config_.health_timeout_s,
                                                 .read_timeout_s = config_.push_stale_s,
                                                 .max_idle_per_host = 1}) {}

StateSource EngineMonitor::SourceOf(int e) const {
  return config_.backends[static_cast<size_t>(e)].state.value_or(config_.state_source);
}

void EngineMonitor::Start() {
  auto spawn = [this](int e, Loop loop, const char* what, double restart_after_s) {
    ++running_;
    asio::co_spawn(asio::make_strand(io_.context()), Supervise(e, loop, what, restart_after_s),
                   asio::detached);
  };
  for (size_t i = 0; i < config_.backends.size(); ++i) {
    const int e = static_cast<int>(i);
    if (SourceOf(e) != StateSource::kMetrics) {
      spawn(e, &EngineMonitor::PushLoop, "state stream reader", config_.health_interval_s);
    }
    spawn(e, &EngineMonitor::ScrapeLoop, "/metrics scraper", config_.scrape_interval_s);
    spawn(e, &EngineMonitor::HealthLoop, "health check", config_.health_interval_s);
  }
}

void EngineMonitor::RequestStop() {
  stopping_ = true;
}

void EngineMonitor::Stop() {
  stopping_ = true;
  auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration<double>(
          std::max({config_.health_timeout_s, config_.scrape_timeout_s, config_.push_stale_s}) +
          1.0);
  while (running_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    {
      MutexLock lock(timers_mu_);
      for (const auto& t : timers_) {
        asio::post(t->get_executor(), [t] { t->cancel(); });
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  probe_.CloseIdle();
  push_.CloseIdle();
}

asio::awaitable<void> EngineMonitor::Supervise(int e, Loop loop, const char* what,
                                               double restart_after_s) {
  auto self = shared_from_this();
  const std::string& name = config_.backends[static_cast<size_t>(e)].name;
  // A loop that throws at every round would log at every round: at most once a minute, on the
  // steady clock (the router's clock may be what threw).
  using Steady = std::chrono::steady_clock;
  Steady::time_point next_log = Steady::now();
  int not_logged = 0;
  // No `continue` here: see ScrapeLoop.
  for (;;) {
    bool threw = false;
    std::string why;
    try {
      co_await (this->*loop)(e);
    } catch (const std::exception& ex) {
      threw = true;
      why = ex.what();
    } catch (...) {
      threw = true;
      why = "an exception of unknown type";
    }
    if (!threw) break;
    if (Steady::now() >= next_log) {
      next_log = Steady::now() + std::chrono::minutes(1);
      spdlog::error("engine {}: the {} failed ({}); restarting it{}", name, what, why,
                    not_logged > 0 ? std::string("; ") + std::to_string(not_logged) +
                                         " such failures not logged before"
                                   : std::string());
      not_logged = 0;
    } else {
      ++not_logged;
    }
    if (!co_await Pause(restart_after_s)) break;
  }
  --running_;
}

asio::awaitable<bool> EngineMonitor::Pause(double seconds) {
  if (stopping_) co_return false;
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
  {
    MutexLock lock(timers_mu_);
    timers_.push_back(timer);
  }
  timer->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds)));
  boost::system::error_code ec;
  if (!stopping_) co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  {
    MutexLock lock(timers_mu_);
    std::erase(timers_, timer);
  }
  co_return !stopping_;
}

asio::awaitable<void> EngineMonitor::ScrapeLoop(int e) {
  const auto& b = config_.backends[static_cast<size_t>(e)];
  int failures_logged = 0;
  ImplausibleLog implausible_logs;
  MinuteGate failure_gate;
  // No `continue` in these loops: built with GCC 12, a `continue` in this do-while skipped its
  // awaiting condition and the loop spun (RouterTest.FreshPushedStateStops...BusyLooping).
  double pause = config_.scrape_interval_s;
  do {
    pause = config_.scrape_interval_s;
    // Pushed state is fresher than any scrape; read /metrics only while it is missing or stale.
    if (!table_.PushFresh(e, clock_())) {
      net::ClientRequest req;
      req.host = b.parsed.host;
      req.port = b.parsed.port;
      req.target = b.parsed.base_path + "/metrics";
      // Bounded as a whole: a page sent a byte at a time kept the last snapshot for good.
      auto r = co_await probe_.Send(req, config_.scrape_timeout_s);
      std::string failed;  // why this scrape gave no state; empty when it did
      if (r.ok() && r->status == 200) {
        const auto parse_start = std::chrono::steady_clock::now();
        auto page = net::ParsePrometheusText(r->body, &EngineMetricRead);
        if (page.warnings > 0) {
          metrics_.scrape_warnings.With({b.name}).Inc(page.warnings);
          if (failures_logged++ < 3) {
            spdlog::warn("engine {}: {} malformed /metrics lines skipped (first: {})", b.name,
                         page.warnings,
                         page.messages.empty() ? "" : page.messages[0].substr(0, 200));
          }
        }
        EngineSnapshot snap = table_.view(e).snapshot;  // implausible fields keep their values
        wire::ValueWarnings bad;
        const bool read = SnapshotFromMetrics(page, b.model, clock_(), &snap, &bad);
        if (bad.count > 0) {
          metrics_.scrape_warnings.With({b.name}).Inc(bad.count);
          implausible_logs.Warn(clock_(), b.name, "/metrics", bad);
        }
        if (read) {
          table_.ApplySnapshot(e, snap);
        } else {
          // A page that answers 200 but says nothing usable (another server's page, another
          // model's series, NaN counts) is no fresher than no page.
          failed =
              "answered 200 without a usable vllm:num_requests_running or _waiting for model " +
              b.model;
        }
        // An engine whose page takes long to parse is scraped less often: parsing its pages
        // takes at most a tenth of a thread, however large they are (the read is bounded by
        // kMaxMetricsPageBytes and the client's timeouts).
        const double parse_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - parse_start).count();
        pause = std::max(pause, 10 * parse_s);
      } else {
        failed = r.ok() ? "answered " + std::to_string(r->status) : r.status().message();
      }
      if (!failed.empty()) {
        metrics_.scrape_failures.With({b.name}).Inc();
        // Logged once a minute: the engine's state then ages, and nothing else says why.
        if (int held = 0; failure_gate.Pass(clock_(), &held)) {
          spdlog::warn("engine {}: /metrics scrape failed: {}{}", b.name, failed,
                       MinuteGate::HeldBack(held, "more since the last warning"));
        }
        // Fresh state over stale: with no page for a while, the router's own accounting.
        table_.UseOwnAccounting(e, clock_(), std::max(1.0, 10 * config_.scrape_interval_s));
      }
    }
  } while (co_await Pause(pause));
}

asio::awaitable<void> EngineMonitor::HealthLoop(int e) {
  const auto& b = config_.backends[static_cast<size_t>(e)];
  do {
    net::ClientRequest req;
    req.host = b.parsed.host;
    req.port = b.parsed.port;
    req.target = b.parsed.base_path + "/health";
    // Bounded as a whole: a 503 whose body trickled in held the probe, and the engine admitted.
    auto r = co_await probe_.Send(req, config_.health_timeout_s);
    bool ok = r.ok() && r->status == 200;
    if (table_.ReportHealth(e, ok)) {
      if (ok) {
        spdlog::info("engine {} readmitted", b.name);
      } else {
        spdlog::warn(
            "engine {} ejected: {}", b.name,
            r.ok() ? "/health answered " + std::to_string(r->status) : r.status().message());
      }
    }
  } while (co_await Pause(config_.health_interval_s));
}

namespace {

bool IsEventStream(std::string_view ct) {
  constexpr std::string_view kSse = "text/event-stream";
  return ct.size() >= kSse.size() && net::EqualsIgnoreCase(ct.substr(0, kSse.size()), kSse);
}

}  // namespace

asio::awaitable<bool> EngineMonitor::ReadPushedState(int e, bool* warned) {
  const auto& b = config_.backends[static_cast<size_t>(e)];
  net::ClientRequest req;
  req.host = b.parsed.host;
  req.port = b.parsed.port;
  req.target = b.parsed.base_path + std::string(wire::kStateStreamPath);
  req.headers.Set("Accept", "text/event-stream");
  auto opened = co_await push_.Open(req);
  if (!opened.ok()) co_return true;  // not reachable (yet): the health checks report it
  auto& stream = *opened.value();
  if (stream.status() != 200 || !IsEventStream(stream.headers().Get("Content-Type"))) {
    const std::string why = "GET " + std::string(wire::kStateStreamPath) + " answered " +
                            std::to_string(stream.status());
    if (SourceOf(e) == StateSource::kAuto) {
      spdlog::info("engine {}: no pushed state ({}); reading /metrics", b.name, why);
      co_return false;
    }
    if (!*warned) spdlog::warn("engine {}: state.source is push but {}; retrying", b.name, why);
    *warned = true;
    co_return true;
  }
  spdlog::info("engine {}: reading pushed state from {}", b.name, req.target);
  *warned = false;
  net::SseParser parser(kMaxStateEventBytes);
  std::vector<net::SseEvent> events;
  ImplausibleLog implausible_logs;  // per connection: a reconnection logs again
  MinuteGate unreadable_gate;
  std::string ended = "the engine ended it";
  while (!stopping_) {
    auto piece = co_await stream.Next();
    if (!piece.ok()) {
      ended = piece.status().message();  // broken, or silent too long
      break;
    }
    if (!piece.value()) break;
    events.clear();
    if (!parser.Feed(*piece.value(), events)) {
      ended = "a state event over " + std::to_string(kMaxStateEventBytes) + " bytes";
      break;
    }
    // Several states may arrive in one read: the freshest readable one is applied.
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (!wire::IsStateEvent(*it)) continue;
      const EngineView prev = table_.view(e);  // implausible fields keep their values
      EngineSnapshot snap = prev.snapshot;
      double moe = prev.moe_pressure;
      std::vector<double> locality = table_.class_locality(e);
      wire::ValueWarnings bad;
      const bool read = wire::SnapshotFromPushed(it->data, clock_(), &snap, &moe, &bad, &locality);
      if (read) {
        table_.ApplyPushedSnapshot(e, snap, moe, std::move(locality));
        metrics_.pushed_states.With({b.name}).Inc();
      }
      if (bad.count > 0) {
        metrics_.scrape_warnings.With({b.name}).Inc(bad.count);
        implausible_logs.Warn(clock_(), b.name, "pushed state", bad);
      }
      if (read) break;
      // Unreadable (not JSON, or its counts missing): counted and logged once a minute; an
      // earlier state of the same read is tried instead.
      metrics_.scrape_warnings.With({b.name}).Inc();
      if (int held = 0; unreadable_gate.Pass(clock_(), &held)) {
        spdlog::warn("engine {}: unreadable pushed state skipped: {}{}", b.name,
                     JsonForMessage(nlohmann::json(it->data.substr(0, 120))),
                     MinuteGate::HeldBack(held, "more since the last warning"));
      }
    }
  }
  if (!stopping_) {
    spdlog::info("engine {}: pushed state stream ended ({}); reconnecting", b.name, ended);
  }
  co_return true;
}

asio::awaitable<void> EngineMonitor::PushLoop(int e) {
  bool warned = false;
  bool again = true;
  do {
    again = co_await ReadPushedState(e, &warned);
  } while (again && co_await Pause(config_.health_interval_s));
}

}  // namespace gimbal::router
