#include "sim/cluster.h"

#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "sim/sim_test_util.h"

namespace gimbal::sim {
namespace {

Request Req(RequestId id, int64_t prompt, int64_t output, int32_t cls = 0) {
  Request r;
  r.id = id;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  r.traffic_class = cls;
  return r;
}

TEST(ExpertPopularityTest, RowsAreDistributionsCappedAtOnePerToken) {
  std::vector<TrafficClassSpec> classes{{"code", 1, 1.5}, {"chat", 1, 1.5}};
  ExpertPopularity pop(classes, 3, 16, 4, 0.0, 11);
  for (int c = 0; c < 2; ++c) {
    for (int l = 0; l < 3; ++l) {
      const auto row = pop.Row(c, l);
      EXPECT_NEAR(std::accumulate(row.begin(), row.end(), 0.0), 1.0, 1e-9);
      for (double p : row) EXPECT_LE(p, 0.25 + 1e-12);
    }
  }
  // Different classes put their hot experts in different places.
  const auto a = pop.Row(0, 0);
  const auto b = pop.Row(1, 0);
  EXPECT_NE(std::max_element(a.begin(), a.end()) - a.begin(),
            std::max_element(b.begin(), b.end()) - b.begin());
  // Full overlap makes every class identical.
  ExpertPopularity same(classes, 1, 16, 4, 1.0, 11);
  for (int x = 0; x < 16; ++x) EXPECT_DOUBLE_EQ(same.Row(0, 0)[x], same.Row(1, 0)[x]);
}

TEST(RoutingTablesTest, ShareIsPopularityOfExpertsOnEachGpu) {
  std::vector<TrafficClassSpec> classes{{"a", 1, 1.2}};
  ExpertPopularity pop(classes, 2, 8, 2, 0.0, 3);
  Placement p = Placement::Contiguous(2, 8, 4);
  RoutingTables t(pop, p, 4);
  for (int l = 0; l < 2; ++l) {
    const auto row = pop.Row(0, l);
    const auto share = t.Share(1, 0, l);
    double sum = 0;
    for (int g = 0; g < 4; ++g) {
      EXPECT_NEAR(share[g], row[2 * g] + row[2 * g + 1], 1e-12);
      // Reach: chance at least one of 2 picks lands on g.
      EXPECT_NEAR(t.Reach(1, 0, l)[g], 1 - std::pow(1 - share[g], 2), 1e-12);
      sum += share[g];
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
  }
}

TEST(RoutingTablesTest, SourceRoutesSendTokensWhereTheySay) {
  std::vector<TrafficClassSpec> classes{{"a", 1, 0.0}};  // uniform popularity
  ExpertPopularity pop(classes, 1, 2, 1, 0.0, 3);
  // Expert 0 on both GPUs (slots 0 and 2), expert 1 on slot 1 (GPU 0) and 3 (GPU 1).
  Placement p = Placement::Contiguous(1, 2, 2, 1);
  p.phy2log = {0, 1, 0, 1};
  p.slots_per_gpu = 2;
  p.sources = 2;
  p.source_routes.resize(4);
  p.source_routes[0] = {{0, 1.0f}};  // source 0, expert 0 -> slot 0 (own GPU)
  p.source_routes[1] = {{1, 1.0f}};
  p.source_routes[2] = {{2, 1.0f}};  // source 1, expert 0 -> slot 2 (own GPU)
  p.source_routes[3] = {{3, 1.0f}};
  ASSERT_TRUE(p.Validate().ok()) << p.Validate().message();
  RoutingTables t(pop, p, 2);
  EXPECT_DOUBLE_EQ(t.Share(0, 0, 0)[0], 1.0);
  EXPECT_DOUBLE_EQ(t.Share(1, 0, 0)[1], 1.0);
}

class ClusterTest : public ::testing::Test {
 protected:
  testing::FcfsForTest fcfs_;
};

TEST_F(ClusterTest, LongPrefillOnOneRankSlowsEveryRanksStep) {
  ClusterSpec spec = testing::TinyCluster(2);
  spec.hardware.step_overhead = 0;  // compare the GPU work alone
  auto c1 = Cluster::Create(spec, &fcfs_);
  auto c2 = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c1.ok() && c2.ok());
  Cluster& quiet = **c1;
  Cluster& busy = **c2;
  // Rank 1 decodes the same request in both clusters; in `busy`, rank 0 prefills 2000 tokens.
  for (Cluster* c : {&quiet, &busy}) {
    c->engine(1).Add(Req(1, 16, 10), 0);
    c->Complete(c->Plan());  // rank 1's prefill step
  }
  busy.engine(0).Add(Req(2, 2000, 5), 0);
  const double quiet_step = quiet.Cost(quiet.Plan()).duration;
  const double busy_step = busy.Cost(busy.Plan()).duration;
  EXPECT_GT(busy_step, 1.5 * quiet_step);
  // Rank 1 did the same work in both; in `busy` it waited for the straggler.
  EXPECT_GT(busy.rank_times()[1].straggler_wait, quiet.rank_times()[1].straggler_wait);
  EXPECT_EQ(quiet.rank_times()[0].dummy_steps, 1);
}

TEST_F(ClusterTest, ExpertLoadFollowsTheClassDistribution) {
  ClusterSpec spec = testing::TinyCluster(4);
  spec.classes = {{"a", 1, 1.5}, {"b", 1, 1.5}};
  spec.class_overlap = 0;
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c.ok());
  Cluster& cl = **c;
  cl.engine(0).Add(Req(1, 1000, 2, 1), 0);  // only class 1 tokens
  cl.Cost(cl.Plan());
  // The busiest GPU of every layer carries exactly the class-1 share of the hottest GPU.
  const int k = spec.model.top_k;
  for (int l = 0; l < spec.model.moe_layers(); ++l) {
    RoutingTables t(cl.popularity(), cl.placement(), 4);
    const auto share = t.Share(0, 1, l);
    const double expect_max = 1000.0 * k * *std::max_element(share.begin(), share.end());
    EXPECT_NEAR(cl.layer_max_load()[l], expect_max, 1e-6 * expect_max);
    EXPECT_NEAR(cl.layer_mean_load()[l], 1000.0 * k / 4, 1e-6);
  }
}

TEST_F(ClusterTest, CoordinatedStepBudgetsChunkALonePrefillNextToDecodes) {
  ClusterSpec spec = testing::TinyCluster(2);
  spec.engine.max_num_batched_tokens = 8192;
  spec.hardware.gpu.peak_flops = 2e13;  // a slow GPU, so that a long prefill dominates a step
  auto fixed_cluster = Cluster::Create(spec, &fcfs_);
  auto coordinated_cluster = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(fixed_cluster.ok() && coordinated_cluster.ok());
  StepDeps deps;
  deps.cost_model = &(*coordinated_cluster)->cost_model();
  deps.ranks = spec.dp;
  auto gimbal = MakeStepPolicy("gimbal", Params({{"stretch", "2"}, {"min_chunk", "0"}}), deps);
  auto vllm = MakeStepPolicy("vllm", {}, deps);
  ASSERT_TRUE(gimbal.ok() && vllm.ok()) << gimbal.status().ToString();
  (*coordinated_cluster)->SetStepPolicy(gimbal->get());
  (*fixed_cluster)->SetStepPolicy(vllm->get());
  // Rank 1 decodes 64 sequences; then rank 0 receives an 8,000-token prompt.
  double decode_step = 0, fixed_first_step = 0, coordinated_max_step = 0;
  int64_t coordinated_steps_to_first_token = 0;
  for (Cluster* c : {fixed_cluster->get(), coordinated_cluster->get()}) {
    for (int i = 0; i < 64; ++i) c->engine(1).Add(Req(100 + i, 16, 1000), 0);
    c->Complete(c->Plan());  // the 64 short prefills
    const auto decode_plans = c->Plan();
    decode_step = c->Cost(decode_plans).duration;  // same in both clusters
    c->Complete(decode_plans);
    c->engine(0).Add(Req(1, 8000, 5), 0);
    const bool coordinated = c == coordinated_cluster->get();
    for (int step = 0; step < 200; ++step) {
      const auto plans = c->Plan();
      const double d = c->Cost(plans).duration;
      if (!coordinated) {
        EXPECT_EQ(plans[0].batch.tokens, 8000);  // vLLM: the whole prompt in one step
        fixed_first_step = d;
        break;
      }
      coordinated_max_step = std::max(coordinated_max_step, d);
      ++coordinated_steps_to_first_token;
      EXPECT_EQ(plans[1].batch.tokens, 64);  // every decode keeps its token each step
      const auto events = c->Complete(plans);
      if (!events[0].empty()) break;  // rank 0's first token
    }
  }
  // The prompt is cut into several chunks, each step held near stretch x the decode-only step
  // (the policy's estimate leaves out the all-to-all, hence the margin), well below the fixed
  // budget's single long step.
  ASSERT_GT(fixed_first_step, 3 * decode_step);
  EXPECT_GT(coordinated_steps_to_first_token, 2);
  EXPECT_LT(coordinated_max_step, 2.3 * decode_step);
  EXPECT_LT(coordinated_max_step, fixed_first_step);
}

TEST_F(ClusterTest, ModelThatDoesNotFitIsAnError) {
  ClusterSpec spec = testing::TinyCluster(2);
  spec.hardware.gpu.memory_bytes = 1e9;
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_FALSE(c.ok());
}

TEST_F(ClusterTest, ExpertsMustDivideOverGpus) {
  auto c = Cluster::Create(testing::TinyCluster(3), &fcfs_);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("do not divide"), std::string::npos);
}

}  // namespace
}  // namespace gimbal::sim
