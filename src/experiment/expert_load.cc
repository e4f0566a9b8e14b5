#include "experiment/expert_load.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "policy/placement/placement_policy.h"
#include "sim/expert_routing.h"

namespace gimbal::experiment {
namespace {

// tokens[(bin * ranks + rank) * classes + class]
struct TokenGrid {
  int bins = 0, ranks = 0, classes = 0;
  double bin_s = 1;
  std::vector<double> v;
  double& At(int b, int r, int c) {
    return v[(static_cast<size_t>(b) * ranks + r) * classes + c];
  }
  double At(int b, int r, int c) const {
    return v[(static_cast<size_t>(b) * ranks + r) * classes + c];
  }
};

TokenGrid BinTokens(const std::vector<sim::RequestRecord>& reqs, int ranks, int classes, int bins) {
  TokenGrid g;
  g.ranks = ranks;
  g.classes = classes;
  double t0 = 0, t1 = 0;
  bool any = false;
  for (const auto& q : reqs) {
    if (!q.completed() || q.engine < 0 || q.first_token < 0) continue;
    t0 = any ? std::min(t0, q.arrival) : q.arrival;
    t1 = any ? std::max(t1, q.finish) : q.finish;
    any = true;
  }
  g.bins = std::max(1, bins);
  g.bin_s = any && t1 > t0 ? (t1 - t0) / g.bins : 1.0;
  g.v.assign(static_cast<size_t>(g.bins) * ranks * classes, 0.0);
  const auto bin_of = [&](double t) {
    return std::clamp(static_cast<int>((t - t0) / g.bin_s), 0, g.bins - 1);
  };
  for (const auto& q : reqs) {
    if (!q.completed() || q.engine < 0 || q.engine >= ranks || q.first_token < 0) continue;
    const int c = std::clamp(q.traffic_class, 0, classes - 1);
    g.At(bin_of(q.first_token), q.engine, c) += static_cast<double>(q.prompt_tokens);
    const double decode = static_cast<double>(std::max<int64_t>(0, q.output_tokens - 1));
    if (decode <= 0) continue;
    const double a = q.first_token, b = q.finish;
    if (b <= a) {
      g.At(bin_of(a), q.engine, c) += decode;
      continue;
    }
    // Spread evenly over [a, b].
    for (int k = bin_of(a); k <= bin_of(b); ++k) {
      const double lo = std::max(a, t0 + k * g.bin_s), hi = std::min(b, t0 + (k + 1) * g.bin_s);
      if (hi > lo) g.At(k, q.engine, c) += decode * (hi - lo) / (b - a);
    }
  }
  return g;
}

nlohmann::ordered_json LoadUnder(const std::string& name, const sim::ExpertPopularity& pop,
                                 const Placement& placement, const TokenGrid& grid,
                                 int gpus_per_node, int top_k) {
  const sim::RoutingTables tables(pop, placement, grid.ranks, gpus_per_node);
  const int G = tables.gpus(), L = pop.layers();
  std::vector<double> layer_max(L, 0.0), layer_mean(L, 0.0);
  nlohmann::ordered_json gpu_load = nlohmann::ordered_json::array();
  nlohmann::ordered_json series = nlohmann::ordered_json::array();
  std::vector<double> load(G), rel(G);
  for (int b = 0; b < grid.bins; ++b) {
    std::fill(rel.begin(), rel.end(), 0.0);
    double sum_max = 0, sum_mean = 0;
    int layers_with_load = 0;
    for (int l = 0; l < L; ++l) {
      std::fill(load.begin(), load.end(), 0.0);
      for (int r = 0; r < grid.ranks; ++r) {
        for (int c = 0; c < grid.classes; ++c) {
          const double tok = grid.At(b, r, c);
          if (tok <= 0) continue;
          const auto share = tables.Share(r, c, l);
          for (int g = 0; g < G; ++g) load[g] += tok * top_k * share[g];
        }
      }
      double mx = 0, sum = 0;
      for (double x : load) {
        mx = std::max(mx, x);
        sum += x;
      }
      const double mean = sum / G;
      sum_max += mx;
      sum_mean += mean;
      layer_max[l] += mx;
      layer_mean[l] += mean;
      if (mean > 0) {
        layers_with_load++;
        for (int g = 0; g < G; ++g) rel[g] += load[g] / mean;
      }
    }
    nlohmann::ordered_json row = nlohmann::ordered_json::array();
    for (int g = 0; g < G; ++g) {
      row.push_back(layers_with_load > 0 ? std::round(rel[g] / layers_with_load * 1e4) / 1e4 : 0.0);
    }
    gpu_load.push_back(row);
    series.push_back(sum_mean > 0 ? std::round(sum_max / sum_mean * 1e4) / 1e4 : 1.0);
  }
  nlohmann::ordered_json per_layer = nlohmann::ordered_json::array();
  double tmax = 0, tmean = 0;
  for (int l = 0; l < L; ++l) {
    per_layer.push_back(layer_mean[l] > 0 ? layer_max[l] / layer_mean[l] : 1.0);
    tmax += layer_max[l];
    tmean += layer_mean[l];
  }
  nlohmann::ordered_json out;
  out["name"] = name;
  out["overall_max_over_mean"] = tmean > 0 ? tmax / tmean : 1.0;
  out["layer_max_over_mean"] = per_layer;
  out["max_over_mean"] = series;
  out["gpu_load"] = gpu_load;
  return out;
}

}  // namespace

Result<nlohmann::ordered_json> DeriveExpertLoad(const sim::ClusterSpec& cluster,
                                                const std::vector<sim::RequestRecord>& requests,
                                                const ExpertLoadOptions& options) {
  const ModelSpec& m = cluster.model;
  if (m.experts <= 0 || m.moe_layers() <= 0) return InvalidArgument("the model has no MoE layers");
  const int ranks = cluster.dp;
  const int classes = static_cast<int>(cluster.classes.size());
  const sim::ExpertPopularity pop(cluster.classes, m.moe_layers(), m.experts, m.top_k,
                                  cluster.class_overlap, cluster.routing_seed);
  const TokenGrid grid = BinTokens(requests, ranks, classes, options.bins);
  const int gpn = std::min(cluster.hardware.gpus_per_node, ranks);
  const Placement before =
      Placement::Contiguous(m.moe_layers(), m.experts, ranks, cluster.redundant_slots_per_gpu);

  nlohmann::ordered_json out;
  out["method"] =
      "derived from request records and the simulator's routing model (see docs/experiments.md)";
  out["bin_s"] = grid.bin_s;
  nlohmann::ordered_json t = nlohmann::ordered_json::array();
  for (int b = 0; b < grid.bins; ++b) t.push_back(b * grid.bin_s);
  out["t_s"] = t;
  out["gpus"] = ranks;
  out["placements"] = nlohmann::ordered_json::array();
  out["placements"].push_back(LoadUnder("before (contiguous)", pop, before, grid, gpn, m.top_k));

  if (!options.policy.empty()) {
    // Source × expert statistics of the whole run: tokens × top_k × class popularity.
    std::vector<double> total(static_cast<size_t>(ranks) * classes, 0.0);
    for (int b = 0; b < grid.bins; ++b) {
      for (int r = 0; r < ranks; ++r) {
        for (int c = 0; c < classes; ++c) total[static_cast<size_t>(r) * classes + c] += grid.At(b, r, c);
      }
    }
    SourceExpertCounts stats = SourceExpertCounts::Zeros(m.moe_layers(), ranks, m.experts);
    for (int l = 0; l < m.moe_layers(); ++l) {
      for (int r = 0; r < ranks; ++r) {
        for (int c = 0; c < classes; ++c) {
          const double tok = total[static_cast<size_t>(r) * classes + c];
          if (tok <= 0) continue;
          const auto row = pop.Row(c, l);
          for (int x = 0; x < m.experts; ++x) stats.At(l, r, x) += tok * m.top_k * row[x];
        }
      }
    }
    auto policy = MakePlacementPolicy(options.policy, Params());
    if (!policy.ok()) return policy.status();
    PlacementTopology topo;
    topo.gpus = ranks;
    topo.gpus_per_node = gpn;
    const auto start = std::chrono::steady_clock::now();
    auto after = (*policy)->Plan(stats, before, topo);
    if (!after.ok()) return after.status().WithContext("planning the 'after' placement");
    out["plan_seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out["placements"].push_back(LoadUnder(fmt::format("after ({})", options.policy), pop, *after, grid,
                                          gpn, m.top_k));
  }
  return out;
}

}  // namespace gimbal::experiment
