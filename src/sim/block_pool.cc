#include "sim/block_pool.h"

#include "core/status.h"

namespace gimbal::sim {

BlockPool::BlockPool(int64_t num_blocks) {
  GIMBAL_CHECK(num_blocks >= 2, "a prefix-caching block pool needs at least 2 KV blocks");
  GIMBAL_CHECK(num_blocks <= INT32_MAX, "too many KV blocks for one rank");
  blocks_.resize(static_cast<size_t>(num_blocks));
  blocks_[0].ref = 1;  // the reserved null block: never free, never handed out
  for (int32_t b = 1; b < static_cast<int32_t>(num_blocks); ++b) PushBack(b);
  cached_.reserve(static_cast<size_t>(num_blocks));
}

void BlockPool::Unlink(int32_t b) {
  Block& k = blocks_[b];
  if (k.prev >= 0) {
    blocks_[k.prev].next = k.next;
  } else {
    head_ = k.next;
  }
  if (k.next >= 0) {
    blocks_[k.next].prev = k.prev;
  } else {
    tail_ = k.prev;
  }
  k.prev = k.next = -1;
  --num_free_;
}

void BlockPool::PushBack(int32_t b) {
  Block& k = blocks_[b];
  k.prev = tail_;
  k.next = -1;
  if (tail_ >= 0) {
    blocks_[tail_].next = b;
  } else {
    head_ = b;
  }
  tail_ = b;
  ++num_free_;
}

void BlockPool::PushFront(int32_t b) {
  Block& k = blocks_[b];
  k.prev = -1;
  k.next = head_;
  if (head_ >= 0) {
    blocks_[head_].prev = b;
  } else {
    tail_ = b;
  }
  head_ = b;
  ++num_free_;
}

void BlockPool::Evict(int32_t b) {
  Block& k = blocks_[b];
  if (k.same_prev >= 0) {
    blocks_[k.same_prev].same_next = k.same_next;
  } else if (k.same_next >= 0) {
    cached_[k.hash] = k.same_next;
  } else {
    cached_.erase(k.hash);
    if (observer_) observer_->OnRemoved(k.hash);
  }
  if (k.same_next >= 0) blocks_[k.same_next].same_prev = k.same_prev;
  k.same_prev = k.same_next = -1;
  k.hashed = false;
  k.hash = 0;
  ++evictions_;
}

void BlockPool::Allocate(int64_t n, std::vector<int32_t>& out) {
  GIMBAL_CHECK(n <= num_free_, "BlockPool::Allocate: not enough free blocks");
  for (int64_t i = 0; i < n; ++i) {
    const int32_t b = head_;
    Unlink(b);
    if (blocks_[b].hashed) Evict(b);
    blocks_[b].ref = 1;
    out.push_back(b);
  }
}

int32_t BlockPool::Lookup(uint64_t hash) const {
  auto it = cached_.find(hash);
  return it == cached_.end() ? -1 : it->second;
}

void BlockPool::Touch(int32_t b) {
  Block& k = blocks_.at(b);
  GIMBAL_CHECK(b != 0 && k.hashed, "BlockPool::Touch: not a cached block");
  if (k.ref == 0) Unlink(b);
  ++k.ref;
}

void BlockPool::Free(const std::vector<int32_t>& blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    Block& k = blocks_.at(*it);
    GIMBAL_CHECK(*it != 0 && k.ref > 0, "BlockPool::Free: block is not held");
    if (--k.ref > 0) continue;
    if (k.hashed) {
      PushBack(*it);
    } else {
      PushFront(*it);
    }
  }
}

void BlockPool::Cache(int32_t b, uint64_t hash) {
  Block& k = blocks_.at(b);
  GIMBAL_CHECK(b != 0 && k.ref > 0, "BlockPool::Cache: block is not held");
  if (k.hashed) return;
  k.hashed = true;
  k.hash = hash;
  auto [it, inserted] = cached_.emplace(hash, b);
  if (inserted) {
    if (observer_) observer_->OnStored(hash);
    return;
  }
  int32_t last = it->second;  // chains are short: same prefix computed concurrently
  while (blocks_[last].same_next >= 0) last = blocks_[last].same_next;
  blocks_[last].same_next = b;
  k.same_prev = last;
}

std::vector<int32_t> BlockPool::FreeQueue() const {
  std::vector<int32_t> out;
  for (int32_t b = head_; b >= 0; b = blocks_[b].next) out.push_back(b);
  return out;
}

}  // namespace gimbal::sim
