// Class hints and the locality signal: RoutingTables::NodeLocality by hand, the simulator's hint
// plumbing into DispatchRequest and EngineView, and the per-rebalance class records.
#include <cmath>
#include <mutex>

#include <gtest/gtest.h>

#include "policy/dispatch/dispatch_policy.h"
#include "sim/expert_routing.h"
#include "sim/sim_test_util.h"
#include "sim/simulator.h"

namespace gimbal::sim {
namespace {

// 4 GPUs on 2 nodes, two classes of distinct popularity.
ClusterSpec TwoNodeSpec() {
  ClusterSpec c = testing::TinyCluster(4);
  c.hardware.gpus_per_node = 2;
  c.classes = {{"a", 1, 1.5}, {"b", 1, 1.5}};
  c.class_overlap = 0.1;
  return c;
}

TEST(ClassLocality, NodeLocalityIsTheNodesShareOfTheClassesPairs) {
  const ClusterSpec c = TwoNodeSpec();
  const int layers = c.model.moe_layers();
  ExpertPopularity pop(c.classes, layers, c.model.experts, c.model.top_k, c.class_overlap, 7);
  const Placement contiguous = Placement::Contiguous(layers, c.model.experts, 4, 0);
  RoutingTables t(pop, contiguous, 4, 2);
  // Contiguous: GPU g holds experts 2g and 2g+1, so node 0 holds experts 0-3, node 1 4-7.
  for (int cl = 0; cl < 2; ++cl) {
    double node0 = 0;
    for (int l = 0; l < layers; ++l) {
      for (int x = 0; x < 4; ++x) node0 += pop.Row(cl, l)[x] / layers;
    }
    EXPECT_NEAR(t.NodeLocality(0, cl), node0, 1e-12);
    EXPECT_NEAR(t.NodeLocality(1, cl), node0, 1e-12);
    EXPECT_NEAR(t.NodeLocality(2, cl), 1 - node0, 1e-12);
    EXPECT_NEAR(t.NodeLocality(3, cl), 1 - node0, 1e-12);
  }
  // The classes differ, so some node is more local to one class than to the other.
  EXPECT_GT(std::abs(t.NodeLocality(0, 0) - t.NodeLocality(0, 1)), 0.01);
  // One node: everything is local.
  RoutingTables one(pop, contiguous, 4, 0);
  EXPECT_NEAR(one.NodeLocality(3, 1), 1.0, 1e-12);
}

// A dispatch policy that records what it is handed (round robin otherwise).
struct Seen {
  RequestId id;
  int hint;
  std::vector<double> locality;
};
std::mutex seen_mu;
std::vector<Seen>* seen = nullptr;

class RecordingPolicy final : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
           Rng& /*rng*/) const override {
    Seen s{req.id, req.class_hint, {}};
    for (const EngineView& v : engines) s.locality.push_back(v.class_locality);
    std::lock_guard<std::mutex> lock(seen_mu);
    if (seen != nullptr) seen->push_back(s);
    return static_cast<int>(req.sequence % engines.size());
  }
  std::string name() const override { return "test_record_hints"; }
};

std::vector<Seen> RunRecording(double hints, const std::vector<Request>& reqs) {
  static const bool registered = RegisterDispatchPolicy(
      "test_record_hints",
      [](const Params&, const DispatchDeps&) -> Result<std::unique_ptr<DispatchPolicy>> {
        return std::unique_ptr<DispatchPolicy>(std::make_unique<RecordingPolicy>());
      });
  EXPECT_TRUE(registered);
  std::vector<Seen> out;
  {
    std::lock_guard<std::mutex> lock(seen_mu);
    seen = &out;
  }
  StackSpec stack;
  stack.dispatch = "test_record_hints";
  stack.class_hints = hints;
  auto r = Simulate(TwoNodeSpec(), stack, reqs, SimOptions{});
  EXPECT_TRUE(r.ok()) << r.status().message();
  std::lock_guard<std::mutex> lock(seen_mu);
  seen = nullptr;
  return out;
}

TEST(ClassLocality, HintsReachDispatchWithTheNodesLocality) {
  const auto reqs = testing::PoissonWorkload(400, 50, 3, 50, 500, 1, 50, 2);
  const ClusterSpec c = TwoNodeSpec();
  ExpertPopularity pop(c.classes, c.model.moe_layers(), c.model.experts, c.model.top_k,
                       c.class_overlap, c.routing_seed);
  RoutingTables t(pop, Placement::Contiguous(c.model.moe_layers(), c.model.experts, 4, 0), 4, 2);

  const auto all = RunRecording(1.0, reqs);
  ASSERT_EQ(all.size(), reqs.size());
  for (const Seen& s : all) {
    const Request& r = reqs[static_cast<size_t>(s.id)];
    ASSERT_EQ(s.hint, r.traffic_class);
    for (int e = 0; e < 4; ++e) EXPECT_NEAR(s.locality[e], t.NodeLocality(e, s.hint), 1e-12);
  }

  for (const Seen& s : RunRecording(0.0, reqs)) {
    ASSERT_EQ(s.hint, -1);
    for (double v : s.locality) ASSERT_EQ(v, 0.0);
  }

  int hinted = 0;
  for (const Seen& s : RunRecording(0.5, reqs)) {
    if (s.hint < 0) {
      for (double v : s.locality) ASSERT_EQ(v, 0.0);
      continue;
    }
    ++hinted;
    ASSERT_EQ(s.hint, reqs[static_cast<size_t>(s.id)].traffic_class);
  }
  EXPECT_GT(hinted, 140);
  EXPECT_LT(hinted, 260);
}

TEST(ClassLocality, HintsChangeNothingForAPolicyThatIgnoresThem) {
  const auto reqs = testing::PoissonWorkload(300, 40, 5, 50, 2000, 1, 200, 2);
  StackSpec stack;
  stack.dispatch = "power_of_two";  // draws from the dispatch stream
  SimOptions opt;
  opt.seed = 4;
  auto plain = Simulate(TwoNodeSpec(), stack, reqs, opt);
  stack.class_hints = 0.7;
  auto hinted = Simulate(TwoNodeSpec(), stack, reqs, opt);
  ASSERT_TRUE(plain.ok() && hinted.ok());
  EXPECT_EQ(plain->summary.dump(), hinted->summary.dump());
}

TEST(ClassLocality, BadHintFractionIsRejected) {
  StackSpec stack;
  stack.class_hints = 1.5;
  auto r = Simulate(TwoNodeSpec(), stack, testing::PoissonWorkload(5, 10, 1, 10, 10, 1, 5), {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("class_hints"), std::string::npos) << r.status().message();
}

TEST(ClassLocality, RebalanceRecordsCarryClassSharesAndCrossNodeFraction) {
  ClusterSpec c = TwoNodeSpec();
  c.redundant_slots_per_gpu = 1;
  const auto reqs = testing::PoissonWorkload(600, 60, 9, 50, 1000, 1, 100, 2);
  StackSpec stack;
  stack.dispatch = "gimbal";
  stack.class_hints = 1.0;
  stack.placement.policy = "gimbal";
  stack.placement.interval_steps = 100;
  stack.placement.stats.window_steps = 50;
  auto r = Simulate(c, stack, reqs, SimOptions{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& hist = r->summary["rebalance_history"];
  ASSERT_GE(hist.size(), 2u);
  int with_tokens = 0;
  for (const auto& h : hist) {
    const double x = h["cross_node_fraction"].get<double>();
    EXPECT_GE(x, 0.0);
    EXPECT_LE(x, 1.0);
    ASSERT_EQ(h["class_node_share"].size(), 2u);
    for (const auto& row : h["class_node_share"]) {
      ASSERT_EQ(row.size(), 2u);
      // Shares of the class's tokens over the nodes; all 0 in an interval without that class.
      const double sum = row[0].get<double>() + row[1].get<double>();
      if (sum > 0) {
        EXPECT_NEAR(sum, 1.0, 1e-9);
        ++with_tokens;
      }
    }
  }
  // The first interval runs while requests of both classes arrive.
  EXPECT_GE(with_tokens, 2);
  for (const auto& row : hist[0]["class_node_share"]) {
    EXPECT_NEAR(row[0].get<double>() + row[1].get<double>(), 1.0, 1e-9);
  }
}

TEST(ClassLocality, FirstRebalanceCanBeSetPerStack) {
  ClusterSpec c = TwoNodeSpec();
  c.redundant_slots_per_gpu = 1;
  const auto reqs = testing::PoissonWorkload(400, 60, 9, 50, 1000, 1, 100, 2);
  auto first_step = [&](const std::string& policy, int64_t first) -> int64_t {
    StackSpec stack;
    stack.dispatch = "round_robin";
    stack.placement.policy = policy;
    stack.placement.interval_steps = 100;
    stack.placement.stats.window_steps = 50;
    stack.placement.migration = MigrationMode::kBlocking;
    stack.placement.first_rebalance_steps = first;
    auto r = Simulate(c, stack, reqs, SimOptions{});
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok() || r->summary["rebalance_history"].empty()) return -1;
    return r->summary["rebalance_history"][0]["step"].get<int64_t>();
  };
  EXPECT_EQ(first_step("gimbal", 0), 100);  // its default: a whole interval
  EXPECT_EQ(first_step("eplb", 0), 25);     // vLLM's: a quarter interval
  EXPECT_EQ(first_step("gimbal", 25), 25);
  EXPECT_EQ(first_step("eplb", 25), 25);
  EXPECT_EQ(first_step("eplb", 60), 60);
  PlacementSpec bad;
  bad.policy = "gimbal";
  bad.interval_steps = 100;
  bad.first_rebalance_steps = 101;
  const Status st = CheckPlacementSpec(bad);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("first_rebalance_steps"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace gimbal::sim
