// Scheduler tables: each test steps the scheduler and compares the plan of every step with the
// expected (request, new tokens) rows, vLLM v1 semantics.
#include "sim/engine_scheduler.h"

#include <gtest/gtest.h>

#include "sim/sim_test_util.h"

namespace gimbal::sim {
namespace {

using Row = std::vector<std::pair<RequestId, int64_t>>;

Request Req(RequestId id, int64_t prompt, int64_t output) {
  Request r;
  r.id = id;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

Row Rows(const StepPlan& p) {
  Row out;
  for (const auto& s : p.seqs) out.emplace_back(s.id, s.new_tokens);
  return out;
}

class SchedulerTest : public ::testing::Test {
 protected:
  EngineScheduler Make(int64_t budget, int64_t max_seqs, int64_t blocks, int block_size = 4) {
    EngineLimits l;
    l.max_num_batched_tokens = budget;
    l.max_num_seqs = max_seqs;
    l.kv_blocks = blocks;
    l.block_size = block_size;
    return EngineScheduler(l, &fcfs_);
  }
  testing::FcfsForTest fcfs_;
};

TEST_F(SchedulerTest, LongPromptIsChunkedAcrossSteps) {
  auto s = Make(8, 16, 100);
  s.Add(Req(1, 20, 3), 0);
  const std::vector<Row> expected{{{1, 8}}, {{1, 8}}, {{1, 4}}, {{1, 1}}, {{1, 1}}};
  const std::vector<int64_t> generated_after{0, 0, 1, 2, 3};
  for (size_t step = 0; step < expected.size(); ++step) {
    StepPlan p = s.Schedule();
    ASSERT_EQ(Rows(p), expected[step]) << "step " << step;
    auto ev = s.Complete(p);
    if (generated_after[step] == 0) {
      EXPECT_TRUE(ev.empty());
    } else {
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].generated, generated_after[step]);
      EXPECT_EQ(ev[0].finished, step == expected.size() - 1);
    }
  }
  EXPECT_FALSE(s.HasWork());
  EXPECT_EQ(s.used_blocks(), 0);
}

TEST_F(SchedulerTest, RunningFirstThenAdmissionWithinBudget) {
  auto s = Make(10, 16, 100);
  s.Add(Req(1, 6, 5), 0);
  s.Add(Req(2, 6, 5), 1);
  // Step 0: r1 takes 6, r2 the remaining 4 (chunked). Step 1: r1 decodes, r2 finishes its prompt.
  StepPlan p0 = s.Schedule();
  EXPECT_EQ(Rows(p0), (Row{{1, 6}, {2, 4}}));
  s.Complete(p0);
  StepPlan p1 = s.Schedule();
  EXPECT_EQ(Rows(p1), (Row{{1, 1}, {2, 2}}));
  EXPECT_EQ(p1.batch.tokens, 3);
  EXPECT_EQ(p1.batch.logits, 2);
}

TEST_F(SchedulerTest, StepBudgetNarrowsTheLimitButNeverWidensIt) {
  auto s = Make(10, 16, 100);
  s.Add(Req(1, 6, 5), 0);
  s.Add(Req(2, 6, 5), 1);
  StepPlan p0 = s.Schedule(4);  // a step policy's budget below the engine limit
  EXPECT_EQ(Rows(p0), (Row{{1, 4}}));
  s.Complete(p0);
  StepPlan p1 = s.Schedule(1000);  // above the limit: the limit (10) stands
  EXPECT_EQ(Rows(p1), (Row{{1, 2}, {2, 6}}));
  s.Complete(p1);
  StepPlan p2 = s.Schedule(0);
  EXPECT_TRUE(p2.empty());
  s.Complete(p2);
}

TEST_F(SchedulerTest, AbortRemovesARequestWhereverItIsAndFreesItsBlocks) {
  auto s = Make(10, 16, 100);
  s.Add(Req(1, 6, 50), 0);
  s.Add(Req(2, 6, 50), 1);
  s.Add(Req(3, 20, 50), 2);
  s.Complete(s.Schedule());  // r1 runs (6), r2 runs a 4-token chunk; r3 waits
  const int64_t before = s.used_blocks();
  EXPECT_GT(before, 0);
  EXPECT_EQ(s.pending_prefill_tokens(), 2 + 20);
  EXPECT_EQ(s.prefill_in_progress().sequences, 1);  // r2's chunked prefill
  EXPECT_TRUE(s.Abort(2));                          // running, mid-prefill
  EXPECT_EQ(s.pending_prefill_tokens(), 20);
  EXPECT_EQ(s.prefill_in_progress().sequences, 0);
  EXPECT_LT(s.used_blocks(), before);
  EXPECT_TRUE(s.Abort(3));  // waiting
  EXPECT_EQ(s.pending_prefill_tokens(), 0);
  EXPECT_EQ(s.num_waiting(), 0u);
  EXPECT_FALSE(s.Abort(3));  // already gone
  EXPECT_EQ(s.Find(3), nullptr);
  EXPECT_EQ(s.num_running(), 1u);
  StepPlan p = s.Schedule();  // only r1 decodes
  EXPECT_EQ(Rows(p), (Row{{1, 1}}));
  s.Complete(p);
  EXPECT_TRUE(s.Abort(1));
  EXPECT_EQ(s.used_blocks(), 0);
  EXPECT_FALSE(s.HasWork());
}

TEST_F(SchedulerTest, MaxNumSeqsLimitsAdmission) {
  auto s = Make(100, 2, 100);
  for (int i = 0; i < 4; ++i) s.Add(Req(i, 3, 2), i);
  StepPlan p = s.Schedule();
  EXPECT_EQ(Rows(p), (Row{{0, 3}, {1, 3}}));
  EXPECT_EQ(s.num_running(), 2u);
  EXPECT_EQ(s.num_waiting(), 2u);
}

TEST_F(SchedulerTest, PreemptsLastRunningAndRecomputesWithoutAdmission) {
  // 4 blocks of 4 tokens = 16 tokens of KV.
  auto s = Make(64, 16, 4);
  s.Add(Req(1, 8, 3), 0);
  s.Add(Req(2, 8, 10), 0);
  s.Add(Req(3, 2, 1), 0);
  // Step 0: both 8-token prompts take 2 blocks each; r3 waits, no block is free.
  StepPlan p0 = s.Schedule();
  EXPECT_EQ(Rows(p0), (Row{{1, 8}, {2, 8}}));
  s.Complete(p0);
  // Step 1: r1's 9th token needs a 3rd block: the last running request (r2) is preempted. One
  // block is then free and r3 would fit, but nothing is admitted in a step that preempted.
  StepPlan p1 = s.Schedule();
  EXPECT_EQ(Rows(p1), (Row{{1, 1}}));
  EXPECT_EQ(p1.preempted, (std::vector<RequestId>{2}));
  EXPECT_EQ(s.total_preemptions(), 1);
  s.Complete(p1);
  // Step 2: r2 is at the front of the queue and needs 3 blocks to recompute 9 tokens; only one
  // is free, so admission stops there and r3 waits behind it.
  StepPlan p2 = s.Schedule();
  EXPECT_EQ(Rows(p2), (Row{{1, 1}}));
  auto e2 = s.Complete(p2);
  ASSERT_EQ(e2.size(), 1u);
  EXPECT_TRUE(e2[0].finished);
  // Step 3: r1 is gone; r2 recomputes prompt + its generated token, r3 is admitted behind it.
  StepPlan p3 = s.Schedule();
  EXPECT_EQ(Rows(p3), (Row{{2, 9}, {3, 2}}));
  auto e3 = s.Complete(p3);
  ASSERT_EQ(e3.size(), 2u);
  EXPECT_EQ(e3[0].id, 2);
  EXPECT_EQ(e3[0].generated, 2);  // recompute done: samples its second token
  EXPECT_EQ(e3[0].preemptions, 1);
  EXPECT_TRUE(e3[1].finished);
}

TEST_F(SchedulerTest, SelfPreemptionStopsSchedulingRunning) {
  auto s = Make(64, 16, 2);
  s.Add(Req(1, 8, 5), 0);  // exactly 2 blocks
  StepPlan p0 = s.Schedule();
  s.Complete(p0);  // 9 tokens now, needs a 3rd block that does not exist
  StepPlan p1 = s.Schedule();
  EXPECT_TRUE(p1.seqs.empty());
  EXPECT_EQ(p1.preempted, (std::vector<RequestId>{1}));
}

TEST_F(SchedulerTest, SnapshotReportsQueueKvAndPendingPrefill) {
  auto s = Make(8, 16, 10);
  s.Add(Req(1, 20, 3), 0);
  s.Add(Req(2, 5, 3), 0);
  EngineSnapshot a = s.Snapshot(1.0);
  EXPECT_EQ(a.waiting, 2);
  EXPECT_EQ(a.prefill_pending_tokens, 25);
  s.Complete(s.Schedule());  // r1 prefills 8
  EngineSnapshot b = s.Snapshot(2.0);
  EXPECT_EQ(b.running, 1);
  EXPECT_EQ(b.waiting, 1);
  EXPECT_EQ(b.prefill_pending_tokens, 17);
  EXPECT_DOUBLE_EQ(b.kv_usage, 2.0 / 10.0);
  EXPECT_EQ(b.kv_capacity_tokens, 40);
  EXPECT_DOUBLE_EQ(b.taken_at, 2.0);
}

}  // namespace
}  // namespace gimbal::sim
