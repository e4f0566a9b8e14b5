// Background work per engine: scrape /metrics into snapshots, probe /health for ejection and
// readmission. Neither blocks the request path: they only update the EngineTable.
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "net/prometheus_parser.h"
#include "router/engine_metrics.h"
#include "router/router_impl.h"

namespace gimbal::router {

namespace asio = boost::asio;

void Router::Impl::StartMonitors() {
  for (size_t e = 0; e < config.backends.size(); ++e) {
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
                  std::chrono::duration<double>(std::max(config.health_timeout_s,
                                                         config.scrape_timeout_s) + 1.0);
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
  do {
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
      EngineSnapshot snap;
      if (SnapshotFromMetrics(page, b.model, clock(), &snap)) table.ApplySnapshot(e, snap);
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

}  // namespace gimbal::router
