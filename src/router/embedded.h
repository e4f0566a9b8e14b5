// Embedded engines: what `gimbal serve` starts when no backend is configured, so that a newcomer
// can curl the router at once. The engines are `gimbal engine`'s emulated vLLM DP engines
// (engine::EngineService: one lockstep DP+EP cluster model on the real clock), in the router's
// process, each on an ephemeral loopback port.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "engine/engine_server.h"
#include "router/config.h"

namespace gimbal::router {

struct EmbeddedEngineOptions {
  std::string model = "qwen3-30b-a3b";  // data/models
  std::string gpu = "h200";             // data/gpus
  std::string topology = "hgx-8gpu";    // data/topologies
  int dp = 4;
  double time_scale = 1;  // modelled step durations times this (docs/emulator.md)
  // Queue policy inside the engines; empty: `priority` when the router tags requests with a
  // queue key (so the engines honour it, like vLLM --scheduling-policy priority), else `fcfs`.
  std::string queue_policy;
  int threads = 2;  // io threads of the engines' servers
  // Each engine publishes its KV-cache events on an ephemeral loopback port (with a replay
  // socket), and its backend names them, so the router's prefix index follows the engines'
  // caches exactly (PrefixCache). False: the router keeps its approximate record.
  bool kv_events = true;
};

// Starts the engines and points `config` at them: replaces its backends with one per engine
// (named dp<i>, model = the catalogue model name, kv_events when published) and reads their
// pushed state; sets config.prefix_cache.block_tokens to the engines' KV block size. When
// `config.queue_policy` is empty and `default_queue_policy` is not, sets it (the full Gimbal
// stack by default). The engines take `config.admin_token` as theirs: when it is set, their
// POST /gimbal/placement needs it too (401 otherwise), so that the router's token is not
// bypassed through the engines' loopback ports; when it is not (the router's /admin/* refused),
// a random token nobody knows, so that no local process can install a placement either. The
// service must outlive the router; shut the router down first.
Result<std::unique_ptr<engine::EngineService>> StartEmbeddedEngines(
    const EmbeddedEngineOptions& options, RouterConfig& config,
    const std::string& default_queue_policy = "gimbal");

}  // namespace gimbal::router
