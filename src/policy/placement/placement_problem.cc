#include "policy/placement/placement_problem.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace gimbal {

Status PlacementTopology::Validate() const {
  if (gpus <= 0)
    return InvalidArgument(fmt::format("topology: gpus must be positive, got {}", gpus));
  if (gpus_per_node < 0 || (gpus_per_node > 0 && gpus % gpus_per_node != 0)) {
    return InvalidArgument(fmt::format(
        "topology: gpus_per_node ({}) must be positive and divide gpus ({})", gpus_per_node, gpus));
  }
  if (!(alpha >= 0) || !(beta >= 0) || !(alpha <= kMaxHopCost) || !(beta <= kMaxHopCost)) {
    return InvalidArgument(fmt::format("topology: alpha ({}) and beta ({}) must be in [0, {}]",
                                       alpha, beta, kMaxHopCost));
  }
  if (alpha > beta) {
    return InvalidArgument(fmt::format(
        "topology: alpha ({}) must not exceed beta ({}): a hop within a node costs at most one "
        "across nodes",
        alpha, beta));
  }
  if (slots_per_gpu < 0) return InvalidArgument("topology: slots_per_gpu must be >= 0");
  if (int64_t{gpus} * slots_per_gpu > kMaxSlots) {
    return InvalidArgument(fmt::format(
        "topology: {} GPUs x {} slots per GPU is more than the {} slots a layer may have", gpus,
        slots_per_gpu, kMaxSlots));
  }
  if (expert_groups <= 0) return InvalidArgument("topology: expert_groups must be positive");
  if (!(expert_bytes > 0) || !(expert_bytes <= kMaxExpertBytes)) {
    return InvalidArgument(
        fmt::format("topology: expert_bytes ({}) must be positive and at most {}", expert_bytes,
                    kMaxExpertBytes));
  }
  return Status::Ok();
}

namespace {

// CheckPlacementInputs after stats.Validate(): needs the statistics' shape valid.
Status CheckShapesFit(const SourceExpertCounts& stats, const Placement& current,
                      const PlacementTopology& topology) {
  GIMBAL_RETURN_IF_ERROR(topology.Validate());
  GIMBAL_RETURN_IF_ERROR(current.Validate().WithContext("current placement"));
  for (const auto& [what, n] :
       {std::pair{"experts", stats.experts}, std::pair{"sources", stats.sources}}) {
    if (int64_t{n} * topology.gpus > kMaxRoutingCells) {
      return InvalidArgument(
          fmt::format("{} {} x {} GPUs is more than the {} cells planning allows", n, what,
                      topology.gpus, kMaxRoutingCells));
    }
  }
  if (current.layers != stats.layers || current.experts != stats.experts) {
    return InvalidArgument(
        fmt::format("current placement has {} layers x {} experts but the statistics have {} x {}",
                    current.layers, current.experts, stats.layers, stats.experts));
  }
  if (current.gpus != topology.gpus) {
    return InvalidArgument(fmt::format("current placement has {} GPUs but the topology has {}",
                                       current.gpus, topology.gpus));
  }
  if (topology.slots_per_gpu > 0 && topology.slots_per_gpu != current.slots_per_gpu) {
    return InvalidArgument(
        fmt::format("current placement has {} slots per GPU but the topology says {}",
                    current.slots_per_gpu, topology.slots_per_gpu));
  }
  return Status::Ok();
}

}  // namespace

Status CheckPlacementInputs(const SourceExpertCounts& stats, const Placement& current,
                            const PlacementTopology& topology) {
  GIMBAL_RETURN_IF_ERROR(stats.Validate());
  return CheckShapesFit(stats, current, topology);
}

Status CheckPlacementInputsButCounts(const SourceExpertCounts& stats, const Placement& current,
                                     const PlacementTopology& topology) {
  // stats.Validate() checks the shape, then the counts: a bad shape is its error.
  if (stats.layers <= 0 || stats.sources <= 0 || stats.experts <= 0 ||
      stats.counts.size() != static_cast<size_t>(stats.layers) * stats.sources * stats.experts) {
    return stats.Validate();
  }
  if (Status s = CheckShapesFit(stats, current, topology); !s.ok()) {
    // CheckPlacementInputs reports a bad count first.
    Status v = stats.Validate();
    return v.ok() ? s : v;
  }
  return Status::Ok();
}

Result<Placement> DefaultCurrentPlacement(const SourceExpertCounts& stats,
                                          const PlacementTopology& topology) {
  GIMBAL_RETURN_IF_ERROR(topology.Validate());
  if (stats.experts % topology.gpus != 0) {
    return InvalidArgument(fmt::format(
        "no current placement given and {} experts do not divide over {} GPUs; pass --current",
        stats.experts, topology.gpus));
  }
  const int base = stats.experts / topology.gpus;
  const int slots = topology.slots_per_gpu > 0 ? topology.slots_per_gpu : base;
  if (slots < base) {
    return InvalidArgument(
        fmt::format("topology: slots_per_gpu {} is below experts / gpus = {}", slots, base));
  }
  // A GPU holding more slots than there are experts holds one expert twice, which serves nothing.
  if (slots > stats.experts) {
    return InvalidArgument(
        fmt::format("topology: slots_per_gpu {} is more than the {} experts a GPU could hold",
                    slots, stats.experts));
  }
  if (int64_t{stats.layers} * topology.gpus * slots > kMaxPlacementCells) {
    return InvalidArgument(fmt::format(
        "{} layers x {} GPUs x {} slots per GPU is more than the {} slots a placement may have",
        stats.layers, topology.gpus, slots, kMaxPlacementCells));
  }
  return Placement::Contiguous(stats.layers, stats.experts, topology.gpus, slots - base);
}

LayerProblem MakeLayerProblem(const SourceExpertCounts& stats, int layer, const Placement& current,
                              const PlacementTopology& topology, const ObjectiveWeights& weights) {
  LayerProblem p;
  FillLayerProblem(stats, layer, current, topology, weights, p);
  return p;
}

void FillLayerProblem(const SourceExpertCounts& stats, int layer, const Placement& current,
                      const PlacementTopology& topology, const ObjectiveWeights& weights,
                      LayerProblem& p) {
  p.sources = stats.sources;
  p.experts = stats.experts;
  p.gpus = topology.gpus;
  p.slots_per_gpu = current.slots_per_gpu;
  p.counts = stats.Layer(layer);
  p.nodes = topology.nodes();
  p.alpha = topology.alpha;
  p.beta = topology.beta;
  p.node_of_gpu.resize(p.gpus);
  for (int g = 0; g < p.gpus; ++g) p.node_of_gpu[g] = topology.NodeOf(g);
  p.source_gpu.resize(p.sources);
  for (int s = 0; s < p.sources; ++s) p.source_gpu[s] = SourceGpu(s, p.sources, p.gpus);
  // The transpose with negative counts as 0 (the planners skip them), in blocks of 8 sources (8
  // rows read in order, one cache line written per expert).
  p.by_expert.resize(static_cast<size_t>(p.experts) * p.sources);
  const double* counts = p.counts.data();
  bool all_valid = true;  // every count in [0, kMaxRoutingCount] (NaN is not)
  for (int s0 = 0; s0 < p.sources; s0 += 8) {
    const int s1 = std::min(p.sources, s0 + 8);
    for (int x = 0; x < p.experts; ++x) {
      double* row = &p.by_expert[static_cast<size_t>(x) * p.sources];
      for (int s = s0; s < s1; ++s) {
        const double a = counts[static_cast<size_t>(s) * p.experts + x];
        all_valid &= (a >= 0) & (a <= kMaxRoutingCount);
        row[s] = std::max(0.0, a);
      }
    }
  }
  // Each expert's total, GPU demand and node demand: sums from 0.0 of its counts in source order.
  p.counts_valid = all_valid;
  p.totals.assign(p.experts, 0.0);
  p.gpu_demand.assign(static_cast<size_t>(p.experts) * p.gpus, 0.0);
  p.node_demand.assign(static_cast<size_t>(p.experts) * p.nodes, 0.0);
  if (all_valid) {
    // The counts are those of the transpose but for -0.0 there as +0.0, which leaves every sum
    // from +0.0 unchanged; sources run on GPUs in order and nodes hold consecutive GPUs, so a
    // GPU's and a node's sources are runs, and each sum is kept in a register over its run.
    std::vector<std::pair<int, int>> runs;  // (GPU, first source) per GPU with sources
    for (int s = 0; s < p.sources; ++s) {
      const int g = p.source_gpu[s];
      if (runs.empty() || runs.back().first != g) runs.push_back({g, s});
    }
    runs.push_back({-1, p.sources});
    const int nruns = static_cast<int>(runs.size()) - 1;
    // W experts side by side (independent sums, so their additions overlap).
    auto sums = [&]<int W>(int x0) {
      const double* row = &p.by_expert[static_cast<size_t>(x0) * p.sources];
      double* gd = &p.gpu_demand[static_cast<size_t>(x0) * p.gpus];
      double* nd = &p.node_demand[static_cast<size_t>(x0) * p.nodes];
      std::array<double, W> t{};
      for (int k = 0; k < nruns;) {
        const int n = p.node_of_gpu[runs[k].first];
        std::array<double, W> dn{};
        for (; k < nruns && p.node_of_gpu[runs[k].first] == n; ++k) {
          std::array<double, W> dg{};
          for (int s = runs[k].second; s < runs[k + 1].second; ++s) {
            for (int w = 0; w < W; ++w) {
              const double a = row[static_cast<size_t>(w) * p.sources + s];
              t[w] += a;
              dg[w] += a;
              dn[w] += a;
            }
          }
          for (int w = 0; w < W; ++w) gd[static_cast<size_t>(w) * p.gpus + runs[k].first] = dg[w];
        }
        for (int w = 0; w < W; ++w) nd[static_cast<size_t>(w) * p.nodes + n] = dn[w];
      }
      for (int w = 0; w < W; ++w) p.totals[x0 + w] = t[w];
    };
    int x = 0;
    for (; x + 4 <= p.experts; x += 4) sums.template operator()<4>(x);
    for (; x < p.experts; ++x) sums.template operator()<1>(x);
  } else {  // a count out of range (callers reject those): the plain sums of the raw counts
    for (int s = 0; s < p.sources; ++s) {
      const int g = p.source_gpu[s], n = p.node_of_gpu[g];
      for (int x = 0; x < p.experts; ++x) {
        const double a = counts[static_cast<size_t>(s) * p.experts + x];
        p.totals[x] += a;
        p.gpu_demand[static_cast<size_t>(x) * p.gpus + g] += a;
        p.node_demand[static_cast<size_t>(x) * p.nodes + n] += a;
      }
    }
  }
  p.total = 0;
  for (double w : p.totals) p.total += w;
  const size_t off = static_cast<size_t>(layer) * current.slots();
  p.current.assign(current.phy2log.begin() + static_cast<std::ptrdiff_t>(off),
                   current.phy2log.begin() + static_cast<std::ptrdiff_t>(off + current.slots()));
  p.current_count.assign(static_cast<size_t>(p.experts) * p.gpus, 0);
  for (int slot = 0; slot < p.slots(); ++slot) {
    p.current_count[static_cast<size_t>(p.current[slot]) * p.gpus + slot / p.slots_per_gpu]++;
  }
  p.expert_bytes = topology.expert_bytes;
  p.weights = weights;
}

int CountMoves(const LayerProblem& p, std::span<const int32_t> phy2log) {
  std::vector<int> n(static_cast<size_t>(p.experts) * p.gpus, 0);
  for (int slot = 0; slot < p.slots(); ++slot) {
    n[static_cast<size_t>(phy2log[slot]) * p.gpus + slot / p.slots_per_gpu]++;
  }
  int moved = 0;
  for (size_t i = 0; i < n.size(); ++i) moved += std::max(0, n[i] - p.current_count[i]);
  return moved;
}

namespace {

double Objective(const LayerProblem& p, double max_load, double traffic, int moves) {
  return p.load_coef() * max_load + p.traffic_coef() * traffic + p.move_coef() * moves;
}

void AddCrossing(const LayerProblem& p, int s, int g, double amount, LayerEval& e) {
  const int sg = p.source_gpu[s];
  if (sg != g) {
    e.cross_gpu_tokens += amount;
    if (p.node_of_gpu[sg] != p.node_of_gpu[g]) e.cross_node_tokens += amount;
  }
  e.traffic_cost += amount * p.C(s, g);
}

}  // namespace

LayerEval EvaluateRoutes(const LayerProblem& p, std::span<const int32_t> phy2log,
                         const SourceRoutes& routes, size_t first) {
  LayerEval e;
  e.total_tokens = p.total;
  e.mean_load = p.total / p.gpus;
  e.experts_moved = CountMoves(p, phy2log);
  std::vector<double> load(p.gpus, 0.0);
  if (routes.empty()) {
    std::vector<std::vector<int>> slots(p.experts);
    for (int slot = 0; slot < p.slots(); ++slot) slots[phy2log[slot]].push_back(slot);
    for (int x = 0; x < p.experts; ++x) {
      const double share = 1.0 / static_cast<double>(slots[x].size());
      for (int s = 0; s < p.sources; ++s) {
        const double a = p.A(s, x);
        if (a <= 0) continue;
        for (int slot : slots[x]) {
          const int g = slot / p.slots_per_gpu;
          load[g] += a * share;
          AddCrossing(p, s, g, a * share, e);
        }
      }
    }
  } else {
    std::vector<std::vector<SlotShare>> even(p.experts);
    for (int slot = 0; slot < p.slots(); ++slot) even[phy2log[slot]].push_back({slot, 0});
    for (auto& v : even) {
      for (SlotShare& sh : v) sh.weight = 1.0f / static_cast<float>(v.size());
    }
    for (int s = 0; s < p.sources; ++s) {
      for (int x = 0; x < p.experts; ++x) {
        const double a = p.A(s, x);
        if (a <= 0) continue;
        const std::span<const SlotShare> r = routes[first + static_cast<size_t>(s) * p.experts + x];
        for (const SlotShare& sh : r.empty() ? std::span<const SlotShare>(even[x]) : r) {
          const int g = sh.slot / p.slots_per_gpu;
          load[g] += a * sh.weight;
          AddCrossing(p, s, g, a * sh.weight, e);
        }
      }
    }
  }
  e.max_load = *std::max_element(load.begin(), load.end());
  e.objective = Objective(p, e.max_load, e.traffic_cost, e.experts_moved);
  return e;
}

Result<PlacementQuality> EvaluatePlacement(const SourceExpertCounts& stats, const Placement& plan,
                                           const Placement& current,
                                           const PlacementTopology& topology,
                                           const ObjectiveWeights& weights) {
  GIMBAL_RETURN_IF_ERROR(CheckPlacementInputs(stats, current, topology));
  GIMBAL_RETURN_IF_ERROR(plan.Validate().WithContext("plan"));
  if (plan.layers != stats.layers || plan.experts != stats.experts || plan.gpus != current.gpus ||
      plan.slots_per_gpu != current.slots_per_gpu) {
    return InvalidArgument("plan and current placement differ in shape");
  }
  if (!plan.source_routes.empty() && plan.sources != stats.sources) {
    return InvalidArgument(fmt::format("plan routes {} sources but the statistics have {}",
                                       plan.sources, stats.sources));
  }
  PlacementQuality q;
  double tokens = 0, cross_gpu = 0, cross_node = 0;
  const size_t per_layer = static_cast<size_t>(stats.sources) * stats.experts;
  for (int l = 0; l < stats.layers; ++l) {
    LayerProblem p = MakeLayerProblem(stats, l, current, topology, weights);
    std::span<const int32_t> layer_map(plan.phy2log.data() + static_cast<size_t>(l) * plan.slots(),
                                       plan.slots());
    LayerEval e = EvaluateRoutes(p, layer_map, plan.source_routes, l * per_layer);
    q.mean_max_over_mean += e.max_over_mean() / stats.layers;
    q.worst_max_over_mean = std::max(q.worst_max_over_mean, e.max_over_mean());
    tokens += e.total_tokens;
    cross_gpu += e.cross_gpu_tokens;
    cross_node += e.cross_node_tokens;
    q.experts_moved += e.experts_moved;
    q.objective += e.objective;
    q.layers.push_back(e);
  }
  q.bytes_moved = static_cast<double>(q.experts_moved) * topology.expert_bytes;
  if (tokens > 0) {
    q.cross_gpu_fraction = cross_gpu / tokens;
    q.cross_node_fraction = cross_node / tokens;
  }
  return q;
}

}  // namespace gimbal
