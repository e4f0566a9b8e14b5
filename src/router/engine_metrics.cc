#include "router/engine_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace gimbal::router {

bool SnapshotFromMetrics(const net::PromParseResult& page, const std::string& model, double now,
                         EngineSnapshot* out) {
  EngineSnapshot s;
  s.taken_at = now;
  bool found = false;
  double kv_new = -1, kv_old = -1;
  double waiting = 0, running = 0, pending = 0;
  bool has_pending = false;
  for (const auto& m : page.samples) {
    if (!std::isfinite(m.value)) continue;
    std::string_view mn = m.Label("model_name");
    if (!mn.empty() && !model.empty() && mn != model) continue;
    if (m.name == "vllm:num_requests_waiting") {
      waiting += m.value;
      found = true;
    } else if (m.name == "vllm:num_requests_running") {
      running += m.value;
      found = true;
    } else if (m.name == "vllm:kv_cache_usage_perc") {
      kv_new = std::max(kv_new, m.value);
    } else if (m.name == "vllm:gpu_cache_usage_perc") {
      kv_old = std::max(kv_old, m.value);
    } else if (m.name == "vllm:cache_config_info") {
      std::string blocks(m.Label("num_gpu_blocks")), size(m.Label("block_size"));
      long long b = std::atoll(blocks.c_str()), z = std::atoll(size.c_str());
      if (b > 0 && z > 0) s.kv_capacity_tokens += b * z;
    } else if (m.name == "gimbal:prefill_pending_tokens") {
      pending += m.value;
      has_pending = true;
    }
  }
  if (!found) return false;
  s.waiting = static_cast<int64_t>(std::llround(waiting));
  s.running = static_cast<int64_t>(std::llround(running));
  double kv = kv_new >= 0 ? kv_new : kv_old;
  s.kv_usage = std::clamp(kv < 0 ? 0.0 : kv, 0.0, 1.0);
  s.prefill_pending_tokens = has_pending ? static_cast<int64_t>(std::llround(pending)) : -1;
  *out = s;
  return true;
}

}  // namespace gimbal::router
