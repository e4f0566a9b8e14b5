#include "router/embedded.h"

#include <random>

#include <fmt/format.h>

namespace gimbal::router {

Result<std::unique_ptr<engine::EngineService>> StartEmbeddedEngines(
    const EmbeddedEngineOptions& o, RouterConfig& config, const std::string& default_queue_policy) {
  if (o.dp < 1) return InvalidArgument("embedded engines: dp must be >= 1");
  if (!(o.time_scale >= 0)) return InvalidArgument("embedded engines: time scale must be >= 0");
  auto cluster = engine::ClusterFromCatalog(o.model, o.gpu, o.topology, o.dp);
  if (!cluster.ok()) return cluster.status().WithContext("embedded engines");
  if (config.queue_policy.empty()) config.queue_policy = default_queue_policy;

  engine::EngineServiceOptions so;
  so.emulator.cluster = *cluster;
  so.emulator.queue_policy = !o.queue_policy.empty()       ? o.queue_policy
                             : config.queue_policy.empty() ? "fcfs"
                                                           : "priority";
  so.emulator.time_scale = o.time_scale;
  if (o.kv_events && cluster->engine.enable_prefix_caching) {
    so.emulator.kv_events_endpoint = "tcp://127.0.0.1:0";
    so.emulator.kv_events_replay_endpoint = "tcp://127.0.0.1:0";
  }
  so.address = "127.0.0.1";
  so.port = 0;
  so.threads = o.threads;
  so.served_model = o.model;
  // The engines' own admin endpoint (POST /gimbal/placement) is as protected as the router's:
  // with the router's token, or, when the router has none (its /admin/* refused), one nobody
  // knows, so that no local process can install placements on the engines either.
  so.admin_token = config.admin_token;
  if (so.admin_token.empty()) {
    std::random_device rd;
    for (int i = 0; i < 4; ++i) so.admin_token += fmt::format("{:08x}", rd());
  }
  auto svc = engine::EngineService::Start(std::move(so));
  if (!svc.ok()) return svc.status().WithContext("embedded engines");

  // The router hashes prompts in the engines' blocks, so that their KV events match.
  config.prefix_cache.block_tokens = cluster->engine.block_size;
  config.backends.clear();
  for (int i = 0; i < (*svc)->engines(); ++i) {
    BackendConfig b;
    b.name = fmt::format("dp{}", i);
    b.url = (*svc)->url(i);
    b.model = o.model;
    b.state = StateSource::kPush;
    b.kv_events = (*svc)->emulator().kv_events_endpoint(i);
    b.kv_events_replay = (*svc)->emulator().kv_events_replay_endpoint(i);
    config.backends.push_back(std::move(b));
  }
  return svc;
}

}  // namespace gimbal::router
