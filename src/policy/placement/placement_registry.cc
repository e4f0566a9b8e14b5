// The placement policy registry (built-ins registered explicitly on first use: self-registration
// from a static library would be dropped by the linker) and the built-in policies.
#include "core/name_registry.h"
#include "policy/placement/eplb.h"
#include "policy/placement/exact_solver.h"
#include "policy/placement/gimbal_placement.h"
#include "policy/placement/placement_policy.h"

namespace gimbal {
namespace {

class GimbalPolicy final : public PlacementPolicy {
 public:
  explicit GimbalPolicy(GimbalPlacementConfig config) : config_(config) {}
  std::string_view name() const override { return "gimbal"; }
  Result<Placement> Plan(const SourceExpertCounts& stats, const Placement& current,
                         const PlacementTopology& topology) const override {
    return PlanGimbal(stats, current, topology, config_);
  }
  ObjectiveWeights weights() const override { return config_.weights; }

 private:
  GimbalPlacementConfig config_;
};

class EplbPolicy final : public PlacementPolicy {
 public:
  explicit EplbPolicy(ObjectiveWeights weights) : weights_(weights) {}
  std::string_view name() const override { return "eplb"; }
  Result<Placement> Plan(const SourceExpertCounts& stats, const Placement& current,
                         const PlacementTopology& topology) const override {
    GIMBAL_RETURN_IF_ERROR(CheckPlacementInputs(stats, current, topology));
    EplbOptions o;
    o.physical_slots = current.slots();
    o.groups = topology.expert_groups;
    o.nodes = topology.nodes();
    o.gpus = topology.gpus;
    const std::vector<double> totals = stats.ExpertTotals();
    Result<EplbResult> r = EplbRebalance(totals, stats.layers, stats.experts, o);
    if (!r.ok()) return r.status();
    return r->ToPlacement(topology.gpus);
  }
  ObjectiveWeights weights() const override { return weights_; }

 private:
  ObjectiveWeights weights_;
};

class ExactPolicy final : public PlacementPolicy {
 public:
  ExactPolicy(ObjectiveWeights weights, ExactOptions options)
      : weights_(weights), options_(options) {}
  std::string_view name() const override { return "exact"; }
  Result<Placement> Plan(const SourceExpertCounts& stats, const Placement& current,
                         const PlacementTopology& topology) const override {
    return PlanExact(stats, current, topology, weights_, options_);
  }
  ObjectiveWeights weights() const override { return weights_; }

 private:
  ObjectiveWeights weights_;
  ExactOptions options_;
};

ObjectiveWeights ReadWeights(const Params& params) {
  ObjectiveWeights w;
  w.load = params.GetDouble("load_weight", w.load);
  w.traffic = params.GetDouble("traffic_weight", w.traffic);
  w.migration = params.GetDouble("migration_weight", w.migration);
  return w;
}

// The factories read their parameters; NameRegistry::Make reports unknown or malformed ones and
// prefixes every error with "placement policy '<name>'".
Result<std::unique_ptr<PlacementPolicy>> NewGimbal(const Params& params) {
  Result<GimbalPlacementConfig> c = GimbalPlacementConfig::FromParams(params);
  if (!c.ok()) return c.status();
  return std::unique_ptr<PlacementPolicy>(new GimbalPolicy(*c));
}

// The weights score plans as the gimbal policy's do, and are held to the same rule.
Status CheckWeights(const ObjectiveWeights& w) {
  if (!(w.load >= 0) || !(w.traffic >= 0) || !(w.migration >= 0)) {
    return InvalidArgument("weights must be >= 0");
  }
  return Status::Ok();
}

Result<std::unique_ptr<PlacementPolicy>> NewEplb(const Params& params) {
  // The weights only score the plan; EPLB itself has no parameters.
  const ObjectiveWeights w = ReadWeights(params);
  GIMBAL_RETURN_IF_ERROR(CheckWeights(w));
  return std::unique_ptr<PlacementPolicy>(new EplbPolicy(w));
}

Result<std::unique_ptr<PlacementPolicy>> NewExact(const Params& params) {
  const ObjectiveWeights w = ReadWeights(params);
  GIMBAL_RETURN_IF_ERROR(CheckWeights(w));
  ExactOptions o;
  o.max_moves_per_layer = params.GetInt32("max_moves_per_layer", o.max_moves_per_layer);
  o.time_limit_s = params.GetDouble("time_limit_s", o.time_limit_s);
  if (!ExactSolverAvailable()) {
    return Unsupported(
        "needs COIN-OR CBC; this build has none (configure with -DGIMBAL_WITH_CBC=ON and "
        "coinor-libcbc-dev installed)");
  }
  return std::unique_ptr<PlacementPolicy>(new ExactPolicy(w, o));
}

NameRegistry<PlacementFactory>& Registry() {
  // Never destroyed: usable during static teardown.
  static auto* registry =
      new NameRegistry<PlacementFactory>("placement policy", [](NameRegistry<PlacementFactory>& r) {
        r.RegisterBuiltin("gimbal", NewGimbal);
        r.RegisterBuiltin("eplb", NewEplb);
        r.RegisterBuiltin("exact", NewExact);
      });
  return *registry;
}

}  // namespace

bool RegisterPlacementPolicy(const std::string& name, PlacementFactory factory) {
  return Registry().Register(name, std::move(factory));
}

std::vector<std::string> PlacementPolicyNames() {
  return Registry().Names();
}

Result<std::unique_ptr<PlacementPolicy>> MakePlacementPolicy(const std::string& name,
                                                             const Params& params) {
  return Registry().Make(name, params);
}

std::unique_ptr<PlacementPolicy> NewEplbPlacementPolicy(ObjectiveWeights weights) {
  return std::make_unique<EplbPolicy>(weights);
}

}  // namespace gimbal
