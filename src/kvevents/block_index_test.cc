// BlockIndex (stores, removes, clears, the bound, prefix matching) and SequenceTracker's verdicts.
#include "kvevents/block_index.h"

#include <gtest/gtest.h>

namespace gimbal::kvevents {
namespace {

using Hashes = std::vector<uint64_t>;

TEST(BlockIndexTest, AppliesStoresRemovesAndClearsInOrder) {
  BlockIndex idx(100);
  EventBatch b;
  BlockStored s;
  s.block_hashes = {1, 2, 3};
  BlockRemoved r;
  r.block_hashes = {2, 42};  // 42 was never stored: ignored
  b.events = {s, r};
  idx.Apply(b);
  EXPECT_EQ(idx.Hashes(), (Hashes{1, 3}));
  const Hashes prompt{1, 2, 3};
  EXPECT_EQ(idx.MatchPrefix(prompt), 1u);  // stops at the first miss
  // A store after a remove in the same batch wins; a clear empties what came before it.
  EventBatch c;
  BlockStored again;
  again.block_hashes = {2};
  c.events = {again};
  idx.Apply(c);
  EXPECT_EQ(idx.MatchPrefix(prompt), 3u);
  c.events = {AllBlocksCleared{}, again};
  idx.Apply(c);
  EXPECT_EQ(idx.Hashes(), (Hashes{2}));
}

TEST(BlockIndexTest, StaysWithinItsBoundDroppingTheLeastRecentlyStored) {
  BlockIndex idx(3);
  for (uint64_t h : {1, 2, 3}) idx.Store(h);
  idx.Store(1);  // refreshed: 2 is now the oldest
  idx.Store(4);
  EXPECT_EQ(idx.Hashes(), (Hashes{3, 1, 4}));
  EXPECT_EQ(idx.bounded_drops(), 1);
  for (uint64_t h = 10; h < 1000; ++h) idx.Store(h);
  EXPECT_EQ(idx.size(), 3u);
  EXPECT_EQ(idx.Hashes(), (Hashes{997, 998, 999}));
}

// A batch may carry millions of hashes: Apply pauses every kPauseEvery of them, where the
// subscriber lets dispatch read the index (before, a 16 MiB batch held it for 0.35 s).
TEST(BlockIndexTest, ALongBatchPausesEveryFewThousandHashes) {
  BlockIndex idx(1 << 20);
  EventBatch b;
  BlockStored s;
  for (uint64_t h = 0; h < 10 * BlockIndex::kPauseEvery + 5; ++h) s.block_hashes.push_back(h);
  BlockRemoved r;
  r.block_hashes = {1, 2, 3};
  b.events = {s, r, AllBlocksCleared{}};
  int pauses = 0;
  size_t held_at_first = 0;
  idx.Apply(b, [&] {
    if (pauses++ == 0) held_at_first = idx.size();
  });
  EXPECT_EQ(pauses, 10);  // 10 kPauseEvery + 5 stores, 3 removes and a clear: 40,969 steps
  EXPECT_EQ(held_at_first, BlockIndex::kPauseEvery);  // the first pause comes after 4,096 stores
  EXPECT_EQ(idx.size(), 0u);
}

TEST(SequenceTrackerTest, InOrderGapDuplicateAndRestart) {
  using V = SequenceTracker::Verdict;
  SequenceTracker t;
  EXPECT_EQ(t.Offer(0), V::kInOrder);
  EXPECT_EQ(t.Offer(1), V::kInOrder);
  EXPECT_EQ(t.expected(), 2);
  // 5 arrives early: a gap, nothing advanced until the caller settles 2..4.
  EXPECT_EQ(t.Offer(5), V::kGap);
  EXPECT_EQ(t.expected(), 2);
  t.SettleFrom(2);
  t.SkipTo(5);
  EXPECT_EQ(t.expected(), 6);
  // 3 and 4 arriving late (or re-sent) are skipped, not taken for a restart...
  EXPECT_EQ(t.Offer(3), V::kDuplicate);
  EXPECT_EQ(t.Offer(4), V::kDuplicate);
  // ...and once the stream is in order again, going back is a restart.
  EXPECT_EQ(t.Offer(6), V::kInOrder);
  EXPECT_EQ(t.Offer(3), V::kRestart);
  EXPECT_EQ(t.expected(), 7);  // unchanged until the caller resets
  t.Reset();
  EXPECT_EQ(t.Offer(3), V::kGap);  // a restart seen late: 0..2 are missing
  EXPECT_EQ(t.Offer(0), V::kInOrder);
  EXPECT_EQ(t.Offer(1), V::kInOrder);
}

TEST(SequenceTrackerTest, ARestartBelowTheSettledRangeIsStillARestart) {
  using V = SequenceTracker::Verdict;
  SequenceTracker t;
  for (int64_t s = 0; s < 10; ++s) ASSERT_EQ(t.Offer(s), V::kInOrder);
  EXPECT_EQ(t.Offer(12), V::kGap);
  t.SettleFrom(10);
  t.SkipTo(12);
  EXPECT_EQ(t.Offer(0), V::kRestart);  // 0 < 10: the publisher started over
}

TEST(SequenceTrackerTest, AfterADisconnectionSettledNumbersMeanARestart) {
  using V = SequenceTracker::Verdict;
  SequenceTracker t;
  EXPECT_EQ(t.Offer(7), V::kGap);  // joined late; a replay brings 0..7
  t.SettleFrom(0);
  t.SkipTo(7);
  EXPECT_EQ(t.Offer(3), V::kDuplicate);  // re-sent live while the replay ran
  t.ForgetSettled();                     // the connection dropped
  EXPECT_EQ(t.Offer(3), V::kRestart);
}

TEST(SequenceTrackerTest, SaturatesAtTheLargestNumberInsteadOfOverflowing) {
  using V = SequenceTracker::Verdict;
  SequenceTracker t;
  t.SkipTo(SequenceTracker::kMaxSeq);
  EXPECT_EQ(t.expected(), INT64_MAX);
  t.SkipTo(INT64_MAX);  // callers reject it; should one slip through, no overflow
  EXPECT_EQ(t.expected(), INT64_MAX);
  EXPECT_EQ(t.Offer(INT64_MAX), V::kInOrder);
  EXPECT_EQ(t.expected(), INT64_MAX);
}

}  // namespace
}  // namespace gimbal::kvevents
