#include "core/prefix_index.h"

#include <vector>

#include <gtest/gtest.h>

namespace gimbal {
namespace {

using H = std::vector<uint64_t>;

// Hashes an engine or a client chooses cannot share a bucket: with the identity hash, 65,536
// multiples of the table's bucket count all went to one chain, and every store walked it.
TEST(KeyedHash, MultiplesOfABucketCountSpreadOverTheBuckets) {
  constexpr uint64_t kBuckets = 85229;  // libstdc++'s bucket count for about 42,000 to 85,000
  std::vector<bool> used(kBuckets);
  size_t distinct = 0;
  for (uint64_t k = 1; k <= 65536; ++k) {
    const size_t b = KeyedHash{}(k * kBuckets) % kBuckets;
    distinct += !used[b];
    used[b] = true;
  }
  EXPECT_GT(distinct, 40000u);  // about 45,000 when spread at random; 1 with the identity
  HashLru lru(1 << 17);
  for (uint64_t k = 1; k <= 65536; ++k) lru.Store(k * kBuckets);
  const std::vector<uint64_t> chain{kBuckets, 2 * kBuckets, 3 * kBuckets, 7};
  EXPECT_EQ(lru.MatchPrefix(chain), 3u);
}

TEST(PrefixIndex, MatchesTheLeadingHashesSentToThatEngineOnly) {
  PrefixIndex idx(2, 100);
  EXPECT_EQ(idx.Match(0, H{1, 2, 3}), 0u);
  idx.Record(0, H{1, 2, 3});
  EXPECT_EQ(idx.Match(0, H{1, 2, 3, 4}), 3u);  // the turn after: its history is there
  EXPECT_EQ(idx.Match(0, H{1, 2, 9, 3}), 2u);  // a chain stops at the first miss
  EXPECT_EQ(idx.Match(0, H{9, 1, 2}), 0u);
  EXPECT_EQ(idx.Match(1, H{1, 2, 3}), 0u);  // sent to engine 0, not 1
  EXPECT_EQ(idx.Match(0, H{}), 0u);
  EXPECT_EQ(idx.size(0), 3u);
  idx.Record(0, H{1, 2, 3, 4});  // repeats are not stored twice
  EXPECT_EQ(idx.size(0), 4u);
}

TEST(PrefixIndex, ForgetsTheLeastRecentlyUsedBeyondCapacity) {
  PrefixIndex idx(1, 4);
  idx.Record(0, H{1, 2});    // session A
  idx.Record(0, H{10, 11});  // session B
  idx.Record(0, H{1, 2});    // A again: now the most recent
  idx.Record(0, H{20, 21});  // C evicts B, the least recent
  EXPECT_EQ(idx.size(0), 4u);
  EXPECT_EQ(idx.Match(0, H{1, 2}), 2u);
  EXPECT_EQ(idx.Match(0, H{10, 11}), 0u);
  EXPECT_EQ(idx.Match(0, H{20, 21}), 2u);
  // Matching does not refresh: after one more session, A (older than C) goes.
  EXPECT_EQ(idx.Match(0, H{1, 2}), 2u);
  idx.Record(0, H{30, 31});
  EXPECT_EQ(idx.Match(0, H{1, 2}), 0u);
  EXPECT_EQ(idx.Match(0, H{20, 21}), 2u);
  // A prompt longer than the capacity keeps its last hashes; memory stays bounded.
  idx.Record(0, H{40, 41, 42, 43, 44, 45});
  EXPECT_EQ(idx.size(0), 4u);
  EXPECT_EQ(idx.Match(0, H{40, 41}), 0u);
  EXPECT_EQ(idx.Match(0, H{42}), 1u);
}

TEST(PrefixIndex, ClearForgetsOneEngine) {
  PrefixIndex idx(2, 10);
  idx.Record(0, H{1, 2});
  idx.Record(1, H{1, 2});
  idx.Clear(0);
  EXPECT_EQ(idx.Match(0, H{1, 2}), 0u);
  EXPECT_EQ(idx.size(0), 0u);
  EXPECT_EQ(idx.Match(1, H{1, 2}), 2u);
  PrefixIndex zero(1, 0);  // a capacity below one counts as one
  EXPECT_EQ(zero.capacity(), 1u);
}

TEST(PrefixIndexDeathTest, AnEngineOutOfRangeIsAProgrammingError) {
  PrefixIndex idx(1, 10);
  EXPECT_DEATH(idx.Match(1, H{1}), "engine out of range");
  EXPECT_DEATH(idx.Record(-1, H{1}), "engine out of range");
}

}  // namespace
}  // namespace gimbal
