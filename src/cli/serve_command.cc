// `gimbal serve`: the OpenAI-compatible router in front of vLLM or emulated engines.
// See docs/router.md.
#include <csignal>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "router/config.h"
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
};

int RunServe(const ServeFlags& f) {
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
  for (const auto& b : f.backends) {
    Status st = router::AddBackend(config, b, f.model);
    if (!st.ok()) {
      std::cerr << "gimbal serve: " << st.ToString() << "\n";
      return 2;
    }
  }
  // SIGTERM and SIGINT are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto router = router::Router::Create(std::move(config));
  if (!router.ok()) {
    std::cerr << "gimbal serve: " << router.status().ToString() << "\n";
    return 2;
  }
  Status st = router.value()->Start();
  if (!st.ok()) {
    std::cerr << "gimbal serve: " << st.ToString() << "\n";
    return 1;
  }
  std::cerr << "gimbal serve: listening on port " << router.value()->port()
            << " (SIGTERM or Ctrl-C drains and exits)\n";
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "gimbal serve: draining\n";
  bool clean = router.value()->Drain();
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
  cmd->callback([flags] {
    int rc = RunServe(*flags);
    if (rc != 0) throw CommandFailed(rc);
  });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("serve", SetupServe);

}  // namespace gimbal::cli
