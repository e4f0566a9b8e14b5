#include "sim/cluster.h"

#include <algorithm>
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
  p.source_routes = SourceRoutes({
      {{0, 1.0f}},  // source 0, expert 0 -> slot 0 (own GPU)
      {{1, 1.0f}},
      {{2, 1.0f}},  // source 1, expert 0 -> slot 2 (own GPU)
      {{3, 1.0f}},
  });
  ASSERT_TRUE(p.Validate().ok()) << p.Validate().message();
  RoutingTables t(pop, p, 2);
  EXPECT_DOUBLE_EQ(t.Share(0, 0, 0)[0], 1.0);
  EXPECT_DOUBLE_EQ(t.Share(1, 0, 0)[1], 1.0);
}

class ClusterTest : public ::testing::Test {
 protected:
  testing::FcfsForTest fcfs_;
};

TEST_F(ClusterTest, SetPlacementRefusesAnotherSlotCount) {
  ClusterSpec spec = testing::TinyCluster(4);
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c.ok());
  const Placement& now = (*c)->placement();
  Placement more = Placement::Contiguous(now.layers, now.experts, now.gpus, 1);
  const Status st = (*c)->SetPlacement(more);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("slots per GPU"), std::string::npos) << st.message();
  EXPECT_EQ((*c)->placement().slots_per_gpu, now.slots_per_gpu);  // unchanged
  EXPECT_TRUE((*c)->SetPlacement(Placement::Contiguous(now.layers, now.experts, now.gpus)).ok());
}

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

// Six ranks in nodes of four: rank 5 runs on the second node, which holds only GPUs 4 and 5. The
// tokens sent (expectations under the routing model) follow the routing tables: within the
// sender's node to each GPU, across nodes once per node.
TEST_F(ClusterTest, RanksOnANodeOfFewerGpusSendByTheirOwnNode) {
  ClusterSpec spec = testing::TinyCluster(6);
  spec.model.experts = 12;
  spec.hardware.gpus_per_node = 4;
  spec.engine.cuda_graph_padding = false;  // idle ranks' dummy tokens reach no expert
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c.ok()) << c.status().message();
  Cluster& cl = **c;
  cl.engine(5).Add(Req(1, 1000, 2), 0);
  cl.Cost(cl.Plan());
  const RoutingTables t(cl.popularity(), cl.placement(), 6, 4);
  double total = 0, intra = 0, inter = 0;
  for (int l = 0; l < spec.model.moe_layers(); ++l) {
    for (int g = 4; g < 6; ++g) {  // rank 5's node: GPUs 4 and 5
      total += 1000 * t.Reach(5, 0, l)[g];
      if (g != 5) intra += 1000 * t.Reach(5, 0, l)[g];
    }
    total += 1000 * t.ReachNode(5, 0, l)[0];  // node 0, once per token that needs it
    inter += 1000 * t.ReachNode(5, 0, l)[0];
  }
  EXPECT_GT(intra, 0);
  EXPECT_GT(inter, 0);
  EXPECT_NEAR(cl.tokens_total(), total, 1e-9 * total);
  EXPECT_NEAR(cl.tokens_intra_node(), intra, 1e-9 * intra);
  EXPECT_NEAR(cl.tokens_inter_node(), inter, 1e-9 * inter);
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
  // The gimbal step policy prices a step as GPU work plus the CPU overhead
  // (CostModel::RankStepEstimate), the serial step; compare it with serially priced steps.
  spec.engine.async_scheduling = false;
  auto fixed_cluster = Cluster::Create(spec, &fcfs_);
  auto coordinated_cluster = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(fixed_cluster.ok() && coordinated_cluster.ok());
  StepDeps deps;
  deps.cost_model = &(*coordinated_cluster)->cost_model();
  deps.ranks = spec.dp;
  auto gimbal = MakeStepPolicy(
      "gimbal", Params({{"stretch", "2"}, {"min_chunk", "0"}, {"backlog_steps", "0"}}), deps);
  auto vllm = MakeStepPolicy("vllm", {}, deps);
  ASSERT_TRUE(gimbal.ok() && vllm.ok()) << gimbal.status().ToString();
  (*coordinated_cluster)->SetStepPolicy(gimbal->get());
  (*fixed_cluster)->SetStepPolicy(vllm->get());
  // No floor: the chunk is what fits. Rank 1 decodes 64 sequences; then rank 0 receives an
  // 8,000-token prompt.
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

// Adds counts[r] requests (16-token prompts, 100 output tokens) to rank r and runs their prefill
// step, so that the next step decodes counts[r] sequences on rank r.
void StartDecodes(Cluster& c, const std::vector<int>& counts, int32_t cls = 0) {
  RequestId id = 1000;
  for (size_t r = 0; r < counts.size(); ++r) {
    for (int i = 0; i < counts[r]; ++i) {
      c.engine(static_cast<int>(r)).Add(Req(id++, 16, 100, cls), 0);
    }
  }
  c.Complete(c.Plan());
}

double Sum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

// Rank r's own attention, dense and head time for `b` with `pad` padding slots added.
double OwnAttention(const Cluster& c, RankBatch b, int64_t pad) {
  b.tokens += pad;
  b.kv_read_tokens += static_cast<double>(pad);
  b.attn_pairs += static_cast<double>(pad);
  b.decode_attn_pairs += static_cast<double>(pad);
  const CostModel& cm = c.cost_model();
  const ModelSpec& m = c.spec().model;
  return m.dense_layers * (cm.AttentionTime(b) + cm.DenseFfnTime(b.tokens)) +
         m.moe_layers() * (cm.AttentionTime(b) + cm.SharedExpertTime(b.tokens)) + cm.HeadTime(b);
}

TEST_F(ClusterTest, AsyncSchedulingHidesOverhead) {
  // docs/baseline.md §4, on the step-time rule itself (GPU 10 ms, CPU 2 ms: 10 ms async, 12 ms
  // sync; GPU 1 ms, CPU 2 ms: 2 ms async).
  EXPECT_DOUBLE_EQ(CostModel::StepTime(10e-3, 2e-3, true), 10e-3);
  EXPECT_DOUBLE_EQ(CostModel::StepTime(10e-3, 2e-3, false), 12e-3);
  EXPECT_DOUBLE_EQ(CostModel::StepTime(1e-3, 2e-3, true), 2e-3);
  // And on a priced step: the same work under async and sync scheduling, with a CPU overhead
  // below the GPU time of a 1500-token prefill (0.1 ms) and above it (10 s).
  for (const double overhead : {1e-4, 10.0}) {
    StepCost costs[2];
    for (const bool async : {true, false}) {
      ClusterSpec spec = testing::TinyCluster(2);
      spec.engine.async_scheduling = async;
      spec.hardware.step_overhead = overhead;
      spec.hardware.per_seq_overhead = 1e-5;
      auto c = Cluster::Create(spec, &fcfs_);
      ASSERT_TRUE(c.ok());
      (*c)->engine(0).Add(Req(1, 1500, 4), 0);
      (*c)->engine(1).Add(Req(2, 300, 4), 0);
      costs[async ? 0 : 1] = (*c)->Cost((*c)->Plan());
    }
    const StepCost& a = costs[0];
    const StepCost& s = costs[1];
    const double gpu = s.attn_dense + s.experts + s.all_to_all;
    ASSERT_GT(gpu, 0);
    EXPECT_DOUBLE_EQ(a.attn_dense + a.experts + a.all_to_all, gpu);  // same GPU work
    EXPECT_DOUBLE_EQ(s.cpu_overhead, overhead + 1e-5);               // one sequence per rank
    EXPECT_DOUBLE_EQ(a.cpu_overhead, s.cpu_overhead);
    EXPECT_DOUBLE_EQ(s.duration, gpu + s.cpu_overhead);
    EXPECT_DOUBLE_EQ(s.overhead, s.cpu_overhead);
    EXPECT_DOUBLE_EQ(a.duration, std::max(gpu, a.cpu_overhead));
    EXPECT_NEAR(a.overhead, std::max(0.0, a.cpu_overhead - gpu), 1e-15);
    if (overhead < 1) {
      ASSERT_GT(gpu, a.cpu_overhead);  // the case meant: the overhead hides entirely
      EXPECT_DOUBLE_EQ(a.overhead, 0);
    }
  }
}

TEST_F(ClusterTest, DecodePadsToLargestRank) {
  // docs/baseline.md §7: rank 0 decodes 3 sequences and rank 1 37; both run 40 tokens (3 -> 4,
  // 37 -> 40, then the max).
  ClusterSpec spec = testing::TinyCluster(2);
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c.ok());
  Cluster& cl = **c;
  StartDecodes(cl, {3, 37});
  const auto plans = cl.Plan();
  ASSERT_EQ(plans[0].batch.tokens, 3);
  ASSERT_EQ(plans[1].batch.tokens, 37);
  const StepCost cost = cl.Cost(plans);
  EXPECT_EQ(cost.padded_tokens, 40);
  // Every rank's attention, dense and head work is that of 40 tokens.
  EXPECT_NEAR(cl.rank_times()[0].attn_dense, OwnAttention(cl, plans[0].batch, 37), 1e-15);
  EXPECT_NEAR(cl.rank_times()[1].attn_dense, OwnAttention(cl, plans[1].batch, 3), 1e-15);
  // The padded tokens reach the experts: 2 ranks x 40 tokens x top_k pairs in every MoE layer ...
  const double pairs = 2.0 * 40 * spec.model.top_k * spec.model.moe_layers();
  EXPECT_NEAR(Sum(cl.last_gpu_load()), pairs, 1e-9 * pairs);
  // ... but the per-class statistics count the real tokens only.
  EXPECT_DOUBLE_EQ(cl.class_tokens()[0], 3);
  EXPECT_DOUBLE_EQ(cl.class_tokens()[1], 37);

  // Without padding each rank is priced at its own count.
  spec.engine.cuda_graph_padding = false;
  auto e = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(e.ok());
  StartDecodes(**e, {3, 37});
  const auto eager_plans = (*e)->Plan();
  EXPECT_EQ((*e)->Cost(eager_plans).padded_tokens, 0);
  EXPECT_NEAR((*e)->rank_times()[0].attn_dense, OwnAttention(**e, eager_plans[0].batch, 0), 1e-15);
  const double eager_pairs = 40.0 * spec.model.top_k * spec.model.moe_layers();
  EXPECT_NEAR(Sum((*e)->last_gpu_load()), eager_pairs, 1e-9 * eager_pairs);
}

TEST_F(ClusterTest, IdleRankRunsThePaddedDummyBatch) {
  ClusterSpec spec = testing::TinyCluster(2);
  spec.classes = {{"a", 1, 1.5}, {"b", 1, 1.5}};
  spec.class_overlap = 0;
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c.ok());
  Cluster& cl = **c;
  StartDecodes(cl, {0, 37}, /*cls=*/1);
  const auto plans = cl.Plan();
  ASSERT_TRUE(plans[0].empty());
  const StepCost cost = cl.Cost(plans);
  EXPECT_EQ(cost.padded_tokens, 40);
  RankBatch dummy;
  dummy.tokens = 1;
  dummy.kv_read_tokens = dummy.attn_pairs = dummy.decode_attn_pairs = 1;
  EXPECT_NEAR(cl.rank_times()[0].attn_dense, OwnAttention(cl, dummy, 39), 1e-15);
  EXPECT_EQ(cl.rank_times()[0].dummy_steps, 1);
  // The idle rank's 40 slots follow the step's class mix (all class 1): with disjoint class
  // popularity the busiest GPU carries 80 tokens' class-1 share.
  const int k = spec.model.top_k;
  for (int l = 0; l < spec.model.moe_layers(); ++l) {
    RoutingTables t(cl.popularity(), cl.placement(), 2);
    const auto s0 = t.Share(0, 1, l);
    const auto s1 = t.Share(1, 1, l);
    double expect_max = 0;
    for (int g = 0; g < 2; ++g) expect_max = std::max(expect_max, 40.0 * k * (s0[g] + s1[g]));
    EXPECT_NEAR(cl.layer_max_load()[l], expect_max, 1e-9 * expect_max);
  }
  EXPECT_DOUBLE_EQ(Sum(cl.class_tokens()), 37);
}

TEST_F(ClusterTest, NoPaddingWhenOneRankIsEager) {
  // docs/baseline.md §7: rank 1 runs 600 tokens, over the largest capture size (512), so no rank
  // pads: rank 0 is priced at its own 3 tokens.
  ClusterSpec spec = testing::TinyCluster(2);
  ASSERT_EQ(MaxCudaGraphCaptureSize(spec.engine.max_num_seqs), 512);
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c.ok());
  Cluster& cl = **c;
  StartDecodes(cl, {3, 0});
  cl.engine(1).Add(Req(1, 600, 4), 0);
  const auto plans = cl.Plan();
  ASSERT_EQ(plans[0].batch.tokens, 3);
  ASSERT_EQ(plans[1].batch.tokens, 600);
  EXPECT_EQ(cl.Cost(plans).padded_tokens, 0);
  EXPECT_NEAR(cl.rank_times()[0].attn_dense, OwnAttention(cl, plans[0].batch, 0), 1e-15);
  const double pairs = 603.0 * spec.model.top_k * spec.model.moe_layers();
  EXPECT_NEAR(Sum(cl.last_gpu_load()), pairs, 1e-9 * pairs);
}

TEST_F(ClusterTest, PrefillIntervalCounterIsSharedAndRestartsEachWave) {
  ClusterSpec spec = testing::TinyCluster(2);
  spec.engine.prefill_schedule_interval = 4;
  auto c = Cluster::Create(spec, &fcfs_);
  ASSERT_TRUE(c.ok());
  Cluster& cl = **c;
  // Wave 1: rank 1 alone has work (a 16-token prompt, 6 output tokens); rank 0 runs dummies and
  // shares the counter.
  cl.engine(1).Add(Req(1, 16, 6), 0);
  std::vector<int64_t> counters;
  std::vector<bool> throttled;
  for (int step = 0; step < 20; ++step) {
    const auto plans = cl.Plan();
    counters.push_back(cl.step_counter());
    throttled.push_back(cl.last_plan_throttled());
    if (std::all_of(plans.begin(), plans.end(), [](const StepPlan& p) { return p.empty(); })) break;
    cl.Complete(plans);
  }
  // Six steps of work, then a Plan with nothing to run ends the wave.
  ASSERT_EQ(counters, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(throttled, (std::vector<bool>{false, true, true, true, false, true, true}));
  // Wave 2 starts from 0 again: its first step is never throttled.
  cl.engine(0).Add(Req(2, 16, 3), 0);
  cl.Complete(cl.Plan());
  EXPECT_EQ(cl.step_counter(), 0);
  EXPECT_FALSE(cl.last_plan_throttled());
  cl.Complete(cl.Plan());
  EXPECT_EQ(cl.step_counter(), 1);
  EXPECT_TRUE(cl.last_plan_throttled());
}

TEST_F(ClusterTest, PrefillIntervalOffByDefaultAndWithOneRank) {
  for (const auto& [dp, interval] : {std::pair{2, int64_t{1}}, std::pair{1, int64_t{4}}}) {
    ClusterSpec spec = testing::TinyCluster(dp);
    spec.engine.prefill_schedule_interval = interval;
    auto c = Cluster::Create(spec, &fcfs_);
    ASSERT_TRUE(c.ok());
    (*c)->engine(0).Add(Req(1, 16, 6), 0);
    for (int step = 0; step < 6; ++step) {
      (*c)->Complete((*c)->Plan());
      EXPECT_FALSE((*c)->last_plan_throttled()) << "dp " << dp << " step " << step;
      EXPECT_EQ((*c)->step_counter(), step);
    }
  }
}

// docs/baseline.md §5, through the cluster's shared counter and the engine's deferral. Returns,
// per step, the tokens rank 0 scheduled for request `id` (0 when it was not scheduled).
std::vector<int64_t> TokensPerStep(Cluster& c, RequestId id, int steps) {
  std::vector<int64_t> out;
  for (int i = 0; i < steps; ++i) {
    const auto plans = c.Plan();
    int64_t n = 0;
    for (const ScheduledSeq& s : plans[0].seqs) n += s.id == id ? s.new_tokens : 0;
    out.push_back(n);
    c.Complete(plans);
  }
  return out;
}

TEST(VllmStepTest, PrefillOnlyOnCadenceSteps) {
  // Interval 4: rank 0 decodes one request; a second arrives at step 1 and waits for step 4.
  testing::FcfsForTest fcfs;
  ClusterSpec spec = testing::TinyCluster(2);
  spec.engine.prefill_schedule_interval = 4;
  auto c = Cluster::Create(spec, &fcfs);
  ASSERT_TRUE(c.ok());
  Cluster& cl = **c;
  cl.engine(0).Add(Req(1, 16, 100), 0);
  cl.Complete(cl.Plan());  // counter 0: its prefill
  cl.engine(0).Add(Req(2, 16, 100), 0);
  EXPECT_EQ(TokensPerStep(cl, 2, 5), (std::vector<int64_t>{0, 0, 0, 16, 1}));  // counters 1-5
  EXPECT_EQ(cl.step_counter(), 5);
}

TEST(VllmStepTest, GuardStopsThrottlingWhenBacklogged) {
  // Interval 4, max_num_seqs 2 with one slot free, a 3000-token prompt (two chunks of the
  // 2048-token budget) and, in `backlog`, two more requests behind it. The release step (counter
  // 4) admits the long prompt; with the backlog the queue could not drain, so steps 5-7 are not
  // deferred and its second chunk runs at step 5; without it the chunk waits for step 8.
  for (const bool backlog : {true, false}) {
    SCOPED_TRACE(backlog ? "backlog" : "no backlog");
    testing::FcfsForTest fcfs;
    ClusterSpec spec = testing::TinyCluster(2);
    spec.engine.prefill_schedule_interval = 4;
    spec.engine.max_num_seqs = 2;
    auto c = Cluster::Create(spec, &fcfs);
    ASSERT_TRUE(c.ok());
    Cluster& cl = **c;
    cl.engine(0).Add(Req(1, 16, 100), 0);
    cl.Complete(cl.Plan());  // counter 0
    cl.engine(0).Add(Req(2, 3000, 10), 0);
    if (backlog) {
      cl.engine(0).Add(Req(3, 16, 10), 0);
      cl.engine(0).Add(Req(4, 16, 10), 0);
    }
    const auto tokens = TokensPerStep(cl, 2, 8);  // counters 1-8
    EXPECT_EQ(tokens[3], 2047);                   // counter 4: admitted beside the decode
    EXPECT_EQ(cl.engine(0).prefill_capacity_bound(), backlog);
    if (backlog) {
      EXPECT_EQ(tokens, (std::vector<int64_t>{0, 0, 0, 2047, 953, 1, 1, 1}));
    } else {
      EXPECT_EQ(tokens, (std::vector<int64_t>{0, 0, 0, 2047, 0, 0, 0, 953}));
    }
  }
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
