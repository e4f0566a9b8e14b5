// BlockPool: one rank's paged KV blocks with automatic prefix caching, as vLLM v1's block pool.
//
// Blocks are numbered 0..num_blocks-1. Block 0 is reserved (vLLM's null block) and never handed
// out, so num_blocks - 1 blocks are usable. Each block has a reference count (requests holding it)
// and, once its tokens are all computed, a content hash (Cache()); a hashed block stays findable by
// Lookup() until it is evicted. Blocks with no holder sit in the free queue, cached ones included
// (they count as free until a hit takes them back or an allocation evicts them):
//   - Allocate() takes blocks from the front; a hashed block taken there loses its hash (evicted).
//   - Free() returns a request's blocks tail first: a block whose count drops to 0 goes to the back
//     when hashed and to the front when not (a partial or uncomputed block is reused first). The
//     result is LRU across requests and, within one request, the tail evicted before the head.
//   - Touch() takes a hit block for one more holder, out of the free queue if it was free.
// Several blocks may carry the same hash (two requests computed the same prefix at once); Lookup()
// returns the one cached first. Every operation costs O(blocks passed in) — the queue is an
// index-linked list and hashes sit in a hash map — never a scan over the pool.
//
// An optional BlockPoolObserver hears when a content hash becomes findable (its first block is
// cached) and when it stops being findable (its last block is evicted): the set of hashes it has
// been told about equals the set Lookup() finds. This is what `gimbal engine` publishes as vLLM's
// KV-cache events (docs/kv-events.md). Unset, it costs one null test per cache and eviction and
// changes nothing.
#pragma once

#include <cstdint>
#include <vector>

#include <tsl/robin_map.h>

#include "core/hash.h"

namespace gimbal::sim {

// Told about changes to the set of cached content hashes. Calls happen inside Allocate() and
// Cache(), on the thread that calls them; they must not call back into the pool.
class BlockPoolObserver {
 public:
  virtual ~BlockPoolObserver() = default;
  // `hash` became findable: the first block carrying it was cached.
  virtual void OnStored(uint64_t hash) = 0;
  // `hash` is no longer findable: the last block carrying it was evicted (taken for new content).
  virtual void OnRemoved(uint64_t hash) = 0;
};

class BlockPool {
 public:
  // num_blocks >= 2 (one is reserved). Initially every usable block is free, in id order.
  explicit BlockPool(int64_t num_blocks);

  int64_t num_usable() const { return static_cast<int64_t>(blocks_.size()) - 1; }
  int64_t num_free() const { return num_free_; }  // includes cached free blocks
  int64_t num_used() const { return num_usable() - num_free_; }
  int64_t num_evictions() const { return evictions_; }

  // Appends `n` blocks from the front of the free queue to `out`, each with count 1, evicting the
  // cached ones. Requires n <= num_free().
  void Allocate(int64_t n, std::vector<int32_t>& out);
  // The cached block with content hash `hash`, or -1.
  int32_t Lookup(uint64_t hash) const;
  // One more holder of block `b` (a prefix hit); a free block leaves the free queue.
  void Touch(int32_t b);
  // Releases one hold on each of `blocks` (a request's block table, head first), tail first.
  void Free(const std::vector<int32_t>& blocks);
  // Gives held block `b`, now full and computed, the content hash `hash`. No-op when it has one.
  void Cache(int32_t b, uint64_t hash);

  // Installs `observer` (null: none). Not owned; it must outlive the pool or be unset first.
  void SetObserver(BlockPoolObserver* observer) { observer_ = observer; }

  int32_t ref_count(int32_t b) const { return blocks_.at(b).ref; }
  bool hashed(int32_t b) const { return blocks_.at(b).hashed; }
  // The free queue front to back. O(free blocks): for tests.
  std::vector<int32_t> FreeQueue() const;

 private:
  struct Block {
    uint64_t hash = 0;
    int32_t ref = 0;
    int32_t prev = -1, next = -1;            // free queue links
    int32_t same_prev = -1, same_next = -1;  // other blocks cached under the same hash
    bool hashed = false;
  };
  void Unlink(int32_t b);
  void PushBack(int32_t b);
  void PushFront(int32_t b);
  void Evict(int32_t b);

  std::vector<Block> blocks_;
  // hash -> first block with it, in an open-addressing map (a lookup touches one or two cache
  // lines; a node map's chains cost a division and a miss per node, which dominated whole
  // simulations). Keys are mixed once more, so keys that share their low bits (which the map's
  // power-of-two buckets use) still spread.
  struct MixedHash {
    size_t operator()(uint64_t h) const { return static_cast<size_t>(Mix64(h)); }
  };
  tsl::robin_map<uint64_t, int32_t, MixedHash> cached_;
  int32_t head_ = -1, tail_ = -1;
  int64_t num_free_ = 0;
  int64_t evictions_ = 0;
  BlockPoolObserver* observer_ = nullptr;
};

}  // namespace gimbal::sim
