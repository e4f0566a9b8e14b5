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
  // vLLM 0.33 options: block size 16 unless changed; every switch off unless set by the caller.
  EngineScheduler Make16(int64_t budget, int64_t blocks, bool caching, bool reserve = false,
                         bool async = false, int64_t max_seqs = 16) {
    EngineLimits l;
    l.max_num_batched_tokens = budget;
    l.max_num_seqs = max_seqs;
    l.kv_blocks = blocks;
    l.block_size = 16;
    l.enable_prefix_caching = caching;
    l.reserve_full_isl = reserve;
    l.async_scheduling = async;
    return EngineScheduler(l, &fcfs_);
  }
  testing::FcfsForTest fcfs_;
};

Request Req(RequestId id, int64_t prompt, int64_t output, std::vector<uint64_t> hashes) {
  Request r = Req(id, prompt, output);
  r.prefix_hashes = std::move(hashes);
  return r;
}

// Runs `steps` plans (each completed) and returns the last one.
StepPlan Steps(EngineScheduler& s, int steps) {
  StepPlan p;
  for (int i = 0; i < steps; ++i) {
    p = s.Schedule();
    s.Complete(p);
  }
  return p;
}

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

// ---- vLLM 0.33 options (docs/baseline.md rows 1, 2, 4, 5). Block size 16. ----

using Ids = std::vector<int32_t>;

// The tests docs/baseline.md names.
class EngineSchedulerTest : public SchedulerTest {};

TEST_F(EngineSchedulerTest, PrefixHitComputesOnlyTheRest) {
  auto s = Make16(1000, 101, /*caching=*/true);
  s.Add(Req(1, 64, 1, {10, 11, 12, 13}), 0);
  EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 64}}));  // takes blocks 1-4, finishes, leaves them cached
  EXPECT_EQ(s.used_blocks(), 0);
  // r2 shares r1's first 3 blocks (48 tokens), then differs: 68 tokens in all.
  s.Add(Req(2, 68, 1, {10, 11, 12, 14}), 1);
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].new_tokens, 20);
  EXPECT_EQ(p.seqs[0].context_before, 48);
  EXPECT_EQ(s.Find(2)->block_ids, (Ids{1, 2, 3, 5, 6}));  // 3 hits, 2 new from the queue front
  EXPECT_EQ(s.pending_prefill_tokens(), 20);
  EXPECT_EQ(s.prefix_cache_queries(), 64 + 68);
  EXPECT_EQ(s.prefix_cache_hits(), 48);
  EXPECT_EQ(p.batch.attn_pairs, 20 * (48 + 21.0 / 2));
}

TEST_F(EngineSchedulerTest, CachedPrefixTokensIsWhatAdmissionWouldFind) {
  auto s = Make16(1000, 101, /*caching=*/true);
  EXPECT_EQ(s.CachedPrefixTokens(Req(2, 68, 1, {10, 11, 12, 14})), 0);  // nothing cached yet
  s.Add(Req(1, 64, 1, {10, 11, 12, 13}), 0);
  Steps(s, 1);  // r1 finishes; its 4 blocks stay cached
  EXPECT_EQ(s.CachedPrefixTokens(Req(2, 68, 1, {10, 11, 12, 14})), 48);
  EXPECT_EQ(s.CachedPrefixTokens(Req(3, 64, 1, {10, 11, 12, 13})), 48);     // within 63 tokens
  EXPECT_EQ(s.CachedPrefixTokens(Req(4, 80, 1, {99, 11, 12, 13, 14})), 0);  // chain broken
  EXPECT_EQ(s.CachedPrefixTokens(Req(5, 64, 1, {10})), 16);  // hashes cover one block only
  EXPECT_EQ(s.CachedPrefixTokens(Req(6, 64, 1)), 0);         // no prefix hashes
  // Admission finds exactly what was predicted, and does not change it by looking.
  s.Add(Req(2, 68, 1, {10, 11, 12, 14}), 1);
  s.Schedule();
  EXPECT_EQ(s.prefix_cache_hits(), 48);
  // An engine without prefix caching holds nothing.
  auto plain = Make16(1000, 101, /*caching=*/false);
  plain.Add(Req(1, 64, 1, {10, 11, 12, 13}), 0);
  Steps(plain, 1);
  EXPECT_EQ(plain.CachedPrefixTokens(Req(2, 68, 1, {10, 11, 12, 14})), 0);
}

TEST_F(EngineSchedulerTest, FullHitStillComputesLastBlock) {
  auto s = Make16(1000, 101, true);
  s.Add(Req(1, 64, 1, {10, 11, 12, 13}), 0);
  Steps(s, 1);
  s.Add(Req(3, 64, 1, {10, 11, 12, 13}), 1);
  // All 4 blocks are cached, but the hit stops within the first 63 tokens: 3 blocks.
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].new_tokens, 16);
  EXPECT_EQ(p.seqs[0].context_before, 48);
  EXPECT_EQ(s.prefix_cache_queries(), 128);
  EXPECT_EQ(s.prefix_cache_hits(), 48);
}

TEST_F(EngineSchedulerTest, EvictsLeastRecentlyFreedTailFirst) {
  auto s = Make16(1000, 9, true);  // 8 usable blocks
  EXPECT_EQ(s.usable_blocks(), 8);
  s.Add(Req(1, 64, 1, {10, 11, 12, 13}), 0);
  Steps(s, 1);  // r1 held 1-4; freed tail first behind the never-used 5-8
  EXPECT_EQ(s.block_pool()->FreeQueue(), (Ids{5, 6, 7, 8, 4, 3, 2, 1}));
  s.Add(Req(2, 80, 1), 1);  // unrelated, 5 blocks
  EXPECT_EQ(Rows(s.Schedule()), (Row{{2, 80}}));
  EXPECT_EQ(s.Find(2)->block_ids, (Ids{5, 6, 7, 8, 4}));  // evicts r1's block 3 only
  EXPECT_EQ(s.block_pool()->num_evictions(), 1);
  s.Complete(StepPlan{{{2, 80, 0, 0}}, {}, {}});
  // r1's 64 tokens plus 16 more: blocks 0-2 hit, block 3 was evicted.
  s.Add(Req(3, 80, 1, {10, 11, 12, 13, 15}), 2);
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].context_before, 48);
  EXPECT_EQ(p.seqs[0].new_tokens, 32);
  EXPECT_EQ(s.Find(3)->block_ids, (Ids{1, 2, 3, 4, 8}));
  EXPECT_EQ(s.prefix_cache_hits(), 48);
}

TEST_F(EngineSchedulerTest, PreemptedRequestResumesFromCache) {
  // 15 usable blocks. r1 (8-token prompt) needs its 3rd block at step 25, when r2 (180-token
  // prompt, 24 tokens generated since) holds 13 blocks for 205 tokens, 204 computed: r2 is
  // preempted. Its 12 full blocks stay cached (block 11 holds prompt tokens 176-179 and output
  // tokens 180-191); its partial block goes to the front and is what r1 takes.
  auto s = Make16(1000, 16, true);
  s.Add(Req(1, 8, 26), 0);
  s.Add(Req(2, 180, 100), 0);
  EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 8}, {2, 180}}));
  Steps(s, 24);
  EXPECT_EQ(s.Find(2)->num_tokens(), 205);
  EXPECT_EQ(s.Find(2)->computed, 204);
  EXPECT_EQ(s.free_blocks(), 0);
  StepPlan p25 = s.Schedule();
  EXPECT_EQ(Rows(p25), (Row{{1, 1}}));
  EXPECT_EQ(p25.preempted, (std::vector<RequestId>{2}));
  EXPECT_EQ(s.block_pool()->num_evictions(), 0);
  auto e25 = s.Complete(p25);
  ASSERT_EQ(e25.size(), 1u);
  EXPECT_TRUE(e25[0].finished);  // r1 is done: 15 blocks free, 12 of them r2's cached ones
  StepPlan p26 = s.Schedule();
  ASSERT_EQ(p26.seqs.size(), 1u);
  EXPECT_EQ(p26.seqs[0].id, 2);
  EXPECT_EQ(p26.seqs[0].context_before, 192);
  EXPECT_EQ(p26.seqs[0].new_tokens, 13);
  auto e26 = s.Complete(p26);
  ASSERT_EQ(e26.size(), 1u);
  EXPECT_EQ(e26[0].generated, 26);  // recompute done: samples its next token
  EXPECT_EQ(e26[0].preemptions, 1);
  EXPECT_EQ(s.prefix_cache_queries(), 8 + 180 + 205);
  EXPECT_EQ(s.prefix_cache_hits(), 192);
}

TEST_F(EngineSchedulerTest, HitBlocksHeldByARunningRequestCostNoFreeBlocks) {
  auto s = Make16(1000, 7, true, /*reserve=*/true);  // 6 usable
  s.Add(Req(1, 64, 100, {1, 2, 3, 4}), 0);
  Steps(s, 1);
  // r1 decodes into a 5th block, leaving 1 free. r2 hits r1's 4 blocks (held, not free) and
  // needs 5 - 4 = 1 more: it fits.
  s.Add(Req(2, 80, 5, {1, 2, 3, 4, 5}), 1);
  StepPlan p = s.Schedule();
  EXPECT_EQ(Rows(p), (Row{{1, 1}, {2, 16}}));
  EXPECT_EQ(p.seqs[1].context_before, 64);
  const Ids& r1 = s.Find(1)->block_ids;
  EXPECT_EQ(s.Find(2)->block_ids, (Ids{r1[0], r1[1], r1[2], r1[3], 6}));
  EXPECT_EQ(s.block_pool()->ref_count(r1[0]), 2);
  EXPECT_EQ(s.used_blocks(), 6);
  EXPECT_DOUBLE_EQ(s.Snapshot(0).kv_usage, 1.0);
}

TEST_F(EngineSchedulerTest, AdmissionNeedsWholePromptBlocks) {
  // 10 usable blocks, 32 tokens a step. r1 (60-token prompt) prefills in two steps and then
  // decodes with 4 blocks, 6 free. r2 arrives, then r3 (4 tokens) behind it.
  auto step2 = [&](bool reserve, int64_t r2_prompt) {
    auto s = Make16(32, 10, false, reserve);
    s.Add(Req(1, 60, 10), 0);
    Steps(s, 2);
    s.Add(Req(2, r2_prompt, 1), 1);
    s.Add(Req(3, 4, 1), 2);
    StepPlan p = s.Schedule();
    return std::make_pair(Rows(p), s.used_blocks());
  };
  // 128 tokens need 8 blocks > 6 free: not admitted, no chunk, and r3 behind it waits too.
  EXPECT_EQ(step2(true, 128), std::make_pair(Row{{1, 1}}, int64_t{4}));
  // Without the check: a 31-token chunk (2 blocks) goes in, as before.
  EXPECT_EQ(step2(false, 128), std::make_pair(Row{{1, 1}, {2, 31}}, int64_t{6}));
  // 96 tokens need exactly the 6 free blocks: admitted with its first chunk only.
  EXPECT_EQ(step2(true, 96), std::make_pair(Row{{1, 1}, {2, 31}}, int64_t{6}));
}

TEST_F(EngineSchedulerTest, AdmissionNeedsWholePromptBlocksWithPrefixCaching) {
  auto s = Make16(32, 11, true, true);  // the same 10 usable blocks
  s.Add(Req(1, 60, 10), 0);
  Steps(s, 2);
  s.Add(Req(2, 128, 1), 1);
  EXPECT_EQ(Rows(s.Schedule()), (Row{{1, 1}}));
  EXPECT_EQ(s.used_blocks(), 4);
}

TEST_F(EngineSchedulerTest, ResumedRequestReservesItsOutputToo) {
  // 11 usable blocks, 64 tokens a step. r2 (100-token prompt) is preempted at step 31 with 30
  // tokens generated (130 in all, 9 blocks) when r1 (2-token prompt) needs its 3rd block; r1 then
  // holds 3 blocks and 8 are free. Readmission needs ceil(130 / 16) = 9 blocks, less its hit plus
  // the hit blocks that are free (all of them here): 9 either way, so it waits until r1 finishes
  // (step 33) although its first chunk alone would fit.
  for (const bool caching : {false, true}) {
    SCOPED_TRACE(caching ? "prefix caching" : "no prefix caching");
    auto s = Make16(64, caching ? 12 : 11, caching, /*reserve=*/true);
    s.Add(Req(1, 2, 34), 0);
    s.Add(Req(2, 100, 1000), 0);
    EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 2}, {2, 62}}));
    Steps(s, 30);
    EXPECT_EQ(s.Find(2)->num_tokens(), 130);
    StepPlan p31 = s.Schedule();
    EXPECT_EQ(p31.preempted, (std::vector<RequestId>{2}));
    s.Complete(p31);
    EXPECT_EQ(s.free_blocks(), 8);
    EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 1}}));  // step 32
    EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 1}}));  // step 33: r1 finishes
    StepPlan p34 = s.Schedule();
    ASSERT_EQ(p34.seqs.size(), 1u);
    EXPECT_EQ(p34.seqs[0].id, 2);
    // Cached: blocks 0-7 (128 tokens) hit, 2 tokens left. Else a 64-token chunk from 0.
    EXPECT_EQ(p34.seqs[0].context_before, caching ? 128 : 0);
    EXPECT_EQ(p34.seqs[0].new_tokens, caching ? 2 : 64);
  }
  // Without the check the first 63-token chunk (4 blocks) is admitted at step 32.
  auto s = Make16(64, 11, false, false);
  s.Add(Req(1, 2, 34), 0);
  s.Add(Req(2, 100, 1000), 0);
  EXPECT_EQ(Steps(s, 32).preempted, (std::vector<RequestId>{2}));  // steps 0-31
  EXPECT_EQ(s.Find(2)->computed, 0);
  EXPECT_EQ(Rows(s.Schedule()), (Row{{1, 1}, {2, 63}}));
}

TEST_F(EngineSchedulerTest, AsyncKeepsFinishedSlotOneStep) {
  // max_num_seqs 1: r2 waits for r1's slot, one step longer with async scheduling.
  for (const bool async : {false, true}) {
    SCOPED_TRACE(async ? "async" : "sync");
    auto s = Make(100, 1, 100);
    EngineLimits l = s.limits();
    l.async_scheduling = async;
    s = EngineScheduler(l, &fcfs_);
    s.Add(Req(1, 4, 2), 0);
    s.Add(Req(2, 4, 1), 0);
    EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 4}}));
    StepPlan p1 = s.Schedule();
    EXPECT_EQ(Rows(p1), (Row{{1, 1}}));
    auto e1 = s.Complete(p1);
    ASSERT_EQ(e1.size(), 1u);  // the finished event comes from the step that sampled it
    EXPECT_TRUE(e1[0].finished);
    EXPECT_EQ(s.num_running(), 0u);
    EXPECT_EQ(s.used_blocks(), async ? 2 : 0);  // 5 tokens in blocks of 4
    EXPECT_EQ(s.Find(1) != nullptr, async);
    StepPlan p2 = s.Schedule();
    EXPECT_EQ(Rows(p2), async ? Row{} : (Row{{2, 4}}));
    EXPECT_EQ(s.Find(1), nullptr);  // released once that plan is made
    s.Complete(p2);
    if (async) {
      EXPECT_EQ(s.used_blocks(), 0);
      EXPECT_EQ(Rows(Steps(s, 1)), (Row{{2, 4}}));
    }
    // r2 finished in its first step; with async it holds on until one more plan.
    EXPECT_EQ(s.HasWork(), async);
    if (async) {
      EXPECT_TRUE(s.Schedule().empty());
    }
    EXPECT_FALSE(s.HasWork());
  }
}

TEST_F(EngineSchedulerTest, DeferredStepSkipsPrefillsWhileDecoding) {
  auto s = Make(10, 16, 100);  // block size 4
  s.Add(Req(1, 4, 10), 0);
  Steps(s, 1);
  s.Add(Req(2, 20, 5), 1);
  EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 1}, {2, 9}}));  // r2 chunked: 11 tokens left
  EXPECT_FALSE(s.prefill_capacity_bound());
  s.Add(Req(3, 3, 5), 2);
  // Deferred: r1 decodes; r2's chunk is skipped; r3 (3 tokens to compute) is not admitted.
  StepPlan d = s.Schedule(-1, /*defer_prefills=*/true);
  EXPECT_EQ(Rows(d), (Row{{1, 1}}));
  s.Complete(d);
  EXPECT_FALSE(s.prefill_capacity_bound());             // a deferred scan leaves the guard alone
  EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 1}, {2, 9}}));  // the budget runs out before r3
  EXPECT_TRUE(s.prefill_capacity_bound());
  EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_FALSE(s.prefill_capacity_bound());
}

TEST_F(EngineSchedulerTest, DeferralNeedsADecodingRequest) {
  auto s = Make(8, 16, 100);
  s.Add(Req(1, 20, 2), 0);
  s.Add(Req(2, 4, 2), 0);
  // Nothing decodes yet, so defer_prefills changes nothing; the guard is recomputed each step.
  std::vector<Row> rows;
  std::vector<bool> bound;
  for (int i = 0; i < 3; ++i) {
    StepPlan p = s.Schedule(-1, true);
    rows.push_back(Rows(p));
    bound.push_back(s.prefill_capacity_bound());
    s.Complete(p);
  }
  EXPECT_EQ(rows, (std::vector<Row>{{{1, 8}}, {{1, 8}}, {{1, 4}, {2, 4}}}));
  EXPECT_EQ(bound, (std::vector<bool>{true, true, false}));
}

TEST_F(EngineSchedulerTest, DeferredStepAdmitsAFullHitWithOneTokenLeft) {
  auto s = Make16(1000, 101, true);
  s.Add(Req(1, 65, 100, {1, 2, 3, 4}), 0);
  Steps(s, 1);
  s.Add(Req(2, 65, 5, {1, 2, 3, 4}), 1);  // hits 64 of 65: one token left
  s.Add(Req(3, 33, 5), 2);
  StepPlan d = s.Schedule(-1, true);
  EXPECT_EQ(Rows(d), (Row{{1, 1}, {2, 1}}));
  EXPECT_EQ(d.seqs[1].context_before, 64);
  // r3 was looked up before the deferral stopped the scan: its tokens count as queried.
  EXPECT_EQ(s.prefix_cache_queries(), 65 + 65 + 33);
  EXPECT_EQ(s.prefix_cache_hits(), 64);
  s.Complete(d);
  EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 1}, {2, 1}, {3, 33}}));
  EXPECT_EQ(s.prefix_cache_queries(), 65 + 65 + 33 + 33);  // looked up again
  EXPECT_EQ(s.prefix_cache_hits(), 64);
}

TEST_F(EngineSchedulerTest, KvUsageExcludesCachedFreeBlocks) {
  auto s = Make16(1000, 11, true);  // 10 usable
  s.Add(Req(1, 32, 1), 0);
  Steps(s, 1);
  EngineSnapshot a = s.Snapshot(1);
  EXPECT_DOUBLE_EQ(a.kv_usage, 0.0);  // r1's 2 blocks are cached but free
  EXPECT_EQ(a.kv_capacity_tokens, 160);
  EXPECT_EQ(s.free_blocks(), 10);
  EXPECT_EQ(s.block_pool()->FreeQueue().size(), 10u);
  s.Add(Req(2, 20, 5), 1);
  Steps(s, 1);
  EXPECT_DOUBLE_EQ(s.Snapshot(2).kv_usage, 2.0 / 10.0);
  EXPECT_EQ(s.used_blocks(), 2);
}

TEST_F(EngineSchedulerTest, AbortedBlocksStayCached) {
  auto s = Make16(1000, 101, true);
  s.Add(Req(1, 40, 10, {1, 2}), 0);
  Steps(s, 1);
  EXPECT_TRUE(s.Abort(1));
  EXPECT_EQ(s.used_blocks(), 0);
  s.Add(Req(2, 40, 10, {1, 2}), 1);
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].context_before, 32);
  EXPECT_EQ(p.seqs[0].new_tokens, 8);
}

TEST_F(EngineSchedulerTest, AllSwitchesOffIgnorePrefixesAndUseEveryBlock) {
  auto s = Make16(1000, 4, false);
  EXPECT_EQ(s.usable_blocks(), 4);
  EXPECT_EQ(s.block_pool(), nullptr);
  s.Add(Req(1, 64, 1, {10, 11, 12, 13}), 0);
  EXPECT_EQ(Rows(Steps(s, 1)), (Row{{1, 64}}));  // all 4 blocks: none is reserved
  s.Add(Req(2, 64, 1, {10, 11, 12, 13}), 1);
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].new_tokens, 64);
  EXPECT_EQ(p.seqs[0].context_before, 0);
  EXPECT_EQ(s.prefix_cache_queries(), 0);
  EXPECT_EQ(s.prefix_cache_hits(), 0);
  EXPECT_DOUBLE_EQ(s.Snapshot(0).kv_usage, 1.0);
}

TEST_F(EngineSchedulerTest, PrefixHashesMayCoverSeveralBlocks) {
  // One prefix hash per 64 tokens (4 blocks), as a Mooncake trace's hash ids cover 512.
  EngineLimits l = Make16(1000, 101, true).limits();
  l.prefix_hash_tokens = 64;
  EngineScheduler s(l, &fcfs_);
  s.Add(Req(1, 200, 1, {7, 8, 9, 10}), 0);  // 12 full prompt blocks, all from its hashes
  Steps(s, 1);
  // r2 shares the first two hashes (128 tokens = 8 blocks); its block 8 falls under hash 11.
  s.Add(Req(2, 150, 1, {7, 8, 11}), 1);
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].context_before, 128);
  EXPECT_EQ(p.seqs[0].new_tokens, 22);
}

TEST_F(EngineSchedulerTest, AbortReleasesAFinishingRequest) {
  auto s = Make16(1000, 101, true, false, /*async=*/true);
  s.Add(Req(1, 20, 1), 0);
  s.Complete(s.Schedule());  // finished; keeps its 2 blocks until the next plan
  EXPECT_EQ(s.used_blocks(), 2);
  EXPECT_TRUE(s.HasWork());
  EXPECT_TRUE(s.Abort(1));
  EXPECT_EQ(s.used_blocks(), 0);
  EXPECT_FALSE(s.HasWork());
}

TEST_F(EngineSchedulerTest, PrefixCachingNeedsTwoBlocks) {
  EXPECT_DEATH(Make16(100, 1, true), "reserves one KV block");
}

// vLLM 0.34's cache-aware admission. r0 (80-token prompt) keeps decoding; r1 (64 tokens, prefix
// hashes 10-13) finishes at once and leaves its 4 blocks cached. At step 2 r0 holds 6 of the 10
// usable blocks (usage 0.6) and two requests wait: r2 (32 tokens, nothing cached) ahead of r3
// (48 tokens sharing r1's first 3 hashes: a 32-token hit). Only one of them fits.
class CacheAwareAdmissionTest : public SchedulerTest {
 protected:
  // The real policy's name: cache-aware admission applies under "fcfs" only, as in vLLM.
  class NamedFcfs final : public testing::FcfsForTest {
   public:
    std::string name() const override { return "fcfs"; }
  };
  Row SecondStep(int64_t window, double threshold, const QueuePolicy* queue) {
    EngineLimits l;
    l.max_num_batched_tokens = 1000;
    l.max_num_seqs = 16;
    l.kv_blocks = 11;  // 10 usable
    l.block_size = 16;
    l.enable_prefix_caching = true;
    l.cache_aware_admission_window = window;
    l.cache_aware_admission_threshold = threshold;
    EngineScheduler s(l, queue);
    s.Add(Req(0, 80, 100), 0);
    s.Add(Req(1, 64, 1, {10, 11, 12, 13}), 0);
    StepPlan p1 = s.Schedule();
    EXPECT_EQ(Rows(p1), (Row{{0, 80}, {1, 64}}));
    s.Complete(p1);
    s.Add(Req(2, 32, 1), 1);
    s.Add(Req(3, 48, 1, {10, 11, 12}), 1);
    return Rows(s.Schedule());
  }
  NamedFcfs named_fcfs_;
};

TEST_F(CacheAwareAdmissionTest, OffItAdmitsInArrivalOrder) {
  EXPECT_EQ(SecondStep(0, 0.5, &named_fcfs_), (Row{{0, 1}, {2, 32}}));
}

TEST_F(CacheAwareAdmissionTest, TheRequestWithACachedPrefixGoesFirst) {
  // r3 computes 16 of its 48 tokens; r2 no longer fits.
  EXPECT_EQ(SecondStep(4, 0.5, &named_fcfs_), (Row{{0, 1}, {3, 16}}));
  EXPECT_EQ(SecondStep(2, 0.0, &named_fcfs_), (Row{{0, 1}, {3, 16}}));
}

TEST_F(CacheAwareAdmissionTest, BelowTheUsageThresholdOrAcrossAWindowOfOneNothingMoves) {
  EXPECT_EQ(SecondStep(4, 0.61, &named_fcfs_), (Row{{0, 1}, {2, 32}}));  // usage 0.6
  EXPECT_EQ(SecondStep(1, 0.5, &named_fcfs_), (Row{{0, 1}, {2, 32}}));
}

TEST_F(CacheAwareAdmissionTest, OnlyAFirstComeFirstServedQueueIsReordered) {
  EXPECT_EQ(SecondStep(4, 0.5, &fcfs_), (Row{{0, 1}, {2, 32}}));  // a policy named otherwise
}

}  // namespace
}  // namespace gimbal::sim
