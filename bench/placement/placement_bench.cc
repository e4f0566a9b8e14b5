// placement_bench: the placement figures of docs/placement.md.
//
//   placement_bench [--gap N] [--scale R] [--versus R] [--hash N] [--exact-seconds S] [--zipf S]
//                   [--gpus N] [--set key=value]
//
// gap:    N random small instances (8..16 experts, 4 GPUs on 2 nodes, 2 sources per GPU, 1 or 2
//         redundant slots per GPU, random current placement): the heuristic's objective against
//         CBC's optimum of the same program.
// scale:  DeepSeek-V3 shape, 58 MoE layers x 256 experts, 64 GPUs on 8 nodes, 64 sources: wall time
//         of planning all layers on one thread (best and median of R runs), for 320 slots (one
//         redundant per GPU) and for 288 slots on 32 GPUs (32 redundant, as DeepSeek's prefill).
// versus: R rebalances over drifting class-skewed statistics at DeepSeek-V3 scale; each policy
//         starts from its own previous plan; a plan made on window t is scored on window t+1.
// hash:   a hash of gimbal's plans (slots, routes and objectives, bit for bit) on N chained
//         rebalances of both DeepSeek-V3 shapes at Zipf 0.8 and 1.0 and on N x 10 small instances:
//         equal hashes before and after a change to the planner mean identical plans.
#include <time.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/stats.h"
#include "placement/synthetic_stats.h"
#include "policy/placement/eplb.h"
#include "policy/placement/exact_solver.h"
#include "policy/placement/gimbal_placement.h"
#include "policy/placement/placement_policy.h"
#include "policy/placement/test_instances.h"

namespace gimbal {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of this thread: robust when other processes share the cores.
double CpuNow() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Params g_params;  // --set key=value for the gimbal policy (all modes)
int g_gpus = 0;   // --gpus N: only the shape with N GPUs (0: both)

// Small instance i of the gap and hash checks: 8, 12 or 16 experts on 4 GPUs in 2 nodes, 8
// sources, 2 classes, a random current placement.
struct SmallInstance {
  SourceExpertCounts stats;
  Placement cur;
  PlacementTopology topo;
};

SmallInstance MakeSmallInstance(int i) {
  Rng rng(1000 + i);
  const int experts = 8 + 4 * static_cast<int>(rng.UniformInt(3));  // 8, 12 or 16
  const int spg = experts / 4 + 1 + static_cast<int>(rng.UniformInt(2));
  SyntheticStatsOptions o;
  o.sources = 8;
  o.experts = experts;
  o.classes = 2;
  o.zipf_s = 0.6 + rng.Uniform();
  o.dominant_share = 0.5 + 0.4 * rng.Uniform();
  o.seed = 2000 + i;
  SmallInstance in;
  in.stats = SyntheticStats(o).Next();
  in.cur = RandomPlacement(rng, 1, experts, 4, spg);
  in.topo.gpus = 4;
  in.topo.gpus_per_node = 2;
  return in;
}

void Gap(int n, double exact_seconds) {
  if (!ExactSolverAvailable()) {
    fmt::print("gap: skipped (built without CBC)\n");
    return;
  }
  std::vector<double> gaps, exact_ms, heur_ms;
  int proven = 0, within3 = 0;
  for (int i = 0; i < n; ++i) {
    const SmallInstance in = MakeSmallInstance(i);
    const SourceExpertCounts& stats = in.stats;
    const Placement& cur = in.cur;
    const PlacementTopology& topo = in.topo;
    GimbalPlacementConfig cfg = *GimbalPlacementConfig::FromParams(g_params);
    cfg.max_moves_per_layer = -1;
    cfg.min_gain = 0;
    const LayerProblem p = MakeLayerProblem(stats, 0, cur, topo, cfg.weights);
    double t0 = Now();
    const LayerPlan h = PlanLayerGimbal(p, cfg);
    heur_ms.push_back((Now() - t0) * 1e3);
    ExactOptions eo;
    eo.time_limit_s = exact_seconds;
    eo.start = h.phy2log;
    t0 = Now();
    Result<ExactLayerResult> ex = SolveLayerExact(p, eo);
    exact_ms.push_back((Now() - t0) * 1e3);
    if (!ex.ok()) {
      fmt::print("gap: instance {}: {}\n", i, ex.status().ToString());
      continue;
    }
    proven += ex->proven_optimal;
    const double gap = h.eval.objective / ex->objective - 1;
    gaps.push_back(gap);
    within3 += gap <= 0.03;
  }
  fmt::print(
      "gap over {} instances: median {:.2f}%  mean {:.2f}%  p90 {:.2f}%  max {:.2f}%  within 3%: "
      "{}  optimum proven: {}\n",
      gaps.size(), 100 * Percentile(gaps, 50), 100 * Mean(gaps), 100 * Percentile(gaps, 90),
      100 * Percentile(gaps, 100), within3, proven);
  fmt::print("  time per instance: heuristic median {:.2f} ms, CBC median {:.0f} ms (max {:.0f})\n",
             Percentile(heur_ms, 50), Percentile(exact_ms, 50), Percentile(exact_ms, 100));
}

double g_zipf = 0.8;  // --zipf: popularity skew within a traffic class

SyntheticStatsOptions V3Stats(int sources, uint64_t seed) {
  SyntheticStatsOptions o;
  o.layers = 58;
  o.sources = sources;
  o.experts = 256;
  o.classes = 8;
  o.zipf_s = g_zipf;
  o.dominant_share = 0.8;
  o.tokens_per_source = 8192.0 * 8 * 100;  // 100 steps of 8192 tokens, top-8
  o.drift_swaps = 8;
  o.seed = seed;
  return o;
}

void Scale(int runs) {
  for (const auto& [gpus, slots] : {std::pair{64, 5}, std::pair{32, 9}}) {
    if (g_gpus > 0 && gpus != g_gpus) continue;
    SyntheticStats gen(V3Stats(64, 7));
    const SourceExpertCounts stats = gen.Next();
    PlacementTopology topo;
    topo.gpus = gpus;
    topo.gpus_per_node = 8;
    topo.expert_groups = 8;
    Rng rng(3);
    const Placement cur = RandomPlacement(rng, 58, 256, gpus, slots);
    Result<GimbalPlacementConfig> parsed = GimbalPlacementConfig::FromParams(g_params);
    if (!parsed.ok()) {
      fmt::print("{}\n", parsed.status().ToString());
      return;
    }
    GimbalPlacementConfig cfg = *parsed;
    std::vector<double> ms, cpu_ms, ms_noroutes, cpu_noroutes, eplb_ms, eplb_cpu;
    size_t routes = 0, shares = 0;
    for (int r = 0; r < runs; ++r) {
      cfg.emit_routes = true;
      double t0 = Now(), c0 = CpuNow();
      Result<Placement> plan = PlanGimbal(stats, cur, topo, cfg);
      ms.push_back((Now() - t0) * 1e3);
      cpu_ms.push_back((CpuNow() - c0) * 1e3);
      if (!plan.ok()) {
        fmt::print("scale: {}\n", plan.status().ToString());
      } else {
        routes = plan->source_routes.size();
        shares = plan->source_routes.shares().size();
      }
      cfg.emit_routes = false;
      t0 = Now();
      c0 = CpuNow();
      (void)PlanGimbal(stats, cur, topo, cfg);
      ms_noroutes.push_back((Now() - t0) * 1e3);
      cpu_noroutes.push_back((CpuNow() - c0) * 1e3);
      t0 = Now();
      c0 = CpuNow();
      (void)NewEplbPlacementPolicy()->Plan(stats, cur, topo);
      eplb_ms.push_back((Now() - t0) * 1e3);
      eplb_cpu.push_back((CpuNow() - c0) * 1e3);
    }
    fmt::print(
        "scale: 58 layers x 256 experts, {} GPUs x {} slots ({} slots), 64 sources, one thread: "
        "gimbal {:.1f} ms best / {:.1f} ms median wall, {:.1f} ms best / {:.1f} ms median CPU "
        "(without routes {:.1f} / {:.1f} wall, {:.1f} CPU); eplb {:.1f} ms wall, {:.1f} ms CPU; "
        "routes: {} entries, {} shares ({:.1f} MiB)\n",
        gpus, slots, gpus * slots, Percentile(ms, 0), Percentile(ms, 50), Percentile(cpu_ms, 0),
        Percentile(cpu_ms, 50), Percentile(ms_noroutes, 0), Percentile(ms_noroutes, 50),
        Percentile(cpu_noroutes, 50), Percentile(eplb_ms, 50), Percentile(eplb_cpu, 50), routes,
        shares,
        static_cast<double>(routes * sizeof(uint32_t) + shares * sizeof(SlotShare)) / (1 << 20));
  }
}

void Versus(int rebalances) {
  for (const auto& [gpus, slots] : {std::pair{64, 5}, std::pair{32, 9}}) {
    if (g_gpus > 0 && gpus != g_gpus) continue;
    SyntheticStats gen(V3Stats(64, 11));
    PlacementTopology topo;
    topo.gpus = gpus;
    topo.gpus_per_node = 8;
    topo.expert_groups = 8;
    const Placement start = Placement::Contiguous(58, 256, gpus, slots - 256 / gpus);
    Placement cur_g = start, cur_e = start;
    GimbalPlacementConfig cfg;
    auto gimbal = MakePlacementPolicy("gimbal", g_params);
    if (!gimbal.ok()) {
      fmt::print("{}\n", gimbal.status().ToString());
      return;
    }
    auto eplb = MakePlacementPolicy("eplb", Params());
    SourceExpertCounts window = gen.Next();
    struct Acc {
      std::vector<double> mm, xnode, xgpu, moved, mm_in, xnode_in;
    } g_all, e_all;
    for (int r = 0; r < rebalances; ++r) {
      Placement pg = *(*gimbal)->Plan(window, cur_g, topo);
      Placement pe = *(*eplb)->Plan(window, cur_e, topo);
      const SourceExpertCounts next = gen.Next();
      // Moves against the previous plan; quality on the next window.
      PlacementQuality qg = *EvaluatePlacement(next, pg, cur_g, topo, cfg.weights);
      PlacementQuality qe = *EvaluatePlacement(next, pe, cur_e, topo, cfg.weights);
      // The same plans on the window they were made from (no drift).
      const PlacementQuality ig = *EvaluatePlacement(window, pg, cur_g, topo, cfg.weights);
      const PlacementQuality ie = *EvaluatePlacement(window, pe, cur_e, topo, cfg.weights);
      g_all.mm_in.push_back(ig.mean_max_over_mean);
      g_all.xnode_in.push_back(ig.cross_node_fraction);
      e_all.mm_in.push_back(ie.mean_max_over_mean);
      e_all.xnode_in.push_back(ie.cross_node_fraction);
      for (auto [acc, q] : {std::pair{&g_all, &qg}, std::pair{&e_all, &qe}}) {
        acc->mm.push_back(q->mean_max_over_mean);
        acc->xnode.push_back(q->cross_node_fraction);
        acc->xgpu.push_back(q->cross_gpu_fraction);
        acc->moved.push_back(static_cast<double>(q->experts_moved));
      }
      cur_g = std::move(pg);
      cur_e = std::move(pe);
      window = next;
    }
    // Steady state: the second half of the run.
    auto half = [&](const std::vector<double>& v) {
      return Mean(std::vector<double>(v.begin() + static_cast<long>(v.size() / 2), v.end()));
    };
    const double mm_g = half(g_all.mm), mm_e = half(e_all.mm);
    const double xn_g = half(g_all.xnode), xn_e = half(e_all.xnode);
    const double mv_g = Mean(g_all.moved), mv_e = Mean(e_all.moved);
    fmt::print(
        "versus eplb: {} GPUs x {} slots, {} rebalances, 8 classes, Zipf {:.2f}, 80% own class, "
        "drifting\n",
        gpus, slots, rebalances, g_zipf);
    fmt::print("  max/mean load   gimbal {:.4f}  eplb {:.4f}  ({:+.2f}%)\n", mm_g, mm_e,
               100 * (mm_g / mm_e - 1));
    fmt::print("  cross-node      gimbal {:.4f}  eplb {:.4f}  ({:+.1f}%)\n", xn_g, xn_e,
               100 * (xn_g / xn_e - 1));
    fmt::print("  cross-GPU       gimbal {:.4f}  eplb {:.4f}\n", half(g_all.xgpu),
               half(e_all.xgpu));
    fmt::print(
        "  on the planning window: max/mean gimbal {:.4f} eplb {:.4f}; cross-node gimbal {:.4f} "
        "eplb {:.4f}\n",
        half(g_all.mm_in), half(e_all.mm_in), half(g_all.xnode_in), half(e_all.xnode_in));
    fmt::print("  experts moved / rebalance (all layers)  gimbal {:.1f}  eplb {:.1f}  ({:+.1f}%)\n",
               mv_g, mv_e, 100 * (mv_g / mv_e - 1));
    fmt::print("  first rebalances (gimbal cross-node):");
    for (size_t i = 0; i < std::min<size_t>(g_all.xnode.size(), 8); ++i) {
      fmt::print(" {:.3f}", g_all.xnode[i]);
    }
    fmt::print("\n");
  }
}

// FNV-1a over the bytes of plans, routes and objectives.
struct PlanHash {
  uint64_t h = 1469598103934665603ULL;
  void Bytes(const void* data, size_t n) {
    const auto* b = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  }
  template <typename T>
  void Value(T v) {
    Bytes(&v, sizeof(v));
  }
  void Add(const Placement& p) {
    Bytes(p.phy2log.data(), p.phy2log.size() * sizeof(int32_t));
    for (size_t i = 0; i < p.source_routes.size(); ++i) {
      const std::span<const SlotShare> route = p.source_routes[i];
      Value(route.size());
      for (const SlotShare& s : route) {
        Value(s.slot);
        Value(s.weight);
      }
    }
  }
};

void Hash(int rounds) {
  PlanHash all;
  for (double zipf : {0.8, 1.0}) {
    for (const auto& [gpus, slots] : {std::pair{64, 5}, std::pair{32, 9}}) {
      if (g_gpus > 0 && gpus != g_gpus) continue;
      g_zipf = zipf;
      SyntheticStats gen(V3Stats(64, 11));
      PlacementTopology topo;
      topo.gpus = gpus;
      topo.gpus_per_node = 8;
      topo.expert_groups = 8;
      Rng rng(5);
      Placement cur = RandomPlacement(rng, 58, 256, gpus, slots);
      auto gimbal = MakePlacementPolicy("gimbal", g_params);
      if (!gimbal.ok()) {
        fmt::print("{}\n", gimbal.status().ToString());
        return;
      }
      PlanHash one;
      for (int r = 0; r < rounds; ++r) {
        Placement next = *(*gimbal)->Plan(gen.Next(), cur, topo);
        one.Add(next);
        cur = std::move(next);
      }
      fmt::print("hash: Zipf {:.1f}, {} GPUs x {} slots, {} rebalances: {:016x}\n", zipf, gpus,
                 slots, rounds, one.h);
      all.Value(one.h);
    }
  }
  PlanHash small;
  for (int i = 0; i < 10 * rounds; ++i) {
    const SmallInstance in = MakeSmallInstance(i);
    const SourceExpertCounts& stats = in.stats;
    const Placement& cur = in.cur;
    const PlacementTopology& topo = in.topo;
    GimbalPlacementConfig cfg = *GimbalPlacementConfig::FromParams(g_params);
    cfg.max_moves_per_layer = i % 2 ? -1 : 6;
    cfg.min_gain = i % 3 ? 0 : cfg.min_gain;
    const LayerPlan h = PlanLayerGimbal(MakeLayerProblem(stats, 0, cur, topo, cfg.weights), cfg);
    small.Bytes(h.phy2log.data(), h.phy2log.size() * sizeof(int32_t));
    small.Value(h.eval.objective);
    small.Value(h.current_eval.objective);
    small.Value(h.kept_current);
  }
  fmt::print("hash: {} small instances: {:016x}\n", 10 * rounds, small.h);
  all.Value(small.h);
  fmt::print("hash: all {:016x}\n", all.h);
}

}  // namespace
}  // namespace gimbal

int main(int argc, char** argv) {
  int gap = 0, scale = 0, versus = 0, hash = 0;
  double exact_seconds = 60;
  bool any = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? std::atof(argv[++i]) : 0.0; };
    if (!std::strcmp(argv[i], "--gap")) {
      gap = static_cast<int>(next());
      any = true;
    } else if (!std::strcmp(argv[i], "--scale")) {
      scale = static_cast<int>(next());
      any = true;
    } else if (!std::strcmp(argv[i], "--versus")) {
      versus = static_cast<int>(next());
      any = true;
    } else if (!std::strcmp(argv[i], "--hash")) {
      hash = static_cast<int>(next());
      any = true;
    } else if (!std::strcmp(argv[i], "--set") && i + 1 < argc) {
      const std::string kv = argv[++i];
      const size_t eq = kv.find('=');
      gimbal::g_params.Set(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    } else if (!std::strcmp(argv[i], "--gpus")) {
      gimbal::g_gpus = static_cast<int>(next());
    } else if (!std::strcmp(argv[i], "--zipf")) {
      gimbal::g_zipf = next();
    } else if (!std::strcmp(argv[i], "--exact-seconds")) {
      exact_seconds = next();
    } else {
      fmt::print(stderr,
                 "usage: placement_bench [--gap N] [--scale R] [--versus R] [--hash N] "
                 "[--exact-seconds S] [--zipf S] [--gpus N] [--set k=v]\n");
      return 2;
    }
  }
  if (!any) {
    gap = 100;
    scale = 5;
    versus = 20;
  }
  if (scale > 0) gimbal::Scale(scale);
  if (versus > 0) gimbal::Versus(versus);
  if (gap > 0) gimbal::Gap(gap, exact_seconds);
  if (hash > 0) gimbal::Hash(hash);
  return 0;
}
