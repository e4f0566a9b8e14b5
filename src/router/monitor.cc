// Background work per engine: scrape /metrics into snapshots, read pushed state from
// /gimbal/state/stream where the engine offers it, probe /health for ejection and readmission.
// None blocks the request path: they only update the EngineTable.
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

#include "net/prometheus_parser.h"
#include "net/sse.h"
#include "router/engine_metrics.h"
#include "router/router_impl.h"

namespace gimbal::router {

namespace asio = boost::asio;

namespace {

// Logs the implausible values an engine published (counted in scrape_warnings by the caller),
// at most once every kInterval seconds: an engine can send them at every scrape or step.
class ImplausibleLog {
 public:
  static constexpr double kInterval = 60;

  void Warn(double now, const std::string& engine, std::string_view where,
            const ValueWarnings& bad) {
    if (now < next_) {
      ++left_out_;
      return;
    }
    next_ = now + kInterval;
    spdlog::warn("engine {}: {} implausible value(s) in {} ignored (first: {}){}", engine,
                 bad.count, where, bad.first,
                 left_out_ > 0
                     ? "; " + std::to_string(left_out_) + " such warnings not logged before"
                     : std::string());
    left_out_ = 0;
  }

 private:
  double next_ = -1e300;
  int left_out_ = 0;
};

}  // namespace

StateSource Router::Impl::SourceOf(int e) const {
  return config.backends[static_cast<size_t>(e)].state.value_or(config.state_source);
}

void Router::Impl::StartMonitors() {
  for (size_t e = 0; e < config.backends.size(); ++e) {
    if (SourceOf(static_cast<int>(e)) != StateSource::kMetrics) {
      ++monitors_running;
      asio::co_spawn(asio::make_strand(io.context()), PushLoop(static_cast<int>(e)),
                     asio::detached);
    }
    monitors_running += 2;
    asio::co_spawn(asio::make_strand(io.context()), ScrapeLoop(static_cast<int>(e)),
                   asio::detached);
    asio::co_spawn(asio::make_strand(io.context()), HealthLoop(static_cast<int>(e)),
                   asio::detached);
  }
}

void Router::Impl::StopMonitors() {
  stopping = true;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration<double>(std::max({config.health_timeout_s,
                                                          config.scrape_timeout_s,
                                                          config.push_stale_s}) + 1.0);
  while (monitors_running.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(timers_mu);
      for (const auto& t : timers) {
        asio::post(t->get_executor(), [t] { t->cancel(); });
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

asio::awaitable<bool> Router::Impl::Pause(double seconds) {
  if (stopping) co_return false;
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
  {
    std::lock_guard<std::mutex> lock(timers_mu);
    timers.push_back(timer);
  }
  timer->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds)));
  boost::system::error_code ec;
  if (!stopping) co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  {
    std::lock_guard<std::mutex> lock(timers_mu);
    std::erase(timers, timer);
  }
  co_return !stopping;
}

asio::awaitable<void> Router::Impl::ScrapeLoop(int e) {
  auto self = shared_from_this();
  const auto& b = config.backends[static_cast<size_t>(e)];
  int failures_logged = 0;
  ImplausibleLog implausible_logs;
  // No `continue` in these loops: built with GCC 12, a `continue` in this do-while skipped its
  // awaiting condition and the loop spun (RouterTest.FreshPushedStateStops...BusyLooping).
  do {
    // Pushed state is fresher than any scrape; read /metrics only while it is missing or stale.
    if (!table.PushFresh(e, clock())) {
      net::ClientRequest req;
      req.host = b.parsed.host;
      req.port = b.parsed.port;
      req.target = b.parsed.base_path + "/metrics";
      auto r = co_await probe.Send(req);
      if (r.ok() && r->status == 200) {
        auto page = net::ParsePrometheusText(r->body);
        if (page.warnings > 0) {
          metrics.scrape_warnings.With({b.name}).Inc(page.warnings);
          if (failures_logged++ < 3) {
            spdlog::warn("engine {}: {} malformed /metrics lines skipped (first: {})", b.name,
                         page.warnings, page.messages.empty() ? "" : page.messages[0]);
          }
        }
        EngineSnapshot snap = table.view(e).snapshot;  // implausible fields keep their values
        ValueWarnings bad;
        const bool read = SnapshotFromMetrics(page, b.model, clock(), &snap, &bad);
        if (bad.count > 0) {
          metrics.scrape_warnings.With({b.name}).Inc(bad.count);
          implausible_logs.Warn(clock(), b.name, "/metrics", bad);
        }
        if (read) table.ApplySnapshot(e, snap);
      }
    }
  } while (co_await Pause(config.scrape_interval_s));
  --monitors_running;
}

asio::awaitable<void> Router::Impl::HealthLoop(int e) {
  auto self = shared_from_this();
  const auto& b = config.backends[static_cast<size_t>(e)];
  do {
    net::ClientRequest req;
    req.host = b.parsed.host;
    req.port = b.parsed.port;
    req.target = b.parsed.base_path + "/health";
    auto r = co_await probe.Send(req);
    bool ok = r.ok() && r->status == 200;
    if (table.ReportHealth(e, ok)) {
      if (ok) {
        spdlog::info("engine {} readmitted", b.name);
      } else {
        spdlog::warn("engine {} ejected: {}", b.name,
                     r.ok() ? "/health answered " + std::to_string(r->status)
                            : r.status().message());
      }
    }
  } while (co_await Pause(config.health_interval_s));
  --monitors_running;
}

namespace {

bool IsEventStream(std::string_view ct) {
  constexpr std::string_view kSse = "text/event-stream";
  return ct.size() >= kSse.size() && net::EqualsIgnoreCase(ct.substr(0, kSse.size()), kSse);
}

}  // namespace

asio::awaitable<bool> Router::Impl::ReadPushedState(int e, bool* warned) {
  const auto& b = config.backends[static_cast<size_t>(e)];
  net::ClientRequest req;
  req.host = b.parsed.host;
  req.port = b.parsed.port;
  req.target = b.parsed.base_path + "/gimbal/state/stream";
  req.headers.Set("Accept", "text/event-stream");
  auto opened = co_await push.Open(req);
  if (!opened.ok()) co_return true;  // not reachable (yet): the health checks report it
  auto& stream = *opened.value();
  if (stream.status() != 200 || !IsEventStream(stream.headers().Get("Content-Type"))) {
    const std::string why =
        "GET /gimbal/state/stream answered " + std::to_string(stream.status());
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
  net::SseParser parser;
  std::vector<net::SseEvent> events;
  ImplausibleLog implausible_logs;  // per connection: a reconnection logs again
  while (!stopping) {
    auto piece = co_await stream.Next();
    if (!piece.ok() || !piece.value()) break;  // broken, silent too long, or ended
    events.clear();
    if (!parser.Feed(*piece.value(), events)) break;
    // Several states may arrive in one read: the last one is the freshest.
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (!it->has_data) continue;
      const EngineView prev = table.view(e);  // implausible fields keep their values
      EngineSnapshot snap = prev.snapshot;
      double moe = prev.moe_pressure;
      ValueWarnings bad;
      if (SnapshotFromPushed(it->data, clock(), &snap, &moe, &bad)) {
        table.ApplyPushedSnapshot(e, snap, moe);
        metrics.pushed_states.With({b.name}).Inc();
      }
      if (bad.count > 0) {
        metrics.scrape_warnings.With({b.name}).Inc(bad.count);
        implausible_logs.Warn(clock(), b.name, "pushed state", bad);
      }
      break;
    }
  }
  co_return true;
}

asio::awaitable<void> Router::Impl::PushLoop(int e) {
  auto self = shared_from_this();
  bool warned = false;
  bool again = true;
  do {
    again = co_await ReadPushedState(e, &warned);
  } while (again && co_await Pause(config.health_interval_s));
  --monitors_running;
}

}  // namespace gimbal::router
