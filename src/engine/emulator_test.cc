// The real-time driver without HTTP: time scale 0 (no sleeping), bounded waits.
#include "engine/emulator.h"

#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>

#include <gtest/gtest.h>

namespace gimbal::engine {
namespace {

using namespace std::chrono_literals;

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Update> updates;
  UpdateSink Sink() {
    return [this](const Update& u) {
      std::lock_guard<std::mutex> lock(mu);
      updates.push_back(u);
      cv.notify_all();
    };
  }
  bool WaitFinished(std::chrono::seconds limit = 10s) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, limit, [&] { return !updates.empty() && updates.back().finished; });
  }
};

std::unique_ptr<Emulator> Make(double scale = 0, bool prefix_caching = true,
                               int64_t max_num_seqs = 0) {
  auto spec = ClusterFromCatalog("qwen3-30b-a3b", "h100-sxm", "hgx-8gpu", 2);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  EmulatorOptions o;
  o.cluster = *spec;
  o.cluster.engine.enable_prefix_caching = prefix_caching;
  o.cluster.engine.block_size = 16;  // the figures below count blocks of 16 tokens
  if (max_num_seqs > 0) o.cluster.engine.max_num_seqs = max_num_seqs;
  o.time_scale = scale;
  auto e = Emulator::Create(o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(*e);
}

TEST(EmulatorTest, RequestsGenerateEveryTokenThenFinish) {
  auto emu = Make();
  emu->Start();
  Collector a, b;
  emu->Submit({0, 100, 5, 0, 0, {}}, a.Sink());
  emu->Submit({1, 3000, 3, 0, 0, {}}, b.Sink());
  ASSERT_TRUE(a.WaitFinished());
  ASSERT_TRUE(b.WaitFinished());
  ASSERT_EQ(a.updates.size(), 5u);
  for (size_t i = 0; i < a.updates.size(); ++i) {
    EXPECT_EQ(a.updates[i].generated, static_cast<int64_t>(i + 1));
    EXPECT_TRUE(a.updates[i].error.empty());
  }
  EXPECT_EQ(b.updates.back().generated, 3);
  EXPECT_GT(emu->steps(), 0);
  // Both ranks sent tokens to experts: the source x expert statistics saw them.
  const SourceExpertCounts c = emu->RoutingCounts();
  EXPECT_EQ(c.sources, 2);
  double per_source[2] = {0, 0};
  for (int l = 0; l < c.layers; ++l) {
    for (int s = 0; s < 2; ++s) {
      for (int x = 0; x < c.experts; ++x) per_source[s] += c.At(l, s, x);
    }
  }
  EXPECT_GT(per_source[0], 0);
  EXPECT_GT(per_source[1], per_source[0]);  // rank 1 prefilled the longer prompt
  const RankState s = emu->State(0);
  EXPECT_EQ(s.snapshot.running, 0);
  EXPECT_EQ(s.snapshot.waiting, 0);
  EXPECT_GT(s.snapshot.kv_capacity_tokens, 0);
}

TEST(EmulatorTest, RejectsRequestsThatCannotRun) {
  auto emu = Make();
  emu->Start();
  Collector big, bad;
  emu->Submit({0, emu->kv_capacity_tokens(), 1, 0, 0, {}}, big.Sink());
  emu->Submit({5, 10, 1, 0, 0, {}}, bad.Sink());
  ASSERT_TRUE(big.WaitFinished());
  ASSERT_TRUE(bad.WaitFinished());
  EXPECT_EQ(big.updates.back().status, 400);
  EXPECT_EQ(bad.updates.back().status, 400);
  // A client's max_tokens may be anything up to INT64_MAX: prompt + output once overflowed, the
  // request was admitted, and when it outgrew the KV cache it stayed at the head of the queue, so
  // nothing behind it ever ran.
  Collector huge, small;
  emu->Submit({0, 3, std::numeric_limits<int64_t>::max(), 0, 0, {}}, huge.Sink());
  emu->Submit({0, 3, 2, 0, 0, {}}, small.Sink());
  ASSERT_TRUE(huge.WaitFinished());
  ASSERT_TRUE(small.WaitFinished());
  EXPECT_EQ(huge.updates.back().status, 400);
  EXPECT_NE(huge.updates.back().error.find("exceed the engine's KV cache"), std::string::npos);
  EXPECT_TRUE(small.updates.back().error.empty()) << small.updates.back().error;
  EXPECT_EQ(small.updates.back().generated, 2);
}

TEST(EmulatorTest, PlacementIsValidatedAndInstalledBetweenSteps) {
  auto emu = Make();
  emu->Start();
  Placement p = emu->CurrentPlacement();
  std::swap(p.phy2log[0], p.phy2log[p.slots_per_gpu]);  // swap an expert across the two GPUs
  Collector ok, wrong;
  emu->SetPlacement(p, ok.Sink());
  ASSERT_TRUE(ok.WaitFinished());
  EXPECT_TRUE(ok.updates.back().error.empty()) << ok.updates.back().error;
  EXPECT_EQ(emu->CurrentPlacement().phy2log, p.phy2log);
  Placement shape = Placement::Contiguous(p.layers, p.experts, 4);
  emu->SetPlacement(shape, wrong.Sink());
  ASSERT_TRUE(wrong.WaitFinished());
  EXPECT_EQ(wrong.updates.back().status, 400);
}

TEST(EmulatorTest, StopFailsWhatIsInFlight) {
  auto emu = Make(1000);  // slow: the request is still running when we stop
  emu->Start();
  Collector a;
  emu->Submit({0, 5000, 1000, 0, 0, {}}, a.Sink());
  std::this_thread::sleep_for(20ms);
  emu->Stop();
  ASSERT_TRUE(a.WaitFinished(1s));
  EXPECT_EQ(a.updates.back().status, 503);
  Collector late;
  emu->Submit({0, 10, 1, 0, 0, {}}, late.Sink());
  ASSERT_TRUE(late.WaitFinished(1s));
  EXPECT_EQ(late.updates.back().status, 503);
}

// Async scheduling holds a finished request's slot through the next plan, which can then be
// empty although a waiting request fits right after it: the driver must plan again, not idle.
TEST(EmulatorTest, AnEmptyPlanThatReleasesASlotIsFollowedByTheNext) {
  auto emu = Make(0, true, /*max_num_seqs=*/1);
  ASSERT_TRUE(emu->spec().engine.async_scheduling);
  Collector a, b;
  emu->Submit({0, 100, 1, 0, 0, {}}, a.Sink());  // both in the first step's inbox
  emu->Submit({0, 100, 1, 0, 0, {}}, b.Sink());
  emu->Start();
  ASSERT_TRUE(a.WaitFinished());
  ASSERT_TRUE(b.WaitFinished(5s));
  EXPECT_TRUE(b.updates.back().error.empty());
}

// 100 prompt tokens at block size 16: six full blocks, each with its chained hash.
Submission SharedPrompt(int64_t tag) {
  Submission s{0, 100, 2, 0, 0, {}};
  for (int64_t b = 0; b < 6; ++b) {
    s.prefix_hashes.push_back(static_cast<uint64_t>(tag * 100 + b + 1));
  }
  return s;
}

TEST(EmulatorTest, PrefixCacheCountsLookupsAndHitsInTokens) {
  auto emu = Make();
  ASSERT_TRUE(emu->spec().engine.enable_prefix_caching);
  ASSERT_EQ(emu->spec().engine.block_size, 16);
  emu->Start();
  Collector first, again, other;
  emu->Submit(SharedPrompt(1), first.Sink());
  ASSERT_TRUE(first.WaitFinished());
  // The same blocks again: a hit of all six (96 tokens, within the first 99), one lookup each.
  emu->Submit(SharedPrompt(1), again.Sink());
  ASSERT_TRUE(again.WaitFinished());
  emu->Submit(SharedPrompt(2), other.Sink());  // different hashes: looked up, nothing hit
  ASSERT_TRUE(other.WaitFinished());
  const RankState s = emu->State(0);
  EXPECT_EQ(s.prefix_cache_queries, 300);
  EXPECT_EQ(s.prefix_cache_hits, 96);
  EXPECT_EQ(emu->State(1).prefix_cache_queries, 0);  // the other rank saw nothing
}

// The cluster's EngineConfig switch reaches the schedulers: with prefix caching off nothing is
// looked up, so the same prompt twice counts neither queries nor hits.
TEST(EmulatorTest, PrefixCacheOffCountsNothing) {
  auto emu = Make(0, /*prefix_caching=*/false);
  emu->Start();
  Collector first, again;
  emu->Submit(SharedPrompt(1), first.Sink());
  ASSERT_TRUE(first.WaitFinished());
  emu->Submit(SharedPrompt(1), again.Sink());
  ASSERT_TRUE(again.WaitFinished());
  EXPECT_EQ(emu->State(0).prefix_cache_queries, 0);
  EXPECT_EQ(emu->State(0).prefix_cache_hits, 0);
}

}  // namespace
}  // namespace gimbal::engine
