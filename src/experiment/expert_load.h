// Per-GPU expert load over time, derived from a finished run's request records.
//
// The simulator reports expert-load balance only as run totals (expert_load_max_over_mean and its
// per-layer list); it keeps no per-step, per-GPU loads. This module rebuilds an estimate from what
// a run does expose: each request's engine (source rank), traffic class, token counts and times.
// Prompt tokens are counted in the time bin of the request's first token (the step that ran its
// prefill ended then); output tokens are spread evenly from the first token to the finish. The
// tokens of each (bin, source rank, class) are routed with the same expert-routing model the
// simulator uses (ExpertPopularity + RoutingTables) under two placements:
//   "before": the contiguous placement every simulated run uses;
//   "after":  the placement a placement policy (default "gimbal") plans from the run's own
//             source × expert statistics, with the cluster's slots.
// "After" is a what-if on the same traffic, not a simulated rebalance: dispatch does not react to
// the new placement.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/status.h"
#include "sim/cluster.h"
#include "sim/metrics.h"

namespace gimbal::experiment {

struct ExpertLoadOptions {
  int bins = 60;
  std::string policy = "gimbal";  // placement policy for "after"; empty: "before" only
};

// {"method", "bin_s", "t_s": [bin starts], "gpus", "placements": [{"name", "gpu_load": [bins][gpus]
//  (each GPU's expert load ÷ the GPU mean, averaged over MoE layers), "max_over_mean": [bins]
//  (Σ_layers max ÷ Σ_layers mean), "layer_max_over_mean": [layers], "overall_max_over_mean"}],
//  "plan_seconds"}.
Result<nlohmann::ordered_json> DeriveExpertLoad(const sim::ClusterSpec& cluster,
                                                const std::vector<sim::RequestRecord>& requests,
                                                const ExpertLoadOptions& options);

}  // namespace gimbal::experiment
