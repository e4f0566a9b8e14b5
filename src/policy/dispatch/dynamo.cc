// dynamo: NVIDIA Dynamo KV router's cost function.
//
// Source: NVIDIA Dynamo documentation of the KV-cache-aware router. For each worker it computes
//   cost = overlap_score_weight · prefill_blocks + decode_blocks
// where prefill_blocks are the blocks of the prompt the worker would have to compute (prompt
// blocks minus those already cached there) and decode_blocks the KV blocks of the sequences
// active on the worker; with temperature 0 it picks the minimum cost, ties at random.
//
// Gimbal models no prefix cache, so prefill_blocks = ceil(prompt / block_size) on every engine.
// decode_blocks = max(kv_usage · capacity, reserved_kv_tokens) / block_size: the router's own
// count of the blocks it routed (Dynamo tracks active sequences itself), or the engine's report
// when larger (traffic from elsewhere, or when capacity is unknown, the report alone).
#include <algorithm>
#include <cmath>

#include "policy/dispatch/builtin_policies.h"

namespace gimbal::dispatch_internal {
namespace {

struct DynamoOptions {
  double overlap_score_weight = 1.0;
  int64_t block_size = 16;
};

class DynamoPolicy final : public DispatchPolicy {
 public:
  explicit DynamoPolicy(DynamoOptions opts) : opts_(opts) {}

  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& rng) const override {
    const std::vector<int> healthy = HealthyEngines(engines);
    const double block = static_cast<double>(opts_.block_size);
    const double prefill_blocks = std::ceil(static_cast<double>(req.prompt_tokens) / block);
    std::vector<double> cost(engines.size(), 0.0);
    for (int i : healthy) {
      const EngineView& v = engines[static_cast<size_t>(i)];
      const double reported =
          v.snapshot.kv_usage * static_cast<double>(v.snapshot.kv_capacity_tokens);
      const double active = std::max(reported, static_cast<double>(v.reserved_kv_tokens));
      cost[static_cast<size_t>(i)] = opts_.overlap_score_weight * prefill_blocks + active / block;
    }
    return PickMinRandomTie(healthy, cost, 1e-9, rng);
  }
  std::string name() const override { return "dynamo"; }

 private:
  DynamoOptions opts_;
};

}  // namespace

FactoryResult NewDynamo(const Params& p, const DispatchDeps& /*deps*/) {
  DynamoOptions o;
  o.overlap_score_weight = p.GetDouble("overlap_score_weight", o.overlap_score_weight);
  o.block_size = p.GetInt("block_size", o.block_size);
  if (o.overlap_score_weight < 0) {
    return ParamRangeError("overlap_score_weight", ">= 0", o.overlap_score_weight);
  }
  if (o.block_size <= 0) {
    return ParamRangeError("block_size", "> 0", static_cast<double>(o.block_size));
  }
  return std::unique_ptr<DispatchPolicy>(std::make_unique<DynamoPolicy>(o));
}

}  // namespace gimbal::dispatch_internal
