// `gimbal serve`: the OpenAI-compatible router in front of vLLM or emulated engines.
// See docs/router.md.
#include <malloc.h>

#include <csignal>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "net/http_server.h"
#include "router/config.h"
#include "router/embedded.h"
#include "router/router.h"

namespace gimbal::cli {
namespace {

struct ServeFlags {
  std::string config;
  int port = -1;
  std::string address;
  std::vector<std::string> backends;
  std::string model;
  std::string policy;
  std::string queue_policy;
  std::string state_source;
  std::string prefix_index;
  std::vector<std::string> kv_events;  // one per --backend: ENDPOINT or ENDPOINT,REPLAY
  router::EmbeddedEngineOptions embedded;
};

// Every size, count and time option, before anything is loaded or allocated.
void CheckRanges(const ServeFlags& f) {
  if (f.port != -1) CheckIntOption("serve", "--port", f.port, 0, 65535);
  CheckIntOption("serve", "--engine-dp", f.embedded.dp, 1, kMaxEngineDp);
  CheckNumberOption("serve", "--engine-time-scale", f.embedded.time_scale, 0, 1000);
}

int RunServe(const ServeFlags& f) {
  CheckRanges(f);
  // Every request allocates and frees buffers and coroutine frames of a few KiB; keep freed heap
  // instead of returning it to the kernel after each burst (glibc trims above 128 KiB by default).
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  router::RouterConfig config;
  if (!f.config.empty()) {
    auto loaded = router::LoadRouterConfig(f.config);
    if (!loaded.ok()) {
      std::cerr << "gimbal serve: " << loaded.status().ToString() << "\n";
      return 2;
    }
    config = std::move(loaded).value();
  }
  if (f.port >= 0) config.port = static_cast<uint16_t>(f.port);
  if (!f.address.empty()) config.address = f.address;
  if (!f.policy.empty()) config.dispatch_policy = f.policy;
  if (!f.queue_policy.empty()) config.queue_policy = f.queue_policy == "none" ? "" : f.queue_policy;
  if (!f.state_source.empty() && !router::ParseStateSource(f.state_source, &config.state_source)) {
    std::cerr << "gimbal serve: --state-source: expected auto, metrics or push\n";
    return 2;
  }
  if (!f.prefix_index.empty() &&
      !router::ParsePrefixIndexMode(f.prefix_index, &config.prefix_cache.index)) {
    std::cerr << "gimbal serve: --prefix-index: expected none, approximate or auto\n";
    return 2;
  }
  if (!f.kv_events.empty() && f.kv_events.size() != f.backends.size()) {
    std::cerr << "gimbal serve: --kv-events: give one per --backend, in the same order ("
              << f.kv_events.size() << " for " << f.backends.size() << " backends)\n";
    return 2;
  }
  for (size_t i = 0; i < f.backends.size(); ++i) {
    Status st = router::AddBackend(config, f.backends[i], f.model);
    if (!st.ok()) {
      std::cerr << "gimbal serve: " << st.ToString() << "\n";
      return 2;
    }
    if (i < f.kv_events.size()) {
      const std::string& spec = f.kv_events[i];
      const size_t comma = spec.find(',');
      config.backends.back().kv_events = spec.substr(0, comma);
      if (comma != std::string::npos)
        config.backends.back().kv_events_replay = spec.substr(comma + 1);
    }
  }
  // SIGTERM and SIGINT are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Before any server derives its connection cap from it (embedded engines included).
  uint64_t files_before = 0;
  const uint64_t files = net::RaiseOpenFileLimit(&files_before);
  if (files > files_before) {
    spdlog::info("open-file limit raised from {} to {} (the hard limit)", files_before, files);
  }

  // No backends: emulated engines in this process, so the router can be tried at once.
  std::unique_ptr<engine::EngineService> engines;
  if (config.backends.empty()) {
    // The full Gimbal stack unless the flags or a config file chose the queue policy.
    const bool chosen = !f.queue_policy.empty() || !f.config.empty();
    auto started = router::StartEmbeddedEngines(f.embedded, config, chosen ? "" : "gimbal");
    if (!started.ok()) {
      std::cerr << "gimbal serve: " << started.status().ToString() << "\n";
      return 2;
    }
    engines = std::move(started).value();
    std::cerr << "gimbal serve: no backends configured; started " << engines->engines()
              << " emulated engines (" << f.embedded.model << " on " << f.embedded.gpu
              << ", time scale " << f.embedded.time_scale << ", engine queue "
              << (f.embedded.queue_policy.empty()
                      ? (config.queue_policy.empty() ? "fcfs" : "priority")
                      : f.embedded.queue_policy)
              << ")\n";
  }
  auto shutdown_engines = [&] {
    return engines ? engines->Shutdown(config.drain_timeout_s) : true;
  };

  auto router = router::Router::Create(config);
  if (!router.ok()) {
    std::cerr << "gimbal serve: " << router.status().ToString() << "\n";
    shutdown_engines();
    return 2;
  }
  Status st = router.value()->Start();
  if (!st.ok()) {
    std::cerr << "gimbal serve: " << st.ToString() << "\n";
    router->reset();
    shutdown_engines();
    return 1;
  }
  std::cerr << "gimbal serve: listening on port " << router.value()->port()
            << " (SIGTERM or Ctrl-C drains and exits; a second one exits at once)\n";
  if (engines) {
    std::cerr << "gimbal serve: try  curl http://" << config.address << ":"
              << router.value()->port()
              << "/v1/completions -H 'Content-Type: application/json' -d '{\"model\": \""
              << f.embedded.model << "\", \"prompt\": \"Hello\", \"max_tokens\": 16}'\n";
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "gimbal serve: draining (a second SIGTERM or Ctrl-C exits at once)\n";
  ExitOnSecondSignal("serve", signals);
  bool clean = router.value()->Drain();
  clean = shutdown_engines() && clean;
  if (!clean) std::cerr << "gimbal serve: drain timed out; some requests were cut off\n";
  return clean ? 0 : 1;
}

void SetupServe(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible router over vLLM-like engines");
  cmd->add_option("--config", flags->config, "router YAML (docs/router.md)");
  cmd->add_option("--port", flags->port, "listen port (overrides listen.port)");
  cmd->add_option("--address", flags->address, "listen address (overrides listen.address)");
  cmd->add_option("--backend", flags->backends,
                  "engine URL, or URL=MODEL; repeat for several (added to the config's)");
  cmd->add_option("--model", flags->model, "model name for --backend URLs given without one");
  cmd->add_option("--policy", flags->policy, "dispatch policy (overrides dispatch.policy)");
  cmd->add_option("--queue-policy", flags->queue_policy,
                  "queue policy whose key sets vLLM's `priority`, or 'none'");
  cmd->add_option("--state-source", flags->state_source,
                  "engine state besides the router's own: auto, metrics or push "
                  "(overrides state.source)");
  cmd->add_option("--prefix-index", flags->prefix_index,
                  "what dispatch knows of the engines' prefix caches: none, approximate (the "
                  "router's own record) or auto (KV events where published; overrides "
                  "prefix_cache.index)");
  cmd->add_option("--kv-events", flags->kv_events,
                  "per --backend, in order: its KV-event endpoint, or ENDPOINT,REPLAY_ENDPOINT "
                  "(tcp://host:port; vLLM's --kv-events-config)");
  cmd->add_option("--engine-model", flags->embedded.model,
                  "without backends: model of the embedded emulated engines (data/models)")
      ->capture_default_str();
  cmd->add_option("--engine-gpu", flags->embedded.gpu,
                  "without backends: GPU of the embedded engines (data/gpus)")
      ->capture_default_str();
  cmd->add_option("--engine-dp", flags->embedded.dp,
                  "without backends: number of embedded DP engines, 1..1024")
      ->capture_default_str();
  cmd->add_option("--engine-time-scale", flags->embedded.time_scale,
                  "without backends: the embedded engines' time scale (1 real time, 0.1 ten "
                  "times faster)")
      ->capture_default_str();
  cmd->add_option("--engine-queue-policy", flags->embedded.queue_policy,
                  "without backends: queue policy inside the embedded engines (default: "
                  "priority when the router tags requests, else fcfs)");
  cmd->callback([flags] {
    int rc = RunServe(*flags);
    if (rc != 0) throw CommandFailed(rc);
  });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("serve", SetupServe);

}  // namespace gimbal::cli
