// BlockPool: free-queue order, eviction, touch and shared holds, against hand-traced queues.
#include "sim/block_pool.h"

#include <gtest/gtest.h>

namespace gimbal::sim {
namespace {

using Ids = std::vector<int32_t>;

TEST(BlockPoolTest, ReservesBlockZeroAndQueuesTheRestInIdOrder) {
  BlockPool p(5);
  EXPECT_EQ(p.num_usable(), 4);
  EXPECT_EQ(p.num_free(), 4);
  EXPECT_EQ(p.num_used(), 0);
  EXPECT_EQ(p.FreeQueue(), (Ids{1, 2, 3, 4}));
  Ids got;
  p.Allocate(4, got);
  EXPECT_EQ(got, (Ids{1, 2, 3, 4}));  // block 0 is never handed out
  EXPECT_EQ(p.num_free(), 0);
  EXPECT_EQ(p.num_used(), 4);
}

TEST(BlockPoolTest, FreesTailFirstHashedToTheBackUnhashedToTheFront) {
  BlockPool p(9);
  Ids req;
  p.Allocate(4, req);  // 1 2 3 4; free: 5 6 7 8
  p.Cache(1, 101);
  p.Cache(2, 102);
  p.Cache(3, 103);  // block 4 is partial: no hash
  p.Free(req);
  // Tail first: 4 (unhashed) to the front, then 3, 2, 1 to the back.
  EXPECT_EQ(p.FreeQueue(), (Ids{4, 5, 6, 7, 8, 3, 2, 1}));
  EXPECT_EQ(p.num_free(), 8);
  EXPECT_EQ(p.Lookup(102), 2);
  EXPECT_EQ(p.Lookup(104), -1);

  // New blocks come from the front; the cached block 3 taken there is evicted, 2 and 1 stay.
  Ids other;
  p.Allocate(6, other);
  EXPECT_EQ(other, (Ids{4, 5, 6, 7, 8, 3}));
  EXPECT_EQ(p.num_evictions(), 1);
  EXPECT_EQ(p.Lookup(103), -1);
  EXPECT_FALSE(p.hashed(3));
  EXPECT_EQ(p.Lookup(101), 1);
  EXPECT_EQ(p.FreeQueue(), (Ids{2, 1}));
}

TEST(BlockPoolTest, TouchTakesAFreeCachedBlockAndSharedBlocksFreeOnLastHold) {
  BlockPool p(5);
  Ids req;
  p.Allocate(2, req);
  p.Cache(1, 11);
  p.Cache(2, 12);
  p.Free(req);
  EXPECT_EQ(p.FreeQueue(), (Ids{3, 4, 2, 1}));
  p.Touch(1);  // a hit on a free cached block takes it out of the queue
  EXPECT_EQ(p.ref_count(1), 1);
  EXPECT_EQ(p.FreeQueue(), (Ids{3, 4, 2}));
  EXPECT_EQ(p.num_free(), 3);
  p.Touch(1);  // a second holder
  EXPECT_EQ(p.ref_count(1), 2);
  EXPECT_EQ(p.num_free(), 3);
  p.Free({1});
  EXPECT_EQ(p.ref_count(1), 1);
  EXPECT_EQ(p.FreeQueue(), (Ids{3, 4, 2}));
  p.Free({1});
  EXPECT_EQ(p.FreeQueue(), (Ids{3, 4, 2, 1}));
  EXPECT_EQ(p.Lookup(11), 1);  // still cached while free
}

TEST(BlockPoolTest, DuplicateHashesStayFindableUntilTheLastIsEvicted) {
  BlockPool p(5);
  Ids a, b;
  p.Allocate(1, a);  // 1
  p.Allocate(1, b);  // 2
  p.Cache(1, 7);
  p.Cache(2, 7);  // the same content computed twice
  EXPECT_EQ(p.Lookup(7), 1);
  p.Free(a);
  Ids c;
  p.Allocate(3, c);  // 3, 4, then 1 (evicted)
  EXPECT_EQ(c, (Ids{3, 4, 1}));
  EXPECT_EQ(p.Lookup(7), 2);
  p.Free(b);
  p.Allocate(1, c);  // 2 evicted: nothing carries hash 7 any more
  EXPECT_EQ(p.Lookup(7), -1);
  EXPECT_EQ(p.num_evictions(), 2);
}

TEST(BlockPoolTest, BadUseIsAClearError) {
  EXPECT_DEATH(BlockPool(1), "at least 2 KV blocks");
  BlockPool p(3);
  EXPECT_DEATH(p.Free({1}), "block is not held");
  Ids got;
  EXPECT_DEATH(p.Allocate(3, got), "not enough free blocks");
  EXPECT_DEATH(p.Touch(1), "not a cached block");
}

}  // namespace
}  // namespace gimbal::sim
