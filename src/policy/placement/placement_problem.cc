#include "policy/placement/placement_problem.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/yaml_reader.h"

namespace gimbal {

Status PlacementTopology::Validate() const {
  if (gpus <= 0) return InvalidArgument(fmt::format("topology: gpus must be positive, got {}", gpus));
  if (gpus_per_node < 0 || (gpus_per_node > 0 && gpus % gpus_per_node != 0)) {
    return InvalidArgument(fmt::format(
        "topology: gpus_per_node ({}) must be positive and divide gpus ({})", gpus_per_node, gpus));
  }
  if (!(alpha >= 0) || !(beta >= 0) || !std::isfinite(alpha) || !std::isfinite(beta)) {
    return InvalidArgument(fmt::format("topology: alpha ({}) and beta ({}) must be finite and >= 0",
                                       alpha, beta));
  }
  if (alpha > beta) {
    return InvalidArgument(fmt::format(
        "topology: alpha ({}) must not exceed beta ({}): a hop within a node costs at most one "
        "across nodes",
        alpha, beta));
  }
  if (slots_per_gpu < 0) return InvalidArgument("topology: slots_per_gpu must be >= 0");
  if (expert_groups <= 0) return InvalidArgument("topology: expert_groups must be positive");
  if (!(expert_bytes > 0) || !std::isfinite(expert_bytes)) {
    return InvalidArgument("topology: expert_bytes must be positive");
  }
  return Status::Ok();
}

Result<PlacementTopology> ParseTopology(const std::string& text, const std::string& name) {
  Result<YamlReader> r = YamlReader::FromString(text, name);
  if (!r.ok()) return r.status();
  const YamlReader& y = *r;
  if (!y.IsMap()) return InvalidArgument(fmt::format("{}: topology must be a map", name));
  PlacementTopology t;
  t.gpus = static_cast<int>(y.Int("gpus", std::nullopt, 1, 1 << 20));
  t.gpus_per_node = static_cast<int>(y.Int("gpus_per_node", int64_t{0}, 0, 1 << 20));
  t.alpha = y.Double("alpha", 0.2, 0);
  t.beta = y.Double("beta", 1.0, 0);
  t.slots_per_gpu = static_cast<int>(y.Int("slots_per_gpu", int64_t{0}, 0, 1 << 20));
  t.expert_groups = static_cast<int>(y.Int("expert_groups", int64_t{1}, 1, 1 << 20));
  t.expert_bytes = y.Double("expert_bytes", 1.0, 1e-30);
  y.CheckKeys({"gpus", "gpus_per_node", "alpha", "beta", "slots_per_gpu", "expert_groups",
               "expert_bytes"});
  if (!y.ok()) return y.status();
  Status st = t.Validate();
  if (!st.ok()) return st.WithContext(name);
  return t;
}

Result<PlacementTopology> LoadTopology(const std::string& path) {
  Result<YamlReader> r = YamlReader::FromFile(path);
  if (!r.ok()) return r.status();
  return ParseTopology(YAML::Dump(r->node()), path);
}

Status CheckPlacementInputs(const SourceExpertCounts& stats, const Placement& current,
                            const PlacementTopology& topology) {
  GIMBAL_RETURN_IF_ERROR(stats.Validate());
  GIMBAL_RETURN_IF_ERROR(topology.Validate());
  GIMBAL_RETURN_IF_ERROR(current.Validate().WithContext("current placement"));
  if (current.layers != stats.layers || current.experts != stats.experts) {
    return InvalidArgument(fmt::format(
        "current placement has {} layers x {} experts but the statistics have {} x {}",
        current.layers, current.experts, stats.layers, stats.experts));
  }
  if (current.gpus != topology.gpus) {
    return InvalidArgument(fmt::format("current placement has {} GPUs but the topology has {}",
                                       current.gpus, topology.gpus));
  }
  if (topology.slots_per_gpu > 0 && topology.slots_per_gpu != current.slots_per_gpu) {
    return InvalidArgument(fmt::format(
        "current placement has {} slots per GPU but the topology says {}", current.slots_per_gpu,
        topology.slots_per_gpu));
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
    return InvalidArgument(fmt::format("topology: slots_per_gpu {} is below experts / gpus = {}",
                                       slots, base));
  }
  return Placement::Contiguous(stats.layers, stats.experts, topology.gpus, slots - base);
}

LayerProblem MakeLayerProblem(const SourceExpertCounts& stats, int layer, const Placement& current,
                              const PlacementTopology& topology, const ObjectiveWeights& weights) {
  LayerProblem p;
  p.sources = stats.sources;
  p.experts = stats.experts;
  p.gpus = topology.gpus;
  p.slots_per_gpu = current.slots_per_gpu;
  std::span<const double> a = stats.Layer(layer);
  p.counts.assign(a.begin(), a.end());
  p.totals.assign(p.experts, 0.0);
  for (int s = 0; s < p.sources; ++s) {
    for (int x = 0; x < p.experts; ++x) p.totals[x] += p.A(s, x);
  }
  for (double w : p.totals) p.total += w;
  p.nodes = topology.nodes();
  p.alpha = topology.alpha;
  p.beta = topology.beta;
  p.node_of_gpu.resize(p.gpus);
  for (int g = 0; g < p.gpus; ++g) p.node_of_gpu[g] = topology.NodeOf(g);
  p.source_gpu.resize(p.sources);
  p.cost.resize(static_cast<size_t>(p.sources) * p.gpus);
  for (int s = 0; s < p.sources; ++s) {
    p.source_gpu[s] = SourceGpu(s, p.sources, p.gpus);
    for (int g = 0; g < p.gpus; ++g) {
      p.cost[static_cast<size_t>(s) * p.gpus + g] = topology.Cost(p.source_gpu[s], g);
    }
  }
  const size_t off = static_cast<size_t>(layer) * current.slots();
  p.current.assign(current.phy2log.begin() + static_cast<std::ptrdiff_t>(off),
                   current.phy2log.begin() + static_cast<std::ptrdiff_t>(off + current.slots()));
  p.current_count.assign(static_cast<size_t>(p.experts) * p.gpus, 0);
  for (int slot = 0; slot < p.slots(); ++slot) {
    p.current_count[static_cast<size_t>(p.current[slot]) * p.gpus + slot / p.slots_per_gpu]++;
  }
  p.expert_bytes = topology.expert_bytes;
  p.weights = weights;
  return p;
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

// Replicas of each expert grouped by GPU, in CSR form.
struct ReplicaIndex {
  std::vector<int> start;   // experts + 1
  std::vector<int> gpu;     // distinct GPUs holding the expert

  ReplicaIndex(const LayerProblem& p, std::span<const int32_t> phy2log) {
    start.assign(p.experts + 1, 0);
    std::vector<int> last_gpu(p.experts, -1);
    for (int slot = 0; slot < p.slots(); ++slot) {
      const int x = phy2log[slot], g = slot / p.slots_per_gpu;
      if (last_gpu[x] != g) {
        last_gpu[x] = g;
        start[x + 1]++;
      }
    }
    for (int x = 0; x < p.experts; ++x) start[x + 1] += start[x];
    gpu.resize(start[p.experts]);
    std::vector<int> fill(start.begin(), start.end() - 1);
    std::fill(last_gpu.begin(), last_gpu.end(), -1);
    for (int slot = 0; slot < p.slots(); ++slot) {
      const int x = phy2log[slot], g = slot / p.slots_per_gpu;
      if (last_gpu[x] != g) {
        last_gpu[x] = g;
        gpu[fill[x]] = g;
        fill[x]++;
      }
    }
  }
  int count(int x) const { return start[x + 1] - start[x]; }
};

// Appends `weight` of the tokens to expert x's slots on GPU g (split evenly over them).
void AddShare(const LayerProblem& p, std::span<const int32_t> phy2log, int x, int g, double weight,
              std::vector<SlotShare>& route) {
  int n = 0;
  for (int slot = g * p.slots_per_gpu; slot < (g + 1) * p.slots_per_gpu; ++slot) n += phy2log[slot] == x;
  for (int slot = g * p.slots_per_gpu; slot < (g + 1) * p.slots_per_gpu; ++slot) {
    if (phy2log[slot] != x) continue;
    const float w = static_cast<float>(weight / n);
    auto it = std::find_if(route.begin(), route.end(), [&](const SlotShare& sh) { return sh.slot == slot; });
    if (it != route.end()) {
      it->weight += w;
    } else {
      route.push_back({slot, w});
    }
  }
}

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

LayerEval RouteAndEvaluate(const LayerProblem& p, std::span<const int32_t> phy2log,
                           LayerRoutes* routes) {
  const ReplicaIndex ri(p, phy2log);
    LayerEval base;
  base.total_tokens = p.total;
  base.mean_load = p.total / p.gpus;
  base.experts_moved = CountMoves(p, phy2log);
  std::vector<double> forced(p.gpus, 0.0);
  std::vector<int> multi;
  for (int x = 0; x < p.experts; ++x) {
    if (ri.count(x) == 1) {
      const int g = ri.gpu[ri.start[x]];
      forced[g] += p.totals[x];
      for (int s = 0; s < p.sources; ++s) {
        if (p.A(s, x) > 0) AddCrossing(p, s, g, p.A(s, x), base);
      }
    } else if (p.totals[x] > 0) {
      multi.push_back(x);
    }
  }
  std::stable_sort(multi.begin(), multi.end(),
                   [&](int a, int b) { return p.totals[a] > p.totals[b]; });
  // Per multi-replica expert: sources with tokens, nearest replica first, and for each source its
  // replicas by cost (equal costs are ordered by load during the pass).
  struct Demand {
    int s;
    int first;  // into rep_order: the expert's replicas sorted by cost for this source
  };
  std::vector<std::vector<Demand>> order(multi.size());
  std::vector<int> rep_order;
  std::vector<std::pair<double, int>> v;
  for (size_t i = 0; i < multi.size(); ++i) {
    const int x = multi[i];
    const int n = ri.count(x);
    v.clear();
    for (int s = 0; s < p.sources; ++s) {
      if (p.A(s, x) <= 0) continue;
      double best = std::numeric_limits<double>::infinity();
      for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) best = std::min(best, p.C(s, ri.gpu[r]));
      v.push_back({best, s});
    }
    std::stable_sort(v.begin(), v.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [c, s] : v) {
      const int first = static_cast<int>(rep_order.size());
      for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) rep_order.push_back(r);
      // Stable insertion sort by cost (few replicas; no buffer to allocate).
      int* reps_of = rep_order.data() + first;
      for (int a = 1; a < n; ++a) {
        for (int b = a; b > 0 && p.C(s, ri.gpu[reps_of[b]]) < p.C(s, ri.gpu[reps_of[b - 1]]); --b) {
          std::swap(reps_of[b], reps_of[b - 1]);
        }
      }
      order[i].push_back({s, first});
    }
  }
  double lb = base.mean_load;
  for (double f : forced) lb = std::max(lb, f);

  // One routing pass at a cap. flows != nullptr records (s, x, replica entry, amount).
  struct Flow {
    int s, x, r;
    double amount;
  };
  std::vector<double> load(p.gpus);
  std::vector<int> reps;
  auto pass = [&](double cap, std::vector<Flow>* flows) {
    LayerEval e = base;
    load = forced;
    for (size_t i = 0; i < multi.size(); ++i) {
      const int x = multi[i];
      const int n = ri.count(x);
      for (const Demand& d : order[i]) {
        const int s = d.s;
        reps.assign(rep_order.begin() + d.first, rep_order.begin() + d.first + n);
        // Within a group of equal cost, the less loaded replica first.
        for (int a = 1; a < n; ++a) {
          for (int b = a; b > 0 && p.C(s, ri.gpu[reps[b]]) == p.C(s, ri.gpu[reps[b - 1]]) &&
                          load[ri.gpu[reps[b]]] < load[ri.gpu[reps[b - 1]]];
               --b) {
            std::swap(reps[b], reps[b - 1]);
          }
        }
        double left = p.A(s, x);
        for (int r : reps) {
          if (left <= 0) break;
          const int g = ri.gpu[r];
          const double take = std::min(left, std::max(0.0, cap - load[g]));
          if (take <= 0) continue;
          load[g] += take;
          left -= take;
          AddCrossing(p, s, g, take, e);
          if (flows) flows->push_back({s, x, r, take});
        }
        if (left > 0) {
          int best = reps[0];
          for (int r : reps) {
            if (load[ri.gpu[r]] < load[ri.gpu[best]]) best = r;
          }
          load[ri.gpu[best]] += left;
          AddCrossing(p, s, ri.gpu[best], left, e);
          if (flows) flows->push_back({s, x, best, left});
        }
      }
    }
    e.max_load = *std::max_element(load.begin(), load.end());
    e.objective = Objective(p, e.max_load, e.traffic_cost, e.experts_moved);
    return e;
  };

  // The balanced pass: start from vLLM's even split over the expert's slots, then move each
  // source's tokens from farther to nearer replicas while the nearer GPU stays under `cap`. GPUs
  // above `cap` only lose load, so the maximum is at most max(cap, the even split's maximum), and
  // the traffic at most the even split's.
  std::vector<double> share(ri.gpu.size(), 0.0);  // per replica entry: its share of the slots
  {
    std::vector<int> slots_of(p.experts, 0);
    for (int slot = 0; slot < p.slots(); ++slot) slots_of[phy2log[slot]]++;
    for (int x = 0; x < p.experts; ++x) {
      for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
        int n = 0;
        const int g = ri.gpu[r];
        for (int slot = g * p.slots_per_gpu; slot < (g + 1) * p.slots_per_gpu; ++slot) {
          n += phy2log[slot] == x;
        }
        share[r] = static_cast<double>(n) / slots_of[x];
      }
    }
  }
  // Per demand and replica, in rep_order's layout (a demand's replicas start at its `first`).
  std::vector<double> amount(rep_order.size(), 0.0);
  auto balanced_pass = [&](double cap, std::vector<Flow>* flows) {
    LayerEval e = base;
    load = forced;
    for (size_t i = 0; i < multi.size(); ++i) {
      const int x = multi[i];
      const int n = ri.count(x);
      for (const Demand& d : order[i]) {
        for (int j = 0; j < n; ++j) {
          const int r = rep_order[d.first + j];
          const double a = p.A(d.s, x) * share[r];
          amount[d.first + j] = a;
          load[ri.gpu[r]] += a;
        }
      }
    }
    for (size_t i = 0; i < multi.size(); ++i) {
      const int x = multi[i];
      const int n = ri.count(x);
      for (const Demand& d : order[i]) {
        double* amt = &amount[d.first];
        for (int near = 0; near < n; ++near) {
          const int gn = ri.gpu[rep_order[d.first + near]];
          const double cn = p.C(d.s, gn);
          for (int far = n - 1; far > near; --far) {
            const int gf = ri.gpu[rep_order[d.first + far]];
            if (!(p.C(d.s, gf) > cn)) break;
            const double take = std::min(amt[far], cap - load[gn]);
            if (take <= 0) continue;
            amt[far] -= take;
            amt[near] += take;
            load[gf] -= take;
            load[gn] += take;
          }
        }
        for (int j = 0; j < n; ++j) {
          if (amt[j] <= 0) continue;
          const int r = rep_order[d.first + j];
          AddCrossing(p, d.s, ri.gpu[r], amt[j], e);
          if (flows) flows->push_back({d.s, x, r, amt[j]});
        }
      }
    }
    e.max_load = *std::max_element(load.begin(), load.end());
    e.objective = Objective(p, e.max_load, e.traffic_cost, e.experts_moved);
    return e;
  };

  static constexpr double kSlack[] = {0.0, 0.03, 0.1, -1};
  double best_cap = std::numeric_limits<double>::infinity();
  bool best_balanced = false;
  LayerEval best;
  best.objective = std::numeric_limits<double>::infinity();
  if (multi.empty()) {
    best = pass(best_cap, nullptr);
  } else {
    const double even_max = balanced_pass(0, nullptr).max_load;
    double last_balanced = -1;
    for (double d : kSlack) {
      const double cap = d < 0 ? std::numeric_limits<double>::infinity() : lb * (1 + d);
      for (bool balanced : {false, true}) {
        const double c = balanced ? std::max(cap, even_max) : cap;
        // The balanced pass without a cap is the nearest-replica pass; equal caps repeat.
        if (balanced && (d < 0 || c == last_balanced)) continue;
        if (balanced) last_balanced = c;
        LayerEval e = balanced ? balanced_pass(c, nullptr) : pass(c, nullptr);
        if (e.objective < best.objective - 1e-12) {
          best = e;
          best_cap = c;
          best_balanced = balanced;
        }
      }
    }
  }
  if (routes) {
    std::vector<Flow> flows;
    best = best_balanced ? balanced_pass(best_cap, &flows) : pass(best_cap, &flows);
    routes->assign(static_cast<size_t>(p.sources) * p.experts, {});
    // Multi-replica experts a source sends no tokens to: the nearest replica. Single-replica
    // experts keep an empty route (the even split over their slots).
    for (int x = 0; x < p.experts; ++x) {
      if (ri.count(x) < 2) continue;
      for (int s = 0; s < p.sources; ++s) {
        if (p.A(s, x) > 0) continue;
        int bestr = ri.start[x];
        for (int r = ri.start[x]; r < ri.start[x + 1]; ++r) {
          if (p.C(s, ri.gpu[r]) < p.C(s, ri.gpu[bestr])) bestr = r;
        }
        AddShare(p, phy2log, x, ri.gpu[bestr], 1.0, (*routes)[static_cast<size_t>(s) * p.experts + x]);
      }
    }
    for (const Flow& f : flows) {
      AddShare(p, phy2log, f.x, ri.gpu[f.r], f.amount / p.A(f.s, f.x),
               (*routes)[static_cast<size_t>(f.s) * p.experts + f.x]);
    }
  }
  return best;
}

LayerEval EvaluateRoutes(const LayerProblem& p, std::span<const int32_t> phy2log,
                         const LayerRoutes& routes) {
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
        const auto& r = routes[static_cast<size_t>(s) * p.experts + x];
        for (const SlotShare& sh : r.empty() ? even[x] : r) {
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
    LayerRoutes routes;
    if (!plan.source_routes.empty()) {
      routes.assign(plan.source_routes.begin() + static_cast<std::ptrdiff_t>(l * per_layer),
                    plan.source_routes.begin() + static_cast<std::ptrdiff_t>((l + 1) * per_layer));
    }
    LayerEval e = EvaluateRoutes(p, layer_map, routes);
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
