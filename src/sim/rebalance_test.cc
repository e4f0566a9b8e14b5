// Expert placement inside the simulator: statistics, drift, periodic rebalancing, migration cost,
// MoE pressure feedback and configuration errors.
#include <algorithm>
#include <numeric>

#include <gtest/gtest.h>

#include "core/random.h"
#include "sim/rebalancer.h"
#include "sim/sim_test_util.h"
#include "sim/simulator.h"

namespace gimbal::sim {
namespace {

std::vector<Request> Workload(int n, double rate, uint64_t seed, int classes = 2) {
  return testing::PoissonWorkload(n, rate, seed, 50, 1000, 20, 200, classes);
}

ClusterSpec SkewedSpec() {
  ClusterSpec c = testing::TinyCluster(4);
  c.redundant_slots_per_gpu = 1;
  c.classes = {{"a", 1, 2.0}, {"b", 1, 1.5}};
  return c;
}

PlacementSpec Eplb(int64_t interval, int window) {
  PlacementSpec p;
  p.policy = "eplb";
  p.interval_steps = interval;
  p.stats.window_steps = window;
  return p;
}

std::vector<double> Tokens(Rng& rng, size_t n) {
  std::vector<double> t(n);
  for (double& v : t) v = static_cast<double>(rng.UniformInt(50));
  return t;
}

// A[l][s][x] = Σ_c T[s][c]·k·p_c[l][x], from the full matrices.
std::vector<double> FullStep(const std::vector<double>& t, const ExpertPopularity& pop,
                             int sources) {
  const int C = pop.classes(), L = pop.layers(), E = pop.experts(), k = pop.top_k();
  std::vector<double> a(static_cast<size_t>(L) * sources * E, 0.0);
  for (int l = 0; l < L; ++l) {
    for (int s = 0; s < sources; ++s) {
      for (int c = 0; c < C; ++c) {
        for (int x = 0; x < E; ++x) {
          a[(static_cast<size_t>(l) * sources + s) * E + x] +=
              t[static_cast<size_t>(s) * C + c] * k * pop.Row(c, l)[x];
        }
      }
    }
  }
  return a;
}

TEST(SourceStatsAccumulator, WindowEqualsExpectedCountsOnHandCase) {
  // 1 layer, 2 experts, top-1, one class with popularity (p0, p1); window of 2 steps.
  ExpertPopularity pop({{"only", 1, 1.0}}, 1, 2, 1, 0.0, 3);
  const double p0 = pop.Row(0, 0)[0], p1 = pop.Row(0, 0)[1];
  RoutingStatsOptions o;
  o.window_steps = 2;
  SourceStatsAccumulator acc(2, 1, 1, 2, 1, o);
  const std::vector<double> s1 = {10, 0}, s2 = {1, 2}, s3 = {4, 8};
  acc.RecordStep(s1, pop);
  acc.RecordStep(s2, pop);
  acc.RecordStep(s3, pop);  // s1 leaves the window
  const SourceExpertCounts a = acc.Materialise();
  EXPECT_DOUBLE_EQ(a.At(0, 0, 0), 5 * p0);
  EXPECT_DOUBLE_EQ(a.At(0, 0, 1), 5 * p1);
  EXPECT_DOUBLE_EQ(a.At(0, 1, 0), 10 * p0);
  EXPECT_DOUBLE_EQ(a.At(0, 1, 1), 10 * p1);
  EXPECT_EQ(acc.steps_recorded(), 3);
}

TEST(SourceStatsAccumulator, MatchesRoutingStatsOnFullMatricesAcrossDriftEpochs) {
  for (auto mode : {RoutingStatsOptions::Mode::kWindow, RoutingStatsOptions::Mode::kDecay}) {
    ExpertPopularity pop({{"a", 1, 1.2}, {"b", 1, 0.8}, {"c", 2, 1.5}}, 3, 8, 2, 0.3, 11);
    const int S = 4;
    RoutingStatsOptions o;
    o.mode = mode;
    o.window_steps = 5;
    o.decay = 0.9;
    SourceStatsAccumulator acc(S, 3, 3, 8, 2, o);
    RoutingStats full(3, S, 8, o);
    Rng rng(5);
    for (int step = 0; step < 23; ++step) {
      if (step % 4 == 3) pop.Drift(0.5);
      const auto t = Tokens(rng, static_cast<size_t>(S) * 3);
      acc.RecordStep(t, pop);
      ASSERT_TRUE(full.RecordStep(FullStep(t, pop, S)).ok());
    }
    const SourceExpertCounts a = acc.Materialise();
    const SourceExpertCounts& b = full.Counts();
    ASSERT_EQ(a.counts.size(), b.counts.size());
    for (size_t i = 0; i < a.counts.size(); ++i) {
      EXPECT_NEAR(a.counts[i], b.counts[i], 1e-9 * (1 + b.counts[i])) << "entry " << i;
    }
  }
}

TEST(PopularityDrift, ChangesPopularityDeterministicallyBySeed) {
  const std::vector<TrafficClassSpec> classes = {{"a", 1, 1.2}, {"b", 1, 1.0}};
  ExpertPopularity a(classes, 4, 32, 4, 0.3, 7), b(classes, 4, 32, 4, 0.3, 7),
      c(classes, 4, 32, 4, 0.3, 8);
  const std::vector<double> before = a.rows();
  a.Drift(0.25);
  b.Drift(0.25);
  c.Drift(0.25);
  EXPECT_EQ(a.epoch(), 1);
  EXPECT_EQ(a.rows(), b.rows());  // same seed, same epoch: identical
  EXPECT_NE(a.rows(), before);    // popularity moved
  // Every row is still a distribution with the same values, only moved between experts.
  for (int cl = 0; cl < 2; ++cl) {
    for (int l = 0; l < 4; ++l) {
      const auto row = a.Row(cl, l);
      EXPECT_NEAR(std::accumulate(row.begin(), row.end(), 0.0), 1.0, 1e-9);
    }
  }
  // A different seed drifts differently (relative to its own start).
  ExpertPopularity c0(classes, 4, 32, 4, 0.3, 8);
  int moved_a = 0, moved_c = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    moved_a += before[i] != a.rows()[i];
    moved_c += c0.rows()[i] != c.rows()[i];
  }
  EXPECT_GT(moved_a, 0);
  EXPECT_GT(moved_c, 0);
  EXPECT_NE(a.rows(), c.rows());
  // Construction is unaffected by drift support: a fresh popularity equals the saved rows.
  EXPECT_EQ(ExpertPopularity(classes, 4, 32, 4, 0.3, 7).rows(), before);
}

TEST(Rebalancer, RebalancesEveryIntervalSteps) {
  // Blocking migration, so that no copy in flight delays a rebalance. EPLB follows vLLM's timing
  // (first after a quarter interval, at step 10, then every 40 steps); Gimbal's planner rebalances
  // after every whole interval.
  const auto reqs = Workload(400, 60, 3);
  for (const char* policy : {"eplb", "gimbal"}) {
    SCOPED_TRACE(policy);
    StackSpec stack;
    stack.placement = Eplb(40, 20);
    stack.placement.policy = policy;
    stack.placement.migration = MigrationMode::kBlocking;
    const int64_t first = std::string(policy) == "eplb" ? 10 : 40;
    auto r = Simulate(SkewedSpec(), stack, reqs, SimOptions{});
    ASSERT_TRUE(r.ok()) << r.status().message();
    const auto& s = r->summary;
    ASSERT_GT(r->num_steps, 200);
    EXPECT_EQ(s["rebalances"].get<int64_t>(), (r->num_steps - first) / 40 + 1);
    const auto& hist = s["rebalance_history"];
    for (size_t i = 0; i < hist.size(); ++i) {
      EXPECT_EQ(hist[i]["step"].get<int64_t>(), first + 40 * static_cast<int64_t>(i));
    }
    EXPECT_EQ(s["placement_policy"], policy);
    EXPECT_EQ(s["placement_migration"], "blocking");
    EXPECT_GT(s["experts_migrated"].get<int64_t>(), 0);
    EXPECT_GT(s["migration_bytes"].get<double>(), 0);
    EXPECT_GT(s["migration_time_s"].get<double>(), 0);
  }
}

TEST(Rebalancer, StaticPlacementLeavesResultsIdentical) {
  const auto reqs = Workload(300, 50, 4);
  StackSpec plain;
  StackSpec explicit_static;
  explicit_static.placement.policy = "static";
  explicit_static.placement.interval_steps = 7;  // ignored by the static placement
  ClusterSpec spec = SkewedSpec();
  auto a = Simulate(spec, plain, reqs, SimOptions{});
  auto b = Simulate(spec, explicit_static, reqs, SimOptions{});
  // Drift configured but never due within the run changes nothing either.
  ClusterSpec late = spec;
  late.drift.period_s = 1e9;
  late.drift.fraction = 0.5;
  auto c = Simulate(late, plain, reqs, SimOptions{});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->summary.dump(), b->summary.dump());
  EXPECT_FALSE(a->summary.contains("rebalances"));
  nlohmann::ordered_json cs = c->summary;
  EXPECT_EQ(cs["popularity_drift_epochs"], 0);
  cs.erase("popularity_drift_epochs");
  EXPECT_EQ(a->summary.dump(), cs.dump());
}

TEST(Migration, ChargedTimeEqualsBytesOverBandwidthOnHandCase) {
  ClusterSpec spec = testing::TinyCluster(4);
  spec.hardware.gpus_per_node = 2;  // GPUs 0,1 on node 0; 2,3 on node 1
  const CostModel cost(spec.model, spec.hardware);
  const Placement from = Placement::Contiguous(spec.model.moe_layers(), 8, 4);  // g: {2g, 2g+1}
  Placement to = from;
  // Layer 0: swap expert 0 (GPU 0) and expert 2 (GPU 1): two copies over NVLink.
  std::swap(to.phy2log[0], to.phy2log[2]);
  // Layer 1: swap expert 1 (GPU 0) and expert 4 (GPU 2): two copies over the NIC.
  std::swap(to.phy2log[8 + 1], to.phy2log[8 + 4]);
  const MigrationCost m = ComputeMigration(from, to, spec, cost);
  const double b = spec.model.ExpertParams() * spec.model.weight_bytes;
  EXPECT_EQ(m.experts_moved, 4);
  EXPECT_DOUBLE_EQ(m.bytes, 4 * b);
  EXPECT_DOUBLE_EQ(m.nvlink_bytes_max, b);
  EXPECT_DOUBLE_EQ(m.nic_bytes_max, b);
  const HardwareSpec& h = spec.hardware;
  const double nv = h.nvlink_latency + b / (h.gpu.nvlink_bandwidth * h.link_efficiency);
  const double nic = h.nic_latency + b / (h.gpu.nic_bandwidth * h.link_efficiency);
  EXPECT_DOUBLE_EQ(m.seconds, std::max(nv, nic));
  // A placement against itself moves nothing.
  EXPECT_EQ(ComputeMigration(from, from, spec, cost).experts_moved, 0);
}

TEST(Migration, BlockingChargesCopyTimeAndOverlappedSpreadsIt) {
  const auto reqs = Workload(400, 60, 6);
  ClusterSpec spec = SkewedSpec();
  spec.hardware.gpus_per_node = 2;
  StackSpec blocking;
  blocking.placement = Eplb(60, 30);
  blocking.placement.migration = MigrationMode::kBlocking;  // EPLB's default is overlapped
  StackSpec overlapped = blocking;
  overlapped.placement.migration = MigrationMode::kOverlapped;
  overlapped.placement.migration_link_share = 0.5;
  auto a = Simulate(spec, blocking, reqs, SimOptions{});
  auto b = Simulate(spec, overlapped, reqs, SimOptions{});
  ASSERT_TRUE(a.ok() && b.ok());
  double copy = 0;
  for (const auto& h : a->summary["rebalance_history"]) {
    EXPECT_DOUBLE_EQ(h["migration_time_s"].get<double>(), h["copy_time_s"].get<double>());
    copy += h["copy_time_s"].get<double>();
  }
  EXPECT_GT(copy, 0);
  EXPECT_NEAR(a->summary["migration_time_s"].get<double>(), copy, 1e-12);
  EXPECT_EQ(b->summary["placement_migration"], "overlapped");
  EXPECT_GT(b->summary["rebalances"].get<int64_t>(), 0);
  EXPECT_GT(b->summary["migration_time_s"].get<double>(), 0);
}

// Drives a cluster directly with long-running requests, so every step has the same shape.
struct Driver {
  explicit Driver(const ClusterSpec& spec) {
    auto c = Cluster::Create(spec, &queue);
    GIMBAL_CHECK(c.ok(), c.status().message());
    cluster = std::move(*c);
    for (int r = 0; r < cluster->ranks(); ++r) {
      for (int i = 0; i < 16; ++i) {
        Request q;
        q.id = r * 100 + i;
        q.prompt_tokens = 32;
        q.output_tokens = 1000000;
        q.traffic_class = (r + i) % static_cast<int>(spec.classes.size());
        cluster->engine(r).Add(q, 0);
      }
    }
  }
  // Runs `steps` steps; returns the mean over steps and layers of max/mean GPU expert load.
  double Run(int steps, Rebalancer* rb) {
    double mx0 = 0, mn0 = 0;
    for (size_t l = 0; l < cluster->layer_max_load().size(); ++l) {
      mx0 += cluster->layer_max_load()[l];
      mn0 += cluster->layer_mean_load()[l];
    }
    for (int i = 0; i < steps; ++i) {
      const auto plans = cluster->Plan();
      const StepCost cost = cluster->Cost(plans);
      if (rb != nullptr) now += rb->AfterStep(*cluster, cost, now);
      now += cost.duration;
      cluster->Complete(plans);
    }
    double mx = 0, mn = 0;
    for (size_t l = 0; l < cluster->layer_max_load().size(); ++l) {
      mx += cluster->layer_max_load()[l];
      mn += cluster->layer_mean_load()[l];
    }
    return (mx - mx0) / (mn - mn0);
  }
  testing::FcfsForTest queue;
  std::unique_ptr<Cluster> cluster;
  double now = 0;
};

TEST(Rebalancer, EplbRebalanceUnderSkewLowersMaxOverMeanLoad) {
  Driver d(SkewedSpec());
  PlacementSpec p = Eplb(100, 100);
  p.migration = MigrationMode::kBlocking;  // the new placement serves from the next step
  auto rb = Rebalancer::Create(p, *d.cluster);
  ASSERT_TRUE(rb.ok()) << rb.status().message();
  const double before = d.Run(25, rb->get());  // vLLM timing: the rebalance ends step 25
  ASSERT_EQ((*rb)->history().size(), 1u);
  const double after = d.Run(99, rb->get());
  EXPECT_LT(after, before * 0.9) << "before " << before << " after " << after;
  EXPECT_GT(before, 1.2);
}

TEST(Rebalancer, GimbalRebalanceLowersMaxOverMeanLoadAndSetsRoutes) {
  Driver d(SkewedSpec());
  PlacementSpec p = Eplb(100, 100);
  p.policy = "gimbal";
  auto rb = Rebalancer::Create(p, *d.cluster);
  ASSERT_TRUE(rb.ok()) << rb.status().message();
  const double before = d.Run(100, rb->get());
  ASSERT_EQ((*rb)->history().size(), 1u);
  EXPECT_FALSE(d.cluster->placement().source_routes.empty());
  const double after = d.Run(99, rb->get());
  EXPECT_LT(after, before) << "before " << before << " after " << after;
}

TEST(RebalanceTest, VllmFirstRebalanceAtQuarterInterval) {
  // docs/baseline.md §6: interval 8, the counter starts at 6, so EPLB rebalances after step 2 and
  // then after step 10 and 18; Gimbal's planner first after step 8.
  for (const char* policy : {"eplb", "gimbal"}) {
    SCOPED_TRACE(policy);
    Driver d(SkewedSpec());
    PlacementSpec p = Eplb(8, 8);
    p.policy = policy;
    p.migration = MigrationMode::kBlocking;
    auto rb = Rebalancer::Create(p, *d.cluster);
    ASSERT_TRUE(rb.ok()) << rb.status().message();
    d.Run(20, rb->get());
    std::vector<int64_t> steps;
    for (const RebalanceRecord& r : (*rb)->history()) steps.push_back(r.step);
    const bool vllm = std::string(policy) == "eplb";
    EXPECT_EQ(steps, vllm ? (std::vector<int64_t>{2, 10, 18}) : (std::vector<int64_t>{8, 16}));
  }
}

TEST(RebalanceTest, AsyncRebalanceDoesNotResetWhilePending) {
  // An overlapped copy on a thin share of the links outlasts the interval: the due rebalance
  // waits and runs at the step the copy lands, and the interval restarts from there.
  Driver d(SkewedSpec());
  PlacementSpec p = Eplb(8, 8);
  ASSERT_EQ(p.migration_mode(), MigrationMode::kOverlapped);  // EPLB's default
  p.migration_link_share = 0.005;
  auto rb = Rebalancer::Create(p, *d.cluster);
  ASSERT_TRUE(rb.ok()) << rb.status().message();
  const Rebalancer& r = **rb;
  d.Run(2, rb->get());
  ASSERT_EQ(r.history().size(), 1u);
  ASSERT_GT(r.history()[0].copy_seconds, 0);
  const Placement planned_from = d.cluster->placement();
  // Step until the copy lands (the placement changes).
  int64_t step = 2, landed = -1;
  while (step < 400 && landed < 0) {
    d.Run(1, rb->get());
    ++step;
    if (d.cluster->placement().phy2log != planned_from.phy2log) landed = step;
  }
  ASSERT_GT(landed, 10) << "the copy must outlast the interval for this test";
  ASSERT_LT(landed, 400);
  ASSERT_EQ(r.history().size(), 2u);
  EXPECT_EQ(r.history()[1].step, landed);  // not skipped to the next multiple of the interval
  nlohmann::ordered_json summary;
  r.Report(summary);
  EXPECT_EQ(summary["rebalances_skipped"], 0);
  EXPECT_EQ(summary["rebalance_wait_steps"].get<int64_t>(), landed - 10);
  EXPECT_EQ(summary["placement_migration"], "overlapped");

  // Gimbal's planner keeps skipping an interval while a copy is in flight.
  Driver g(SkewedSpec());
  PlacementSpec gp = p;
  gp.policy = "gimbal";
  gp.migration = MigrationMode::kOverlapped;
  auto grb = Rebalancer::Create(gp, *g.cluster);
  ASSERT_TRUE(grb.ok());
  g.Run(static_cast<int>(landed) + 16, grb->get());
  for (const RebalanceRecord& h : (*grb)->history()) EXPECT_EQ(h.step % 8, 0);
}

TEST(Rebalancer, MoePressureOfTheHotGpuDropsAfterRebalance) {
  // Expert time follows tokens (compute-bound experts), so pressure follows the load.
  ClusterSpec spec = SkewedSpec();
  spec.hardware.gpu.hbm_bandwidth *= 100;
  Driver d(spec);
  PlacementSpec placement = Eplb(300, 300);
  placement.migration = MigrationMode::kBlocking;
  auto rb = Rebalancer::Create(placement, *d.cluster);
  ASSERT_TRUE(rb.ok());
  d.Run(74, rb->get());  // vLLM timing: the first rebalance ends step 75
  const auto& p = d.cluster->moe_pressure();
  const int hot = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
  const double hot_before = p[hot];
  ASSERT_GT(hot_before, 1.1);
  d.Run(301, rb->get());  // rebalance at step 75, then 300 steps for the smoothed pressure
  ASSERT_EQ((*rb)->history().size(), 2u);
  EXPECT_LT(d.cluster->moe_pressure()[hot], hot_before - 0.05)
      << "before " << hot_before << " after " << d.cluster->moe_pressure()[hot];
}

Result<PlacementSpec> ReadSpec(const std::string& yaml) {
  auto doc = YamlReader::FromString(yaml, "s.yaml");
  if (!doc.ok()) return doc.status();
  PlacementSpec spec;
  ReadPlacementSpec(*doc, "placement", &spec);
  if (!doc->ok()) return doc->status();
  GIMBAL_RETURN_IF_ERROR(CheckPlacementSpec(spec));
  return spec;
}

TEST(PlacementSpec, MigrationDefaultsToOverlappedForEplbOnly) {
  // vLLM's EPLB runs asynchronously by default (EPLBConfig.use_async); Gimbal's planners block.
  EXPECT_EQ(ReadSpec("placement: eplb\n")->migration_mode(), MigrationMode::kOverlapped);
  EXPECT_EQ(ReadSpec("placement: {policy: eplb}\n")->migration_mode(), MigrationMode::kOverlapped);
  EXPECT_EQ(ReadSpec("placement: {policy: eplb, migration: blocking}\n")->migration_mode(),
            MigrationMode::kBlocking);
  EXPECT_EQ(ReadSpec("placement: gimbal\n")->migration_mode(), MigrationMode::kBlocking);
  EXPECT_EQ(ReadSpec("placement: {policy: gimbal, migration: overlapped}\n")->migration_mode(),
            MigrationMode::kOverlapped);
}

TEST(PlacementSpec, ConfigErrorsNameTheKey) {
  auto ok = ReadSpec(
      "placement: {policy: gimbal, interval_steps: 500, window_steps: 100, migration: overlapped, "
      "max_moves_per_layer: 8}\n");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->policy, "gimbal");
  EXPECT_EQ(ok->interval_steps, 500);
  EXPECT_EQ(ok->stats.window_steps, 100);
  EXPECT_EQ(ok->migration, MigrationMode::kOverlapped);
  EXPECT_EQ(ok->params.values().at("max_moves_per_layer"), "8");
  EXPECT_EQ(ReadSpec("placement: eplb\n")->policy, "eplb");
  EXPECT_EQ(ReadSpec("other: 1\n")->policy, "static");

  auto bad_interval = ReadSpec("placement: {policy: eplb, interval_steps: 0}\n");
  ASSERT_FALSE(bad_interval.ok());
  EXPECT_NE(bad_interval.status().message().find("placement.interval_steps"), std::string::npos)
      << bad_interval.status().message();
  auto unknown = ReadSpec("placement: {policy: nope}\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown placement policy 'nope'"), std::string::npos)
      << unknown.status().message();
  auto bad_param = ReadSpec("placement: {policy: gimbal, max_movez: 3}\n");
  ASSERT_FALSE(bad_param.ok());
  EXPECT_NE(bad_param.status().message().find("max_movez"), std::string::npos);
  auto bad_mode = ReadSpec("placement: {policy: eplb, migration: sometimes}\n");
  ASSERT_FALSE(bad_mode.ok());
  EXPECT_NE(bad_mode.status().message().find("placement.migration"), std::string::npos)
      << bad_mode.status().message();
  auto both = ReadSpec("placement: {policy: eplb, window_steps: 10, decay: 0.9}\n");
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("placement.decay"), std::string::npos);
}

}  // namespace
}  // namespace gimbal::sim
