// StepPolicy: the token budget each DP rank may schedule in the next lockstep step.
//
// In a DP+EP cluster every rank runs each MoE layer in lockstep, so a step lasts as long as its
// slowest rank. vLLM gives every rank the same fixed budget (`max_num_batched_tokens`), and a
// rank that happens to run a large prefill chunk stretches the step for every decoding sequence
// on every rank. A step policy sees all ranks' work before the step is planned and returns each
// rank's budget for it; the engines then schedule as usual (running first, chunked prefill,
// admission) within that budget.
//
// A step policy is a pure decider: the same inputs give the same budgets; it keeps no state
// between calls and reads no clock. The simulator's cluster and the engine emulator call it once
// per step. Policies are created by name from a registry (MakeStepPolicy), like the dispatch and
// queue policies; unknown names list the valid ones and unknown parameters are rejected.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/params.h"
#include "core/status.h"

namespace gimbal {

class CostModel;

// One rank's work before the step is planned.
struct RankWork {
  int64_t running = 0;          // sequences admitted (each computes at least one token)
  double context_tokens = 0;    // KV tokens held by the running sequences
  int64_t pending_prefill = 0;  // prompt and recompute tokens not yet computed (waiting included)
  // Of the running sequences: those still in their (chunked) prefill, and the KV tokens they
  // hold — the context the next prefill chunk attends to.
  int64_t prefilling = 0;
  double prefill_context_tokens = 0;
};

class StepPolicy {
 public:
  virtual ~StepPolicy() = default;
  // Fills `budgets` (same size as `ranks`) with each rank's token budget for the next step, each
  // in [min(running, max_budget), max_budget] — never below what the rank's running sequences
  // need for one token each, unless that exceeds `max_budget`.
  virtual void Budgets(std::span<const RankWork> ranks, int64_t max_budget,
                       std::span<int64_t> budgets) const = 0;
  virtual std::string name() const = 0;
};

struct StepDeps {
  const CostModel* cost_model = nullptr;  // policies that price steps
  int ranks = 1;                          // DP ranks = EP GPUs (expert work is spread over them)
  bool async_scheduling =
      false;  // the engines hide CPU overhead behind the GPU step (EngineConfig)
};

using StepFactory =
    std::function<Result<std::unique_ptr<StepPolicy>>(const Params& params, const StepDeps& deps)>;

bool RegisterStepPolicy(const std::string& name, StepFactory factory);
// Builds the named policy; an unknown name lists StepPolicyNames(); unknown or malformed
// parameters give an error naming them.
Result<std::unique_ptr<StepPolicy>> MakeStepPolicy(const std::string& name, const Params& params,
                                                   const StepDeps& deps = {});
std::vector<std::string> StepPolicyNames();

}  // namespace gimbal
