#include "placement/place_tool.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "placement/placement_formats.h"
#include "policy/placement/placement_policy.h"

namespace gimbal {

using nlohmann::json;

namespace {

json QualityJson(const PlacementQuality& q) {
  json layers = json::array();
  for (const LayerEval& e : q.layers) {
    layers.push_back(
        {{"max_load", e.max_load},
         {"mean_load", e.mean_load},
         {"max_over_mean", e.max_over_mean()},
         {"cross_gpu_fraction", e.total_tokens > 0 ? e.cross_gpu_tokens / e.total_tokens : 0},
         {"cross_node_fraction", e.total_tokens > 0 ? e.cross_node_tokens / e.total_tokens : 0},
         {"experts_moved", e.experts_moved},
         {"objective", e.objective}});
  }
  return {{"mean_max_over_mean", q.mean_max_over_mean},
          {"worst_max_over_mean", q.worst_max_over_mean},
          {"cross_gpu_fraction", q.cross_gpu_fraction},
          {"cross_node_fraction", q.cross_node_fraction},
          {"experts_moved", q.experts_moved},
          {"bytes_moved", q.bytes_moved},
          {"objective", q.objective},
          {"layers", std::move(layers)}};
}

// InvalidArgument naming the first non-finite number of a report (a plan is never printed with
// one: they come from inputs too large for double arithmetic).
Status CheckFinite(const PlaceReport& r) {
  std::string bad;
  // `what` is formatted only for a bad value.
  auto check = [&](double v, const auto& what) {
    if (bad.empty() && !std::isfinite(v)) bad = fmt::format("{} is {}", what(), v);
  };
  for (const auto& [label, q] :
       {std::pair{"plan", &r.quality}, std::pair{"current placement", &r.current_quality}}) {
    const std::string name = label;
    check(q->mean_max_over_mean, [&] { return name + " mean max/mean"; });
    check(q->worst_max_over_mean, [&] { return name + " worst max/mean"; });
    check(q->cross_gpu_fraction, [&] { return name + " cross-GPU fraction"; });
    check(q->cross_node_fraction, [&] { return name + " cross-node fraction"; });
    check(q->bytes_moved, [&] { return name + " bytes moved"; });
    check(q->objective, [&] { return name + " objective"; });
    for (size_t l = 0; l < q->layers.size(); ++l) {
      const LayerEval& e = q->layers[l];
      for (const auto& [field, v] :
           {std::pair{"max load", e.max_load}, std::pair{"mean load", e.mean_load},
            std::pair{"cross-GPU tokens", e.cross_gpu_tokens},
            std::pair{"cross-node tokens", e.cross_node_tokens},
            std::pair{"tokens", e.total_tokens}, std::pair{"traffic cost", e.traffic_cost},
            std::pair{"objective", e.objective}}) {
        const char* f = field;
        check(v, [&] { return fmt::format("{} layer {} {}", name, l, f); });
      }
    }
  }
  for (size_t i = 0; i < r.plan.source_routes.size(); ++i) {
    for (const SlotShare& sh : r.plan.source_routes[i]) {
      check(sh.weight, [&] { return fmt::format("plan source route {} weight", i); });
    }
  }
  if (bad.empty()) return Status::Ok();
  return InvalidArgument(fmt::format(
      "policy {}: the evaluation is not finite ({}); refusing to print the plan (are the "
      "statistics, topology costs or --set weights too large?)",
      r.policy, bad));
}

}  // namespace

Result<PlaceReport> RunPlace(const PlaceOptions& options) {
  PlaceReport r;
  r.policy = options.policy;
  Result<SourceExpertCounts> stats = LoadRoutingStats(options.stats_path);
  if (!stats.ok()) return stats.status();
  r.stats = std::move(stats).value();
  Result<PlacementTopology> topo = LoadTopology(options.topology_path);
  if (!topo.ok()) return topo.status();
  r.topology = *topo;
  if (options.current_path.empty()) {
    Result<Placement> cur = DefaultCurrentPlacement(r.stats, r.topology);
    if (!cur.ok()) return cur.status();
    r.current = std::move(cur).value();
  } else {
    Result<Placement> cur = LoadPlacement(options.current_path);
    if (!cur.ok()) return cur.status();
    r.current = std::move(cur).value();
  }
  GIMBAL_RETURN_IF_ERROR(CheckPlacementInputs(r.stats, r.current, r.topology));
  Params params;
  for (const std::string& kv : options.sets) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument(fmt::format("--set '{}': expected key=value", kv));
    }
    params.Set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  Result<std::unique_ptr<PlacementPolicy>> policy = MakePlacementPolicy(options.policy, params);
  if (!policy.ok()) return policy.status();
  const auto t0 = std::chrono::steady_clock::now();
  Result<Placement> plan = (*policy)->Plan(r.stats, r.current, r.topology);
  r.plan_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!plan.ok()) return plan.status();
  r.plan = std::move(plan).value();
  GIMBAL_RETURN_IF_ERROR(r.plan.Validate().WithContext("plan of policy " + options.policy));
  const ObjectiveWeights w = (*policy)->weights();
  Result<PlacementQuality> q = EvaluatePlacement(r.stats, r.plan, r.current, r.topology, w);
  if (!q.ok()) return q.status();
  r.quality = *q;
  Result<PlacementQuality> cq = EvaluatePlacement(r.stats, r.current, r.current, r.topology, w);
  if (!cq.ok()) return cq.status();
  r.current_quality = *cq;
  GIMBAL_RETURN_IF_ERROR(CheckFinite(r));
  return r;
}

std::string FormatPlaceReport(const PlaceReport& r) {
  std::string out = fmt::format(
      "policy {}: {} layers, {} experts, {} GPUs x {} slots ({} per node), {} sources; planned in "
      "{:.1f} ms\n",
      r.policy, r.plan.layers, r.plan.experts, r.plan.gpus, r.plan.slots_per_gpu,
      r.topology.gpus_per_node > 0 ? r.topology.gpus_per_node : r.topology.gpus, r.stats.sources,
      r.plan_seconds * 1e3);
  out += fmt::format("{:>6} | {:>8} {:>9} {:>10} {:>6} {:>9} | {:>8} {:>10} {:>9}\n", "layer",
                     "max/mean", "cross-GPU", "cross-node", "moved", "objective", "cur m/m",
                     "cur x-node", "cur obj");
  auto frac = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (size_t l = 0; l < r.quality.layers.size(); ++l) {
    const LayerEval& e = r.quality.layers[l];
    const LayerEval& c = r.current_quality.layers[l];
    out += fmt::format(
        "{:>6} | {:>8.3f} {:>9.3f} {:>10.3f} {:>6} {:>9.4f} | {:>8.3f} {:>10.3f} {:>9.4f}\n", l,
        e.max_over_mean(), frac(e.cross_gpu_tokens, e.total_tokens),
        frac(e.cross_node_tokens, e.total_tokens), e.experts_moved, e.objective, c.max_over_mean(),
        frac(c.cross_node_tokens, c.total_tokens), c.objective);
  }
  const PlacementQuality& q = r.quality;
  const PlacementQuality& c = r.current_quality;
  out += fmt::format(
      "{:>6} | {:>8.3f} {:>9.3f} {:>10.3f} {:>6} {:>9.4f} | {:>8.3f} {:>10.3f} {:>9.4f}\n", "all",
      q.mean_max_over_mean, q.cross_gpu_fraction, q.cross_node_fraction, q.experts_moved,
      q.objective, c.mean_max_over_mean, c.cross_node_fraction, c.objective);
  out += fmt::format(
      "bytes migrated: {:.4g} (max/mean is the mean over layers; crossing fractions "
      "are token-weighted)\n",
      q.bytes_moved);
  return out;
}

std::string PlaceReportToJson(const PlaceReport& r) {
  json j = {{"policy", r.policy},
            {"plan_seconds", r.plan_seconds},
            {"placement", PlacementJsonValue(r.plan)},
            {"quality", QualityJson(r.quality)},
            {"current_quality", QualityJson(r.current_quality)}};
  return j.dump(1);
}

}  // namespace gimbal
