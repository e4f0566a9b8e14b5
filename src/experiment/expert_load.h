// Per-GPU expert load over time, as the simulator measured it.
//
// With SimOptions::keep_steps the simulator records, for every step, each GPU's routed-expert load
// (token-expert pairs summed over MoE layers) and the step's Σ_layers max and mean GPU load
// (sim::StepRecord). This module buckets those records into equal time bins so a point's output
// stays small, and splits the run at the first rebalance of a stack with a placement policy:
// before it every stack runs the contiguous placement; after it, the placement the policy planned.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "sim/simulator.h"

namespace gimbal::experiment {

struct ExpertLoadOptions {
  int bins = 60;
};

// From a run's step records and its summary (for `rebalance_history`):
//   {"method": "measured", "bin_s", "t_s": [bin starts], "gpus", "steps": [steps per bin],
//    "gpu_load": [bins][gpus]  each GPU's load in the bin ÷ the mean GPU's (null: no load),
//    "max_over_mean": [bins]   Σ step max ÷ Σ step mean in the bin (null: no load),
//    "overall_max_over_mean"   over the whole run (equals the summary's figure),
//    "rebalances_s": [simulated times of the rebalances],
//    "before_first_rebalance", "after_first_rebalance": max ÷ mean over the steps up to and
//    including the step that triggered the first rebalance, and over the steps after it (null
//    without a rebalance)}.
// Values are rounded to 4 decimals. No steps: an empty object.
nlohmann::ordered_json MeasuredExpertLoad(const std::vector<sim::StepRecord>& steps,
                                          const nlohmann::ordered_json& summary,
                                          const ExpertLoadOptions& options);

}  // namespace gimbal::experiment
