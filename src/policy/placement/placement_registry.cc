// The placement policy registry. Policies are registered here explicitly: self-registration from
// a static library would be dropped by the linker.
#include <fmt/format.h>

#include <functional>
#include <map>

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
  ExactPolicy(ObjectiveWeights weights, ExactOptions options) : weights_(weights), options_(options) {}
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

using Factory = std::function<Result<std::unique_ptr<PlacementPolicy>>(const Params&)>;

const std::map<std::string, Factory>& Registry() {
  static const std::map<std::string, Factory> registry = {
      {"gimbal",
       [](const Params& params) -> Result<std::unique_ptr<PlacementPolicy>> {
         Result<GimbalPlacementConfig> c = GimbalPlacementConfig::FromParams(params);
         if (!c.ok()) return c.status();
         return std::unique_ptr<PlacementPolicy>(new GimbalPolicy(*c));
       }},
      {"eplb",
       [](const Params& params) -> Result<std::unique_ptr<PlacementPolicy>> {
         // The weights only score the plan; EPLB itself has no parameters.
         const ObjectiveWeights w = ReadWeights(params);
         GIMBAL_RETURN_IF_ERROR(params.Validate("placement policy 'eplb'"));
         return std::unique_ptr<PlacementPolicy>(new EplbPolicy(w));
       }},
      {"exact",
       [](const Params& params) -> Result<std::unique_ptr<PlacementPolicy>> {
         const ObjectiveWeights w = ReadWeights(params);
         ExactOptions o;
         o.max_moves_per_layer =
             static_cast<int>(params.GetInt("max_moves_per_layer", o.max_moves_per_layer));
         o.time_limit_s = params.GetDouble("time_limit_s", o.time_limit_s);
         GIMBAL_RETURN_IF_ERROR(params.Validate("placement policy 'exact'"));
         if (!ExactSolverAvailable()) {
           return Unsupported(
               "placement policy 'exact' needs COIN-OR CBC; this build has none (configure with "
               "-DGIMBAL_WITH_CBC=ON and coinor-libcbc-dev installed)");
         }
         return std::unique_ptr<PlacementPolicy>(new ExactPolicy(w, o));
       }},
  };
  return registry;
}

}  // namespace

Result<std::unique_ptr<PlacementPolicy>> MakePlacementPolicy(const std::string& name,
                                                             const Params& params) {
  auto it = Registry().find(name);
  if (it == Registry().end()) {
    std::string known;
    for (const auto& n : PlacementPolicyNames()) known += (known.empty() ? "" : ", ") + n;
    return NotFound(fmt::format("unknown placement policy '{}'; known: {}", name, known));
  }
  return it->second(params);
}

std::vector<std::string> PlacementPolicyNames() {
  std::vector<std::string> out;
  for (const auto& [n, f] : Registry()) out.push_back(n);
  return out;
}

std::unique_ptr<PlacementPolicy> NewEplbPlacementPolicy(ObjectiveWeights weights) {
  return std::make_unique<EplbPolicy>(weights);
}

}  // namespace gimbal
